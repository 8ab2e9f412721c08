-- Version 14: signed checkpoints of each audit chain (sequence, head hash, time, and
-- the JWT the issuer's signing key made of them), so a chain's head is vouched for
-- outside the rows it vouches for.
CREATE TABLE audit_checkpoints (
    chain       TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    jwt         TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
