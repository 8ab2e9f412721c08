//! The usage analytics, read: totals per metric, one metric's daily series, one agent's
//! totals. Tenant-isolated like every read: an organization sees its own, the platform
//! administrator any.

use uuid::Uuid;

use crate::engine::{Call, Engine};
use crate::families::analytics::rules::{
    day_of, format_day, AnalyticsSeries, AnalyticsSummary, DayCount, DayRange, Metric,
};
use crate::kernel::error::{EngineError, Result};

/// The days a query names (`from`, `to`: `YYYY-MM-DD`, both optional).
#[derive(Debug, Clone, Default)]
pub struct AnalyticsQuery {
    /// The organization; the caller's own when `None`.
    pub org_id: Option<Uuid>,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Engine {
    /// Check the caller may read `query`'s organization and parse its range.
    fn analytics_scope(&self, call: &Call, query: &AnalyticsQuery) -> Result<(Uuid, DayRange)> {
        let org_id = query.org_id.unwrap_or(call.caller.org_id);
        self.authorize(call, "analytics.read", org_id)?;
        let today = day_of(self.shared.now_ms());
        Ok((org_id, DayRange::parse(query.from.as_deref(), query.to.as_deref(), today)?))
    }

    async fn summary(&self, org_id: Uuid, agent_id: Option<Uuid>, range: DayRange) -> Result<AnalyticsSummary> {
        let counts = self.shared.analytics.counts(org_id, agent_id, None, range).await?;
        let mut totals: std::collections::BTreeMap<_, _> = Metric::ALL.iter().map(|m| (m.as_str(), 0)).collect();
        for ((metric, _), n) in counts {
            *totals.entry(metric.as_str()).or_default() += n;
        }
        Ok(AnalyticsSummary { org_id, agent_id, from: format_day(range.from), to: format_day(range.to), totals })
    }

    /// Totals per metric over the range, for the whole organization.
    pub async fn analytics_summary(&self, call: &Call, query: AnalyticsQuery) -> Result<AnalyticsSummary> {
        let (org_id, range) = self.analytics_scope(call, &query)?;
        self.summary(org_id, None, range).await
    }

    /// One metric's count per day over the range, every day present (zero-filled).
    pub async fn analytics_timeseries(
        &self,
        call: &Call,
        query: AnalyticsQuery,
        metric: Option<&str>,
    ) -> Result<AnalyticsSeries> {
        let (org_id, range) = self.analytics_scope(call, &query)?;
        let metric = metric.ok_or_else(|| EngineError::invalid("metric", format!("one of {}", Metric::names())))?;
        let metric = Metric::parse(metric)
            .ok_or_else(|| EngineError::invalid("metric", format!("{metric:?} is not one of {}", Metric::names())))?;
        let counts = self.shared.analytics.counts(org_id, None, Some(metric), range).await?;
        let points = range
            .days()
            .map(|day| DayCount { day: format_day(day), count: counts.get(&(metric, day)).copied().unwrap_or(0) })
            .collect();
        Ok(AnalyticsSeries {
            org_id,
            metric: metric.as_str(),
            from: format_day(range.from),
            to: format_day(range.to),
            points,
        })
    }

    /// One agent's totals per metric over the range. A deleted agent's history stays
    /// readable; an agent the organization never had is `NotFound`.
    pub async fn agent_analytics(
        &self,
        call: &Call,
        query: AnalyticsQuery,
        agent_id: Uuid,
    ) -> Result<AnalyticsSummary> {
        let (org_id, range) = self.analytics_scope(call, &query)?;
        let summary = self.summary(org_id, Some(agent_id), range).await?;
        if summary.totals.values().all(|&n| n == 0) && self.shared.store.get_agent(org_id, agent_id).await?.is_none() {
            return Err(EngineError::not_found("agent"));
        }
        Ok(summary)
    }
}
