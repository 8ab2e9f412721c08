"""The IETF ratelimit headers of counted responses, parsed with http-sfv (an independent
RFC 8941 Structured Fields parser), until the daily quota refuses: at the token
endpoint and on the management API.

usage: ratelimit_sfv.py <base> <client_id> <client_secret>
"""
import json
import sys

import requests
from http_sfv import List

base, client_id, secret = sys.argv[1:4]


def parsed(resp, name):
    value = resp.headers.get(name)
    assert value is not None, f"{resp.status_code} has no {name}: {dict(resp.headers)}"
    field = List()
    field.parse(value.encode())  # raises on anything that is not a Structured Field List
    assert len(field) == 1, value
    item = field[0]
    return item.value, dict(item.params)


def limits(resp):
    """(policy name, quota, window, remaining, reset) of one response."""
    policy, p = parsed(resp, "RateLimit-Policy")
    state, s = parsed(resp, "RateLimit")
    assert policy == state == "daily", (policy, state)
    for key, value in list(p.items()) + list(s.items()):
        assert isinstance(value, int) and value >= 0, (key, value)
    assert p["w"] == 86400, p
    assert 0 < s["t"] <= 86400, s
    return p["q"], s["r"], s["t"]


def token():
    return requests.post(base + "/api/v1/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret})


seen = []
resp = token()
assert resp.status_code == 200, resp.text
q, r, t = limits(resp)
seen.append(r)
bearer = {"Authorization": "Bearer " + resp.json()["access_token"]}
while True:
    resp = requests.get(base + "/api/v1/agents", headers=bearer)
    if resp.status_code == 429:
        break
    assert resp.status_code == 200, resp.text
    _, r, t = limits(resp)
    assert r == seen[-1] - 1, (r, seen)
    seen.append(r)
refused = resp
rq, rr, rt = limits(refused)
retry_after = int(refused.headers["Retry-After"])
assert rr == 0 and rq == q, (rq, rr)
assert retry_after >= rt, (retry_after, rt)
assert refused.headers["Content-Type"].startswith("application/problem+json")
problem = refused.json()
assert problem["type"] == "urn:agentidp:problem:quota-exceeded", problem

oauth = token()
assert oauth.status_code == 429, oauth.text
oq, orr, ot = limits(oauth)
assert int(oauth.headers["Retry-After"]) >= ot and orr == 0
print(json.dumps({"quota": q, "remaining_seen": seen, "retry_after": retry_after,
                  "reset": rt, "problem": problem["type"], "oauth_error": oauth.json()["error"]}))
