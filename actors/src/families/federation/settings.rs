//! The federation family's settings.

use std::time::Duration;

use crate::runtime::outbound::Destinations;

/// How the JwksCache actors fetch partners' keys.
#[derive(Debug, Clone, Copy)]
pub struct FederationSettings {
    /// After a refetch for an unknown `kid`, a partner's JWKS is not refetched for another
    /// unknown kid for this long (at least 10 s).
    pub refetch_cooldown: Duration,
    /// Refetches for unknown kids, all partners together, per second at most.
    pub refetch_per_sec: u32,
    /// A partner's last good keys stay in use this long past their freshness while its
    /// JWKS cannot be fetched (stale-if-error).
    pub stale_cap: Duration,
    /// One fetch's whole exchange.
    pub fetch_timeout: Duration,
    /// The largest JWKS document read.
    pub max_jwks_bytes: usize,
    /// After a failed fetch, the next scheduled one comes this much later.
    pub retry_after_error: Duration,
    /// Where `jwks_uri` may point (development: plain http to loopback too).
    pub destinations: Destinations,
}

impl Default for FederationSettings {
    fn default() -> Self {
        FederationSettings {
            refetch_cooldown: Duration::from_secs(10),
            refetch_per_sec: 20,
            stale_cap: Duration::from_secs(24 * 3600),
            fetch_timeout: Duration::from_secs(5),
            max_jwks_bytes: 64 * 1024,
            retry_after_error: Duration::from_secs(30),
            destinations: Destinations::default(),
        }
    }
}
