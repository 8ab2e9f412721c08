-- Version 14: signed checkpoints of each audit chain (sequence, head hash, time, and
-- the JWT the issuer's signing key made of them), so a chain's head is vouched for
-- outside the rows it vouches for, and where verification may resume.
CREATE TABLE audit_checkpoints (
    chain       TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    jwt         TEXT NOT NULL,
    -- When a verification walked the chain up to this checkpoint and found it intact:
    -- the next one starts here.
    verified_at INTEGER,
    PRIMARY KEY (chain, seq)
);
