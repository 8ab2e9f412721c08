-- Version 7: delegation chains. One row per link (hop): who handed which scope to whom,
-- until when, under which parent. The root link's id is the chain's id. A revocation
-- marks the link and every link below it revoked, in one transaction with its audit
-- event. Links are kept after they expire (the listing shows them); verification loads
-- only the unexpired ones.

CREATE TABLE delegation_chains (
    id            UUID PRIMARY KEY,
    org_id        UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    chain_id      UUID NOT NULL,
    parent_id     UUID REFERENCES delegation_chains (id) ON DELETE CASCADE,
    delegator_id  UUID NOT NULL,
    delegatee_id  UUID NOT NULL,
    scope         TEXT NOT NULL,
    audience      TEXT NOT NULL,
    depth         INTEGER NOT NULL,
    max_depth     INTEGER NOT NULL,
    token_format  TEXT NOT NULL,
    token_id      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    status        TEXT NOT NULL,
    revoked_at    BIGINT
);

CREATE INDEX delegation_chains_org_expiry ON delegation_chains (org_id, expires_at);
CREATE INDEX delegation_chains_org_id ON delegation_chains (org_id, id);
