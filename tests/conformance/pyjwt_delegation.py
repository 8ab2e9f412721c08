"""PyJWT verifying a delegation token against the published JWKS, as a resource server
would, and reading its nested RFC 8693 `act` claim.

usage: pyjwt_delegation.py <issuer> <token>
"""
import json
import sys

import jwt

issuer, token = sys.argv[1], sys.argv[2]
jwks = jwt.PyJWKClient(issuer + "/.well-known/jwks.json")
key = jwks.get_signing_key_from_jwt(token)
header = jwt.get_unverified_header(token)
assert header["typ"] == "at+jwt", header
claims = jwt.decode(token, key.key, algorithms=[header["alg"]], audience=issuer, issuer=issuer,
                    options={"require": ["exp", "iat", "iss", "aud", "sub", "jti", "act"]})
actors = []
act = claims.get("act")
while act:
    actors.append(act["sub"])
    act = act.get("act")
print(json.dumps({"sub": claims["sub"], "actors": actors, "chain_id": claims["chain_id"],
                  "delegation_id": claims["delegation_id"], "scope": claims["scope"]}))
