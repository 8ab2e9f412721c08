"""A webhook receiver for the tests: verifies every delivery with the Standard Webhooks
reference library (PyPI `standardwebhooks`), never with our code.

Usage: webhook_receiver.py SECRETS_FILE LOG_FILE [OFFSET_FILE]
The library refuses a `webhook-timestamp` more than 5 minutes from its clock; a test that
moves the server's injected clock writes how far (in seconds) to OFFSET_FILE, and the
library's clock is moved as far, so its own tolerance check still runs. Prints the port it listens on (127.0.0.1), then serves until killed. For each POST it
reads the secrets (one `whsec_` per line) afresh, checks the signature with each, and
appends one JSON line to LOG_FILE: the webhook-id, the event type, the audit seq, and
the indexes of the secrets that verified. It answers 204 if one did, else 400.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from datetime import datetime, timedelta

import standardwebhooks.webhooks as library
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRETS, LOG = sys.argv[1], sys.argv[2]
OFFSET = sys.argv[3] if len(sys.argv) > 3 else None


def offset_seconds():
    try:
        with open(OFFSET) as f:
            return float(f.read().strip() or 0)
    except (TypeError, FileNotFoundError):
        return 0.0


class ShiftedDatetime(datetime):
    """The library's clock, moved as far as the server's injected clock."""

    @classmethod
    def now(cls, tz=None):
        return datetime.now(tz) + timedelta(seconds=offset_seconds())


library.datetime = ShiftedDatetime


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            with open(SECRETS) as f:
                secrets = [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            secrets = []
        valid = []
        for i, secret in enumerate(secrets):
            try:
                Webhook(secret).verify(body, headers)
                valid.append(i)
            except WebhookVerificationError:
                pass
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        entry = {
            "webhook_id": headers.get("webhook-id"),
            "signatures": len(headers.get("webhook-signature", "").split()),
            "type": payload.get("type"),
            "audit_seq": (payload.get("data") or {}).get("audit_seq"),
            "valid_with": valid,
        }
        with open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")
        self.send_response(204 if valid else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
