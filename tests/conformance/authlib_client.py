"""Authlib against AgentIdP: client credentials with client_secret_basic,
client_secret_post and private_key_jwt, then the token verified with PyJWT against the
published JWKS. Used as Authlib's documentation shows; prints one JSON line.

usage: authlib_client.py <issuer> <method> <client_id> <secret-or-PEM-file>
"""
import json
import sys

import jwt
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey

issuer, method, client_id, secret = sys.argv[1:5]
token_endpoint = issuer + "/api/v1/oauth2/token"
if method == "private_key_jwt":
    with open(secret) as f:
        private_key = ECKey.import_key(f.read())  # a P-256 key: Authlib takes EC keys as key objects
    session = OAuth2Session(client_id, private_key, token_endpoint_auth_method="private_key_jwt")
    session.register_client_auth_method(PrivateKeyJWT(token_endpoint, alg="ES256"))
else:
    session = OAuth2Session(client_id, secret, token_endpoint_auth_method=method)
token = session.fetch_token(token_endpoint, grant_type="client_credentials")

jwks = jwt.PyJWKClient(issuer + "/.well-known/jwks.json")
key = jwks.get_signing_key_from_jwt(token["access_token"])
claims = jwt.decode(token["access_token"], key.key, algorithms=["ES256", "RS256", "EdDSA"],
                    audience=issuer, issuer=issuer)
print(json.dumps({"token_type": token["token_type"], "client_id": claims["client_id"],
                  "expires_at": token.get("expires_at")}))
