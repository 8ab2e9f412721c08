//! SQLite: the audit trail and its group commit ([`crate::families::audit::AuditStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::chain;
use super::record::StoredRecord;
use super::{AuditChange, AuditStore, ChainEnds, ChainHead, ChainRetention, Checkpoint, Commit, RecordQuery};
use crate::store::sqlite::*;

/// A record's key: its chain's number above its `seq` (`number << 40 | seq`), so that a
/// chain's records are a range of the table's own B-tree — appended at its right edge,
/// where SQLite packs pages full — with no second index for it.
const SEQ_BITS: i64 = 40;
/// The columns a [`StoredRecord`] is read from.
const RECORD_COLS: &str = "key & 1099511627775, id, action, tag, rec, anchor";
/// The first key of the chain named by parameter ?1, before its `seq`s.
const CHAIN_BASE: &str = "(SELECT n FROM audit_heads WHERE chain = ?1) * 1099511627776";

type LegacyParts =
    (Uuid, Option<String>, i64, i64, String, String, Option<String>, String, Option<String>, String, String, String);

fn legacy_row(row: &Row<'_>) -> rusqlite::Result<LegacyParts> {
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

fn legacy_event(p: LegacyParts) -> Result<AuditEvent> {
    Ok(AuditEvent {
        id: p.0,
        org_id: p.1.map(|s| Uuid::parse_str(&s)).transpose().map_err(EngineError::internal)?,
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

fn record(row: &Row<'_>) -> rusqlite::Result<StoredRecord> {
    let id: Vec<u8> = row.get(1)?;
    Ok(StoredRecord {
        seq: row.get(0)?,
        id: Uuid::from_slice(&id)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, Box::new(e)))?,
        action: row.get(2)?,
        tag: row.get::<_, i64>(3)? as i32,
        rec: row.get(4)?,
        anchor: row.get(5)?,
    })
}

/// The dictionary words with these numbers or texts.
fn words_in(conn: &Connection, numbers: &[i64], texts: &[String]) -> Result<Vec<(i64, String)>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT n, text FROM audit_strings WHERE n IN (SELECT value FROM json_each(?1)) \
             OR text IN (SELECT value FROM json_each(?2))",
        )
        .map_err(db_err)?;
    collect(&mut stmt, params![json_text(&numbers)?, json_text(&texts)?], |r| Ok((r.get(0)?, r.get(1)?)), Ok)
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, entries: Vec<Commit>) -> Result<Vec<Result<()>>> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err)?;
            let mut outcomes = Vec::with_capacity(entries.len());
            {
                // Each chain's head is read once and written once per batch, however many
                // of the batch's events it takes; a new chain gets its number here.
                let mut heads: HashMap<Uuid, (String, i64, i64, String)> = HashMap::new();
                let mut head_q =
                    tx.prepare_cached("SELECT n, seq, hash FROM audit_heads WHERE chain = ?1").map_err(db_err)?;
                let mut head_new = tx
                    .prepare_cached(
                        "INSERT INTO audit_heads (chain, seq, hash, n) \
                         VALUES (?1, 0, ?2, (SELECT coalesce(max(n), 0) + 1 FROM audit_heads)) RETURNING n",
                    )
                    .map_err(db_err)?;
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO audit_records (key, id, action, tag, rec, anchor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(db_err)?;
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
                            let found = head_q
                                .query_row(params![text], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                                .optional()
                                .map_err(db_err)?;
                            let (n, seq, hash) = match found {
                                Some(head) => head,
                                None => {
                                    let n = head_new
                                        .query_row(params![text, chain::GENESIS], |r| r.get(0))
                                        .map_err(db_err)?;
                                    (n, 0, chain::GENESIS.to_string())
                                }
                            };
                            e.insert((text, n, seq, hash))
                        }
                    };
                    let linked = chain::link(event, head.2, &head.3);
                    let encoded =
                        linked.encoded.as_ref().ok_or_else(|| EngineError::internal("audit event not encoded"))?;
                    let anchor = (linked.seq % super::record::ANCHOR_EVERY == 0)
                        .then(|| super::record::hash_bytes(&linked.hash));
                    insert
                        .execute(params![
                            (head.1 << SEQ_BITS) | linked.seq,
                            &linked.event.id.as_bytes()[..],
                            encoded.action,
                            super::record::tag_of(&linked.hash),
                            encoded.rec,
                            anchor
                        ])
                        .map_err(db_err)?;
                    (head.2, head.3) = (linked.seq, linked.hash);
                    outcomes.push(Ok(()));
                }
                let mut head_w =
                    tx.prepare_cached("UPDATE audit_heads SET seq = ?2, hash = ?3 WHERE chain = ?1").map_err(db_err)?;
                for (text, _, seq, hash) in heads.into_values() {
                    head_w.execute(params![text, seq, hash]).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(outcomes)
        })
        .await
    }

    async fn intern(&self, texts: Vec<String>) -> Result<Vec<(i64, String)>> {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            {
                let mut add = tx
                    .prepare_cached("INSERT INTO audit_strings (text) VALUES (?1) ON CONFLICT (text) DO NOTHING")
                    .map_err(db_err)?;
                for text in &texts {
                    add.execute(params![text]).map_err(db_err)?;
                }
            }
            let words = words_in(&tx, &[], &texts)?;
            tx.commit().map_err(db_err)?;
            Ok(words)
        })
        .await
    }

    async fn words(&self, numbers: Vec<i64>, texts: Vec<String>) -> Result<Vec<(i64, String)>> {
        self.read(move |conn| words_in(conn, &numbers, &texts)).await
    }

    async fn chain_ends(&self, chain: Uuid) -> Result<Option<ChainEnds>> {
        self.read(move |conn| {
            conn.prepare_cached("SELECT seq, hash, floor_seq, floor_hash FROM audit_heads WHERE chain = ?1")
                .map_err(db_err)?
                .query_row(params![chain.to_string()], |r| {
                    Ok(ChainEnds {
                        head_seq: r.get(0)?,
                        head_hash: r.get(1)?,
                        floor_seq: r.get(2)?,
                        floor_hash: r.get(3)?,
                    })
                })
                .optional()
                .map_err(db_err)
        })
        .await
    }

    async fn audit_records(&self, chain: Uuid, q: &RecordQuery, limit: u32) -> Result<Vec<StoredRecord>> {
        let q = q.clone();
        self.read(move |conn| {
            let mut sql = format!(
                "SELECT {RECORD_COLS} FROM audit_records WHERE key > {CHAIN_BASE} + ?2 AND key < {CHAIN_BASE} + ?3"
            );
            let mut args: Vec<Value> = vec![
                Value::Text(chain.to_string()),
                Value::Integer(q.after.max(0)),
                Value::Integer(q.before.unwrap_or(i64::MAX).min(1 << SEQ_BITS)),
            ];
            if let Some(actions) = &q.actions {
                sql.push_str(" AND action IN (SELECT value FROM json_each(?))");
                args.push(Value::Text(json_text(actions)?));
            }
            if let Some(from) = q.ids.0 {
                sql.push_str(" AND id >= ?");
                args.push(Value::Blob(from.as_bytes().to_vec()));
            }
            if let Some(to) = q.ids.1 {
                sql.push_str(" AND id < ?");
                args.push(Value::Blob(to.as_bytes().to_vec()));
            }
            sql.push_str(if q.newest_first { " ORDER BY key DESC LIMIT ?" } else { " ORDER BY key LIMIT ?" });
            args.push(Value::Integer(i64::from(limit)));
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
            collect(&mut stmt, params_from_iter(args), record, Ok)
        })
        .await
    }

    async fn audit_record(&self, id: Uuid) -> Result<Option<(Uuid, StoredRecord)>> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {RECORD_COLS}, (SELECT chain FROM audit_heads WHERE n = audit_records.key >> 40) \
                 FROM audit_records WHERE id = ?1"
            ))
            .map_err(db_err)?
            .query_row(params![&id.as_bytes()[..]], |r| Ok((uuid_col(r, 6)?, record(r)?)))
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn chain_retention(&self) -> Result<Vec<ChainRetention>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT h.chain, o.tier, r.org_id IS NOT NULL, r.seconds FROM audit_heads h \
                     LEFT JOIN organizations o ON o.id = h.chain LEFT JOIN audit_retention r ON r.org_id = h.chain",
                )
                .map_err(db_err)?;
            collect(
                &mut stmt,
                [],
                |r| {
                    Ok((
                        uuid_col(r, 0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, bool>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                },
                |(chain, tier, set, secs)| {
                    Ok(ChainRetention {
                        chain,
                        tier: tier.as_deref().and_then(Tier::parse),
                        override_secs: set.then(|| secs.map(|s| s.max(0) as u64)),
                    })
                },
            )
        })
        .await
    }

    async fn move_floor(&self, chain: Uuid, floor: i64, upto: i64, upto_hash: &str) -> Result<bool> {
        let upto_hash = upto_hash.to_string();
        self.write(move |conn| {
            conn.execute(
                "UPDATE audit_heads SET floor_seq = ?3, floor_hash = ?4 WHERE chain = ?1 AND floor_seq = ?2",
                params![chain.to_string(), floor, upto, upto_hash],
            )
            .map(|moved| moved == 1)
            .map_err(db_err)
        })
        .await
    }

    async fn remove_archived(&self, chain: Uuid, after: i64, upto: i64) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                &format!(
                    "DELETE FROM audit_records WHERE key > {CHAIN_BASE} + ?2 AND key <= {CHAIN_BASE} + \
                     MIN(?3, (SELECT floor_seq FROM audit_heads WHERE chain = ?1))"
                ),
                params![chain.to_string(), after, upto],
            )
            .map(|_| ())
            .map_err(db_err)
        })
        .await
    }

    async fn audit_retention(&self, org_id: Uuid) -> Result<Option<Option<u64>>> {
        self.read(move |conn| {
            conn.query_row("SELECT seconds FROM audit_retention WHERE org_id = ?1", params![org_id.to_string()], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .optional()
            .map_err(db_err)
            .map(|found| found.map(|secs| secs.map(|s| s.max(0) as u64)))
        })
        .await
    }

    async fn legacy_audit(&self, limit: u32) -> Result<Vec<AuditEvent>> {
        self.read(move |conn| {
            let present: Option<String> = conn
                .query_row("SELECT name FROM sqlite_master WHERE name = 'audit_events_legacy'", [], |r| r.get(0))
                .optional()
                .map_err(db_err)?;
            if present.is_none() {
                return Ok(Vec::new());
            }
            let mut stmt = conn
                .prepare(
                    "SELECT id, org_id, seq, occurred_at, actor, action, target, outcome, request_id, detail, \
                     prev_hash, hash FROM audit_events_legacy ORDER BY chain, seq LIMIT ?1",
                )
                .map_err(db_err)?;
            collect(&mut stmt, params![limit], legacy_row, legacy_event)
        })
        .await
    }

    async fn move_legacy_audit(&self, records: Vec<(Uuid, StoredRecord)>) -> Result<()> {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            {
                let mut insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO audit_records (key, id, action, tag, rec, anchor) \
                         VALUES ({CHAIN_BASE} + ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING"
                    ))
                    .map_err(db_err)?;
                let mut delete = tx.prepare_cached("DELETE FROM audit_events_legacy WHERE id = ?1").map_err(db_err)?;
                for (chain, r) in &records {
                    insert
                        .execute(params![
                            chain.to_string(),
                            r.seq,
                            &r.id.as_bytes()[..],
                            r.action,
                            r.tag,
                            r.rec,
                            r.anchor
                        ])
                        .map_err(db_err)?;
                    delete.execute(params![r.id.to_string()]).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn drop_legacy_audit(&self) -> Result<()> {
        self.write(|conn| conn.execute_batch("DROP TABLE IF EXISTS audit_events_legacy").map_err(db_err)).await
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

/// Apply one of the family's changes on the writer's open transaction.
pub(crate) fn apply(conn: &Connection, change: &AuditChange) -> Result<()> {
    match change {
        AuditChange::Retention { org_id, seconds: None } => {
            conn.execute("DELETE FROM audit_retention WHERE org_id = ?1", params![org_id.to_string()])
        }
        AuditChange::Retention { org_id, seconds: Some(secs) } => conn.execute(
            "INSERT INTO audit_retention (org_id, seconds) VALUES (?1, ?2) \
             ON CONFLICT (org_id) DO UPDATE SET seconds = excluded.seconds",
            params![org_id.to_string(), secs.map(|s| s as i64)],
        ),
    }
    .map(|_| ())
    .map_err(db_err)
}
