-- Version 9: webhooks. A subscription names a URL, the event types it wants and its
-- signing secret (sealed like a signing key: AES-256-GCM under the master key, or a
-- reference into Vault). The audit trail is the outbox: each subscription keeps
-- `audit_cursor`, the last seq of its organization's audit chain it has turned into
-- deliveries, and the node holding its lease (`lease_owner` until `lease_until`) is the
-- only one that derives and delivers. A delivery is one event for one subscription;
-- its id is the `webhook-id` of every attempt.

CREATE TABLE webhook_subscriptions (
    id              UUID PRIMARY KEY,
    org_id          UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    event_types     TEXT NOT NULL,
    description     TEXT,
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT,
    secret_kid      TEXT NOT NULL,
    secret          BYTEA NOT NULL,
    secret_ref      TEXT,
    previous_kid    TEXT,
    previous        BYTEA,
    previous_ref    TEXT,
    previous_until  BIGINT,
    audit_cursor    BIGINT NOT NULL,
    failing_since   BIGINT,
    lease_owner     TEXT,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX webhook_subscriptions_org ON webhook_subscriptions (org_id, id);

CREATE TABLE webhook_deliveries (
    id               UUID PRIMARY KEY,
    subscription_id  UUID NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    audit_seq        BIGINT NOT NULL,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  BIGINT,
    response_status  INTEGER,
    last_error       TEXT,
    latency_ms       BIGINT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    UNIQUE (subscription_id, audit_seq)
);

CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (subscription_id, status, audit_seq);
