//! The tiers family's store port: what it reads and writes, and its records.

use async_trait::async_trait;
use uuid::Uuid;

use crate::kernel::error::Result;

/// The daily call quota's ledger (the tier counters' port): calls granted to leases per
/// organization and UTC day, never past the limit. The store is the ledger of a single
/// node or of nodes sharing PostgreSQL alone; with Redis configured, [`redis::RedisLedger`].
#[async_trait]
pub trait QuotaStore: Send + Sync + 'static {
    /// Grant more calls to `org_id` on `day` (see [`GrantRequest`]), never making the
    /// day's total pass the limit.
    async fn grant_calls(&self, org_id: Uuid, day: i64, request: GrantRequest) -> Result<Grant>;
    /// The day's total granted so far.
    async fn calls_granted(&self, org_id: Uuid, day: i64) -> Result<u64>;
}

/// What a lease asks of [`QuotaStore::grant_calls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantRequest {
    /// Calls wanted.
    pub want: u64,
    /// The day's limit; `None`: no limit.
    pub limit: Option<u64>,
    /// Calls the node admitted on its own while the ledger was unreachable: added first
    /// and unclamped (they happened).
    pub owed: u64,
    /// The day's total as the node last saw it (its own outage grants included). A
    /// ledger that can lose its memory (Redis without persistence) starts a day it has
    /// forgotten from there instead of from zero.
    pub seen: u64,
}

/// What [`QuotaStore::grant_calls`] granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Calls granted now.
    pub granted: u64,
    /// The day's total granted after this grant.
    pub total: u64,
    /// The nodes drawing on this ledger lately, where the ledger knows (Redis does): what
    /// a node divides the day's remainder by when the ledger becomes unreachable.
    pub nodes: Option<u32>,
}

/// How many of `want` calls may be granted when `granted` are and the limit is `limit`.
pub(crate) fn grantable(granted: u64, want: u64, limit: Option<u64>) -> u64 {
    match limit {
        Some(limit) => want.min(limit.saturating_sub(granted)),
        None => want,
    }
}
