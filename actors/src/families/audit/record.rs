//! The compact record an audit event is stored as, and the dictionary it shares with
//! every other record.
//!
//! An event's hash is defined on its canonical JSON ([`super::chain`]); what is stored
//! is a binary encoding from which exactly that JSON is rebuilt. A row holds the
//! chain's number and the event's `seq`, id and action (columns, for lookups and
//! filters), and this record: the gap between the event's time and its id's (an id is
//! minted from the event's time, so this is 0), the outcome, then actor, target,
//! request id and detail. A string is stored as 16 bytes if it is a UUID, as a number
//! if it is in the dictionary, as a back-reference if it repeats the actor, or else
//! inline; an object's keys are stored once, in the dictionary, as its *shape*.
//!
//! The dictionary holds each distinct name once (actions, object shapes, and the
//! actors, targets and detail strings of successful events: client ids, key ids,
//! scopes, audiences). Failed events may be sent by anyone, so their strings are kept
//! inline and cannot grow it. It grows with the things organizations have, not with
//! the events they cause.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Number, Value};
use uuid::Uuid;

use super::chain::Event;
use crate::kernel::model::Outcome;

/// The full hash is stored on every event whose `seq` is a multiple of this (an
/// anchor), besides the chain's head; the hashes in between are recomputed from the
/// nearest anchor when read, and each row keeps the first four bytes of its own hash
/// (its tag) so that verification can name the first event that no longer hashes as
/// it was written.
pub const ANCHOR_EVERY: i64 = 64;

/// Strings longer than this are never put in the dictionary.
const INTERN_MAX: usize = 120;
const VERSION: u8 = 1;
/// Between an object's keys in its shape (ASCII's unit separator: text every store
/// keeps, and no key a program names). An object with a key holding it is stored with
/// its keys inline.
const SHAPE_SEPARATOR: char = '\u{1f}';

// String tags.
const S_INLINE: u8 = 0;
const S_UUID: u8 = 1;
const S_WORD: u8 = 2;
const S_ACTOR: u8 = 3;
const S_ABSENT: u8 = 4;
// Value tags.
const V_NULL: u8 = 0;
const V_FALSE: u8 = 1;
const V_TRUE: u8 = 2;
const V_INT: u8 = 3;
const V_UINT: u8 = 4;
const V_FLOAT: u8 = 5;
const V_STRING: u8 = 6;
const V_ARRAY: u8 = 7;
const V_SHAPED: u8 = 8;
const V_OBJECT: u8 = 9;

/// The numbered strings records refer to: a cache of the store's `audit_strings`,
/// which only ever grows (a number, once given, names its string for good).
#[derive(Default)]
pub struct Dictionary {
    maps: RwLock<Maps>,
}

#[derive(Default)]
struct Maps {
    by_text: HashMap<Arc<str>, i64>,
    by_number: HashMap<i64, Arc<str>>,
}

impl Dictionary {
    pub fn number(&self, text: &str) -> Option<i64> {
        self.maps.read().ok()?.by_text.get(text).copied()
    }

    pub fn text(&self, n: i64) -> Option<Arc<str>> {
        self.maps.read().ok()?.by_number.get(&n).cloned()
    }

    pub fn learn(&self, pairs: impl IntoIterator<Item = (i64, String)>) {
        if let Ok(mut maps) = self.maps.write() {
            for (n, text) in pairs {
                let text: Arc<str> = text.into();
                maps.by_text.insert(text.clone(), n);
                maps.by_number.insert(n, text);
            }
        }
    }
}

/// An event's row, less its place in the chain: its action's number and its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub action: i64,
    pub rec: Vec<u8>,
}

/// A stored row, as read.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub seq: i64,
    pub id: Uuid,
    pub action: i64,
    /// The first four bytes of the event's hash, big-endian.
    pub tag: i32,
    pub rec: Vec<u8>,
    /// The full hash, on anchors.
    pub anchor: Option<Vec<u8>>,
}

/// The tag of a hash (lower-case hex): its first four bytes.
pub fn tag_of(hash_hex: &str) -> i32 {
    hash_hex.get(..8).and_then(|h| u32::from_str_radix(h, 16).ok()).map_or(0, |t| t as i32)
}

/// A hash's bytes, from its lower-case hex (what an anchor stores).
pub fn hash_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| hex.get(2 * i..2 * i + 2))
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

/// Encode `event`. Strings it would put in the dictionary that are not there yet are
/// added to `missing` (and the result is `None`): intern them and encode again.
pub fn encode(event: &Event, dict: &Dictionary, missing: &mut Vec<String>) -> Option<Encoded> {
    let mut enc = Encoder {
        out: Vec::with_capacity(96),
        dict,
        missing,
        lacking: false,
        actor: &event.actor,
        trusted: event.outcome == Outcome::Success,
    };
    let action = enc.word(&event.action);
    enc.out.push(VERSION);
    let id_ms = id_millis(&event.id);
    enc.varint(zigzag(event.occurred_at.wrapping_sub(id_ms)));
    enc.out.push(match event.outcome {
        Outcome::Success => 0,
        Outcome::Failure => 1,
    });
    enc.string(&event.actor, false);
    enc.optional(event.target.as_deref(), true);
    // A request id is unique to its request: never a dictionary word.
    match event.request_id.as_deref() {
        Some(id) => enc.string_with(id, true, false),
        None => enc.out.push(S_ABSENT),
    }
    enc.value(&event.detail);
    (!enc.lacking).then(|| Encoded { action: action.unwrap_or_default(), rec: enc.out })
}

struct Encoder<'a> {
    out: Vec<u8>,
    dict: &'a Dictionary,
    missing: &'a mut Vec<String>,
    /// Whether a word of this event is missing (perhaps noted by an earlier event).
    lacking: bool,
    actor: &'a str,
    trusted: bool,
}

impl Encoder<'_> {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    /// A dictionary word's number, noting it as missing if it has none yet.
    fn word(&mut self, text: &str) -> Option<i64> {
        let n = self.dict.number(text);
        if n.is_none() {
            self.lacking = true;
            if !self.missing.iter().any(|m| m == text) {
                self.missing.push(text.to_string());
            }
        }
        n
    }

    fn optional(&mut self, s: Option<&str>, may_be_actor: bool) {
        match s {
            Some(s) => self.string_with(s, may_be_actor, true),
            None => self.out.push(S_ABSENT),
        }
    }

    fn string(&mut self, s: &str, may_be_actor: bool) {
        self.string_with(s, may_be_actor, true)
    }

    fn string_with(&mut self, s: &str, may_be_actor: bool, may_be_word: bool) {
        if may_be_actor && s == self.actor {
            self.out.push(S_ACTOR);
        } else if let Some(uuid) = canonical_uuid(s) {
            self.out.push(S_UUID);
            self.out.extend_from_slice(uuid.as_bytes());
        } else if may_be_word && self.trusted && (3..=INTERN_MAX).contains(&s.len()) {
            let n = self.word(s).unwrap_or_default();
            self.out.push(S_WORD);
            self.varint(n as u64);
        } else {
            self.out.push(S_INLINE);
            self.varint(s.len() as u64);
            self.out.extend_from_slice(s.as_bytes());
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.out.push(V_NULL),
            Value::Bool(false) => self.out.push(V_FALSE),
            Value::Bool(true) => self.out.push(V_TRUE),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    self.out.push(V_INT);
                    self.varint(zigzag(i));
                } else if let Some(u) = n.as_u64() {
                    self.out.push(V_UINT);
                    self.varint(u);
                } else {
                    self.out.push(V_FLOAT);
                    self.out.extend_from_slice(&n.as_f64().unwrap_or_default().to_le_bytes());
                }
            }
            Value::String(s) => {
                self.out.push(V_STRING);
                self.string(s, true);
            }
            Value::Array(items) => {
                self.out.push(V_ARRAY);
                self.varint(items.len() as u64);
                items.iter().for_each(|item| self.value(item));
            }
            Value::Object(fields) => {
                let shape = fields.keys().map(String::as_str).collect::<Vec<_>>().join("\u{1f}");
                let shaped = !fields.is_empty()
                    && shape.len() <= INTERN_MAX * 4
                    && fields.keys().all(|k| !k.contains(SHAPE_SEPARATOR));
                if shaped {
                    let n = self.word(&shape).unwrap_or_default();
                    self.out.push(V_SHAPED);
                    self.varint(n as u64);
                } else {
                    self.out.push(V_OBJECT);
                    self.varint(fields.len() as u64);
                }
                for (key, value) in fields {
                    if !shaped {
                        self.string_with(key, false, false);
                    }
                    self.value(value);
                }
            }
        }
    }
}

/// Why a record did not decode.
#[derive(Debug, PartialEq)]
pub enum Undecodable {
    /// Dictionary numbers this node has not loaded yet: load them and decode again.
    Missing(Vec<i64>),
    /// Not a record this code wrote.
    Corrupt,
}

/// Decode a row of the chain of `org_id` back into the event it was encoded from.
pub fn decode(row: &StoredRecord, org_id: Option<Uuid>, dict: &Dictionary) -> Result<Event, Undecodable> {
    let mut d = Decoder { rec: &row.rec, at: 0, dict, missing: Vec::new(), actor: String::new() };
    let action = d.word(row.action);
    let event = d.event(row, org_id, action);
    match (event, d.missing.is_empty()) {
        (Some(event), true) => Ok(event),
        (_, false) => Err(Undecodable::Missing(d.missing)),
        (None, true) => Err(Undecodable::Corrupt),
    }
}

struct Decoder<'a> {
    rec: &'a [u8],
    at: usize,
    dict: &'a Dictionary,
    missing: Vec<i64>,
    actor: String,
}

impl Decoder<'_> {
    fn event(&mut self, row: &StoredRecord, org_id: Option<Uuid>, action: String) -> Option<Event> {
        if self.byte()? != VERSION {
            return None;
        }
        let occurred_at = id_millis(&row.id).wrapping_add(unzigzag(self.varint()?));
        let outcome = match self.byte()? {
            0 => Outcome::Success,
            1 => Outcome::Failure,
            _ => return None,
        };
        self.actor = self.string()??;
        let target = self.string()?;
        let request_id = self.string()?;
        let detail = self.value(0)?;
        (self.at == self.rec.len()).then(|| Event {
            id: row.id,
            org_id,
            occurred_at,
            actor: self.actor.clone(),
            action,
            target,
            outcome,
            request_id,
            detail,
        })
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.rec.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let slice = self.rec.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// A word's text, or "" with its number noted as missing.
    fn word(&mut self, n: i64) -> String {
        match self.dict.text(n) {
            Some(text) => text.to_string(),
            None => {
                self.missing.push(n);
                String::new()
            }
        }
    }

    /// `Some(None)` for an absent optional string.
    fn string(&mut self) -> Option<Option<String>> {
        Some(Some(match self.byte()? {
            S_ABSENT => return Some(None),
            S_INLINE => {
                let len = usize::try_from(self.varint()?).ok()?;
                String::from_utf8(self.bytes(len)?.to_vec()).ok()?
            }
            S_UUID => Uuid::from_slice(self.bytes(16)?).ok()?.to_string(),
            S_WORD => {
                let n = i64::try_from(self.varint()?).ok()?;
                self.word(n)
            }
            S_ACTOR => self.actor.clone(),
            _ => return None,
        }))
    }

    fn value(&mut self, depth: u32) -> Option<Value> {
        if depth > 64 {
            return None;
        }
        Some(match self.byte()? {
            V_NULL => Value::Null,
            V_FALSE => Value::Bool(false),
            V_TRUE => Value::Bool(true),
            V_INT => Value::from(unzigzag(self.varint()?)),
            V_UINT => Value::from(self.varint()?),
            V_FLOAT => {
                let bytes: [u8; 8] = self.bytes(8)?.try_into().ok()?;
                Value::Number(Number::from_f64(f64::from_le_bytes(bytes))?)
            }
            V_STRING => Value::String(self.string()??),
            V_ARRAY => {
                let n = self.varint()?;
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            V_SHAPED => {
                let n = i64::try_from(self.varint()?).ok()?;
                let Some(shape) = self.dict.text(n) else {
                    // Without its shape nothing after it can be read.
                    self.missing.push(n);
                    return None;
                };
                let mut fields = Map::new();
                for key in shape.split(SHAPE_SEPARATOR) {
                    fields.insert(key.to_string(), self.value(depth + 1)?);
                }
                Value::Object(fields)
            }
            V_OBJECT => {
                let n = self.varint()?;
                let mut fields = Map::new();
                for _ in 0..n {
                    let key = self.string()??;
                    fields.insert(key, self.value(depth + 1)?);
                }
                Value::Object(fields)
            }
            _ => return None,
        })
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The time in a version 7 UUID (its first 48 bits, in milliseconds).
pub(crate) fn id_millis(id: &Uuid) -> i64 {
    let b = id.as_bytes();
    b[..6].iter().fold(0i64, |acc, byte| (acc << 8) | i64::from(*byte))
}

/// A version 7 UUID minted at `millis`: the ids of audit events carry their time.
pub fn id_at(millis: i64) -> Uuid {
    let mut bytes = *Uuid::now_v7().as_bytes();
    let ms = millis.clamp(0, (1 << 48) - 1).to_be_bytes();
    bytes[..6].copy_from_slice(&ms[2..]);
    Uuid::from_bytes(bytes)
}

/// `s` as a UUID if it is one written the canonical way (lower-case, hyphenated), so
/// that storing its 16 bytes gives back the same text.
fn canonical_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    let uuid = Uuid::try_parse(s).ok()?;
    let mut buf = Uuid::encode_buffer();
    (uuid.hyphenated().encode_lower(&mut buf) == s).then_some(uuid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(event: &Event) -> (Event, usize) {
        let dict = Dictionary::default();
        let mut missing = Vec::new();
        assert!(encode(event, &dict, &mut missing).is_none() || missing.is_empty());
        dict.learn(missing.into_iter().enumerate().map(|(n, s)| (n as i64 + 1, s)));
        let mut missing = Vec::new();
        let encoded = encode(event, &dict, &mut missing).expect("every word known");
        let row = StoredRecord {
            seq: 1,
            id: event.id,
            action: encoded.action,
            tag: 0,
            rec: encoded.rec.clone(),
            anchor: None,
        };
        (decode(&row, event.org_id, &dict).expect("decodes"), encoded.rec.len())
    }

    fn issue() -> Event {
        let agent = Uuid::now_v7().to_string();
        Event::new(1_765_000_000_123, Some(Uuid::now_v7()), agent.clone(), "token.issue", Outcome::Success)
            .target("cid_0123456789abcdefghijkl")
            .request_id(Some(Uuid::now_v7().to_string()))
            .detail(&json!({
                "aud": "https://api.example.com", "dpop": false, "exp": 1_765_000_900,
                "grant_type": "client_credentials", "jti": Uuid::now_v7().to_string(),
                "kid": "k-2026-12-07", "scope": "read write", "sub": agent,
            }))
    }

    #[test]
    fn a_token_issue_event_round_trips_in_few_bytes() {
        let event = issue();
        let (back, len) = roundtrip(&event);
        assert_eq!(format!("{back:?}"), format!("{event:?}"));
        assert!(len <= 84, "{len} bytes");
    }

    #[test]
    fn every_kind_of_value_round_trips() {
        let detail = json!({
            "n": null, "t": true, "f": false, "i": -5, "big": u64::MAX, "x": 1.5, "whole": 2.0,
            "s": "é \"quoted\"", "upper": "0196A0B2-0000-7000-8000-000000000000",
            "a": [1, [2, {"k": "v"}], {}], "o": {"\u{1f}odd": 1}, "empty": {}, "": "",
        });
        for outcome in [Outcome::Success, Outcome::Failure] {
            let event =
                Event::new(-3, None, "anonymous".into(), "agent.create", outcome).target("anonymous").detail(&detail);
            let (back, _) = roundtrip(&event);
            assert_eq!(format!("{back:?}"), format!("{event:?}"));
            assert_eq!(serde_json::to_string(&back.detail).unwrap(), serde_json::to_string(&detail).unwrap());
        }
    }

    #[test]
    fn failed_events_add_no_words_but_their_shapes() {
        let event = Event::new(9, None, "some-client-id".into(), "token.issue", Outcome::Failure)
            .target("another-name")
            .detail(&json!({"error": "invalid_client"}));
        let mut missing = Vec::new();
        encode(&event, &Dictionary::default(), &mut missing);
        assert_eq!(missing, ["token.issue", "error"]);
    }

    #[test]
    fn an_event_lacking_a_word_another_event_noted_is_not_encoded() {
        let dict = Dictionary::default();
        let mut missing = Vec::new();
        assert!(encode(&issue(), &dict, &mut missing).is_none());
        assert!(encode(&issue(), &dict, &mut missing).is_none(), "its words are all noted already");
    }

    #[test]
    fn garbage_is_refused_not_misread() {
        let dict = Dictionary::default();
        dict.learn([(1, "token.issue".to_string())]);
        for rec in [vec![], vec![9], vec![VERSION, 0, 7], vec![VERSION, 0, 0, S_INLINE, 200, 1]] {
            let row = StoredRecord { seq: 1, id: Uuid::now_v7(), action: 1, tag: 0, rec, anchor: None };
            assert_eq!(decode(&row, None, &dict).err(), Some(Undecodable::Corrupt));
        }
        let row = StoredRecord { seq: 1, id: Uuid::now_v7(), action: 2, tag: 0, rec: vec![], anchor: None };
        assert!(matches!(decode(&row, None, &dict), Err(Undecodable::Missing(n)) if n == [2]));
    }

    #[test]
    fn ids_carry_the_time_of_their_event() {
        let id = id_at(1_765_000_000_123);
        assert_eq!(id_millis(&id), 1_765_000_000_123);
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(tag_of("0a0b0c0dffff"), 0x0a0b0c0d);
        assert_eq!(tag_of("ffffffff00"), -1);
    }
}
