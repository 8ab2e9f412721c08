//! Reading the stored records back as the events they were: decoded with the
//! dictionary, and linked — each event's hash recomputed from the nearest hash the store
//! holds (the chain's floor, or an anchor: [`ANCHOR_EVERY`]).

use uuid::Uuid;

use super::chain::{chain_hash, hex, Event};
use super::record::{self, Dictionary, StoredRecord, Undecodable, ANCHOR_EVERY};
use super::{AuditStore, ChainEnds, RecordQuery};
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{AuditEvent, AuditQuery};
use crate::store::UNATTRIBUTED_CHAIN;

/// How many records a listing reads at a time while it filters.
const SCAN: u32 = 500;

/// The organization a chain belongs to (none for the unattributed chain).
pub(crate) fn org_of(chain: Uuid) -> Option<Uuid> {
    (chain != UNATTRIBUTED_CHAIN).then_some(chain)
}

/// A stored record decoded and placed: the event as the API shows it, and whether its
/// record still hashes as it was written (its `seq` follows its predecessor's, its tag
/// and, on an anchor, its full hash match).
pub(crate) struct Linked {
    pub event: AuditEvent,
    pub holds: bool,
}

/// The hash chain walked forward over stored records.
pub(crate) struct Linker {
    prev: String,
    next_seq: i64,
}

impl Linker {
    /// A walk that continues after event `seq`, which hashed to `hash`.
    pub fn after(seq: i64, hash: &str) -> Linker {
        Linker { prev: hash.to_string(), next_seq: seq + 1 }
    }

    pub fn link(&mut self, row: &StoredRecord, event: Option<Event>) -> Option<Linked> {
        let in_order = row.seq == self.next_seq;
        self.next_seq = row.seq + 1;
        let Some(event) = event else {
            // Unreadable: what follows is linked from its anchor, if it has one.
            self.prev = row.anchor.as_deref().map(hex).unwrap_or_default();
            return None;
        };
        let hash = chain_hash(&self.prev, &event.canonical(), row.seq);
        let holds = in_order
            && record::tag_of(&hash) == row.tag
            && row.anchor.as_deref().is_none_or(|anchor| hex(anchor) == hash);
        let prev_hash = std::mem::replace(&mut self.prev, hash.clone());
        Some(Linked {
            holds,
            event: AuditEvent {
                id: event.id,
                org_id: event.org_id,
                seq: row.seq,
                occurred_at: event.occurred_at,
                actor: event.actor,
                action: event.action,
                target: event.target,
                outcome: event.outcome,
                request_id: event.request_id,
                detail: event.detail,
                prev_hash,
                hash,
            },
        })
    }
}

/// The audit trail as read through the store and the dictionary.
pub(crate) struct Reader<'a> {
    pub store: &'a dyn AuditStore,
    pub dict: &'a Dictionary,
}

impl Reader<'_> {
    /// Decode `rows` of `chain`, loading the dictionary words this node has not seen;
    /// `None` for a record that does not decode (not one this code wrote).
    pub async fn decode(&self, chain: Uuid, rows: &[StoredRecord]) -> Result<Vec<Option<Event>>> {
        let org = org_of(chain);
        let mut decoded: Vec<std::result::Result<Event, Undecodable>> =
            rows.iter().map(|r| record::decode(r, org, self.dict)).collect();
        // A word inside an object is found only once its shape is known: load in rounds
        // (as deep as records nest), decoding again only what lacked a word.
        for _ in 0..8 {
            let mut missing: Vec<i64> = decoded
                .iter()
                .filter_map(|d| match d {
                    Err(Undecodable::Missing(n)) => Some(n.iter().copied()),
                    _ => None,
                })
                .flatten()
                .collect();
            if missing.is_empty() {
                break;
            }
            missing.sort_unstable();
            missing.dedup();
            let found = self.store.words(missing, Vec::new()).await?;
            if found.is_empty() {
                // Words removed from the store: those records are unreadable.
                break;
            }
            self.dict.learn(found);
            for (row, d) in rows.iter().zip(decoded.iter_mut()) {
                if matches!(d, Err(Undecodable::Missing(_))) {
                    *d = record::decode(row, org, self.dict);
                }
            }
        }
        Ok(decoded.into_iter().map(|d| d.ok()).collect())
    }

    /// The events of `chain` after `after`, in order, at most `limit`,
    /// each linked; none if `after` is below the chain's floor (archived).
    pub async fn run(&self, chain: Uuid, ends: &ChainEnds, after: i64, limit: u32) -> Result<Vec<Linked>> {
        if after < ends.floor_seq {
            return Ok(Vec::new());
        }
        // Start from the floor or the nearest anchor at or before `after`.
        let anchor = after / ANCHOR_EVERY * ANCHOR_EVERY;
        let (start, mut linker) = if anchor > ends.floor_seq && anchor > 0 {
            let rows = self.records(chain, anchor - 1, anchor + 1).await?;
            match rows.first().and_then(|r| r.anchor.as_deref()) {
                Some(hash) => (anchor, Linker::after(anchor, &hex(hash))),
                // The anchor is gone: link from the floor (what verification does).
                None => (ends.floor_seq, Linker::after(ends.floor_seq, &ends.floor_hash)),
            }
        } else {
            (ends.floor_seq, Linker::after(ends.floor_seq, &ends.floor_hash))
        };
        let mut out = Vec::new();
        let mut from = start;
        loop {
            let want = (after - from).max(0) as u32 + limit - out.len() as u32;
            let rows = self
                .store
                .audit_records(chain, &RecordQuery { after: from, ..Default::default() }, want.min(5000))
                .await?;
            let events = self.decode(chain, &rows).await?;
            for (row, event) in rows.iter().zip(events) {
                match linker.link(row, event) {
                    Some(linked) if row.seq > after => out.push(linked),
                    Some(_) => {}
                    None if row.seq > after => {
                        return Err(EngineError::internal(format!("audit record {} does not decode", row.id)))
                    }
                    None => {}
                }
                if out.len() == limit as usize {
                    return Ok(out);
                }
            }
            match rows.last() {
                Some(last) if rows.len() == want.min(5000) as usize => from = last.seq,
                _ => return Ok(out),
            }
        }
    }

    async fn records(&self, chain: Uuid, after: i64, before: i64) -> Result<Vec<StoredRecord>> {
        let query = RecordQuery { after, before: Some(before), ..Default::default() };
        self.store.audit_records(chain, &query, u32::try_from(before - after).unwrap_or(u32::MAX)).await
    }

    /// The event with this id, linked.
    pub async fn get(&self, id: Uuid) -> Result<Option<AuditEvent>> {
        let Some((chain, row)) = self.store.audit_record(id).await? else { return Ok(None) };
        let Some(ends) = self.store.chain_ends(chain).await? else { return Ok(None) };
        let found = self.run(chain, &ends, row.seq - 1, 1).await?;
        Ok(found.into_iter().map(|l| l.event).find(|e| e.id == id))
    }

    /// A listing: newest first, before `before`, filtered, at most `limit`.
    pub async fn list(&self, query: &AuditQuery, before: Option<i64>, limit: u32) -> Result<Vec<AuditEvent>> {
        let chain = query.org_id.unwrap_or(UNATTRIBUTED_CHAIN);
        let Some(ends) = self.store.chain_ends(chain).await? else { return Ok(Vec::new()) };
        let actions = match &query.action {
            Some(action) => match self.number(action).await? {
                Some(n) => Some(vec![n]),
                // A word never written: no event has it.
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        // Ids carry their event's time (those converted from the first layout within a
        // moment of it): the id range narrows the scan, the times decide.
        let ids = (query.since.map(|t| id_floor(t - 60_000)), query.until.map(|t| id_floor(t + 60_000)));
        // Only what is above the floor: rows under it (archived, their removal under way)
        // are not the store's to show.
        let mut scan = RecordQuery { after: ends.floor_seq, before, actions, ids, newest_first: true };
        let mut found: Vec<StoredRecord> = Vec::new();
        loop {
            let rows = self.store.audit_records(chain, &scan, SCAN).await?;
            let events = self.decode(chain, &rows).await?;
            for (row, event) in rows.iter().zip(events) {
                let wanted = event.as_ref().is_none_or(|e| {
                    query.outcome.is_none_or(|o| o == e.outcome)
                        && query.agent_id.as_ref().is_none_or(|a| e.actor == *a || e.target.as_ref() == Some(a))
                        && query.since.is_none_or(|t| e.occurred_at >= t)
                        && query.until.is_none_or(|t| e.occurred_at < t)
                });
                if wanted {
                    found.push(row.clone());
                    if found.len() == limit as usize {
                        break;
                    }
                }
            }
            match rows.last() {
                Some(last) if rows.len() == SCAN as usize && found.len() < limit as usize => {
                    scan.before = Some(last.seq)
                }
                _ => break,
            }
        }
        // Link each found event: one forward run per anchor block.
        let mut out: Vec<AuditEvent> = Vec::with_capacity(found.len());
        let mut i = 0;
        while i < found.len() {
            let block = (found[i].seq - 1) / ANCHOR_EVERY;
            let lowest = found[i..]
                .iter()
                .take_while(|r| (r.seq - 1) / ANCHOR_EVERY == block)
                .map(|r| r.seq)
                .min()
                .unwrap_or(found[i].seq);
            let span = (found[i].seq - lowest + 1) as u32;
            let linked = self.run(chain, &ends, lowest - 1, span).await?;
            while i < found.len() && (found[i].seq - 1) / ANCHOR_EVERY == block {
                let seq = found[i].seq;
                out.extend(linked.iter().find(|l| l.event.seq == seq).map(|l| l.event.clone()));
                i += 1;
            }
        }
        Ok(out)
    }

    /// The events of `chain` after `after` whose action is one of `actions`, oldest
    /// first, at most `limit`, with their `seq`s; and how far that read reaches: the last
    /// event's seq if the page is full, else the chain's head (every event up to it was
    /// committed and read, so a cursor may move there).
    pub async fn selected_after(
        &self,
        chain: Uuid,
        after: i64,
        actions: &[&str],
        limit: u32,
    ) -> Result<(Vec<(i64, Event)>, i64)> {
        // The head first: every event up to it is committed (the head moves in the same
        // transaction as the insert), so the read below misses none of them.
        let Some(ends) = self.store.chain_ends(chain).await? else { return Ok((Vec::new(), after)) };
        let numbers = self.numbers(actions).await?;
        let query =
            RecordQuery { after, before: Some(ends.head_seq + 1), actions: Some(numbers), ..Default::default() };
        let rows = self.store.audit_records(chain, &query, limit).await?;
        let events = self.decode(chain, &rows).await?;
        let reach = match rows.last() {
            Some(last) if rows.len() == limit as usize => last.seq,
            _ => ends.head_seq.max(after),
        };
        let events = rows
            .iter()
            .zip(events)
            .map(|(row, event)| {
                event
                    .map(|e| (row.seq, e))
                    .ok_or_else(|| EngineError::internal(format!("audit record {} does not decode", row.id)))
            })
            .collect::<Result<_>>()?;
        Ok((events, reach))
    }

    /// The dictionary numbers of those of `texts` that have one, the ones this node has
    /// not seen looked up in one read (a subscription to every event type asks for a
    /// few dozen actions, most never written, on every pump).
    pub async fn numbers(&self, texts: &[&str]) -> Result<Vec<i64>> {
        let missing: Vec<String> =
            texts.iter().filter(|t| self.dict.number(t).is_none()).map(|t| t.to_string()).collect();
        if !missing.is_empty() {
            self.dict.learn(self.store.words(Vec::new(), missing).await?);
        }
        Ok(texts.iter().filter_map(|t| self.dict.number(t)).collect())
    }

    /// A word's dictionary number, if it has one (looked up, never added: anyone may ask).
    pub async fn number(&self, text: &str) -> Result<Option<i64>> {
        if let Some(n) = self.dict.number(text) {
            return Ok(Some(n));
        }
        self.dict.learn(self.store.words(Vec::new(), vec![text.to_string()]).await?);
        Ok(self.dict.number(text))
    }
}

/// The smallest event id minted at `millis`: ids carry their time, so a time range is
/// an id range.
pub(crate) fn id_floor(millis: i64) -> Uuid {
    let ms = millis.clamp(0, (1 << 48) - 1).to_be_bytes();
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms[2..]);
    Uuid::from_bytes(bytes)
}
