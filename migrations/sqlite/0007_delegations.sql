-- Version 7: delegation chains. One row per link (hop): who handed which scope to whom,
-- until when, under which parent. The root link's id is the chain's id. A revocation
-- marks the link and every link below it revoked, in one transaction with its audit
-- event. Links are kept after they expire (the listing shows them); verification loads
-- only the unexpired ones.

CREATE TABLE delegation_chains (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    chain_id      TEXT NOT NULL,
    parent_id     TEXT REFERENCES delegation_chains (id) ON DELETE CASCADE,
    delegator_id  TEXT NOT NULL,
    delegatee_id  TEXT NOT NULL,
    scope         TEXT NOT NULL,
    audience      TEXT NOT NULL,
    depth         INTEGER NOT NULL,
    max_depth     INTEGER NOT NULL,
    token_format  TEXT NOT NULL,
    token_id      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    status        TEXT NOT NULL,
    revoked_at    INTEGER
) WITHOUT ROWID;

CREATE INDEX delegation_chains_org_expiry ON delegation_chains (org_id, expires_at);
CREATE INDEX delegation_chains_org_id ON delegation_chains (org_id, id);
