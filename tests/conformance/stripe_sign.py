"""Sign a webhook fixture the way Stripe signs (Stripe-Signature: t=…,v1=HMAC-SHA256 of
"{t}.{payload}"), and ask the official `stripe` library's verifier whether it accepts
it with the endpoint's secret, before the test sends it to AgentIdP.

stdin: {"payload": "<raw body>", "secret": "<endpoint secret>", "signers": ["<secret>", …],
        "timestamp": <unix seconds>}
stdout: {"header": "t=…,v1=…[,v1=…]", "stripe_accepts": true|false, "why": "…"}
"""

import hashlib
import hmac
import json
import sys

import stripe

fixture = json.load(sys.stdin)
payload, t = fixture["payload"], int(fixture["timestamp"])
signatures = [
    hmac.new(signer.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest() for signer in fixture["signers"]
]
header = ",".join([f"t={t}"] + [f"v1={s}" for s in signatures])
try:
    stripe.WebhookSignature.verify_header(payload, header, fixture["secret"], tolerance=300)
    accepts, why = True, ""
except stripe.SignatureVerificationError as e:
    accepts, why = False, str(e)
print(json.dumps({"header": header, "stripe_accepts": accepts, "why": why}))
