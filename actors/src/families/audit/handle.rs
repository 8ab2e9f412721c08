//! Reading and verifying the audit trail. Writing goes through the AuditWriter actor.

use uuid::Uuid;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::engine::{Call, Engine};
use crate::families::audit::chain::ChainVerifier;
use crate::families::audit::checkpointer::{chain_of, CheckpointClaims, CHECKPOINT_TYP};
use crate::families::audit::Checkpoint;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{AuditEvent, AuditQuery, ChainReport, CheckpointCheck, Page, PageRequest};
use crate::kernel::paging::page_limit;
use crate::store::UNATTRIBUTED_CHAIN;

const VERIFY_BATCH: u32 = 1000;

impl Engine {
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
        let items = self.shared.store.list_audit(&query, before, limit).await?;
        let next_cursor = (items.len() == limit as usize)
            .then(|| items.last().map(|e| URL_SAFE_NO_PAD.encode(e.seq.to_be_bytes())))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    pub async fn get_audit(&self, call: &Call, id: Uuid) -> Result<AuditEvent> {
        let event = self.shared.store.get_audit(id).await?.ok_or(EngineError::not_found("audit event"))?;
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

    /// Verify the chain of `org_id` (the unattributed chain for `None`), link by link,
    /// and against its latest signed checkpoint. Unless `full`, the walk resumes after the
    /// newest checkpoint an earlier verification found intact (if the chain still holds
    /// that checkpoint's event): its cost follows the new events, not the chain's length.
    pub(crate) async fn verify_chain(&self, org_id: Option<Uuid>, full: bool) -> Result<ChainReport> {
        let chain = chain_of(org_id);
        let store = &self.shared.store;
        // Read first: the walk that follows covers it.
        let latest = store.checkpoints(chain, None, 1).await?.into_iter().next();
        let resume = if full { None } else { store.verified_checkpoint(chain).await? };
        let mut hashes_seen: Vec<(i64, String)> = Vec::new();
        let (mut verifier, mut after, mut resume_holds) = (ChainVerifier::default(), 0, true);
        if let Some(v) = &resume {
            let event = store.audit_chain(chain, v.seq - 1, 1).await?.into_iter().next();
            resume_holds = event.as_ref().is_some_and(|e| e.seq == v.seq && e.hash == v.hash);
            hashes_seen.extend(event.map(|e| (e.seq, e.hash)));
            verifier = ChainVerifier::after(v.seq, &v.hash);
            after = v.seq;
        }
        loop {
            let batch = store.audit_chain(chain, after, VERIFY_BATCH).await?;
            batch.iter().for_each(|e| verifier.feed(e));
            if let Some(e) = latest.as_ref().and_then(|c| batch.iter().find(|e| e.seq == c.seq)) {
                hashes_seen.push((e.seq, e.hash.clone()));
            }
            match batch.last() {
                Some(last) if batch.len() == VERIFY_BATCH as usize => after = last.seq,
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
                let present = hashes_seen.iter().any(|(seq, hash)| *seq == c.seq && *hash == c.hash);
                Some(CheckpointCheck { seq: c.seq, created_at: c.created_at, holds: vouches && present })
            }
            None => None,
        };
        let intact = resume_holds && verifier.first_broken.is_none() && checkpoint.as_ref().is_none_or(|c| c.holds);
        if let Some(c) = latest.as_ref().filter(|_| intact) {
            store.mark_verified(chain, c.seq, self.shared.now_ms()).await?;
        }
        Ok(ChainReport {
            org_id,
            intact,
            events_checked: verifier.checked,
            first_broken_event: verifier.first_broken,
            checkpoint,
            resumed_after: resume.map(|v| v.seq),
        })
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
