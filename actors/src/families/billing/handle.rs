//! Billing with Stripe: Checkout Sessions for a paid tier, Stripe's webhook (each event
//! once, read against the subscription's current state), the organization's
//! subscription, and the tier that follows from it — committed with its audit event and
//! announced to every node like any other tier change.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::settings::BillingSettings;
use crate::engine::{Call, Engine};
use crate::families::audit::chain::Event;
use crate::families::billing::provider::{BillingApi, CheckoutRequest, CheckoutSession};
use crate::families::billing::rules::{self as rules, Action, RemoteSubscription, StripeEvent, TenantSubscription};
use crate::families::billing::BillingChange;
use crate::families::directory::events::OrgChanged;
use crate::families::directory::DirectoryChange;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{Millis, Organization, Outcome, Tier};
use crate::runtime::events::ClusterEvent;
use crate::store::Change;

/// The engine's billing: its settings and the provider's API.
#[derive(Clone)]
pub(crate) struct Billing {
    pub settings: BillingSettings,
    pub api: Arc<dyn BillingApi>,
}

/// `POST /billing/checkout-session`'s body.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutParams {
    pub tier: Tier,
    pub success_url: String,
    pub cancel_url: String,
}

/// An organization's subscription as `GET /billing/subscription` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionView {
    pub org_id: Uuid,
    /// The tier the organization is on now.
    pub tier: Tier,
    /// Stripe's status of the subscription, or `none`.
    pub status: String,
    #[serde(with = "crate::kernel::model::rfc3339::option")]
    pub current_period_end: Option<Millis>,
    pub cancel_at_period_end: bool,
    /// Until when a failed payment leaves the paid tier in place.
    #[serde(with = "crate::kernel::model::rfc3339::option")]
    pub grace_until: Option<Millis>,
}

/// What became of a Stripe event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StripeOutcome {
    /// Applied now.
    Processed,
    /// Seen before (a redelivery): acknowledged, nothing changed.
    Replayed,
    /// Not an event AgentIdP acts on, or about no organization of this deployment.
    Ignored,
}

/// Who the audit trail names for what Stripe told us.
const STRIPE_ACTOR: &str = "stripe";

impl Engine {
    fn billing(&self) -> Result<&Billing> {
        self.shared.billing.as_ref().ok_or(EngineError::NotConfigured("billing"))
    }

    /// Start a Checkout Session for `params.tier` for the caller's organization (or
    /// `org_id`, as platform admin): its Stripe customer is reused, or created first.
    pub async fn billing_checkout(
        &self,
        call: &Call,
        org_id: Option<Uuid>,
        params: CheckoutParams,
    ) -> Result<CheckoutSession> {
        let billing = self.billing()?;
        let org_id = org_id.unwrap_or(call.caller.org_id);
        self.authorize(call, "billing.checkout", org_id)?;
        let price = billing
            .settings
            .prices
            .iter()
            .find(|(tier, _)| *tier == params.tier)
            .map(|(_, price)| price.clone())
            .ok_or_else(|| {
                EngineError::invalid("tier", format!("{} is not a tier that can be bought", params.tier.as_str()))
            })?;
        for (field, url) in [("success_url", &params.success_url), ("cancel_url", &params.cancel_url)] {
            let ok = url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok || url.len() > 2048 {
                return Err(EngineError::invalid(field, "must be an absolute http(s) URL"));
            }
        }
        let org = self.shared.store.get_org(org_id).await?.ok_or(EngineError::not_found("organization"))?;
        let customer_id = match self.shared.store.subscription(org_id).await? {
            Some(sub) => sub.customer_id,
            None => {
                let customer_id = billing.api.create_customer(org_id, &org.name).await?;
                let record = TenantSubscription {
                    org_id,
                    customer_id: customer_id.clone(),
                    subscription_id: None,
                    tier: Tier::Free,
                    status: "none".into(),
                    current_period_end: None,
                    cancel_at_period_end: false,
                    grace_until: None,
                    updated_at: self.shared.now_ms(),
                };
                let event = self.call_event(call, org_id, "billing.customer", &customer_id, json!({}));
                self.commit(event, vec![BillingChange::PutSubscription(Box::new(record)).into()], None).await?;
                customer_id
            }
        };
        let request = CheckoutRequest {
            org_id,
            customer_id,
            price_id: price,
            success_url: params.success_url,
            cancel_url: params.cancel_url,
        };
        let session = billing.api.create_checkout_session(&request).await?;
        let detail = json!({"tier": params.tier, "checkout_session": session.id});
        self.commit(self.call_event(call, org_id, "billing.checkout", org_id, detail), Vec::new(), None).await?;
        Ok(session)
    }

    /// The organization's subscription and the tier it is on.
    pub async fn billing_subscription(&self, call: &Call, org_id: Option<Uuid>) -> Result<SubscriptionView> {
        self.billing()?;
        let org_id = org_id.unwrap_or(call.caller.org_id);
        self.authorize(call, "billing.subscription", org_id)?;
        let org = self.shared.store.get_org(org_id).await?.ok_or(EngineError::not_found("organization"))?;
        let sub = self.shared.store.subscription(org_id).await?;
        Ok(SubscriptionView {
            org_id,
            tier: org.tier,
            status: sub.as_ref().map_or_else(|| "none".to_string(), |s| s.status.clone()),
            current_period_end: sub.as_ref().and_then(|s| s.current_period_end),
            cancel_at_period_end: sub.as_ref().is_some_and(|s| s.cancel_at_period_end),
            grace_until: sub.and_then(|s| s.grace_until),
        })
    }

    /// Stripe's webhook: `payload` exactly as received, `signature` its `Stripe-Signature`.
    /// A refused signature or a malformed event is `Invalid` and changes nothing; each
    /// event id is processed once cluster-wide.
    pub async fn stripe_webhook(&self, payload: &[u8], signature: Option<&str>) -> Result<StripeOutcome> {
        let billing = self.billing()?;
        let header = signature.ok_or_else(|| EngineError::invalid("Stripe-Signature", "the header is missing"))?;
        let now = self.shared.now_ms();
        rules::verify_signature(
            header,
            payload,
            billing.settings.webhook_secret.as_bytes(),
            now / 1000,
            rules::SIGNATURE_TOLERANCE_SECS,
        )
        .map_err(|why| EngineError::invalid("Stripe-Signature", format!("the signature is refused: {why}")))?;
        let event: StripeEvent = serde_json::from_slice(payload)
            .map_err(|e| EngineError::invalid("body", format!("not a Stripe event: {e}")))?;
        if event.id.is_empty() || event.id.len() > 255 {
            return Err(EngineError::invalid("id", "a Stripe event id is 1 to 255 characters"));
        }
        if self.shared.store.stripe_event_seen(&event.id).await? {
            return Ok(StripeOutcome::Replayed);
        }
        let action = rules::action(&event).map_err(|why| EngineError::invalid("data.object", why))?;
        let (org_hint, subscription, payment_failed) = match action {
            Action::Ignored => return Ok(StripeOutcome::Ignored),
            Action::CheckoutCompleted { paid: false, .. } => return Ok(StripeOutcome::Ignored),
            Action::CheckoutCompleted { org_id, subscription, .. } => (Some(org_id), subscription, false),
            Action::SubscriptionChanged { subscription } => (None, subscription, false),
            Action::PaymentFailed { subscription } => (None, subscription, true),
        };
        // The subscription as Stripe has it now; one Stripe does not know (a test event, or
        // another account's) is acknowledged and ignored — a retry would not change that.
        let remote = match billing.api.subscription(&subscription).await {
            Ok(remote) => remote,
            Err(EngineError::NotFound { .. }) => return Ok(StripeOutcome::Ignored),
            Err(e) => return Err(e),
        };
        match self.apply_subscription(billing, &event, org_hint, remote, payment_failed).await {
            // The same event, committed by another node (or request) in between.
            Err(EngineError::Conflict(_)) if self.shared.store.stripe_event_seen(&event.id).await? => {
                Ok(StripeOutcome::Replayed)
            }
            other => other,
        }
    }

    /// Record `remote` (read from Stripe just now) as the organization's subscription and
    /// put the organization on the tier it entitles to, with the event claimed in the same
    /// commit.
    async fn apply_subscription(
        &self,
        billing: &Billing,
        event: &StripeEvent,
        org_hint: Option<Uuid>,
        remote: RemoteSubscription,
        payment_failed: bool,
    ) -> Result<StripeOutcome> {
        let store = &self.shared.store;
        let known = store.subscription_by_customer(&remote.customer).await?;
        let Some(org_id) = org_hint.or(remote.org_id).or(known.as_ref().map(|s| s.org_id)) else {
            tracing::warn!(event = %event.id, subscription = %remote.id, "a Stripe subscription of no organization here");
            return Ok(StripeOutcome::Ignored);
        };
        let Some(org) = store.get_org(org_id).await? else {
            return Ok(StripeOutcome::Ignored);
        };
        // A customer already recorded for another organization: acknowledged and ignored
        // (a retry would not change it), never a conflict Stripe would retry for days.
        if let Some(other) = known.as_ref().filter(|s| s.org_id != org_id) {
            tracing::warn!(event = %event.id, subscription = %remote.id, recorded_for = %other.org_id, claimed_for = %org_id,
                "a Stripe customer recorded for another organization: ignored");
            return Ok(StripeOutcome::Ignored);
        }
        let existing = match &known {
            Some(sub) if sub.org_id == org_id => Some(sub.clone()),
            _ => store.subscription(org_id).await?,
        };
        let now = self.shared.now_ms();
        let paid_tier = remote
            .price_id
            .as_deref()
            .and_then(|price| rules::tier_of_price(price, &billing.settings.prices))
            .unwrap_or_else(|| {
                tracing::warn!(price = ?remote.price_id, "a Stripe price that is no configured tier's: treated as free");
                Tier::Free
            });
        let past_due = remote.status == "past_due" || (payment_failed && remote.status != "canceled");
        let grace_until = past_due.then(|| {
            existing.as_ref().and_then(|s| s.grace_until).unwrap_or(now + billing.settings.grace.as_millis() as i64)
        });
        let record = TenantSubscription {
            org_id,
            customer_id: remote.customer.clone(),
            subscription_id: Some(remote.id.clone()),
            tier: paid_tier,
            status: if past_due { "past_due".into() } else { remote.status.clone() },
            current_period_end: remote.current_period_end,
            cancel_at_period_end: remote.cancel_at_period_end,
            grace_until,
            updated_at: now,
        };
        let tier = rules::entitled_tier(&record, now);
        let detail = json!({
            "stripe_event": event.id, "type": event.kind, "status": record.status,
            "from": org.tier, "to": tier, "cancel_at_period_end": record.cancel_at_period_end,
        });
        let claim = BillingChange::ClaimStripeEvent { id: event.id.clone(), kind: event.kind.clone(), at: now }.into();
        let (audit, tier_change, announce) = tier_commit(STRIPE_ACTOR, &org, tier, &detail, now);
        let mut changes = vec![claim, BillingChange::PutSubscription(Box::new(record)).into()];
        changes.extend(tier_change);
        self.commit(audit, changes, announce).await?;
        Ok(StripeOutcome::Processed)
    }
}

/// The audit event (`billing.tier_change` when the tier changes, `billing.subscription`
/// otherwise) and the changes that put `org` on `tier`, and what every node must be told.
/// Shared by the webhook and the grace-period sweeper.
pub(crate) fn tier_commit(
    actor: &str,
    org: &Organization,
    tier: Tier,
    detail: &serde_json::Value,
    now: Millis,
) -> (Event, Vec<Box<dyn Change>>, Option<ClusterEvent>) {
    let changed = org.tier != tier;
    let action = if changed { "billing.tier_change" } else { "billing.subscription" };
    let event = Event::new(now, Some(org.id), actor.into(), action, Outcome::Success).target(org.id).detail(detail);
    if !changed {
        return (event, Vec::new(), None);
    }
    let updated = Organization { tier, updated_at: now, ..org.clone() };
    (event, vec![DirectoryChange::UpdateOrg(updated).into()], Some(ClusterEvent::of(&OrgChanged { org_id: org.id })))
}
