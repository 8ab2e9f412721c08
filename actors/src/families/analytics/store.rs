//! The analytics family's store port: what it reads and writes, and its records.

use async_trait::async_trait;
use uuid::Uuid;

use super::rules::{Day, DayRange, Metric};

use crate::kernel::error::Result;

/// One analytics count to add: `count` more of `metric` for (organization, agent, day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalyticsCount {
    pub org_id: Uuid,
    pub agent_id: Uuid,
    pub day: Day,
    pub metric: Metric,
    pub count: u64,
}

/// The usage analytics (the AnalyticsAggregator's port, and the analytics endpoints').
#[async_trait]
pub trait AnalyticsStore: Send + Sync + 'static {
    /// Add every count to its row, in one transaction: all of them or none.
    async fn add_analytics(&self, counts: Vec<AnalyticsCount>) -> Result<()>;
    /// The counts of `org_id` — of one agent, or all of them summed — per day and metric
    /// over `range`, optionally of one metric only. Days with no count are left out.
    async fn analytics(
        &self,
        org_id: Uuid,
        agent_id: Option<Uuid>,
        metric: Option<Metric>,
        range: DayRange,
    ) -> Result<Vec<(Metric, Day, u64)>>;
    /// Roll at most `batch` per-agent rows of days before `before` into their
    /// organization's row of that day and metric (agent [`ROLLED_UP`]): organization-wide
    /// counts stay exact, per-agent detail of those days is gone; how many rows were
    /// rolled up.
    async fn roll_up_analytics(&self, before: Day, batch: usize) -> Result<u64>;
}

/// The agent of an organization's rolled-up rows: the per-agent detail of old days,
/// summed (the nil UUID, which no agent has).
pub const ROLLED_UP: Uuid = Uuid::nil();
