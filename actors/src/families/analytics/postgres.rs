//! PostgreSQL: the usage analytics ([`crate::families::analytics::AnalyticsStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use crate::families::analytics::rules::{Day, DayRange, Metric};
use crate::families::analytics::{AnalyticsCount, AnalyticsStore, ROLLED_UP};
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

    async fn roll_up_analytics(&self, before: Day, batch: usize) -> Result<u64> {
        // One statement: the picked rows leave and their sums join the organization's
        // rows, locked in key order (as the aggregator's flushes lock them).
        let rows = self
            .query(
                "WITH picked AS (
                     SELECT org_id, agent_id, day, metric FROM analytics_events
                     WHERE day < $1 AND agent_id <> $2
                     ORDER BY org_id, agent_id, day, metric LIMIT $3 FOR UPDATE SKIP LOCKED),
                 moved AS (
                     DELETE FROM analytics_events a USING picked p
                     WHERE a.org_id = p.org_id AND a.agent_id = p.agent_id AND a.day = p.day AND a.metric = p.metric
                     RETURNING a.org_id, a.day, a.metric, a.count),
                 summed AS (
                     SELECT org_id, day, metric, SUM(count)::bigint AS count, COUNT(*) AS n FROM moved
                     GROUP BY org_id, day, metric),
                 added AS (
                     INSERT INTO analytics_events (org_id, agent_id, day, metric, count)
                     SELECT org_id, $2, day, metric, count FROM summed ORDER BY org_id, day, metric
                     ON CONFLICT (org_id, agent_id, day, metric)
                     DO UPDATE SET count = analytics_events.count + EXCLUDED.count)
                 SELECT COALESCE(SUM(n), 0)::bigint FROM summed",
                &[&before, &ROLLED_UP, &(batch as i64)],
            )
            .await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }
}
