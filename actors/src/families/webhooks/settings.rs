//! The webhooks family's settings.

use std::time::Duration;

use crate::runtime::outbound::Destinations;

/// How webhook deliveries run.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    /// How often a node claims (or keeps) subscriptions' leases and looks for due
    /// deliveries and events committed on other nodes.
    pub poll: Duration,
    /// How long a claimed lease lasts: a dead node's subscriptions move to another node
    /// this long after its last renewal.
    pub lease: Duration,
    /// One delivery attempt's whole exchange.
    pub timeout: Duration,
    /// A subscription failing for this long without one success is disabled.
    pub disable_after: Duration,
    /// After a secret rotation, the old secret signs beside the new one this long.
    pub secret_overlap: Duration,
    /// Where deliveries may go (development: plain http to loopback too).
    pub destinations: Destinations,
    /// Settled deliveries (delivered, or failed for good) older than this are removed by
    /// the janitor.
    pub delivery_retention: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            timeout: Duration::from_secs(15),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            secret_overlap: Duration::from_secs(24 * 3600),
            destinations: Destinations::default(),
            delivery_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}
