//! PostgreSQL: the usage analytics ([`crate::families::analytics::AnalyticsStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use crate::families::analytics::rules::{Day, DayRange, Metric};
use crate::families::analytics::{AnalyticsCount, AnalyticsStore};
use crate::store::postgres::*;

#[async_trait]
impl AnalyticsStore for PostgresStore {
    async fn add_analytics(&self, mut counts: Vec<AnalyticsCount>) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        // Rows locked in one order on every node: two nodes' flushes never deadlock.
        counts.sort_unstable_by_key(|c| (c.org_id, c.agent_id, c.day, c.metric.as_str()));
        let orgs: Vec<Uuid> = counts.iter().map(|c| c.org_id).collect();
        let agents: Vec<Uuid> = counts.iter().map(|c| c.agent_id).collect();
        let days: Vec<i64> = counts.iter().map(|c| c.day).collect();
        let metrics: Vec<&str> = counts.iter().map(|c| c.metric.as_str()).collect();
        let adds: Vec<i64> = counts.iter().map(|c| c.count.min(i64::MAX as u64) as i64).collect();
        // One statement for the whole batch (each key appears once in it).
        self.execute(
            "INSERT INTO analytics_events (org_id, agent_id, day, metric, count)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::bigint[])
             ON CONFLICT (org_id, agent_id, day, metric) DO UPDATE SET count = analytics_events.count + EXCLUDED.count",
            &[&orgs, &agents, &days, &metrics, &adds],
        )
        .await?;
        Ok(())
    }

    async fn analytics(
        &self,
        org_id: Uuid,
        agent_id: Option<Uuid>,
        metric: Option<Metric>,
        range: DayRange,
    ) -> Result<Vec<(Metric, Day, u64)>> {
        let metric = metric.map(Metric::as_str);
        let rows = self
            .query(
                "SELECT metric, day, SUM(count)::bigint FROM analytics_events
                 WHERE org_id = $1 AND day BETWEEN $2 AND $3
                   AND ($4::uuid IS NULL OR agent_id = $4) AND ($5::text IS NULL OR metric = $5)
                 GROUP BY metric, day",
                &[&org_id, &range.from, &range.to, &agent_id, &metric],
            )
            .await?;
        // A metric this version does not know (written by a newer one) is left out.
        Ok(rows
            .iter()
            .filter_map(|r| {
                let metric = Metric::parse(r.get(0))?;
                Some((metric, r.get(1), r.get::<_, i64>(2).max(0) as u64))
            })
            .collect())
    }
}
