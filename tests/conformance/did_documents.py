"""pydid and Authlib against AgentIdP's DIDs: every document URL given is fetched,
must be served as application/did+json and parse as a DID Core document with pydid
(whose id must be the DID expected); then Authlib obtains a token with private_key_jwt
as the agent's DID, signed by its DID key (kid = the DID URL). Prints one JSON line.

usage: did_documents.py <issuer> <agent DID> <private JWK (JSON)> <DID>=<document URL>...
"""
import json
import sys

import pydid
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey

issuer, agent_did, private_jwk = sys.argv[1:4]
checked = []
for pair in sys.argv[4:]:
    did, url = pair.split("=", 1)
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200, (url, resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/did+json"), resp.headers
    doc = pydid.deserialize_document(resp.json(), strict=True)
    assert str(doc.id) == did, (str(doc.id), did)
    for method in doc.verification_method or []:
        assert method.public_key_jwk is not None and "d" not in method.public_key_jwk
    checked.append({"did": str(doc.id), "methods": len(doc.verification_method or [])})

jwk = json.loads(private_jwk)
token_endpoint = issuer + "/api/v1/oauth2/token"
session = OAuth2Session(agent_did, ECKey.import_key(jwk), token_endpoint_auth_method="private_key_jwt")
session.register_client_auth_method(PrivateKeyJWT(token_endpoint, headers={"kid": jwk["kid"]}, alg="ES256"))
token = session.fetch_token(token_endpoint, grant_type="client_credentials")
print(json.dumps({"documents": checked, "token_type": token["token_type"], "access_token": token["access_token"]}))
