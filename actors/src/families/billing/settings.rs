//! The billing family's settings.

use std::time::Duration;

/// Stripe billing: the API key, the webhook signing secret and one price per paid tier.
#[derive(Clone)]
pub struct BillingSettings {
    pub secret_key: String,
    pub webhook_secret: String,
    /// The Stripe price of each paid tier.
    pub prices: Vec<(crate::kernel::model::Tier, String)>,
    /// Stripe's API at another address (a local fake in tests); Stripe's own when `None`.
    pub api_base: Option<String>,
    /// How long an organization keeps its paid tier after a failed payment.
    pub grace: Duration,
    /// How often a node looks for grace periods that ended.
    pub sweep_every: Duration,
}

impl std::fmt::Debug for BillingSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingSettings")
            .field("prices", &self.prices)
            .field("api_base", &self.api_base)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl BillingSettings {
    /// Seven days of grace after a failed payment; grace periods checked every minute.
    pub fn new(secret_key: String, webhook_secret: String, prices: Vec<(crate::kernel::model::Tier, String)>) -> Self {
        BillingSettings {
            secret_key,
            webhook_secret,
            prices,
            api_base: None,
            grace: Duration::from_secs(7 * 86_400),
            sweep_every: Duration::from_secs(60),
        }
    }
}
