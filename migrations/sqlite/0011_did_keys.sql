-- Version 11: agents' DID keys. Each is a verification method of the agent's did:web
-- document (`<did>#<key_id>`): a P-256 public JWK the agent registered, or one AgentIdP
-- generated, whose private key is kept sealed (AES-256-GCM under the master key, or a
-- reference into Vault). A key stays listed until it is removed. The rows outlive their
-- agent (no foreign key to it): a deleted agent's DID still resolves, deactivated.

CREATE TABLE agent_did_keys (
    agent_id    TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    public_jwk  TEXT NOT NULL,
    sealed_kid  TEXT,
    sealed      BLOB,
    sealed_ref  TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (agent_id, key_id)
);
