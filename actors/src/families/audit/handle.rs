//! Reading and verifying the audit trail. Writing goes through the AuditWriter actor.

use uuid::Uuid;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::engine::{Call, Engine};
use crate::families::audit::chain::{hex, GENESIS};
use crate::families::audit::checkpointer::{chain_of, CheckpointClaims, CHECKPOINT_TYP};
use crate::families::audit::read::{Linker, Reader};
use crate::families::audit::{Checkpoint, RecordQuery};
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{AuditEvent, AuditQuery, ChainReport, CheckpointCheck, Page, PageRequest};
use crate::kernel::paging::page_limit;
use crate::store::UNATTRIBUTED_CHAIN;

const VERIFY_BATCH: u32 = 1000;

impl Engine {
    /// The audit trail, read as events.
    pub(crate) fn trail(&self) -> Reader<'_> {
        Reader { store: self.shared.store.as_ref(), dict: &self.shared.audit_words }
    }

    /// The chain a call may read: its own organization's, or — for the platform
    /// administrator — any named one (the nil id names events of no organization).
    fn audit_org(&self, call: &Call, org: Option<Uuid>, operation: &'static str) -> Result<Option<Uuid>> {
        let org = org.unwrap_or(call.caller.org_id);
        self.authorize(call, operation, org)?;
        Ok((org != UNATTRIBUTED_CHAIN).then_some(org))
    }

    pub async fn list_audit(&self, call: &Call, mut query: AuditQuery) -> Result<Page<AuditEvent>> {
        query.org_id = self.audit_org(call, query.org_id, "audit.read")?;
        let limit = page_limit(&query.page)?;
        // Audit pages follow the chain's sequence, which its (chain, seq) key serves; the
        // cursor is the last sequence number shown.
        let before = decode_seq_cursor(query.page.cursor.as_deref())?;
        let items = self.trail().list(&query, before, limit).await?;
        let next_cursor = (items.len() == limit as usize)
            .then(|| items.last().map(|e| URL_SAFE_NO_PAD.encode(e.seq.to_be_bytes())))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    pub async fn get_audit(&self, call: &Call, id: Uuid) -> Result<AuditEvent> {
        let event = self.trail().get(id).await?.ok_or(EngineError::not_found("audit event"))?;
        let org = event.org_id.unwrap_or(UNATTRIBUTED_CHAIN);
        // Another organization's event is reported as absent, not as forbidden.
        self.authorize(call, "audit.read", org).map_err(|_| EngineError::not_found("audit event"))?;
        Ok(event)
    }

    /// Re-compute an organization's hash chain: from its last verified checkpoint, or
    /// (`full`) from its first event.
    pub async fn verify_audit(&self, call: &Call, org: Option<Uuid>, full: bool) -> Result<ChainReport> {
        let org_id = self.audit_org(call, org, "audit.verify")?;
        self.verify_chain(org_id, full).await
    }

    /// The signed checkpoints of a chain (the caller's organization's, or a named one
    /// for the platform administrator), newest first.
    pub async fn audit_checkpoints(
        &self,
        call: &Call,
        org: Option<Uuid>,
        page: PageRequest,
    ) -> Result<Page<Checkpoint>> {
        let org_id = self.audit_org(call, org, "audit.read")?;
        let limit = page_limit(&page)?;
        let before = decode_seq_cursor(page.cursor.as_deref())?;
        let items = self.shared.store.checkpoints(chain_of(org_id), before, limit).await?;
        let next_cursor = (items.len() == limit as usize)
            .then(|| items.last().map(|c| URL_SAFE_NO_PAD.encode(c.seq.to_be_bytes())))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    /// Verify the chain of `org_id` (the unattributed chain for `None`), record by record,
    /// and against its latest signed checkpoint. The walk starts from the chain's floor
    /// (the newest event archived and removed) or, unless `full`, resumes after the newest
    /// checkpoint an earlier verification found intact (if the chain still holds that
    /// checkpoint's event): its cost follows the new events, not the chain's length.
    pub(crate) async fn verify_chain(&self, org_id: Option<Uuid>, full: bool) -> Result<ChainReport> {
        let chain = chain_of(org_id);
        let store = &self.shared.store;
        let trail = self.trail();
        // Read first: the walk that follows covers it.
        let latest = store.checkpoints(chain, None, 1).await?.into_iter().next();
        let floor = store.chain_ends(chain).await?.map_or((0, GENESIS.to_string()), |e| (e.floor_seq, e.floor_hash));
        let resume = match full {
            true => None,
            false => store.verified_checkpoint(chain).await?.filter(|v| v.seq >= floor.0),
        };
        let mut hashes_seen: Vec<(i64, String)> = Vec::new();
        let (mut linker, mut after, mut resume_holds) = (Linker::after(floor.0, &floor.1), floor.0, true);
        if let Some(v) = &resume {
            // The verified checkpoint is trusted: its event must still be there, written
            // as it was (tag, and full hash on an anchor).
            let query = RecordQuery { after: v.seq - 1, before: Some(v.seq + 1), ..Default::default() };
            let row = store.audit_records(chain, &query, 1).await?.into_iter().next();
            resume_holds = row.is_some_and(|r| {
                r.tag == crate::families::audit::record::tag_of(&v.hash) && r.anchor.is_none_or(|a| hex(&a) == v.hash)
            });
            if resume_holds {
                hashes_seen.push((v.seq, v.hash.clone()));
            }
            linker = Linker::after(v.seq, &v.hash);
            after = v.seq;
        }
        let (mut checked, mut first_broken) = (0u64, None);
        loop {
            let rows = store.audit_records(chain, &RecordQuery { after, ..Default::default() }, VERIFY_BATCH).await?;
            let events = trail.decode(chain, &rows).await?;
            for (row, event) in rows.iter().zip(events) {
                checked += 1;
                let linked = linker.link(row, event);
                if !linked.as_ref().is_some_and(|l| l.holds) {
                    first_broken = first_broken.or(Some(row.id));
                }
                if let Some(l) = linked.filter(|l| latest.as_ref().is_some_and(|c| c.seq == l.event.seq)) {
                    hashes_seen.push((l.event.seq, l.event.hash));
                }
            }
            match rows.last() {
                Some(last) if rows.len() == VERIFY_BATCH as usize => after = last.seq,
                _ => break,
            }
        }
        let checkpoint = match &latest {
            Some(c) => {
                // Checked as anyone outside would: against the published JWKS.
                let jwks = self.jwks().and_then(|text| serde_json::from_str(&text).map_err(EngineError::internal))?;
                let signed = crate::kernel::jose::verify_with_jwks(&c.jwt, &jwks, CHECKPOINT_TYP)
                    .and_then(|claims| serde_json::from_value::<CheckpointClaims>(claims).map_err(|e| e.to_string()));
                let vouches = signed.is_ok_and(|claims| {
                    claims.seq == c.seq && claims.hash == c.hash && claims.sub == chain.to_string()
                });
                // A checkpoint of events archived since is vouched for by the archive.
                let present =
                    c.seq <= floor.0 || hashes_seen.iter().any(|(seq, hash)| *seq == c.seq && *hash == c.hash);
                Some(CheckpointCheck { seq: c.seq, created_at: c.created_at, holds: vouches && present })
            }
            None => None,
        };
        let intact = resume_holds && first_broken.is_none() && checkpoint.as_ref().is_none_or(|c| c.holds);
        if let Some(c) = latest.as_ref().filter(|_| intact) {
            store.mark_verified(chain, c.seq, self.shared.now_ms()).await?;
        }
        Ok(ChainReport {
            org_id,
            intact,
            events_checked: checked,
            first_broken_event: first_broken,
            checkpoint,
            resumed_after: resume.map(|v| v.seq),
        })
    }
}

/// An organization's audit retention: how long its events stay in the store before
/// they are archived and removed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditRetention {
    pub org_id: Uuid,
    /// Seconds (`null`: kept for good).
    pub seconds: Option<u64>,
    /// Whether that is the platform administrator's setting (else its tier's).
    pub overridden: bool,
    /// Its tier's retention.
    pub tier_seconds: Option<u64>,
}

/// The shortest and longest retention the platform administrator may set.
const RETENTION_RANGE: std::ops::RangeInclusive<u64> = 60..=100 * 365 * 86_400;

impl Engine {
    pub async fn audit_retention(&self, call: &Call, org_id: Uuid) -> Result<AuditRetention> {
        self.authorize(call, "audit.read", org_id)?;
        self.retention_of(org_id).await
    }

    /// Set (`Some`: seconds, or `None` to keep for good) or clear (`None`: back to the
    /// tier's) an organization's retention. Audited as `audit.retention`.
    pub async fn set_audit_retention(
        &self,
        call: &Call,
        org_id: Uuid,
        seconds: Option<Option<u64>>,
    ) -> Result<AuditRetention> {
        self.authorize(call, "audit.retention", org_id)?;
        if let Some(Some(secs)) = seconds {
            if !RETENTION_RANGE.contains(&secs) {
                return Err(EngineError::invalid("seconds", "must be 60 to 3153600000 (100 years), or null"));
            }
        }
        self.shared.store.get_org(org_id).await?.ok_or(EngineError::not_found("organization"))?;
        let detail = serde_json::json!({"override": seconds.is_some(), "seconds": seconds.flatten()});
        let event = self.call_event(call, org_id, "audit.retention", org_id, detail);
        let change = crate::families::audit::AuditChange::Retention { org_id, seconds };
        self.commit(event, vec![change.into()], None).await?;
        self.retention_of(org_id).await
    }

    async fn retention_of(&self, org_id: Uuid) -> Result<AuditRetention> {
        let org = self.shared.store.get_org(org_id).await?.ok_or(EngineError::not_found("organization"))?;
        let tier_seconds = self.shared.config.tiers.limits(org.tier).audit_retention_secs;
        let set = self.shared.store.audit_retention(org_id).await?;
        Ok(AuditRetention { org_id, seconds: set.unwrap_or(tier_seconds), overridden: set.is_some(), tier_seconds })
    }

    /// The newest event of a chain no longer in the store (archived and removed): its
    /// `seq` and hash, where the archive must end; `None` if there is no such chain.
    pub async fn audit_floor(&self, chain: Uuid) -> Result<Option<(i64, String)>> {
        Ok(self.shared.store.chain_ends(chain).await?.map(|e| (e.floor_seq, e.floor_hash)))
    }

    /// Archive now what is past its retention (what the archiver does every interval);
    /// how many events were archived.
    pub async fn archive_audit(&self) -> Result<u64> {
        crate::families::audit::archive::archive_due(&self.shared.archiver).await
    }
}

/// A page cursor that is a chain's `seq` (the last one shown).
fn decode_seq_cursor(cursor: Option<&str>) -> Result<Option<i64>> {
    cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                .map(i64::from_be_bytes)
                .ok_or_else(|| EngineError::invalid("cursor", "not a cursor this API returned"))
        })
        .transpose()
}
