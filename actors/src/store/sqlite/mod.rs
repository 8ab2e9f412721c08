//! The embedded store: one SQLite file (WAL, `synchronous=FULL`, so a committed write
//! survives a crash or power loss, and readers see it only once it is on disk).
//! rusqlite is synchronous, so every operation runs on tokio's blocking pool behind a
//! connection mutex; SQLite serializes writers anyway, and the hot path (token issuance)
//! reads nothing from the store once its caches are warm.

use std::collections::hash_map::{Entry, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use uuid::Uuid;

mod changes;

use super::{
    enum_column, json_column, ClientRecord, Commit, FeedEntry, KeyRecord, Revocation, Store, UNATTRIBUTED_CHAIN,
};
use crate::domain::audit_chain;
use crate::error::{EngineError, Result};
use crate::model::{
    Agent, AgentStatus, AuditEvent, AuditQuery, Credential, CredentialStatus, Millis, Organization, Outcome, Tier,
};

const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../../../migrations/sqlite/0002_token_lifecycle.sql")),
    (3, include_str!("../../../../migrations/sqlite/0003_audit_index.sql")),
    (4, include_str!("../../../../migrations/sqlite/0004_cluster_feed.sql")),
];

pub struct SqliteStore {
    /// The one writer (SQLite serializes writers anyway). Its connection lives on its own
    /// thread and writes are closures sent to it: one long-lived thread keeps SQLite's page
    /// cache and the connection's statements warm in one CPU cache, where the blocking
    /// pool would hand each commit to whichever of its threads was idle longest.
    writer: std::sync::mpsc::Sender<WriteJob>,
    /// Read-only connections: in WAL mode they read while the writer commits (and waits
    /// for its fsync), so reads never queue behind an audit group commit.
    readers: Vec<Arc<Mutex<Connection>>>,
    next_reader: std::sync::atomic::AtomicUsize,
}

const READERS: usize = 4;

type WriteJob = Box<dyn FnOnce(&mut Connection) + Send>;

fn db_err(e: rusqlite::Error) -> EngineError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        if f.code == rusqlite::ErrorCode::ConstraintViolation {
            return EngineError::Conflict(msg.clone().unwrap_or_else(|| "constraint violation".into()));
        }
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) {
            return EngineError::Unavailable("database is busy".into());
        }
    }
    EngineError::internal(format!("sqlite: {e}"))
}

fn uuid_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(idx)?;
    Uuid::parse_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

impl SqliteStore {
    /// Open (creating if needed) `dir/agentidp.db`.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = dir.join("agentidp.db");
        let private = |what: &Path, e: std::io::Error| {
            EngineError::Unavailable(format!("cannot create {} (data_dir) owner-only: {e}", what.display()))
        };
        crate::private_fs::private_dir(dir).map_err(|e| private(dir, e))?;
        // SQLite gives the -wal and -shm files the database file's mode.
        crate::private_fs::private_file(&db).map_err(|e| private(&db, e))?;
        let conn = Connection::open(&db).map_err(db_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;
             PRAGMA busy_timeout=5000;",
        )
        .map_err(db_err)?;
        for side in ["agentidp.db-wal", "agentidp.db-shm"] {
            let path = dir.join(side);
            crate::private_fs::restrict_if_present(&path).map_err(|e| private(&path, e))?;
        }
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open(dir.join("agentidp.db")).map_err(db_err)?;
                reader.execute_batch("PRAGMA query_only=ON; PRAGMA busy_timeout=5000;").map_err(db_err)?;
                Ok(Arc::new(Mutex::new(reader)))
            })
            .collect::<Result<Vec<_>>>()?;
        let (writer, jobs) = std::sync::mpsc::channel::<WriteJob>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let mut conn = conn;
                // Ends when the store, and with it the sender, is dropped. A write that
                // panics loses only itself: its transaction rolls back as it unwinds, its
                // caller gets an error, and the connection serves the next write.
                for job in jobs {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn)));
                }
            })
            .map_err(|e| EngineError::Unavailable(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(SqliteStore { writer, readers, next_reader: Default::default() })
    }

    /// Run a read-only query on one of the reader connections.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let i = self.next_reader.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.readers.len();
        let conn = self.readers[i].clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| EngineError::internal("sqlite connection mutex poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| EngineError::internal(format!("blocking task failed: {e}")))?
    }

    /// A write, on the one writer connection; durable when it returns.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.writer.send(job).map_err(|_| EngineError::internal("the SQLite writer thread has stopped"))?;
        rx.await.map_err(|_| EngineError::internal("the SQLite writer thread dropped a write"))?
    }
}

fn org_from_row(row: &Row<'_>) -> rusqlite::Result<(Uuid, String, String, i64, i64)> {
    Ok((uuid_col(row, 0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

fn org_from_parts(p: (Uuid, String, String, i64, i64)) -> Result<Organization> {
    Ok(Organization { id: p.0, name: p.1, tier: enum_column(&p.2, Tier::parse)?, created_at: p.3, updated_at: p.4 })
}

const ORG_COLS: &str = "id, name, tier, created_at, updated_at";
const AGENT_COLS: &str = "id, org_id, name, description, status, scopes, metadata, created_at, updated_at";
const CRED_COLS: &str =
    "id, agent_id, org_id, client_id, kind, status, secret_prefix, created_at, rotated_at, revoked_at, public_jwk";
const AUDIT_COLS: &str =
    "id, org_id, seq, occurred_at, actor, action, target, outcome, request_id, detail, prev_hash, hash";

type AgentParts = (Uuid, Uuid, String, Option<String>, String, String, String, i64, i64);

fn agent_from_row(row: &Row<'_>) -> rusqlite::Result<AgentParts> {
    Ok((
        uuid_col(row, 0)?,
        uuid_col(row, 1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

fn agent_from_parts(p: AgentParts) -> Result<Agent> {
    Ok(Agent {
        id: p.0,
        org_id: p.1,
        name: p.2,
        description: p.3,
        status: enum_column(&p.4, AgentStatus::parse)?,
        scopes: json_column(&p.5)?,
        metadata: json_column(&p.6)?,
        created_at: p.7,
        updated_at: p.8,
    })
}

type CredParts = (Uuid, Uuid, Uuid, String, String, String, String, i64, Option<i64>, Option<i64>, Option<String>);

fn cred_from_row(row: &Row<'_>) -> rusqlite::Result<CredParts> {
    Ok((
        uuid_col(row, 0)?,
        uuid_col(row, 1)?,
        uuid_col(row, 2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

fn cred_from_parts(p: CredParts) -> Result<Credential> {
    Ok(Credential {
        id: p.0,
        agent_id: p.1,
        org_id: p.2,
        client_id: p.3,
        kind: p.4,
        status: enum_column(&p.5, CredentialStatus::parse)?,
        secret_prefix: p.6,
        created_at: p.7,
        rotated_at: p.8,
        revoked_at: p.9,
        jwk: p.10.as_deref().map(json_column).transpose()?,
    })
}

type AuditParts =
    (Uuid, Option<String>, i64, i64, String, String, Option<String>, String, Option<String>, String, String, String);

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditParts> {
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

fn audit_from_parts(p: AuditParts) -> Result<AuditEvent> {
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

fn collect<P, T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    row: fn(&Row<'_>) -> rusqlite::Result<P>,
    build: fn(P) -> Result<T>,
) -> Result<Vec<T>> {
    let parts = stmt.query_map(params, row).map_err(db_err)?.collect::<rusqlite::Result<Vec<P>>>().map_err(db_err)?;
    parts.into_iter().map(build).collect()
}

fn json_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(EngineError::internal)
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<u32> {
        self.write(|conn| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
            )
            .map_err(db_err)?;
            let current: u32 = conn
                .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))
                .map_err(db_err)?;
            let mut version = current;
            for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
                let tx = conn.transaction().map_err(db_err)?;
                tx.execute_batch(sql).map_err(db_err)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, strftime('%s','now'))",
                    params![v],
                )
                .map_err(db_err)?;
                tx.commit().map_err(db_err)?;
                version = *v;
            }
            Ok(version)
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db_err)).await
    }

    async fn setting_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let (key, value) = (key.to_string(), value.to_vec());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, value],
            )
            .map_err(db_err)?;
            conn.query_row("SELECT value FROM settings WHERE key = ?1", params![key], |r| r.get(0)).map_err(db_err)
        })
        .await
    }

    async fn get_org(&self, id: Uuid) -> Result<Option<Organization>> {
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {ORG_COLS} FROM organizations WHERE id = ?1"),
                params![id.to_string()],
                org_from_row,
            )
            .optional()
            .map_err(db_err)?
            .map(org_from_parts)
            .transpose()
        })
        .await
    }

    async fn list_orgs(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Organization>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {ORG_COLS} FROM organizations WHERE id > ?1 ORDER BY id LIMIT ?2"))
                .map_err(db_err)?;
            let after = after.unwrap_or(Uuid::nil()).to_string();
            collect(&mut stmt, params![after, limit], org_from_row, org_from_parts)
        })
        .await
    }

    async fn count_orgs(&self) -> Result<u64> {
        self.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM organizations", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(db_err)
        })
        .await
    }

    async fn get_agent(&self, org_id: Uuid, id: Uuid) -> Result<Option<Agent>> {
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {AGENT_COLS} FROM agents WHERE id = ?1 AND org_id = ?2"),
                params![id.to_string(), org_id.to_string()],
                agent_from_row,
            )
            .optional()
            .map_err(db_err)?
            .map(agent_from_parts)
            .transpose()
        })
        .await
    }

    async fn list_agents(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Agent>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {AGENT_COLS} FROM agents WHERE org_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                ))
                .map_err(db_err)?;
            let after = after.unwrap_or(Uuid::nil()).to_string();
            collect(&mut stmt, params![org_id.to_string(), after, limit], agent_from_row, agent_from_parts)
        })
        .await
    }

    async fn agents_with_scope(&self, scope: &str) -> Result<Vec<Agent>> {
        // Scopes are a JSON array in text: the LIKE narrows, the exact check decides.
        let pattern = format!("%{}%", json_text(&scope)?);
        let scope = scope.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {AGENT_COLS} FROM agents WHERE scopes LIKE ?1"))
                .map_err(db_err)?;
            let agents = collect(&mut stmt, params![pattern], agent_from_row, agent_from_parts)?;
            Ok(agents.into_iter().filter(|a| a.scopes.contains(&scope)).collect())
        })
        .await
    }

    async fn list_credentials(&self, agent_id: Uuid) -> Result<Vec<Credential>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {CRED_COLS} FROM credentials WHERE agent_id = ?1 ORDER BY id"))
                .map_err(db_err)?;
            collect(&mut stmt, params![agent_id.to_string()], cred_from_row, cred_from_parts)
        })
        .await
    }

    async fn get_credential(&self, agent_id: Uuid, id: Uuid) -> Result<Option<Credential>> {
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {CRED_COLS} FROM credentials WHERE id = ?1 AND agent_id = ?2"),
                params![id.to_string(), agent_id.to_string()],
                cred_from_row,
            )
            .optional()
            .map_err(db_err)?
            .map(cred_from_parts)
            .transpose()
        })
        .await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        let client_id = client_id.to_string();
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT c.client_id, c.status, c.secret_hash, a.id, a.org_id, a.status, a.scopes, c.kind, c.public_jwk
                     FROM credentials c JOIN agents a ON a.id = c.agent_id WHERE c.client_id = ?1",
                    params![client_id],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                            uuid_col(r, 3)?,
                            uuid_col(r, 4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, String>(6)?,
                            r.get::<_, String>(7)?,
                            r.get::<_, Option<String>>(8)?,
                        ))
                    },
                )
                .optional()
                .map_err(db_err)?;
            row.map(|p| {
                Ok(ClientRecord {
                    client_id: p.0,
                    credential_status: enum_column(&p.1, CredentialStatus::parse)?,
                    secret_hash: p.2,
                    agent_id: p.3,
                    org_id: p.4,
                    agent_status: enum_column(&p.5, AgentStatus::parse)?,
                    agent_scopes: json_column(&p.6)?,
                    kind: p.7,
                    public_jwk: p.8.as_deref().map(json_column).transpose()?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn insert_signing_key(&self, key: &KeyRecord) -> Result<()> {
        let k = key.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO signing_keys (kid, alg, private_key, key_ref, created_at, activates_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![k.kid, k.alg, k.private_key, k.key_ref, k.created_at, k.activates_at],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn signing_keys(&self) -> Result<Vec<KeyRecord>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT kid, alg, private_key, key_ref, created_at, activates_at FROM signing_keys ORDER BY activates_at, kid",
                )
                .map_err(db_err)?;
            collect(
                &mut stmt,
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                |(kid, alg, private_key, key_ref, created_at, activates_at)| {
                    Ok(KeyRecord { kid, alg, private_key, key_ref, created_at, activates_at })
                },
            )
        })
        .await
    }

    async fn revocations(&self, now_secs: i64) -> Result<Vec<Revocation>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT jti, org_id, expires_at FROM token_revocations WHERE expires_at > ?1")
                .map_err(db_err)?;
            collect(
                &mut stmt,
                params![now_secs],
                |r| Ok((r.get(0)?, uuid_col(r, 1)?, r.get(2)?)),
                |(jti, org_id, expires_at)| Ok(Revocation { jti, org_id, expires_at }),
            )
        })
        .await
    }

    async fn purge_revocations(&self, now_secs: i64) -> Result<u64> {
        self.write(move |conn| {
            conn.execute("DELETE FROM token_revocations WHERE expires_at <= ?1", params![now_secs])
                .map(|n| n as u64)
                .map_err(db_err)
        })
        .await
    }

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
                            changes.iter().try_for_each(|c| changes::apply(&tx, c))?;
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
                                .unwrap_or((0, audit_chain::GENESIS.to_string()));
                            e.insert((text, seq, hash))
                        }
                    };
                    let linked = audit_chain::link(event, head.1, &head.2);
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

    async fn purge_cluster_events(&self, before: Millis) -> Result<u64> {
        self.write(move |conn| {
            conn.execute("DELETE FROM cluster_events WHERE created_at < ?1", params![before])
                .map(|n| n as u64)
                .map_err(db_err)
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
}
