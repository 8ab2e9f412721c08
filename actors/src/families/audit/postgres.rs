//! PostgreSQL: the audit trail and its group commit ([`crate::families::audit::AuditStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::chain;
use super::record::{hash_bytes, tag_of, StoredRecord, ANCHOR_EVERY};
use super::{AuditChange, AuditStore, ChainEnds, ChainHead, ChainRetention, Checkpoint, Commit, RecordQuery};
use crate::store::postgres::*;

const RECORD_COLS: &str = "seq, id, action, tag, rec, anchor";

fn record(row: &Row) -> Result<StoredRecord> {
    Ok(StoredRecord {
        seq: row.try_get(0).map_err(db_err)?,
        id: row.try_get(1).map_err(db_err)?,
        action: i64::from(row.try_get::<_, i32>(2).map_err(db_err)?),
        tag: row.try_get(3).map_err(db_err)?,
        rec: row.try_get(4).map_err(db_err)?,
        anchor: row.try_get(5).map_err(db_err)?,
    })
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, entries: Vec<Commit>) -> Result<Vec<Result<()>>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        // Changes first, each entry in its own savepoint: a failing one (a name taken, a
        // row gone) leaves out only its own entry, whose event is then not written.
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut events = Vec::with_capacity(entries.len());
        for Commit { event, changes, announce } in entries {
            if !changes.is_empty() || announce.is_some() {
                if let Err(e) = changes::apply_entry(&tx, &changes, announce.as_ref(), event.event.occurred_at).await {
                    outcomes.push(Err(e));
                    continue;
                }
            }
            outcomes.push(Ok(()));
            events.push(event);
        }
        // Lock every chain this batch touches, in a fixed order so that two nodes
        // committing overlapping batches cannot deadlock.
        let mut chains: Vec<Uuid> = events.iter().map(|e| e.event.org_id.unwrap_or(UNATTRIBUTED_CHAIN)).collect();
        chains.sort();
        chains.dedup();
        let mut heads = std::collections::HashMap::with_capacity(chains.len());
        for chain in &chains {
            // One round trip: create the head if the chain is new (numbering it), lock it
            // either way (an upsert's update locks the row), and read it.
            let row = tx
                .query_one(
                    "INSERT INTO audit_heads (chain, seq, hash) VALUES ($1, 0, $2)
                     ON CONFLICT (chain) DO UPDATE SET seq = audit_heads.seq RETURNING n, seq, hash",
                    &[chain, &chain::GENESIS],
                )
                .await
                .map_err(db_err)?;
            heads.insert(
                *chain,
                (
                    row.try_get::<_, i32>(0).map_err(db_err)?,
                    row.try_get::<_, i64>(1).map_err(db_err)?,
                    row.try_get::<_, String>(2).map_err(db_err)?,
                ),
            );
        }
        let mut linked = Vec::with_capacity(events.len());
        for event in events {
            let chain = event.event.org_id.unwrap_or(UNATTRIBUTED_CHAIN);
            let head = heads.get_mut(&chain).ok_or_else(|| EngineError::internal("audit head missing"))?;
            let e = chain::link(event, head.1, &head.2);
            let encoded = e.encoded.clone().ok_or_else(|| EngineError::internal("audit event not encoded"))?;
            let anchor = (e.seq % ANCHOR_EVERY == 0).then(|| hash_bytes(&e.hash));
            (head.1, head.2) = (e.seq, e.hash.clone());
            linked.push((head.0, e.seq, e.event.id, encoded, tag_of(&e.hash), anchor));
        }
        let insert = tx
            .prepare_cached(&format!(
                "INSERT INTO audit_records (chain, {RECORD_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ))
            .await
            .map_err(db_err)?;
        // Pipelined: tokio-postgres sends every insert and head update before awaiting
        // their answers, so a batch costs one round trip here.
        let inserts = try_join_all(linked.iter().map(|(n, seq, id, encoded, tag, anchor)| {
            let (insert, tx) = (&insert, &tx);
            async move {
                let action = i32::try_from(encoded.action).unwrap_or(i32::MAX);
                tx.execute(insert, &[n, seq, id, &action, tag, &encoded.rec, anchor]).await
            }
        }));
        let updates = try_join_all(heads.iter().map(|(chain, (_, seq, hash))| {
            let tx = &tx;
            async move {
                tx.execute("UPDATE audit_heads SET seq = $2, hash = $3 WHERE chain = $1", &[chain, seq, hash]).await
            }
        }));
        futures_util::future::try_join(inserts, updates).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(outcomes)
    }

    async fn intern(&self, texts: Vec<String>) -> Result<Vec<(i64, String)>> {
        // Sorted, so two nodes interning overlapping words cannot deadlock.
        let mut texts = texts;
        texts.sort();
        texts.dedup();
        self.execute(
            "INSERT INTO audit_strings (text) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT (text) DO NOTHING",
            &[&texts],
        )
        .await?;
        self.words(Vec::new(), texts).await
    }

    async fn words(&self, numbers: Vec<i64>, texts: Vec<String>) -> Result<Vec<(i64, String)>> {
        let numbers: Vec<i32> = numbers.into_iter().filter_map(|n| i32::try_from(n).ok()).collect();
        self.query("SELECT n, text FROM audit_strings WHERE n = ANY($1) OR text = ANY($2)", &[&numbers, &texts])
            .await?
            .iter()
            .map(|r| Ok((i64::from(r.try_get::<_, i32>(0).map_err(db_err)?), r.try_get(1).map_err(db_err)?)))
            .collect()
    }

    async fn chain_ends(&self, chain: Uuid) -> Result<Option<ChainEnds>> {
        Ok(self
            .query_opt("SELECT seq, hash, floor_seq, floor_hash FROM audit_heads WHERE chain = $1", &[&chain])
            .await?
            .map(|r| ChainEnds { head_seq: r.get(0), head_hash: r.get(1), floor_seq: r.get(2), floor_hash: r.get(3) }))
    }

    async fn audit_records(&self, chain: Uuid, q: &RecordQuery, limit: u32) -> Result<Vec<StoredRecord>> {
        let actions: Option<Vec<i32>> =
            q.actions.as_ref().map(|a| a.iter().filter_map(|n| i32::try_from(*n).ok()).collect());
        let before = q.before.unwrap_or(i64::MAX);
        let order = if q.newest_first { "DESC" } else { "ASC" };
        // NULL parameters switch a filter off, so one prepared statement per order serves
        // every query.
        self.query(
            &format!(
                "SELECT {RECORD_COLS} FROM audit_records
                 WHERE chain = (SELECT n FROM audit_heads WHERE chain = $1) AND seq > $2 AND seq < $3
                   AND ($4::int[] IS NULL OR action = ANY($4))
                   AND ($5::uuid IS NULL OR id >= $5) AND ($6::uuid IS NULL OR id < $6)
                 ORDER BY seq {order} LIMIT $7"
            ),
            &[&chain, &q.after, &before, &actions, &q.ids.0, &q.ids.1, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(record)
        .collect()
    }

    async fn audit_record(&self, id: Uuid) -> Result<Option<(Uuid, StoredRecord)>> {
        self.query_opt(
            &format!(
                "SELECT {RECORD_COLS}, (SELECT chain FROM audit_heads WHERE n = audit_records.chain) \
                 FROM audit_records WHERE id = $1"
            ),
            &[&id],
        )
        .await?
        .map(|r| Ok((r.try_get(6).map_err(db_err)?, record(&r)?)))
        .transpose()
    }

    async fn chain_retention(&self) -> Result<Vec<ChainRetention>> {
        self.query(
            "SELECT h.chain, o.tier, r.org_id IS NOT NULL, r.seconds FROM audit_heads h \
             LEFT JOIN organizations o ON o.id = h.chain LEFT JOIN audit_retention r ON r.org_id = h.chain",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(ChainRetention {
                chain: r.try_get(0).map_err(db_err)?,
                tier: r.try_get::<_, Option<String>>(1).map_err(db_err)?.as_deref().and_then(Tier::parse),
                override_secs: r
                    .try_get::<_, bool>(2)
                    .map_err(db_err)?
                    .then(|| r.get::<_, Option<i64>>(3).map(|s| s.max(0) as u64)),
            })
        })
        .collect()
    }

    async fn move_floor(&self, chain: Uuid, floor: i64, upto: i64, upto_hash: &str) -> Result<bool> {
        let moved = self
            .execute(
                "UPDATE audit_heads SET floor_seq = $3, floor_hash = $4 WHERE chain = $1 AND floor_seq = $2",
                &[&chain, &floor, &upto, &upto_hash],
            )
            .await?;
        Ok(moved == 1)
    }

    async fn remove_archived(&self, chain: Uuid, after: i64, upto: i64) -> Result<()> {
        // Rows no writer touches (below the floor): no lock any token's commit waits on.
        self.execute(
            "DELETE FROM audit_records r USING audit_heads h WHERE h.chain = $1 AND r.chain = h.n \
             AND r.seq > $2 AND r.seq <= LEAST($3, h.floor_seq)",
            &[&chain, &after, &upto],
        )
        .await
        .map(|_| ())
    }

    async fn audit_retention(&self, org_id: Uuid) -> Result<Option<Option<u64>>> {
        Ok(self
            .query_opt("SELECT seconds FROM audit_retention WHERE org_id = $1", &[&org_id])
            .await?
            .map(|r| r.get::<_, Option<i64>>(0).map(|s| s.max(0) as u64)))
    }

    async fn legacy_audit(&self, limit: u32) -> Result<Vec<AuditEvent>> {
        let present = self.query_opt("SELECT to_regclass('audit_events_legacy')::text", &[]).await?;
        if present.and_then(|r| r.get::<_, Option<String>>(0)).is_none() {
            return Ok(Vec::new());
        }
        self.query(
            "SELECT id, org_id, seq, occurred_at, actor, action, target, outcome, request_id, detail, prev_hash, hash \
             FROM audit_events_legacy ORDER BY chain, seq LIMIT $1",
            &[&i64::from(limit)],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(AuditEvent {
                id: row.get(0),
                org_id: row.get(1),
                seq: row.get(2),
                occurred_at: row.get(3),
                actor: row.get(4),
                action: row.get(5),
                target: row.get(6),
                outcome: enum_column(row.get(7), Outcome::parse)?,
                request_id: row.get(8),
                detail: json_column(row.get(9))?,
                prev_hash: row.get(10),
                hash: row.get(11),
            })
        })
        .collect()
    }

    async fn move_legacy_audit(&self, records: Vec<(Uuid, StoredRecord)>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        for (chain, r) in &records {
            let action = i32::try_from(r.action).unwrap_or(i32::MAX);
            tx.execute(
                &format!(
                    "INSERT INTO audit_records (chain, {RECORD_COLS}) \
                     VALUES ((SELECT n FROM audit_heads WHERE chain = $1), $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
                ),
                &[chain, &r.seq, &r.id, &action, &r.tag, &r.rec, &r.anchor],
            )
            .await
            .map_err(db_err)?;
            tx.execute("DELETE FROM audit_events_legacy WHERE id = $1", &[&r.id]).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn drop_legacy_audit(&self) -> Result<()> {
        self.execute("DROP TABLE IF EXISTS audit_events_legacy", &[]).await.map(|_| ())
    }

    async fn chain_heads(&self) -> Result<Vec<ChainHead>> {
        Ok(self
            .query(
                "SELECT h.chain, h.seq, h.hash, c.seq, c.created_at FROM audit_heads h \
                 LEFT JOIN LATERAL (SELECT seq, created_at FROM audit_checkpoints WHERE chain = h.chain \
                 ORDER BY seq DESC LIMIT 1) c ON true",
                &[],
            )
            .await?
            .iter()
            .map(|r| ChainHead {
                chain: r.get(0),
                seq: r.get(1),
                hash: r.get(2),
                checkpoint: r.get::<_, Option<i64>>(3).zip(r.get::<_, Option<i64>>(4)),
            })
            .collect())
    }

    async fn insert_checkpoint(&self, c: &Checkpoint) -> Result<()> {
        self.execute(
            "INSERT INTO audit_checkpoints (chain, seq, hash, created_at, jwt) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (chain, seq) DO NOTHING",
            &[&c.chain, &c.seq, &c.hash, &c.created_at, &c.jwt],
        )
        .await
        .map(|_| ())
    }

    async fn verified_checkpoint(&self, chain: Uuid) -> Result<Option<Checkpoint>> {
        Ok(self
            .query_opt(
                "SELECT seq, hash, created_at, jwt FROM audit_checkpoints \
                 WHERE chain = $1 AND verified_at IS NOT NULL ORDER BY seq DESC LIMIT 1",
                &[&chain],
            )
            .await?
            .map(|r| Checkpoint { chain, seq: r.get(0), hash: r.get(1), created_at: r.get(2), jwt: r.get(3) }))
    }

    async fn mark_verified(&self, chain: Uuid, seq: i64, at: Millis) -> Result<()> {
        self.execute(
            "UPDATE audit_checkpoints SET verified_at = $3 WHERE chain = $1 AND seq = $2",
            &[&chain, &seq, &at],
        )
        .await
        .map(|_| ())
    }

    async fn checkpoints(&self, chain: Uuid, before_seq: Option<i64>, limit: u32) -> Result<Vec<Checkpoint>> {
        Ok(self
            .query(
                "SELECT seq, hash, created_at, jwt FROM audit_checkpoints WHERE chain = $1 AND seq < $2 \
                 ORDER BY seq DESC LIMIT $3",
                &[&chain, &before_seq.unwrap_or(i64::MAX), &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|r| Checkpoint { chain, seq: r.get(0), hash: r.get(1), created_at: r.get(2), jwt: r.get(3) })
            .collect())
    }
}

/// Apply one of the family's changes on the open transaction.
pub(crate) async fn apply(tx: &tokio_postgres::Transaction<'_>, change: &AuditChange) -> Result<()> {
    match change {
        AuditChange::Retention { org_id, seconds: None } => {
            tx.execute("DELETE FROM audit_retention WHERE org_id = $1", &[org_id]).await
        }
        AuditChange::Retention { org_id, seconds: Some(secs) } => {
            tx.execute(
                "INSERT INTO audit_retention (org_id, seconds) VALUES ($1, $2) \
                 ON CONFLICT (org_id) DO UPDATE SET seconds = excluded.seconds",
                &[org_id, &secs.map(|s| s as i64)],
            )
            .await
        }
    }
    .map(|_| ())
    .map_err(db_err)
}
