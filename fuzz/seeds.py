"""Write the seed corpora of the fuzz targets: valid inputs signed with fuzz/keys/es256.pem
at the instant the targets verify at (fuzz/src/lib.rs), so the fuzzer starts past the
signature check. Independent of the engine: PyJWT signs, the thumbprint is RFC 7638."""

import base64
import hashlib
import json
import pathlib
import sys
import uuid

import jwt
from cryptography.hazmat.primitives import serialization

HERE = pathlib.Path(__file__).parent
ISSUER = "https://issuer.fuzz.test"
CLIENT_ID = "aidp_fuzz_client"
TOKEN_URL = ISSUER + "/api/v1/oauth2/token"
NOW = 1_767_225_600
ACCESS_TOKEN = "fuzz-access-token"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


pem = (HERE / "keys" / "es256.pem").read_bytes()
key = serialization.load_pem_private_key(pem, password=None)
numbers = key.public_key().public_numbers()
public = {"crv": "P-256", "kty": "EC", "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}
kid = b64(hashlib.sha256(json.dumps(public, sort_keys=True, separators=(",", ":")).encode()).digest())

access = {
    "iss": ISSUER, "sub": str(uuid.uuid4()), "aud": ISSUER, "exp": NOW + 600, "iat": NOW, "nbf": NOW,
    "jti": str(uuid.uuid4()), "client_id": CLIENT_ID, "scope": "agents:read agents:write", "org_id": str(uuid.uuid4()),
}
seeds = {
    "access_token": [
        jwt.encode(access, pem, "ES256", headers={"typ": "at+jwt", "kid": kid}),
        jwt.encode({**access, "cnf": {"jkt": kid}, "act": {"sub": str(uuid.uuid4())}}, pem, "ES256",
                   headers={"typ": "at+jwt", "kid": kid}),
    ],
    "client_assertion": [
        jwt.encode({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": TOKEN_URL, "exp": NOW + 60, "iat": NOW,
                    "jti": str(uuid.uuid4())}, pem, "ES256"),
        jwt.encode({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": [ISSUER, "other"], "exp": NOW + 3600, "nbf": NOW,
                    "jti": "j"}, pem, "ES256", headers={"kid": kid}),
    ],
    "dpop_proof": [
        jwt.encode({"jti": str(uuid.uuid4()), "htm": "POST", "htu": TOKEN_URL, "iat": NOW}, pem, "ES256",
                   headers={"typ": "dpop+jwt", "jwk": public}),
        jwt.encode({"jti": "p", "htm": "POST", "htu": TOKEN_URL + "?q#f", "iat": NOW,
                    "ath": b64(hashlib.sha256(ACCESS_TOKEN.encode()).digest())}, pem, "ES256",
                   headers={"typ": "dpop+jwt", "jwk": public}),
    ],
    "token_form": [
        "\ngrant_type=client_credentials&client_id=aidp_a&client_secret=aidp_sk_x&scope=agents%3Aread",
        "Basic " + base64.b64encode(b"aidp_a:aidp%2Bsk+x").decode() + "\ngrant_type=client_credentials",
        "\ngrant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type"
        "%3Ajwt-bearer&client_assertion=e30.e30.sig",
        "\ngrant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&client_id=a&client_secret=s"
        "&subject_token=t&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&audience=x",
    ],
}

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else HERE / "corpus")
for target, inputs in seeds.items():
    (root / target).mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(inputs):
        (root / target / f"seed-{i}").write_text(text)
print(f"seeds written under {root}", file=sys.stderr)
