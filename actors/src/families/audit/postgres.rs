//! PostgreSQL: the audit trail and its group commit ([`crate::families::audit::AuditStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::chain;
use super::{AuditStore, ChainHead, Checkpoint, Commit};
use crate::store::postgres::*;

pub(crate) fn audit(row: &Row) -> Result<AuditEvent> {
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
            // One round trip: create the head if the chain is new, lock it either way
            // (an upsert's update locks the row), and read it.
            let row = tx
                .query_one(
                    "INSERT INTO audit_heads (chain, seq, hash) VALUES ($1, 0, $2)
                     ON CONFLICT (chain) DO UPDATE SET seq = audit_heads.seq RETURNING seq, hash",
                    &[chain, &chain::GENESIS],
                )
                .await
                .map_err(db_err)?;
            heads.insert(
                *chain,
                (row.try_get::<_, i64>(0).map_err(db_err)?, row.try_get::<_, String>(1).map_err(db_err)?),
            );
        }
        let mut linked = Vec::with_capacity(events.len());
        for event in events {
            let chain = event.event.org_id.unwrap_or(UNATTRIBUTED_CHAIN);
            let head = heads.get_mut(&chain).ok_or_else(|| EngineError::internal("audit head missing"))?;
            let e = chain::link(event, head.0, &head.1);
            *head = (e.seq, e.hash.clone());
            linked.push((chain, e));
        }
        let insert = tx
            .prepare_cached(&format!(
                "INSERT INTO audit_events (chain, {AUDIT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ))
            .await
            .map_err(db_err)?;
        // Pipelined: tokio-postgres sends every insert and head update before awaiting
        // their answers, so a batch costs one round trip here.
        let inserts = try_join_all(linked.iter().map(|(chain, linked)| {
            let e = &linked.event;
            let outcome = e.outcome.as_str();
            let insert = &insert;
            let tx = &tx;
            async move {
                tx.execute(
                    insert,
                    &[
                        chain,
                        &e.id,
                        &e.org_id,
                        &linked.seq,
                        &e.occurred_at,
                        &e.actor,
                        &e.action,
                        &e.target,
                        &outcome,
                        &e.request_id,
                        &e.detail,
                        &linked.prev_hash,
                        &linked.hash,
                    ],
                )
                .await
            }
        }));
        let updates = try_join_all(heads.iter().map(|(chain, (seq, hash))| {
            let tx = &tx;
            async move {
                tx.execute("UPDATE audit_heads SET seq = $2, hash = $3 WHERE chain = $1", &[chain, seq, hash]).await
            }
        }));
        futures_util::future::try_join(inserts, updates).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(outcomes)
    }

    async fn list_audit(&self, q: &AuditQuery, before_seq: Option<i64>, limit: u32) -> Result<Vec<AuditEvent>> {
        let chain = q.org_id.unwrap_or(UNATTRIBUTED_CHAIN);
        let outcome = q.outcome.map(Outcome::as_str);
        let before = before_seq.unwrap_or(i64::MAX);
        let limit = i64::from(limit);
        // NULL parameters switch a filter off, so one prepared statement serves every query.
        self.query(
            &format!(
                "SELECT {AUDIT_COLS} FROM audit_events
                 WHERE chain = $1
                   AND ($2::text IS NULL OR actor = $2 OR target = $2)
                   AND ($3::text IS NULL OR action = $3)
                   AND ($4::text IS NULL OR outcome = $4)
                   AND ($5::bigint IS NULL OR occurred_at >= $5)
                   AND ($6::bigint IS NULL OR occurred_at < $6)
                   AND seq < $7
                 ORDER BY seq DESC LIMIT $8"
            ),
            &[&chain, &q.agent_id, &q.action, &outcome, &q.since, &q.until, &before, &limit],
        )
        .await?
        .iter()
        .map(audit)
        .collect()
    }

    async fn get_audit(&self, id: Uuid) -> Result<Option<AuditEvent>> {
        self.query_opt(&format!("SELECT {AUDIT_COLS} FROM audit_events WHERE id = $1"), &[&id])
            .await?
            .as_ref()
            .map(audit)
            .transpose()
    }

    async fn audit_chain(&self, chain: Uuid, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>> {
        self.query(
            &format!("SELECT {AUDIT_COLS} FROM audit_events WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
            &[&chain, &after_seq, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(audit)
        .collect()
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
