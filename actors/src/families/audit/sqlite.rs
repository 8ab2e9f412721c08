//! SQLite: the audit trail and its group commit ([`crate::families::audit::AuditStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::chain;
use super::{AuditStore, ChainHead, Checkpoint, Commit};
use crate::store::sqlite::*;

pub(crate) type AuditParts =
    (Uuid, Option<String>, i64, i64, String, String, Option<String>, String, Option<String>, String, String, String);

pub(crate) fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditParts> {
    Ok((
        uuid_col(row, 0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
        row.get(11)?,
    ))
}

pub(crate) fn audit_from_parts(p: AuditParts) -> Result<AuditEvent> {
    let org_id = match p.1 {
        Some(s) => Some(Uuid::parse_str(&s).map_err(EngineError::internal)?),
        None => None,
    };
    Ok(AuditEvent {
        id: p.0,
        org_id,
        seq: p.2,
        occurred_at: p.3,
        actor: p.4,
        action: p.5,
        target: p.6,
        outcome: enum_column(&p.7, Outcome::parse)?,
        request_id: p.8,
        detail: json_column(&p.9)?,
        prev_hash: p.10,
        hash: p.11,
    })
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, entries: Vec<Commit>) -> Result<Vec<Result<()>>> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db_err)?;
            let mut outcomes = Vec::with_capacity(entries.len());
            {
                // Each chain's head is read once and written once per batch, however many
                // of the batch's events it takes.
                let mut heads: HashMap<Uuid, (String, i64, String)> = HashMap::new();
                let mut head_q = tx
                    .prepare_cached("SELECT seq, hash FROM audit_heads WHERE chain = ?1")
                    .map_err(db_err)?;
                let mut insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO audit_events (chain, {AUDIT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                    ))
                    .map_err(db_err)?;
                let mut id_buf = Uuid::encode_buffer();
                for Commit { event, changes, announce } in entries {
                    // A failing change (a name taken, a row gone) leaves out only its own
                    // entry: its changes are undone and its event is not written.
                    if !changes.is_empty() || announce.is_some() {
                        let applied = changes::in_savepoint(&tx, || {
                            changes.iter().try_for_each(|c| c.apply_sqlite(&tx))?;
                            announce.as_ref().map_or(Ok(()), |a| changes::announce(&tx, a, event.event.occurred_at))
                        });
                        if let Err(e) = applied {
                            outcomes.push(Err(e));
                            continue;
                        }
                    }
                    let chain = event.event.org_id.unwrap_or(UNATTRIBUTED_CHAIN);
                    let head = match heads.entry(chain) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(e) => {
                            let text = chain.to_string();
                            let (seq, hash) = head_q
                                .query_row(params![text], |r| Ok((r.get(0)?, r.get(1)?)))
                                .optional()
                                .map_err(db_err)?
                                .unwrap_or((0, chain::GENESIS.to_string()));
                            e.insert((text, seq, hash))
                        }
                    };
                    let linked = chain::link(event, head.1, &head.2);
                    let e = &linked.event;
                    insert
                        .execute(params![
                            head.0,
                            &*e.id.hyphenated().encode_lower(&mut id_buf),
                            e.org_id.map(|_| &head.0),
                            linked.seq,
                            e.occurred_at,
                            e.actor,
                            e.action,
                            e.target,
                            e.outcome.as_str(),
                            e.request_id,
                            e.detail,
                            linked.prev_hash,
                            linked.hash
                        ])
                        .map_err(db_err)?;
                    (head.1, head.2) = (linked.seq, linked.hash);
                    outcomes.push(Ok(()));
                }
                let mut head_w = tx
                    .prepare_cached(
                        "INSERT INTO audit_heads (chain, seq, hash) VALUES (?1, ?2, ?3)
                         ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                    )
                    .map_err(db_err)?;
                for (text, seq, hash) in heads.into_values() {
                    head_w.execute(params![text, seq, hash]).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(outcomes)
        })
        .await
    }

    async fn list_audit(&self, query: &AuditQuery, before_seq: Option<i64>, limit: u32) -> Result<Vec<AuditEvent>> {
        let q = query.clone();
        self.read(move |conn| {
            let mut sql = format!("SELECT {AUDIT_COLS} FROM audit_events WHERE chain = ?");
            let mut args: Vec<Value> = vec![Value::Text(q.org_id.unwrap_or(UNATTRIBUTED_CHAIN).to_string())];
            if let Some(agent) = q.agent_id {
                sql.push_str(" AND (actor = ? OR target = ?)");
                args.push(Value::Text(agent.clone()));
                args.push(Value::Text(agent));
            }
            if let Some(action) = q.action {
                sql.push_str(" AND action = ?");
                args.push(Value::Text(action));
            }
            if let Some(outcome) = q.outcome {
                sql.push_str(" AND outcome = ?");
                args.push(Value::Text(outcome.as_str().into()));
            }
            if let Some(since) = q.since {
                sql.push_str(" AND occurred_at >= ?");
                args.push(Value::Integer(since));
            }
            if let Some(until) = q.until {
                sql.push_str(" AND occurred_at < ?");
                args.push(Value::Integer(until));
            }
            if let Some(before) = before_seq {
                sql.push_str(" AND seq < ?");
                args.push(Value::Integer(before));
            }
            sql.push_str(" ORDER BY seq DESC LIMIT ?");
            args.push(Value::Integer(i64::from(limit)));
            let mut stmt = conn.prepare(&sql).map_err(db_err)?;
            collect(&mut stmt, params_from_iter(args), audit_from_row, audit_from_parts)
        })
        .await
    }

    async fn get_audit(&self, id: Uuid) -> Result<Option<AuditEvent>> {
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {AUDIT_COLS} FROM audit_events WHERE id = ?1"),
                params![id.to_string()],
                audit_from_row,
            )
            .optional()
            .map_err(db_err)?
            .map(audit_from_parts)
            .transpose()
        })
        .await
    }

    async fn audit_chain(&self, chain: Uuid, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {AUDIT_COLS} FROM audit_events WHERE chain = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                ))
                .map_err(db_err)?;
            collect(&mut stmt, params![chain.to_string(), after_seq, limit], audit_from_row, audit_from_parts)
        })
        .await
    }

    async fn chain_heads(&self) -> Result<Vec<ChainHead>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT h.chain, h.seq, h.hash, c.seq, c.created_at FROM audit_heads h \
                     LEFT JOIN audit_checkpoints c ON c.chain = h.chain \
                     AND c.seq = (SELECT max(seq) FROM audit_checkpoints WHERE chain = h.chain)",
                )
                .map_err(db_err)?;
            collect(
                &mut stmt,
                [],
                |r| {
                    Ok((
                        uuid_col(r, 0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                    ))
                },
                |(chain, seq, hash, at_seq, at)| Ok(ChainHead { chain, seq, hash, checkpoint: at_seq.zip(at) }),
            )
        })
        .await
    }

    async fn insert_checkpoint(&self, c: &Checkpoint) -> Result<()> {
        let c = c.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO audit_checkpoints (chain, seq, hash, created_at, jwt) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (chain, seq) DO NOTHING",
                params![c.chain.to_string(), c.seq, c.hash, c.created_at, c.jwt],
            )
            .map(|_| ())
            .map_err(db_err)
        })
        .await
    }

    async fn verified_checkpoint(&self, chain: Uuid) -> Result<Option<Checkpoint>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, hash, created_at, jwt FROM audit_checkpoints \
                     WHERE chain = ?1 AND verified_at IS NOT NULL ORDER BY seq DESC LIMIT 1",
                )
                .map_err(db_err)?;
            let parts: Vec<(i64, String, i64, String)> = collect(
                &mut stmt,
                params![chain.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                Ok,
            )?;
            Ok(parts.into_iter().next().map(|(seq, hash, created_at, jwt)| Checkpoint {
                chain,
                seq,
                hash,
                created_at,
                jwt,
            }))
        })
        .await
    }

    async fn mark_verified(&self, chain: Uuid, seq: i64, at: Millis) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE audit_checkpoints SET verified_at = ?3 WHERE chain = ?1 AND seq = ?2",
                params![chain.to_string(), seq, at],
            )
            .map(|_| ())
            .map_err(db_err)
        })
        .await
    }

    async fn checkpoints(&self, chain: Uuid, before_seq: Option<i64>, limit: u32) -> Result<Vec<Checkpoint>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, hash, created_at, jwt FROM audit_checkpoints WHERE chain = ?1 AND seq < ?2 \
                     ORDER BY seq DESC LIMIT ?3",
                )
                .map_err(db_err)?;
            let parts: Vec<(i64, String, i64, String)> = collect(
                &mut stmt,
                params![chain.to_string(), before_seq.unwrap_or(i64::MAX), limit],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                Ok,
            )?;
            Ok(parts
                .into_iter()
                .map(|(seq, hash, created_at, jwt)| Checkpoint { chain, seq, hash, created_at, jwt })
                .collect())
        })
        .await
    }
}
