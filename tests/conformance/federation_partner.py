"""A federation partner made of PyJWT and a small HTTP server: it serves its JWKS and
signs JWTs on request, so the integration suite can drive a real, independent partner.

Run: python3 federation_partner.py  — prints the port it listens on (127.0.0.1), then
serves until killed. Endpoints:
  GET  /jwks.json      the JWKS (Cache-Control: max-age=600), or what /mode says
  GET  /count          {"fetches": n} — JWKS requests served so far
  POST /mode {"mode"}  "ok", "fail" (answer 500), "huge" (a 1 MiB body), "redirect"
  POST /rotate         a new signing key; the JWKS lists it and the old one
  POST /sign {claims, kid?, alg?}   {"jwt": …} signed with the newest key; alg "none"
                       or "HS256-pubkey" (HMAC keyed with the public key) forge
"""

import base64
import hashlib
import hmac
import json
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

lock = threading.Lock()
state = {"keys": [], "fetches": 0, "mode": "ok"}


def new_key():
    private = ec.generate_private_key(ec.SECP256R1())
    kid = uuid.uuid4().hex
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "alg": "ES256", "use": "sig"})
    return {"kid": kid, "private": private, "jwk": jwk}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(req):
    with lock:
        key = state["keys"][-1]
    claims, alg = req["claims"], req.get("alg", "ES256")
    kid = req.get("kid", key["kid"])
    if alg == "none":
        return jwt.encode(claims, None, algorithm="none", headers={"kid": kid})
    if alg == "HS256-pubkey":
        # The confusion attack: an HMAC whose secret is the public key's PEM.
        pem = key["private"].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        body = b64(json.dumps(claims).encode())
        mac = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64(mac)}"
    return jwt.encode(claims, key["private"], algorithm="ES256", headers={"kid": kid})


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/count":
            with lock:
                return self.reply(200, {"fetches": state["fetches"]})
        if self.path != "/jwks.json":
            return self.reply(404, {"error": "not found"})
        with lock:
            state["fetches"] += 1
            mode = state["mode"]
            keys = [k["jwk"] for k in state["keys"]]
        if mode == "fail":
            return self.reply(500, {"error": "down"})
        if mode == "huge":
            return self.reply(200, b'{"keys": [' + b" " * (1 << 20) + b"]}")
        if mode == "redirect":
            return self.reply(302, {}, [("Location", "http://127.0.0.1:1/jwks.json")])
        self.reply(200, {"keys": keys}, [("Cache-Control", "public, max-age=600")])

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/sign":
            return self.reply(200, {"jwt": sign(req)})
        if self.path == "/rotate":
            with lock:
                state["keys"] = state["keys"][-1:] + [new_key()]
            return self.reply(200, {"kid": state["keys"][-1]["kid"]})
        if self.path == "/mode":
            with lock:
                state["mode"] = req["mode"]
            return self.reply(200, {"mode": req["mode"]})
        self.reply(404, {"error": "not found"})


if __name__ == "__main__":
    state["keys"].append(new_key())
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
