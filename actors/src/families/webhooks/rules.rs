//! Webhooks' pure rules: the event catalogue (which audit actions become which event
//! types), the Standard Webhooks signature and the retry schedule. Nothing here does I/O.
//! (Which destinations are allowed is the outbound port's: `runtime::outbound::destinations`.)

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::families::audit::chain::Event;
use crate::kernel::model::{rfc3339, Millis, Outcome};

/// An event type: its name, the audit action it is derived from, what it means.
pub struct EventType {
    /// The outcome of the audit events it is made of (most are successful acts).
    pub outcome: Outcome,
    pub name: &'static str,
    pub action: &'static str,
    pub description: &'static str,
}

/// Every event type a subscription can ask for. Token issuance is not one (it is too
/// frequent; analytics counts it).
pub const EVENT_TYPES: &[EventType] = &[
    EventType {
        outcome: Outcome::Success,
        name: "agent.created",
        action: "agent.create",
        description: "An agent was registered",
    },
    EventType {
        outcome: Outcome::Success,
        name: "agent.updated",
        action: "agent.update",
        description: "An agent's name, scopes or metadata changed",
    },
    EventType {
        outcome: Outcome::Success,
        name: "agent.suspended",
        action: "agent.suspend",
        description: "An agent was suspended",
    },
    EventType {
        outcome: Outcome::Success,
        name: "agent.reactivated",
        action: "agent.reactivate",
        description: "A suspended agent was reactivated",
    },
    EventType {
        outcome: Outcome::Success,
        name: "agent.deleted",
        action: "agent.delete",
        description: "An agent was deleted",
    },
    EventType {
        outcome: Outcome::Success,
        name: "credential.created",
        action: "credential.create",
        description: "A credential was issued",
    },
    EventType {
        outcome: Outcome::Success,
        name: "credential.rotated",
        action: "credential.rotate",
        description: "A credential was rotated",
    },
    EventType {
        outcome: Outcome::Success,
        name: "credential.revoked",
        action: "credential.revoke",
        description: "A credential was revoked",
    },
    EventType {
        outcome: Outcome::Success,
        name: "token.revoked",
        action: "token.revoke",
        description: "An access token was revoked (RFC 7009)",
    },
    EventType {
        outcome: Outcome::Success,
        name: "key.rotated",
        action: "keys.rotate",
        description:
            "The signing key was rotated (audited in the platform organization, so delivered to its subscriptions)",
    },
    EventType {
        outcome: Outcome::Success,
        name: "delegation.created",
        action: "delegation.create",
        description: "A delegation hop was made",
    },
    EventType {
        outcome: Outcome::Success,
        name: "delegation.revoked",
        action: "delegation.revoke",
        description: "A delegation link was revoked, with every link below it",
    },
    EventType {
        outcome: Outcome::Success,
        name: "webhook.disabled",
        action: "webhook.disable",
        description: "The engine disabled a subscription (410 Gone, or failing for days); sent to the others",
    },
    EventType {
        outcome: Outcome::Success,
        name: "organization.tier_changed",
        action: "billing.tier_change",
        description: "Billing moved the organization to another tier (a payment, a cancellation, a grace period ended)",
    },
    EventType {
        outcome: Outcome::Success,
        name: "webhook.test",
        action: "webhook.test",
        description: "Sent by POST /webhooks/{id}/test",
    },
    EventType {
        outcome: Outcome::Success,
        name: "user.created",
        action: "user.create",
        description: "A user was created",
    },
    EventType {
        outcome: Outcome::Success,
        name: "user.updated",
        action: "user.update",
        description: "A user's email, name or scopes changed",
    },
    EventType {
        outcome: Outcome::Success,
        name: "user.suspended",
        action: "user.suspend",
        description: "A user was suspended",
    },
    EventType {
        outcome: Outcome::Success,
        name: "user.reactivated",
        action: "user.reactivate",
        description: "A suspended user was reactivated",
    },
    EventType {
        outcome: Outcome::Success,
        name: "user.deleted",
        action: "user.delete",
        description: "A user was deleted",
    },
    EventType {
        outcome: Outcome::Success,
        name: "user.password_changed",
        action: "user.password.set",
        description: "An administrator set a user's password",
    },
    EventType {
        outcome: Outcome::Success,
        name: "user.login.succeeded",
        action: "user.login",
        description: "A person signed in",
    },
    EventType {
        outcome: Outcome::Failure,
        name: "user.login.failed",
        action: "user.login",
        description: "A sign-in to a user of the organization failed (a wrong password, or the user suspended)",
    },
];

/// The event type an audit action with that outcome becomes, if any.
pub fn event_for(action: &str, outcome: Outcome) -> Option<&'static str> {
    EVENT_TYPES.iter().find(|e| e.action == action && e.outcome == outcome).map(|e| e.name)
}

/// The most bytes a payload may have; a larger one is sent without its `detail`.
pub const MAX_PAYLOAD: usize = 20 * 1024;

/// The delivery of audit event `event` to subscription `webhook`, if it wants it: a
/// successful act of a catalogued type (a test event only to the subscription tested).
/// The payload is `{type, timestamp, data}`, `data` naming the organization, the audit
/// event (id and seq), who acted, on what, and the event's detail.
pub fn derive(webhook: &Webhook, seq: i64, event: &Event, now: Millis) -> Option<Delivery> {
    let event_type = event_for(&event.action, event.outcome)?;
    let to_this = |target: &Option<String>| target.as_deref() == Some(webhook.id.to_string().as_str());
    if !webhook.wants(event_type) || (event_type == "webhook.test" && !to_this(&event.target)) {
        return None;
    }
    if event_type == "webhook.disabled" && to_this(&event.target) {
        return None;
    }
    let timestamp = rfc3339::format(event.occurred_at);
    let mut data = serde_json::json!({
        "organization_id": event.org_id,
        "audit_event_id": event.id,
        "audit_seq": seq,
        "actor": event.actor,
        "target": event.target,
        "request_id": event.request_id,
        "detail": event.detail,
    });
    let mut payload = serde_json::json!({"type": event_type, "timestamp": timestamp, "data": data}).to_string();
    if payload.len() > MAX_PAYLOAD {
        data["detail"] = serde_json::Value::Null;
        data["truncated"] = serde_json::Value::Bool(true);
        payload = serde_json::json!({"type": event_type, "timestamp": timestamp, "data": data}).to_string();
    }
    Some(Delivery {
        id: Uuid::now_v7(),
        webhook_id: webhook.id,
        audit_seq: seq,
        event_type: event_type.to_string(),
        payload,
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: Some(now),
        response_status: None,
        last_error: None,
        latency_ms: None,
        created_at: event.occurred_at,
        delivered_at: None,
    })
}

/// Check a subscription's event types: a non-empty list of catalogued names, or `*`.
/// Answers them sorted, without repeats.
pub fn check_event_types(types: &[String]) -> std::result::Result<Vec<String>, String> {
    if types.is_empty() {
        return Err("name at least one event type, or \"*\" for all".into());
    }
    if let Some(bad) = types.iter().find(|t| *t != "*" && !EVENT_TYPES.iter().any(|e| e.name == t.as_str())) {
        return Err(format!("{bad:?} is not an event type (GET /api/v1/webhooks/event-types lists them)"));
    }
    if types.iter().any(|t| t == "*") {
        return Ok(vec!["*".into()]);
    }
    let mut out = types.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// A subscription: where to send, which events, whether it is on.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Webhook {
    pub id: Uuid,
    pub org_id: Uuid,
    pub url: String,
    /// Event type names, sorted, or `["*"]` for every one.
    pub event_types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub enabled: bool,
    /// Why the engine turned it off (410 Gone, days of failures), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    pub updated_at: Millis,
}

impl Webhook {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|t| t == "*" || t == event_type)
    }
}

/// A subscription as created (or its secret rotated): the secret is shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub secret: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
    pub event_types: Vec<String>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub enabled: Option<bool>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    Delivered,
    /// Every attempt of the schedule failed (a redelivery makes it pending again).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One event for one subscription. Its id is the `webhook-id` of every attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The audit event's position in the organization's chain: the delivery order.
    pub audit_seq: i64,
    pub event_type: String,
    #[serde(skip)]
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    #[serde(with = "rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    /// When its event was committed.
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Millis>,
}

/// A new signing secret: `whsec_` and the base64 of 32 random bytes (Standard Webhooks).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).unwrap_or_else(|_| unreachable!("the system random source failed"));
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The key bytes of a `whsec_` secret.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix("whsec_")?).ok()
}

/// One `webhook-signature` entry: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("v1,{}", STANDARD.encode(ctx.sign().as_ref()))
}

/// The waits between attempts: after the first failure 5 s, then 5 min, 30 min, 2 h,
/// 5 h, 10 h and 10 h; after the eighth attempt fails the delivery is `failed`.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The longest `Retry-After` honoured; a longer one waits this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// When to try again after `attempts` failed attempts (counting the one just made), or
/// `None` when the schedule is spent. `jitter` in [0, 1) spreads retries by up to +10 %;
/// a receiver's `Retry-After` is honoured when it asks for longer.
pub fn next_retry(attempts: u32, jitter: f64, retry_after: Option<Duration>) -> Option<Duration> {
    let base = *RETRY_SCHEDULE.get(attempts.checked_sub(1)? as usize)?;
    let spread = base.mul_f64(1.0 + 0.1 * jitter.clamp(0.0, 1.0));
    Some(retry_after.map_or(spread, |r| r.min(MAX_RETRY_AFTER).max(spread)))
}

/// `Retry-After` as seconds or an HTTP date, relative to `now_ms`.
pub fn parse_retry_after(value: &str, now_ms: Millis) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = time::OffsetDateTime::parse(value.trim(), &time::format_description::well_known::Rfc2822).ok()?;
    let ms = at.unix_timestamp().saturating_mul(1000).saturating_sub(now_ms);
    Some(Duration::from_millis(ms.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_standard_webhooks_own_example() {
        // The example of the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(new_secret().starts_with("whsec_"));
        assert_eq!(secret_key(&new_secret()).unwrap().len(), 32);
    }

    #[test]
    fn retries_follow_the_schedule_then_stop_and_honour_retry_after() {
        assert_eq!(next_retry(1, 0.0, None), Some(Duration::from_secs(5)));
        assert_eq!(next_retry(2, 0.0, None), Some(Duration::from_secs(300)));
        assert_eq!(next_retry(7, 0.0, None), Some(Duration::from_secs(36_000)));
        assert_eq!(next_retry(8, 0.0, None), None);
        assert_eq!(next_retry(0, 0.0, None), None);
        assert_eq!(next_retry(1, 0.99, None), Some(Duration::from_secs(5).mul_f64(1.099)));
        assert_eq!(next_retry(1, 0.0, Some(Duration::from_secs(60))), Some(Duration::from_secs(60)));
        assert_eq!(next_retry(2, 0.0, Some(Duration::from_secs(1))), Some(Duration::from_secs(300)), "never sooner");
        assert_eq!(next_retry(1, 0.0, Some(Duration::from_secs(1 << 40))), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Thu, 01 Jan 1970 00:02:00 GMT", 60_000), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("soon", 0), None);
    }

    #[test]
    fn audit_actions_map_to_event_types() {
        assert_eq!(event_for("agent.create", Outcome::Success), Some("agent.created"));
        assert_eq!(event_for("agent.create", Outcome::Failure), None);
        assert_eq!(event_for("user.login", Outcome::Failure), Some("user.login.failed"));
        assert_eq!(event_for("delegation.revoke", Outcome::Success), Some("delegation.revoked"));
        assert_eq!(event_for("token.issue", Outcome::Success), None, "issuance is not an event");
    }
}
