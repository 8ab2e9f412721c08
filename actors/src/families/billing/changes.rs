//! The billing family's changes: committed with their audit event in the audit writer's
//! group commit, so a change is durable exactly when its event is.

use super::rules::TenantSubscription;
use crate::kernel::model::Millis;

#[derive(Debug, Clone)]
pub enum BillingChange {
    /// Remember a Stripe event as processed; `Conflict` if it already was (on any node).
    ClaimStripeEvent { id: String, kind: String, at: Millis },
    /// Insert or replace an organization's subscription record.
    PutSubscription(Box<TenantSubscription>),
}

crate::store::applied_by_adapters!(BillingChange);
