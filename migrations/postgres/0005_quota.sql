-- Version 5: the daily call quota. One row per (organization, UTC day): how many calls
-- the organization's leases were granted that day (on every node). A grant never passes
-- the tier's limit, so calls admitted from leases never do either.

CREATE TABLE quota_usage (
    org_id   UUID NOT NULL,
    day      BIGINT NOT NULL,
    granted  BIGINT NOT NULL,
    PRIMARY KEY (org_id, day)
);
