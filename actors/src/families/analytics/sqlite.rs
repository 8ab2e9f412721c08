//! SQLite: the usage analytics ([`crate::families::analytics::AnalyticsStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use crate::families::analytics::rules::{Day, DayRange, Metric};
use crate::families::analytics::{AnalyticsCount, AnalyticsStore, ROLLED_UP};
use crate::store::sqlite::*;

#[async_trait]
impl AnalyticsStore for SqliteStore {
    async fn add_analytics(&self, counts: Vec<AnalyticsCount>) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            {
                let mut add = tx
                    .prepare_cached(
                        "INSERT INTO analytics_events (org_id, agent_id, day, metric, count) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (org_id, agent_id, day, metric) DO UPDATE SET count = count + excluded.count",
                    )
                    .map_err(db_err)?;
                for c in &counts {
                    let n = c.count.min(i64::MAX as u64) as i64;
                    add.execute(params![c.org_id.to_string(), c.agent_id.to_string(), c.day, c.metric.as_str(), n])
                        .map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn analytics(
        &self,
        org_id: Uuid,
        agent_id: Option<Uuid>,
        metric: Option<Metric>,
        range: DayRange,
    ) -> Result<Vec<(Metric, Day, u64)>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT metric, day, SUM(count) FROM analytics_events
                     WHERE org_id = ?1 AND day BETWEEN ?2 AND ?3
                       AND (?4 IS NULL OR agent_id = ?4) AND (?5 IS NULL OR metric = ?5)
                     GROUP BY metric, day",
                )
                .map_err(db_err)?;
            let args = params![
                org_id.to_string(),
                range.from,
                range.to,
                agent_id.map(|a| a.to_string()),
                metric.map(Metric::as_str)
            ];
            let rows = stmt
                .query_map(args, |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (name, day, count) = row.map_err(db_err)?;
                // A metric this version does not know (written by a newer one) is left out.
                if let Some(metric) = Metric::parse(&name) {
                    out.push((metric, day, count.max(0) as u64));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn roll_up_analytics(&self, before: Day, batch: usize) -> Result<u64> {
        let rolled = ROLLED_UP.to_string();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let picked: Vec<(String, String, i64, String, i64)> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT org_id, agent_id, day, metric, count FROM analytics_events
                         WHERE day < ?1 AND agent_id <> ?2 LIMIT ?3",
                    )
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(params![before, rolled, batch as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .map_err(db_err)?;
                rows.collect::<std::result::Result<_, _>>().map_err(db_err)?
            };
            {
                let mut add = tx
                    .prepare_cached(
                        "INSERT INTO analytics_events (org_id, agent_id, day, metric, count) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (org_id, agent_id, day, metric) DO UPDATE SET count = count + excluded.count",
                    )
                    .map_err(db_err)?;
                let mut remove = tx
                    .prepare_cached(
                        "DELETE FROM analytics_events WHERE org_id = ?1 AND agent_id = ?2 AND day = ?3 AND metric = ?4",
                    )
                    .map_err(db_err)?;
                for (org, agent, day, metric, count) in &picked {
                    add.execute(params![org, rolled, day, metric, count]).map_err(db_err)?;
                    remove.execute(params![org, agent, day, metric]).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(picked.len() as u64)
        })
        .await
    }
}
