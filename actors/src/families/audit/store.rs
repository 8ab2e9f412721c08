//! The audit family's store port: what it reads and writes, and its records.

use async_trait::async_trait;
use uuid::Uuid;

use super::chain::SealedEvent;
use crate::kernel::error::Result;
use crate::kernel::model::{AuditEvent, AuditQuery, Millis};
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
    /// event into its chain — all entries in one transaction (group commit). The outer
    /// error fails the whole batch (nothing written); an inner one only its entry, whose
    /// changes and event are then left out.
    async fn append_audit(&self, entries: Vec<Commit>) -> Result<Vec<Result<()>>>;
    /// Newest first (by `seq`), from before the `before_seq` cursor.
    async fn list_audit(&self, query: &AuditQuery, before_seq: Option<i64>, limit: u32) -> Result<Vec<AuditEvent>>;
    async fn get_audit(&self, id: Uuid) -> Result<Option<AuditEvent>>;
    /// A chain's events in `seq` order, starting after `after_seq`.
    async fn audit_chain(&self, chain: Uuid, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>>;
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
