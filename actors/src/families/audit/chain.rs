//! The audit hash chain. Each event's hash covers its predecessor's hash and a canonical
//! encoding of its own fields, so removing, reordering or editing any stored event breaks
//! every later link. Chains are per organization (plus one for events no organization can
//! be named for), so tenants can verify and export their own history independently.

use aws_lc_rs::digest;
use serde::Serialize;
use uuid::Uuid;

use crate::kernel::model::{AuditEvent, Millis, Outcome};

/// The `prev_hash` of the first event of every chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit event before it is placed in its chain.
#[derive(Debug, Clone)]
pub struct Event {
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

impl Event {
    /// An event with no target, request id or detail; add them with the setters. Its id
    /// carries its time (a version 7 UUID minted at `occurred_at`).
    pub fn new(occurred_at: Millis, org_id: Option<Uuid>, actor: String, action: &str, outcome: Outcome) -> Self {
        Event {
            id: super::record::id_at(occurred_at),
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

    /// The detail, as a JSON value (whose objects keep their keys sorted: the canonical
    /// form the hash covers).
    pub fn detail(mut self, detail: &impl Serialize) -> Self {
        self.detail = serde_json::to_value(detail).unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
        self
    }

    /// Encode the event for its chain, on the caller's task, so the AuditWriter — the
    /// one serial stage of every audited request — only numbers, hashes and stores.
    pub fn seal(self) -> SealedEvent {
        SealedEvent { canonical: self.canonical(), event: self, encoded: None }
    }

    /// The hashed encoding (see [`Head`]), as the text before `seq` and the text after it.
    pub(crate) fn canonical(&self) -> (String, String) {
        let mut head = serde_json::to_string(&Head { id: &self.id, org_id: &self.org_id }).unwrap_or_default();
        head.pop();
        head.push_str(",\"seq\":");
        let fields = serde_json::to_string(&Tail {
            occurred_at: self.occurred_at,
            actor: &self.actor,
            action: &self.action,
            target: &self.target,
            outcome: self.outcome.as_str(),
            request_id: &self.request_id,
        })
        .unwrap_or_default();
        let detail = serde_json::to_string(&self.detail).unwrap_or_default();
        let mut tail = String::with_capacity(fields.len() + detail.len() + 12);
        tail.push(',');
        tail.push_str(fields.get(1..fields.len().saturating_sub(1)).unwrap_or_default());
        tail.push_str(",\"detail\":");
        tail.push_str(&detail);
        tail.push('}');
        (head, tail)
    }
}

/// An event with its canonical encoding before and after the sequence number, and (once
/// the AuditWriter has given it) its stored record — everything but its place in the
/// chain.
#[derive(Debug, Clone)]
pub struct SealedEvent {
    pub event: Event,
    canonical: (String, String),
    pub encoded: Option<super::record::Encoded>,
}

/// A sealed event placed in its chain: what the store writes.
#[derive(Debug, Clone)]
pub struct LinkedEvent {
    pub event: Event,
    pub encoded: Option<super::record::Encoded>,
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// The fields a hash covers, in a fixed order: `{"id":…,"org_id":…,"seq":…,"occurred_at":…,
/// "actor":…,"action":…,"target":…,"outcome":…,"request_id":…,"detail":…}` — serde_json
/// keeps struct field order and sorts map keys, so the encoding is canonical. It is built
/// as the text before `seq` and the text after it, so the sequence number, known only
/// inside the commit, is all that is left to write.
#[derive(Serialize)]
struct Head<'a> {
    id: &'a Uuid,
    org_id: &'a Option<Uuid>,
}

#[derive(Serialize)]
struct Tail<'a> {
    occurred_at: Millis,
    actor: &'a str,
    action: &'a str,
    target: &'a Option<String>,
    outcome: &'a str,
    request_id: &'a Option<String>,
}

/// Lower-case hex, by table: this runs once per event on the AuditWriter, the one serial
/// stage, where `format!("{b:02x}")` per byte showed in profiles.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

pub(crate) fn chain_hash(prev_hash: &str, (head, tail): &(String, String), seq: i64) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev_hash.as_bytes());
    ctx.update(b"\n");
    ctx.update(head.as_bytes());
    ctx.update(seq.to_string().as_bytes());
    ctx.update(tail.as_bytes());
    hex(ctx.finish().as_ref())
}

/// Place `event` after a chain whose head is (`prev_seq`, `prev_hash`).
pub fn link(event: SealedEvent, prev_seq: i64, prev_hash: &str) -> LinkedEvent {
    let seq = prev_seq + 1;
    let hash = chain_hash(prev_hash, &event.canonical, seq);
    LinkedEvent { event: event.event, encoded: event.encoded, seq, prev_hash: prev_hash.to_string(), hash }
}

/// Re-compute `event`'s hash from its stored fields, encoded as when it was sealed.
pub fn recompute(event: &AuditEvent) -> String {
    let sealed = Event {
        id: event.id,
        org_id: event.org_id,
        occurred_at: event.occurred_at,
        actor: event.actor.clone(),
        action: event.action.clone(),
        target: event.target.clone(),
        outcome: event.outcome,
        request_id: event.request_id.clone(),
        detail: event.detail.clone(),
    };
    chain_hash(&event.prev_hash, &sealed.canonical(), event.seq)
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
    /// A verifier that resumes after `seq`, whose event hashed to `hash` (a verified
    /// checkpoint).
    pub fn after(seq: i64, hash: &str) -> ChainVerifier {
        ChainVerifier { expected_prev: hash.to_string(), expected_seq: seq + 1, checked: 0, first_broken: None }
    }

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

    fn pending(n: u32) -> Event {
        Event::new(i64::from(n), None, "a".into(), "agent.create", Outcome::Success)
            .target(format!("t{n}"))
            .detail(&serde_json::json!({"z": 1, "a": [n]}))
    }

    /// What the store gives back for a linked event.
    fn stored(l: LinkedEvent) -> AuditEvent {
        AuditEvent {
            id: l.event.id,
            org_id: l.event.org_id,
            seq: l.seq,
            occurred_at: l.event.occurred_at,
            actor: l.event.actor,
            action: l.event.action,
            target: l.event.target,
            outcome: l.event.outcome,
            request_id: l.event.request_id,
            detail: l.event.detail,
            prev_hash: l.prev_hash,
            hash: l.hash,
        }
    }

    /// The encoding chains were first written with: one struct, serialized whole. Split
    /// sealing must hash exactly these bytes, or stored chains would stop verifying.
    #[test]
    fn split_encoding_is_the_whole_struct_encoding() {
        #[derive(Serialize)]
        struct Whole<'a> {
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
        let mut with_everything = pending(7);
        with_everything.org_id = Some(Uuid::now_v7());
        with_everything.request_id = Some("req \"quoted\" \u{e9}".into());
        with_everything = with_everything.detail(&serde_json::json!({"b": {"y": null, "x": [1.5, "s"]}, "a": true}));
        let mut bare = Event::new(8, None, "a".into(), "agent.create", Outcome::Success);
        bare.target = None;
        for (n, event) in [with_everything, bare].into_iter().enumerate() {
            let e = stored(link(event.seal(), 41 + n as i64, GENESIS));
            let whole = serde_json::to_vec(&Whole {
                id: &e.id,
                org_id: &e.org_id,
                seq: e.seq,
                occurred_at: e.occurred_at,
                actor: &e.actor,
                action: &e.action,
                target: &e.target,
                outcome: e.outcome.as_str(),
                request_id: &e.request_id,
                detail: &e.detail,
            })
            .unwrap();
            let mut ctx = digest::Context::new(&digest::SHA256);
            ctx.update(GENESIS.as_bytes());
            ctx.update(b"\n");
            ctx.update(&whole);
            assert_eq!(e.hash, hex(ctx.finish().as_ref()));
            assert_eq!(recompute(&e), e.hash);
        }
    }

    #[test]
    fn hashes_are_lower_case_hex() {
        assert_eq!(hex(&[0x00, 0x09, 0xa0, 0x9f, 0xff]), "0009a09fff");
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let abc = digest::digest(&digest::SHA256, b"abc");
        assert_eq!(hex(abc.as_ref()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn a_detail_is_hashed_with_its_keys_sorted() {
        #[derive(Serialize)]
        struct Unsorted {
            b: u8,
            a: u8,
        }
        let (_, tail) = pending(1).detail(&Unsorted { b: 1, a: 2 }).canonical();
        assert!(tail.ends_with(r#""detail":{"a":2,"b":1}}"#), "{tail}");
    }

    #[test]
    fn a_linked_chain_verifies_and_any_edit_breaks_it() {
        let mut chain = Vec::new();
        let (mut seq, mut head) = (0, GENESIS.to_string());
        for n in 0..5 {
            let e = stored(link(pending(n).seal(), seq, &head));
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
