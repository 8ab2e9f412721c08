//! Billing rules, as functions of their inputs and `now`: Stripe's webhook signature, the
//! events AgentIdP acts on, and what a subscription's state means for an organization's
//! tier. The Stripe API itself is behind the engine's billing port.

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::kernel::model::{Millis, Tier};

/// How old a signed webhook may be (Stripe's own libraries use 300 s).
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// Check `Stripe-Signature` (`t=…,v1=…[,v1=…][,v0=…]`) over the raw `payload`: HMAC-SHA256
/// with `secret` of `"{t}.{payload}"`, hex. Any one `v1` may match (Stripe signs with two
/// secrets while one is rotated); `v0` and unknown schemes are ignored; the comparison is
/// constant-time; `t` must be within `tolerance` seconds of `now_s`, either way.
pub fn verify_signature(
    header: &str,
    payload: &[u8],
    secret: &[u8],
    now_s: i64,
    tolerance: i64,
) -> Result<(), &'static str> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t.parse::<i64>().map_err(|_| "its t is not a number")?),
            Some(("v1", sig)) => signatures.push(sig),
            _ => {}
        }
    }
    let t = timestamp.ok_or("it has no timestamp (t=)")?;
    if signatures.is_empty() {
        return Err("it has no v1 signature");
    }
    if (now_s - t).abs() > tolerance {
        return Err("its timestamp is outside the tolerance (replayed, or a clock is wrong)");
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut signed = Vec::with_capacity(payload.len() + 24);
    signed.extend_from_slice(t.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(payload);
    let matches = signatures.iter().filter_map(|sig| hex(sig)).any(|sig| hmac::verify(&key, &signed, &sig).is_ok());
    if matches {
        Ok(())
    } else {
        Err("no v1 signature matches the webhook signing secret")
    }
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// A Stripe event, as much of it as AgentIdP reads.
#[derive(Debug, Clone, Deserialize)]
pub struct StripeEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: Value,
}

/// What an event asks of AgentIdP.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A Checkout Session completed: `subscription` (of `customer`) should now be read and
    /// applied to `org_id` — if it was paid.
    CheckoutCompleted { org_id: Uuid, customer: String, subscription: String, paid: bool },
    /// A subscription changed: read its current state and apply it (the event's own copy
    /// may be older than an event already applied).
    SubscriptionChanged { subscription: String },
    /// An invoice failed: the organization keeps its tier for the grace period.
    PaymentFailed { subscription: String },
    /// An event type AgentIdP does not act on (acknowledged).
    Ignored,
}

/// What `event` asks for; an event of a handled type without the fields it needs is an
/// error naming them.
pub fn action(event: &StripeEvent) -> Result<Action, String> {
    let object = &event.data.object;
    let text = |name: &str| -> Result<String, String> {
        match &object[name] {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            // An expanded object carries its id.
            Value::Object(o) => {
                o.get("id").and_then(Value::as_str).map(str::to_string).ok_or(format!("{name} has no id"))
            }
            _ => Err(format!("data.object.{name} is missing")),
        }
    };
    Ok(match event.kind.as_str() {
        "checkout.session.completed" => {
            let reference = text("client_reference_id")?;
            let org_id = Uuid::parse_str(&reference)
                .map_err(|_| "data.object.client_reference_id is not an organization id".to_string())?;
            let paid = matches!(object["payment_status"].as_str(), Some("paid" | "no_payment_required"));
            Action::CheckoutCompleted { org_id, customer: text("customer")?, subscription: text("subscription")?, paid }
        }
        "customer.subscription.created" | "customer.subscription.updated" | "customer.subscription.deleted" => {
            Action::SubscriptionChanged { subscription: text("id")? }
        }
        "invoice.payment_failed" => match text("subscription") {
            Ok(subscription) => Action::PaymentFailed { subscription },
            // An invoice of no subscription (a one-off) is not ours to act on.
            Err(_) => Action::Ignored,
        },
        _ => Action::Ignored,
    })
}

/// A subscription as Stripe reports it now.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSubscription {
    pub id: String,
    pub customer: String,
    /// `active`, `trialing`, `past_due`, `unpaid`, `canceled`, `incomplete`, …
    pub status: String,
    /// The price of its (first) item.
    pub price_id: Option<String>,
    pub current_period_end: Option<Millis>,
    pub cancel_at_period_end: bool,
    /// `metadata.org_id`, which AgentIdP sets on the subscriptions it starts.
    pub org_id: Option<Uuid>,
}

/// An organization's subscription as AgentIdP keeps it (`tenant_subscriptions`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantSubscription {
    pub org_id: Uuid,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    /// The tier the subscription pays for.
    pub tier: Tier,
    pub status: String,
    #[serde(with = "crate::kernel::model::rfc3339::option")]
    pub current_period_end: Option<Millis>,
    pub cancel_at_period_end: bool,
    /// Until when a failed payment leaves the tier in place.
    #[serde(with = "crate::kernel::model::rfc3339::option")]
    pub grace_until: Option<Millis>,
    #[serde(with = "crate::kernel::model::rfc3339")]
    pub updated_at: Millis,
}

/// The tier an organization should be on, given its subscription record at `now`: the
/// paid tier while the subscription is active or trialing, and while past due within
/// the grace period; free otherwise.
pub fn entitled_tier(sub: &TenantSubscription, now: Millis) -> Tier {
    match sub.status.as_str() {
        "active" | "trialing" => sub.tier,
        "past_due" if sub.grace_until.is_some_and(|until| now < until) => sub.tier,
        _ => Tier::Free,
    }
}

/// The paid tier a price is for, from the configured prices.
pub fn tier_of_price(price_id: &str, prices: &[(Tier, String)]) -> Option<Tier> {
    prices.iter().find(|(_, p)| p == price_id).map(|(tier, _)| *tier)
}

/// Read the fields AgentIdP needs from a subscription object of Stripe's API, whichever
/// API version wrote it (`current_period_end` moved from the subscription to its items
/// in 2025).
pub fn remote_subscription(object: &Value) -> Result<RemoteSubscription, String> {
    let id_of = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    let id = object["id"].as_str().ok_or("the subscription has no id")?.to_string();
    let first_item = &object["items"]["data"][0];
    let period_end =
        object["current_period_end"].as_i64().or_else(|| first_item["current_period_end"].as_i64()).map(|s| s * 1000);
    Ok(RemoteSubscription {
        customer: id_of(&object["customer"]).ok_or("the subscription has no customer")?,
        status: object["status"].as_str().ok_or("the subscription has no status")?.to_string(),
        price_id: id_of(&first_item["price"]).or_else(|| id_of(&first_item["plan"])).or_else(|| id_of(&object["plan"])),
        current_period_end: period_end,
        cancel_at_period_end: object["cancel_at_period_end"].as_bool().unwrap_or(false),
        org_id: object["metadata"]["org_id"].as_str().and_then(|s| Uuid::parse_str(s).ok()),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], t: i64, payload: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let mut msg = format!("{t}.").into_bytes();
        msg.extend_from_slice(payload);
        hmac::sign(&key, &msg).as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn signatures_are_checked_like_stripe_does() {
        let (secret, body, now) = (b"whsec_test".as_slice(), br#"{"id":"evt_1"}"#.as_slice(), 1_700_000_000);
        let good = sign(secret, now, body);
        let other = sign(b"whsec_other", now, body);
        let ok = |h: &str| verify_signature(h, body, secret, now, 300);
        assert!(ok(&format!("t={now},v1={good}")).is_ok());
        // Two v1 signatures (a secret rotating), in either order; v0 ignored.
        assert!(ok(&format!("t={now},v1={other},v1={good}")).is_ok());
        assert!(ok(&format!("t={now},v1={good},v1={other},v0={other}")).is_ok());
        assert!(ok(&format!("t={now},v0={good}")).unwrap_err().contains("no v1"));
        assert!(ok(&format!("t={now},v1={other}")).unwrap_err().contains("matches"));
        assert!(ok(&format!("v1={good}")).unwrap_err().contains("timestamp"));
        assert!(ok(&format!("t=x,v1={good}")).is_err());
        assert!(ok(&format!("t={now},v1=zz{good}")).is_err());
        let stale = sign(secret, now - 301, body);
        assert!(ok(&format!("t={},v1={stale}", now - 301)).unwrap_err().contains("tolerance"));
        assert!(verify_signature(&format!("t={now},v1={good}"), b"{}", secret, now, 300).is_err(), "another body");
    }

    #[test]
    fn the_tier_follows_the_subscription_state() {
        let mut sub = TenantSubscription {
            org_id: Uuid::nil(),
            customer_id: "cus_1".into(),
            subscription_id: Some("sub_1".into()),
            tier: Tier::Pro,
            status: "active".into(),
            current_period_end: None,
            cancel_at_period_end: false,
            grace_until: None,
            updated_at: 0,
        };
        assert_eq!(entitled_tier(&sub, 10), Tier::Pro);
        sub.status = "past_due".into();
        assert_eq!(entitled_tier(&sub, 10), Tier::Free, "past due with no grace");
        sub.grace_until = Some(20);
        assert_eq!(entitled_tier(&sub, 10), Tier::Pro, "within the grace period");
        assert_eq!(entitled_tier(&sub, 20), Tier::Free, "after it");
        for status in ["canceled", "unpaid", "incomplete", "incomplete_expired", "paused"] {
            sub.status = status.into();
            assert_eq!(entitled_tier(&sub, 10), Tier::Free, "{status}");
        }
    }

    #[test]
    fn events_name_what_they_lack() {
        let event = |kind: &str, object: Value| StripeEvent {
            id: "evt".into(),
            kind: kind.into(),
            created: 0,
            data: EventData { object },
        };
        let org = Uuid::now_v7();
        let done = event(
            "checkout.session.completed",
            serde_json::json!({"client_reference_id": org.to_string(), "customer": "cus_1", "subscription": {"id": "sub_1"}, "payment_status": "paid"}),
        );
        assert_eq!(
            action(&done).unwrap(),
            Action::CheckoutCompleted {
                org_id: org,
                customer: "cus_1".into(),
                subscription: "sub_1".into(),
                paid: true
            }
        );
        let err = action(&event("checkout.session.completed", serde_json::json!({"customer": "c"}))).unwrap_err();
        assert!(err.contains("client_reference_id"), "{err}");
        assert_eq!(action(&event("charge.succeeded", Value::Null)).unwrap(), Action::Ignored);
        let old = serde_json::json!({"id": "sub_1", "customer": "cus_1", "status": "active", "current_period_end": 100,
            "plan": {"id": "price_pro"}, "metadata": {"org_id": org.to_string()}});
        let new = serde_json::json!({"id": "sub_1", "customer": {"id": "cus_1"}, "status": "active",
            "items": {"data": [{"current_period_end": 100, "price": {"id": "price_pro"}}]}});
        for object in [old, new] {
            let sub = remote_subscription(&object).unwrap();
            assert_eq!((sub.price_id.as_deref(), sub.current_period_end), (Some("price_pro"), Some(100_000)));
        }
    }
}
