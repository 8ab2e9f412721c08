"""biscuit-python (an independent implementation) with a biscuit delegation: verify it
offline with AgentIdP's published root key, as a service would, then attenuate it
offline — a block that leaves one scope and shortens its life — and print the
attenuated token for AgentIdP's verify-delegation.

usage: biscuit_attenuate.py <issuer> <token> <scope to keep>
"""
import json
import sys
import urllib.request
from datetime import datetime, timedelta, timezone

from biscuit_auth import AuthorizerBuilder, Biscuit, BlockBuilder, PublicKey

issuer, token, keep = sys.argv[1:4]
with urllib.request.urlopen(issuer + "/.well-known/biscuit-public-key") as r:
    published = json.load(r)
with urllib.request.urlopen(issuer + "/.well-known/oauth-authorization-server") as r:
    assert json.load(r)["biscuit_public_key"] == published["public_key"]
root = PublicKey(published["public_key"])
biscuit = Biscuit.from_base64(token, root)  # raises unless AgentIdP's key signed it


def allowed(token, scope):
    authorizer = AuthorizerBuilder(
        "scope_requested({s}); allow if scope($x), scope_requested($x);", {"s": scope})
    authorizer.set_time()
    try:
        authorizer.build(token).authorize()
        return True
    except Exception:
        return False


authority = biscuit.block_source(0)
scopes = sorted(line.split('"')[1] for line in authority.splitlines() if line.startswith("scope("))
offline = {s: allowed(biscuit, s) for s in scopes}
soon = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
assert all(c.isalnum() or c in ":_-." for c in keep), keep
block = BlockBuilder(
    f'check if scope_requested($s), ["{keep}"].contains($s); check if time($t), $t <= {soon};')
attenuated = biscuit.append(block)
print(json.dumps({
    "scopes": scopes,
    "offline": offline,
    "attenuated_offline": {s: allowed(attenuated, s) for s in scopes},
    "blocks": attenuated.block_count(),
    "same_revocation_root": attenuated.revocation_ids[0] == biscuit.revocation_ids[0],
    "revocation_ids": attenuated.revocation_ids,
    "token": attenuated.to_base64(),
}))
