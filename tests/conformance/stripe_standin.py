"""Stripe for the billing tests: localstripe (a local Stripe fake from PyPI) for what it
covers (customers, plans, subscriptions), and this small stand-in in front of it for
what it lacks: Checkout Sessions. POST /v1/checkout/sessions is answered here (its form
parameters checked and recorded to RECORD, one JSON object a line); every other request
is passed to localstripe unchanged.

usage: stripe_standin.py PORT LOCALSTRIPE_URL RECORD
"""

import json
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, UPSTREAM, RECORD = int(sys.argv[1]), sys.argv[2].rstrip("/"), sys.argv[3]
REQUIRED = ["mode", "customer", "client_reference_id", "line_items[0][price]", "success_url", "cancel_url"]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.command == "POST" and self.path.split("?")[0] == "/v1/checkout/sessions":
            return self.checkout(body or b"")
        request = urllib.request.Request(UPSTREAM + self.path, data=body, method=self.command)
        for name in ("Authorization", "Content-Type", "Stripe-Version", "Idempotency-Key"):
            if self.headers.get(name):
                request.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                self.answer(response.status, response.read())
        except urllib.error.HTTPError as e:
            self.answer(e.code, e.read())

    def checkout(self, body):
        if not (self.headers.get("Authorization") or "").startswith(("Bearer sk_", "Basic ")):
            return self.answer(401, json.dumps({"error": {"type": "invalid_request_error", "message": "no key"}}).encode())
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
        missing = [k for k in REQUIRED if not form.get(k)]
        if missing or form["mode"] != "subscription":
            error = {"type": "invalid_request_error", "message": f"missing or wrong: {missing or ['mode']}"}
            return self.answer(400, json.dumps({"error": error}).encode())
        with open(RECORD, "a") as record:
            record.write(json.dumps(form) + "\n")
        session_id = "cs_test_" + secrets.token_hex(12)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "subscription",
            "customer": form["customer"],
            "client_reference_id": form["client_reference_id"],
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "status": "open",
            "payment_status": "unpaid",
        }
        self.answer(200, json.dumps(session).encode())

    do_GET = do_POST = do_DELETE = forward


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
