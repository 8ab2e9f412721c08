//! The billing family's store port: what it reads and writes, and its records.

use async_trait::async_trait;
use uuid::Uuid;

use super::rules::TenantSubscription;

use crate::kernel::error::Result;
use crate::kernel::model::Millis;

/// Organizations' subscriptions and the Stripe events processed (`tenant_subscriptions`,
/// `stripe_events`; written through [`Change`]s).
#[async_trait]
pub trait BillingStore: Send + Sync + 'static {
    async fn subscription(&self, org_id: Uuid) -> Result<Option<TenantSubscription>>;
    async fn subscription_by_customer(&self, customer_id: &str) -> Result<Option<TenantSubscription>>;
    async fn stripe_event_seen(&self, id: &str) -> Result<bool>;
    /// Past-due subscriptions whose grace period ended at or before `now`.
    async fn lapsed_subscriptions(&self, now: Millis) -> Result<Vec<TenantSubscription>>;
}
