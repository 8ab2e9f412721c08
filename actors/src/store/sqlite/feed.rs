//! SQLite: the cluster change feed ([`crate::runtime::events::FeedStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::*;
use crate::runtime::events::{FeedEntry, FeedStore};

#[async_trait]
impl FeedStore for SqliteStore {
    async fn cluster_events_since(&self, since: Millis) -> Result<Vec<FeedEntry>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT seq, created_at, event FROM cluster_events WHERE created_at >= ?1 ORDER BY seq")
                .map_err(db_err)?;
            collect(
                &mut stmt,
                params![since],
                |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?)),
                |(seq, created_at, text)| Ok(FeedEntry { seq, created_at, event: json_column(&text)? }),
            )
        })
        .await
    }

    async fn purge_cluster_events(&self, before: Millis, limit: usize) -> Result<u64> {
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM cluster_events WHERE seq IN \
                 (SELECT seq FROM cluster_events WHERE created_at < ?1 ORDER BY seq LIMIT ?2)",
                params![before, limit as i64],
            )
            .map(|n| n as u64)
            .map_err(db_err)
        })
        .await
    }
}
