"""PyJWT verifying tokens signed before and after a key rotation with one fetch of the
JWKS: the old key is still published, the new one already was.

usage: pyjwt_rotation.py <issuer> <token>...
"""
import json
import sys

import jwt

issuer, tokens = sys.argv[1], sys.argv[2:]
jwks = jwt.PyJWKClient(issuer + "/.well-known/jwks.json", cache_keys=True)
keys = {k.key_id: k for k in jwks.get_signing_keys()}
kids = []
for token in tokens:
    header = jwt.get_unverified_header(token)
    key = keys[header["kid"]]  # no refetch: every kid must be in the one JWKS we fetched
    jwt.decode(token, key.key, algorithms=[header["alg"]], audience=issuer, issuer=issuer,
               options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]})
    kids.append(header["kid"])
print(json.dumps({"verified": len(kids), "kids": kids}))
