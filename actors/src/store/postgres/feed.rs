//! PostgreSQL: the cluster change feed ([`crate::runtime::events::FeedStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::*;
use crate::runtime::events::{FeedEntry, FeedStore};

#[async_trait]
impl FeedStore for PostgresStore {
    async fn cluster_events_since(&self, since: Millis) -> Result<Vec<FeedEntry>> {
        self.query("SELECT seq, created_at, event FROM cluster_events WHERE created_at >= $1 ORDER BY seq", &[&since])
            .await?
            .iter()
            .map(|r| Ok(FeedEntry { seq: r.get(0), created_at: r.get(1), event: json_column(r.get(2))? }))
            .collect()
    }

    async fn purge_cluster_events(&self, before: Millis, limit: usize) -> Result<u64> {
        self.execute(
            "DELETE FROM cluster_events WHERE seq IN \
             (SELECT seq FROM cluster_events WHERE created_at < $1 ORDER BY seq LIMIT $2)",
            &[&before, &(limit as i64)],
        )
        .await
    }
}
