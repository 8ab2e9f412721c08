//! Moving the events of the first layout (one text row each, `audit_events_legacy`
//! since migration 15) into compact records, when the engine opens the store. Each keeps
//! its id, `seq` and hash: its record decodes to the same canonical JSON, so the chain
//! verifies as before and its checkpoints still hold.

use super::chain::Event;
use super::record::{self, Dictionary, StoredRecord, ANCHOR_EVERY};
use super::AuditStore;
use crate::kernel::error::{EngineError, Result};
use crate::store::UNATTRIBUTED_CHAIN;

const BATCH: u32 = 5000;

/// Move every legacy event, a batch per transaction (a crash in between resumes where
/// it stopped); the legacy table is dropped once empty. How many were moved.
pub(crate) async fn convert(store: &dyn AuditStore, dict: &Dictionary) -> Result<u64> {
    let mut moved = 0u64;
    loop {
        let batch = store.legacy_audit(BATCH).await?;
        if batch.is_empty() {
            store.drop_legacy_audit().await?;
            if moved > 0 {
                tracing::info!(moved, "audit events moved to compact records");
            }
            return Ok(moved);
        }
        let events: Vec<(Event, i64, String)> = batch
            .into_iter()
            .map(|e| {
                let event = Event {
                    id: e.id,
                    org_id: e.org_id,
                    occurred_at: e.occurred_at,
                    actor: e.actor,
                    action: e.action,
                    target: e.target,
                    outcome: e.outcome,
                    request_id: e.request_id,
                    detail: e.detail,
                };
                (event, e.seq, e.hash)
            })
            .collect();
        let mut missing = Vec::new();
        events.iter().for_each(|(e, _, _)| {
            record::encode(e, dict, &mut missing);
        });
        if !missing.is_empty() {
            dict.learn(store.intern(missing).await?);
        }
        let mut rows = Vec::with_capacity(events.len());
        for (event, seq, hash) in &events {
            let encoded = record::encode(event, dict, &mut Vec::new())
                .ok_or_else(|| EngineError::internal("audit words were interned but are still unknown"))?;
            let row = StoredRecord {
                seq: *seq,
                id: event.id,
                action: encoded.action,
                tag: record::tag_of(hash),
                rec: encoded.rec,
                anchor: (seq % ANCHOR_EVERY == 0).then(|| record::hash_bytes(hash)),
            };
            rows.push((event.org_id.unwrap_or(UNATTRIBUTED_CHAIN), row));
        }
        moved += rows.len() as u64;
        store.move_legacy_audit(rows).await?;
        tracing::info!(moved, "moving audit events to compact records");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use crate::engine::Engine;
    use crate::families::audit::chain::{self, Event, GENESIS};
    use crate::kernel::model::Outcome;

    /// The first layout's table, as migration 1 made it (renamed by migration 15).
    const LEGACY: &str = "CREATE TABLE audit_events_legacy (id TEXT PRIMARY KEY, org_id TEXT, chain TEXT NOT NULL, \
        seq BIGINT NOT NULL, occurred_at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT, \
        outcome TEXT NOT NULL, request_id TEXT, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)";

    /// A chain written in the first layout — ids minted apart from their times, every
    /// kind of detail — is moved into records when the engine opens the store, and
    /// reads and verifies as it did: same events, same hashes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_chain_in_the_first_layout_is_moved_and_still_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        for config in crate::families::notes::tests::configs(dir.path()).await {
            Engine::start(config.clone()).await.expect("start").shutdown().await;
            let org = Uuid::now_v7();
            let (mut seq, mut head, mut written) = (0, GENESIS.to_string(), Vec::new());
            for n in 0..70u32 {
                let mut event = Event::new(
                    1_700_000_000_000 + i64::from(n),
                    Some(org),
                    format!("actor-{}", n % 3),
                    "thing.do",
                    Outcome::Success,
                )
                .target(format!("t{n}"))
                .request_id(Some(format!("req {n}")))
                .detail(&json!({"n": n, "f": 1.5, "s": ["x", {"deep": n % 2 == 0}], "o": {}}));
                event.id = Uuid::now_v7();
                if n % 7 == 0 {
                    event.outcome = Outcome::Failure;
                }
                let linked = chain::link(event.seal(), seq, &head);
                (seq, head) = (linked.seq, linked.hash.clone());
                written.push(linked);
            }
            let rows: Vec<String> = written
                .iter()
                .map(|l| {
                    let e = &l.event;
                    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
                    format!(
                        "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                        q(&e.id.to_string()),
                        q(&org.to_string()),
                        q(&org.to_string()),
                        l.seq,
                        e.occurred_at,
                        q(&e.actor),
                        q(&e.action),
                        e.target.as_deref().map_or("NULL".into(), q),
                        q(e.outcome.as_str()),
                        e.request_id.as_deref().map_or("NULL".into(), q),
                        q(&serde_json::to_string(&e.detail).expect("json")),
                        q(&l.prev_hash),
                        q(&l.hash)
                    )
                })
                .collect();
            let sql = format!(
                "{LEGACY}; INSERT INTO audit_events_legacy VALUES {}; \
                 INSERT INTO audit_heads (chain, seq, hash, n) VALUES ('{org}', {seq}, '{head}', NEXT_N)",
                rows.join(", ")
            );
            run_sql(&config, &sql).await;

            let engine = Engine::start(config.clone()).await.expect("start converts");
            let report = engine.verify_chain(Some(org), true).await.expect("verify");
            assert!(report.intact, "{report:?}");
            assert_eq!(report.events_checked, 70);
            let ends = engine.shared.store.chain_ends(org).await.expect("ends").expect("chain");
            let read = engine.trail().run(org, &ends, 0, 100).await.expect("read");
            assert_eq!(read.len(), 70);
            for (l, w) in read.iter().zip(&written) {
                assert_eq!(
                    (l.event.id, l.event.seq, &l.event.hash, &l.event.prev_hash),
                    (w.event.id, w.seq, &w.hash, &w.prev_hash)
                );
                assert_eq!((l.event.occurred_at, &l.event.detail), (w.event.occurred_at, &w.event.detail));
            }
            engine.shutdown().await;
        }
    }

    async fn run_sql(config: &crate::config::EngineConfig, sql: &str) {
        match &config.database_url {
            #[cfg(feature = "postgres")]
            Some(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("PostgreSQL");
                tokio::spawn(conn);
                let sql = sql
                    .replace(
                        "id TEXT PRIMARY KEY, org_id TEXT, chain TEXT",
                        "id UUID PRIMARY KEY, org_id UUID, chain UUID",
                    )
                    .replace("hash, n) VALUES", "hash) VALUES")
                    .replace(", NEXT_N)", ")");
                client.batch_execute(&sql).await.expect("legacy rows");
            }
            _ => {
                let conn = rusqlite::Connection::open(config.data_dir.join("agentidp.db")).expect("sqlite");
                let sql = sql.replace("NEXT_N", "(SELECT coalesce(max(n), 0) + 1 FROM audit_heads)");
                conn.execute_batch(&sql).expect("legacy rows");
            }
        }
    }
}
