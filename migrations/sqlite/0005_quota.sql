-- Version 5: the daily call quota. One row per (organization, UTC day): how many calls
-- the organization's leases were granted that day (on every node). A grant never passes
-- the tier's limit, so calls admitted from leases never do either.

CREATE TABLE quota_usage (
    org_id   TEXT NOT NULL,
    day      INTEGER NOT NULL,
    granted  INTEGER NOT NULL,
    PRIMARY KEY (org_id, day)
) WITHOUT ROWID;
