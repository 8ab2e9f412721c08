-- Version 11: agents' DIDs. Each DID key is a verification method of the agent's did:web
-- document (`<did>#<key_id>`): a P-256 public JWK the agent registered, or one AgentIdP
-- generated, whose private key is kept sealed (AES-256-GCM under the master key, or a
-- reference into Vault). A key stays listed until it is removed, and goes with its
-- agent. `deleted_agents` remembers every deleted agent (written in the deletion's
-- transaction, also for an organization's agents when it is deleted), so a deleted
-- agent's DID keeps resolving, deactivated, and is never taken for one that never was.

CREATE TABLE agent_did_keys (
    agent_id    TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    key_id      TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    public_jwk  TEXT NOT NULL,
    sealed_kid  TEXT,
    sealed      BLOB,
    sealed_ref  TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (agent_id, key_id)
);

CREATE TABLE deleted_agents (
    agent_id    TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL
);
