-- Version 4: the cluster change feed. Every change that other nodes must apply (a cache
-- invalidation, a token revocation) is recorded here in the same transaction as the
-- change and its audit event; nodes poll it, so an announcement lost with Redis is
-- still applied within the poll interval.

CREATE TABLE cluster_events (
    seq         BIGSERIAL PRIMARY KEY,
    event       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX cluster_events_created ON cluster_events (created_at);
