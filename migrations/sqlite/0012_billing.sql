-- Version 12: billing, and indexes for the compliance report. An organization's Stripe
-- customer and subscription (one row per organization; the tier it pays for, Stripe's status, the period end, a cancellation at
-- period end, and the grace period after a failed payment), and the Stripe events
-- already processed: each event id once, so a redelivered event changes nothing.

CREATE TABLE tenant_subscriptions (
    org_id               TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    customer_id          TEXT NOT NULL UNIQUE,
    subscription_id      TEXT UNIQUE,
    tier                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    current_period_end   INTEGER,
    cancel_at_period_end INTEGER NOT NULL,
    grace_until          INTEGER,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE stripe_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    received_at INTEGER NOT NULL
);

-- The compliance report reads an organization's credentials and DID keys in one query
-- each.
CREATE INDEX credentials_org ON credentials (org_id);
CREATE INDEX agent_did_keys_org ON agent_did_keys (org_id);
