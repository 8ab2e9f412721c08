//! The billing port: what the engine asks of the payment provider. Domain code sees only
//! [`BillingApi`]; [`stripe::StripeApi`] is the one place the Stripe client is used.

use async_trait::async_trait;
use uuid::Uuid;

use crate::families::billing::rules::RemoteSubscription;
use crate::kernel::error::Result;

/// A Checkout Session to start, in subscription mode.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    pub org_id: Uuid,
    pub customer_id: String,
    pub price_id: String,
    pub success_url: String,
    pub cancel_url: String,
}

/// A started Checkout Session: where to send the organization's admin.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckoutSession {
    pub id: String,
    pub url: String,
}

#[async_trait]
pub trait BillingApi: Send + Sync + 'static {
    /// A customer for the organization (its id in `metadata.org_id`); returns its id.
    async fn create_customer(&self, org_id: Uuid, name: &str) -> Result<String>;
    async fn create_checkout_session(&self, request: &CheckoutRequest) -> Result<CheckoutSession>;
    /// The subscription as the provider has it now; `NotFound` if it has none such.
    async fn subscription(&self, id: &str) -> Result<RemoteSubscription>;
}
