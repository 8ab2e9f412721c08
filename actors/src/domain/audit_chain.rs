//! The audit hash chain. Each event's hash covers its predecessor's hash and a canonical
//! encoding of its own fields, so removing, reordering or editing any stored event breaks
//! every later link. Chains are per organization (plus one for events no organization can
//! be named for), so tenants can verify and export their own history independently.

use aws_lc_rs::digest;
use serde::Serialize;
use uuid::Uuid;

use crate::model::{AuditEvent, Millis, Outcome};

/// The `prev_hash` of the first event of every chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event before it is placed in its chain.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub occurred_at: Millis,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: Outcome,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
}

impl PendingEvent {
    /// An event with no target, request id or detail; add them with the setters.
    pub fn new(occurred_at: Millis, org_id: Option<Uuid>, actor: String, action: &str, outcome: Outcome) -> Self {
        PendingEvent {
            id: Uuid::now_v7(),
            org_id,
            occurred_at,
            actor,
            action: action.to_string(),
            target: None,
            outcome,
            request_id: None,
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, target: impl ToString) -> Self {
        self.target = Some(target.to_string());
        self
    }

    pub fn request_id(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// The fields a hash covers, in a fixed order (serde_json keeps struct field order and
/// sorts map keys, so the encoding is canonical).
#[derive(Serialize)]
struct Canonical<'a> {
    id: &'a Uuid,
    org_id: &'a Option<Uuid>,
    seq: i64,
    occurred_at: Millis,
    actor: &'a str,
    action: &'a str,
    target: &'a Option<String>,
    outcome: &'a str,
    request_id: &'a Option<String>,
    detail: &'a serde_json::Value,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn hash_fields(prev_hash: &str, canonical: &Canonical<'_>) -> String {
    let body = serde_json::to_vec(canonical).unwrap_or_default();
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev_hash.as_bytes());
    ctx.update(b"\n");
    ctx.update(&body);
    hex(ctx.finish().as_ref())
}

/// Place `event` after a chain whose head is (`prev_seq`, `prev_hash`).
pub fn link(event: PendingEvent, prev_seq: i64, prev_hash: &str) -> AuditEvent {
    let seq = prev_seq + 1;
    let hash = hash_fields(
        prev_hash,
        &Canonical {
            id: &event.id,
            org_id: &event.org_id,
            seq,
            occurred_at: event.occurred_at,
            actor: &event.actor,
            action: &event.action,
            target: &event.target,
            outcome: event.outcome.as_str(),
            request_id: &event.request_id,
            detail: &event.detail,
        },
    );
    AuditEvent {
        id: event.id,
        org_id: event.org_id,
        seq,
        occurred_at: event.occurred_at,
        actor: event.actor,
        action: event.action,
        target: event.target,
        outcome: event.outcome,
        request_id: event.request_id,
        detail: event.detail,
        prev_hash: prev_hash.to_string(),
        hash,
    }
}

/// Re-compute `event`'s hash from its stored fields.
pub fn recompute(event: &AuditEvent) -> String {
    hash_fields(
        &event.prev_hash,
        &Canonical {
            id: &event.id,
            org_id: &event.org_id,
            seq: event.seq,
            occurred_at: event.occurred_at,
            actor: &event.actor,
            action: &event.action,
            target: &event.target,
            outcome: event.outcome.as_str(),
            request_id: &event.request_id,
            detail: &event.detail,
        },
    )
}

/// Incremental chain verification over events in `seq` order.
#[derive(Debug)]
pub struct ChainVerifier {
    expected_prev: String,
    expected_seq: i64,
    pub checked: u64,
    pub first_broken: Option<Uuid>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier { expected_prev: GENESIS.to_string(), expected_seq: 1, checked: 0, first_broken: None }
    }
}

impl ChainVerifier {
    pub fn feed(&mut self, event: &AuditEvent) {
        self.checked += 1;
        if self.first_broken.is_some() {
            return;
        }
        let ok =
            event.seq == self.expected_seq && event.prev_hash == self.expected_prev && recompute(event) == event.hash;
        if !ok {
            self.first_broken = Some(event.id);
        }
        self.expected_prev = event.hash.clone();
        self.expected_seq = event.seq + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(n: u32) -> PendingEvent {
        PendingEvent {
            id: Uuid::now_v7(),
            org_id: None,
            occurred_at: i64::from(n),
            actor: "a".into(),
            action: "agent.create".into(),
            target: Some(format!("t{n}")),
            outcome: Outcome::Success,
            request_id: None,
            detail: serde_json::json!({"z": 1, "a": [n]}),
        }
    }

    #[test]
    fn a_linked_chain_verifies_and_any_edit_breaks_it() {
        let mut chain = Vec::new();
        let (mut seq, mut head) = (0, GENESIS.to_string());
        for n in 0..5 {
            let e = link(pending(n), seq, &head);
            seq = e.seq;
            head = e.hash.clone();
            chain.push(e);
        }
        let mut v = ChainVerifier::default();
        chain.iter().for_each(|e| v.feed(e));
        assert_eq!((v.checked, v.first_broken), (5, None));

        chain[2].actor = "mallory".into();
        let mut v = ChainVerifier::default();
        chain.iter().for_each(|e| v.feed(e));
        assert_eq!(v.first_broken, Some(chain[2].id));

        let mut v = ChainVerifier::default();
        chain.remove(2);
        chain.iter().for_each(|e| v.feed(e));
        assert_eq!(v.first_broken, Some(chain[2].id));
    }
}
