-- Version 15: compact audit records (issue 37). An event is stored as a binary record
-- (docs/design/audit.md) with its chain's number, seq, id, action and a 4-byte tag of
-- its hash; the full hash only on every 64th event (an anchor) and in the head. Strings
-- the records share are numbered once in audit_strings. Each chain gets a number and a
-- floor: the newest event archived and removed (0 and the genesis hash until then).
-- The events of the first layout are moved into the new one by the engine when it opens
-- the store (they keep their hashes: the encoding gives back the same canonical JSON).
ALTER TABLE audit_heads ADD COLUMN n INTEGER;
UPDATE audit_heads SET n = rowid;
CREATE UNIQUE INDEX audit_heads_n ON audit_heads (n);
ALTER TABLE audit_heads ADD COLUMN floor_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_heads ADD COLUMN floor_hash TEXT NOT NULL
    DEFAULT '0000000000000000000000000000000000000000000000000000000000000000';

CREATE TABLE audit_strings (
    n           INTEGER PRIMARY KEY,
    text        TEXT NOT NULL UNIQUE
);

-- key: the chain's number above the event's seq (n << 40 | seq), the rowid itself: a
-- chain's records are a range of the table's B-tree, appended at its right edge (where
-- SQLite packs pages full), with no second index for (chain, seq).
CREATE TABLE audit_records (
    key         INTEGER PRIMARY KEY,
    id          BLOB NOT NULL,
    action      INTEGER NOT NULL,
    tag         INTEGER NOT NULL,
    rec         BLOB NOT NULL,
    anchor      BLOB
);
CREATE UNIQUE INDEX audit_records_id ON audit_records (id);

ALTER TABLE audit_events RENAME TO audit_events_legacy;

-- The platform administrator's audit retention for an organization, overriding its
-- tier's (seconds; NULL: kept for good).
CREATE TABLE audit_retention (
    org_id      TEXT PRIMARY KEY,
    seconds     BIGINT
);
