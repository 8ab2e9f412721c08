"""An HTTPS client that trusts only the given CA file (Python's ssl, certificate and host
name verified): the metadata, the JWKS and a refused token request over TLS.
usage: tls_client.py <https base> <ca.pem>"""
import json
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

base, ca = sys.argv[1], sys.argv[2]
context = ssl.create_default_context(cafile=ca)


def get(path):
    with urllib.request.urlopen(base + path, context=context) as r:
        return r.status, json.load(r), r.version


status, meta, version = get("/.well-known/oauth-authorization-server")
_, jwks, _ = get("/.well-known/jwks.json")
form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "aidp_ci_nosuch",
                               "client_secret": "wrong"}).encode()
try:
    urllib.request.urlopen(urllib.request.Request(base + "/api/v1/oauth2/token", data=form), context=context)
    token_status = 200
except urllib.error.HTTPError as e:
    token_status, token_error = e.code, json.load(e)["error"]
print(json.dumps({"status": status, "issuer": meta["issuer"], "token_endpoint": meta["token_endpoint"],
                  "keys": len(jwks["keys"]), "http_version": version, "token_status": token_status,
                  "token_error": token_error}))
