"""Authlib's strict RFC 8414 validator on AgentIdP's metadata, fetched where RFC 8414 §3
puts it for an issuer with a path.
usage: discovery_strict.py <base URL of the server> <issuer>"""
import json
import sys
import urllib.parse
import urllib.request

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata, get_well_known_url

base, issuer = sys.argv[1], sys.argv[2]
# Authlib computes the well-known URL from the issuer; the test server is reached at
# `base` (a proxy would map the issuer's host to it).
well_known = get_well_known_url(issuer, external=True)
path = urllib.parse.urlsplit(well_known).path
with urllib.request.urlopen(base + path) as r:
    doc = json.load(r)
metadata = AuthorizationServerMetadata(doc)
metadata.validate()  # raises on any violation
assert metadata["issuer"] == issuer, (metadata["issuer"], issuer)
print(json.dumps({"well_known_path": path, "issuer": metadata["issuer"],
                  "response_types_supported": metadata["response_types_supported"]}))
