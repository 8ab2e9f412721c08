//! The audit family's store port: what it reads and writes, and its records.

use async_trait::async_trait;
use uuid::Uuid;

use super::chain::SealedEvent;
use super::record::StoredRecord;
use crate::kernel::error::Result;
use crate::kernel::model::Millis;
use crate::runtime::events::ClusterEvent;
use crate::store::{Change, Ping};

/// One entry of a group commit: an audit event, the changes it records, and what every
/// node must be told about them. The changes, the announcement (in the cluster change
/// feed) and the event are written together, or — if a change fails — none of them, and
/// the rest of the batch goes on.
#[derive(Debug)]
pub struct Commit {
    pub event: SealedEvent,
    pub changes: Vec<Box<dyn Change>>,
    pub announce: Option<ClusterEvent>,
}

impl Commit {
    /// An audit event that records no change (e.g. a token issued).
    pub fn event(event: SealedEvent) -> Commit {
        Commit { event, changes: Vec::new(), announce: None }
    }
}

/// The audit trail, and the group commit that writes every change with its event (the
/// AuditWriter's port).
#[async_trait]
pub trait AuditStore: Ping {
    /// Apply each entry's changes, record its announcement in the change feed, link its
    /// event (encoded by the AuditWriter) into its chain — all entries in one transaction
    /// (group commit). The outer error fails the whole batch (nothing written); an inner
    /// one only its entry, whose changes and event are then left out.
    async fn append_audit(&self, entries: Vec<Commit>) -> Result<Vec<Result<()>>>;
    /// Give each text a dictionary number (keeping any it has); every text's number.
    async fn intern(&self, texts: Vec<String>) -> Result<Vec<(i64, String)>>;
    /// The dictionary words with these numbers or these texts (those that exist).
    async fn words(&self, numbers: Vec<i64>, texts: Vec<String>) -> Result<Vec<(i64, String)>>;
    /// A chain's head and floor; `None` if it has no events.
    async fn chain_ends(&self, chain: Uuid) -> Result<Option<ChainEnds>>;
    /// A chain's stored records that `query` selects, in `seq` order (newest first if
    /// it says so), at most `limit`.
    async fn audit_records(&self, chain: Uuid, query: &RecordQuery, limit: u32) -> Result<Vec<StoredRecord>>;
    /// The record with this event id, and its chain.
    async fn audit_record(&self, id: Uuid) -> Result<Option<(Uuid, StoredRecord)>>;
    /// Every chain, with what decides its retention.
    async fn chain_retention(&self) -> Result<Vec<ChainRetention>>;
    /// Move the floor of `chain` from `floor` to `upto` (archived, the last hashing to
    /// `upto_hash`) — only if it is still `floor`; whether it was. Verification of what
    /// the store holds starts there from then on.
    async fn move_floor(&self, chain: Uuid, floor: i64, upto: i64, upto_hash: &str) -> Result<bool>;
    /// Remove the records of `chain` after `after` up to `upto` (at or below its floor:
    /// archived). One short transaction: the archiver removes a segment in several, so
    /// that the writer never waits long behind it.
    async fn remove_archived(&self, chain: Uuid, after: i64, upto: i64) -> Result<()>;
    /// The platform administrator's retention for an organization: `None` if it has
    /// none (its tier's applies), `Some(None)` to keep its events for good.
    async fn audit_retention(&self, org_id: Uuid) -> Result<Option<Option<u64>>>;
    /// Events still in the first layout (by chain and `seq`), at most `limit`.
    async fn legacy_audit(&self, limit: u32) -> Result<Vec<crate::kernel::model::AuditEvent>>;
    /// Write these records, and remove the legacy events they were made from, together.
    async fn move_legacy_audit(&self, records: Vec<(Uuid, StoredRecord)>) -> Result<()>;
    /// Drop the (empty) legacy table, if it is there.
    async fn drop_legacy_audit(&self) -> Result<()>;
    /// Every chain's head (its newest event's `seq` and hash) with its latest checkpoint,
    /// if any: what the checkpointer decides from.
    async fn chain_heads(&self) -> Result<Vec<ChainHead>>;
    /// Record a checkpoint; one another node recorded first for the same `seq` stands.
    async fn insert_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()>;
    /// A chain's checkpoints, newest first, before the `before_seq` cursor.
    async fn checkpoints(&self, chain: Uuid, before_seq: Option<i64>, limit: u32) -> Result<Vec<Checkpoint>>;
    /// The chain's newest checkpoint a verification found intact, if any.
    async fn verified_checkpoint(&self, chain: Uuid) -> Result<Option<Checkpoint>>;
    /// Record that a verification found the chain intact up to this checkpoint.
    async fn mark_verified(&self, chain: Uuid, seq: i64, at: Millis) -> Result<()>;
}

/// Which of a chain's records to read: `seq` in (`after`, `before`), of one of
/// `actions` (dictionary numbers) if given, with an id (so a time) in `ids`.
#[derive(Debug, Clone, Default)]
pub struct RecordQuery {
    pub after: i64,
    pub before: Option<i64>,
    pub actions: Option<Vec<i64>>,
    pub ids: (Option<Uuid>, Option<Uuid>),
    pub newest_first: bool,
}

/// A chain's newest event (`head_seq`, `head_hash`) and the newest event it no longer
/// holds (`floor_seq`, `floor_hash`: archived and removed; 0 and the genesis hash if
/// none), from which what it holds is verified.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainEnds {
    pub head_seq: i64,
    pub head_hash: String,
    pub floor_seq: i64,
    pub floor_hash: String,
}

/// The audit family's changes: committed with their audit event.
#[derive(Debug, Clone)]
pub enum AuditChange {
    /// Set (`Some`) or clear (`None`) an organization's retention override; `Some(None)`
    /// keeps its events for good.
    Retention { org_id: Uuid, seconds: Option<Option<u64>> },
}

crate::store::applied_by_adapters!(AuditChange);

/// A chain, its organization's tier (none for the unattributed chain) and the platform
/// administrator's override of its retention (seconds; `Some(None)`: kept for good).
#[derive(Debug, Clone)]
pub struct ChainRetention {
    pub chain: Uuid,
    pub tier: Option<crate::kernel::model::Tier>,
    pub override_secs: Option<Option<u64>>,
}

/// A chain's head and its latest checkpoint.
#[derive(Debug, Clone)]
pub struct ChainHead {
    pub chain: Uuid,
    pub seq: i64,
    pub hash: String,
    /// The latest checkpoint's `seq` and time.
    pub checkpoint: Option<(i64, Millis)>,
}

/// A signed statement of a chain's head: `seq` events, the last of them hashing to
/// `hash`, as of `created_at`; `jwt` is the same signed by the issuer's key (typ
/// `audit-checkpoint+jwt`), verifiable offline against the JWKS.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Checkpoint {
    #[serde(skip)]
    pub chain: Uuid,
    pub seq: i64,
    pub hash: String,
    #[serde(with = "crate::kernel::model::rfc3339")]
    pub created_at: Millis,
    pub jwt: String,
}
