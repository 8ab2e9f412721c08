-- Version 10: federation partners. A partner is another identity provider whose JWTs
-- an organization accepts: matched by its exact `issuer` (one partner per issuer in an
-- organization), with the rules its JWTs must pass (`rules`, one JSON document: where
-- its keys are, allowed algorithms, subjects, scopes and audiences, the subject-to-agent
-- mapping, lifetime and replay protection).

CREATE TABLE federation_partners (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    issuer      TEXT NOT NULL,
    rules       TEXT NOT NULL,
    enabled     INTEGER NOT NULL,
    expires_at  INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (org_id, issuer)
);

CREATE INDEX federation_partners_issuer ON federation_partners (issuer);
