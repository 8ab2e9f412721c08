//! The embedded store: one SQLite file (WAL, `synchronous=FULL`, so a committed write
//! survives a crash or power loss, and readers see it only once it is on disk).
//! rusqlite is synchronous, so every operation runs on tokio's blocking pool behind a
//! connection mutex; SQLite serializes writers anyway, and the hot path (token issuance)
//! reads nothing from the store once its caches are warm.

pub(crate) use std::collections::hash_map::{Entry, HashMap};
pub(crate) use std::path::Path;
pub(crate) use std::sync::{Arc, Mutex};

pub(crate) use async_trait::async_trait;
pub(crate) use rusqlite::types::Value;
pub(crate) use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
pub(crate) use uuid::Uuid;

pub(crate) mod changes;
pub(crate) mod feed;
pub(crate) use changes::{one_row, tier_and_count};
mod settings;

pub(crate) use super::{enum_column, json_column, Migrate, Ping, UNATTRIBUTED_CHAIN};
pub(crate) use crate::kernel::error::{EngineError, Result};
pub(crate) use crate::kernel::model::{
    Agent, AgentStatus, AuditEvent, Credential, CredentialStatus, Millis, Organization, Outcome, Tier,
};

pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../../../migrations/sqlite/0002_token_lifecycle.sql")),
    (3, include_str!("../../../../migrations/sqlite/0003_audit_index.sql")),
    (4, include_str!("../../../../migrations/sqlite/0004_cluster_feed.sql")),
    (5, include_str!("../../../../migrations/sqlite/0005_quota.sql")),
    (6, include_str!("../../../../migrations/sqlite/0006_analytics.sql")),
    (7, include_str!("../../../../migrations/sqlite/0007_delegations.sql")),
    (8, include_str!("../../../../migrations/sqlite/0008_org_delegation.sql")),
    (9, include_str!("../../../../migrations/sqlite/0009_webhooks.sql")),
    (10, include_str!("../../../../migrations/sqlite/0010_federation.sql")),
    (11, include_str!("../../../../migrations/sqlite/0011_did_keys.sql")),
    (12, include_str!("../../../../migrations/sqlite/0012_billing.sql")),
    (13, include_str!("../../../../migrations/sqlite/0013_janitor.sql")),
    (14, include_str!("../../../../migrations/sqlite/0014_audit_checkpoints.sql")),
    (15, include_str!("../../../../migrations/sqlite/0015_audit_records.sql")),
    (16, include_str!("../../../../migrations/sqlite/0016_users.sql")),
    (17, include_str!("../../../../migrations/sqlite/0017_resource_servers.sql")),
    (18, include_str!("../../../../migrations/sqlite/0018_app_clients.sql")),
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

pub(crate) const READERS: usize = 4;

pub(crate) type WriteJob = Box<dyn FnOnce(&mut Connection) + Send>;

pub(crate) fn db_err(e: rusqlite::Error) -> EngineError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        if f.code == rusqlite::ErrorCode::ConstraintViolation {
            // The database's own words name tables and columns: logged, never answered.
            tracing::debug!(error = ?msg, "sqlite constraint violation");
            return EngineError::Conflict(crate::store::CONFLICT.into());
        }
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) {
            return EngineError::Unavailable("database is busy".into());
        }
    }
    EngineError::internal(format!("sqlite: {e}"))
}

pub(crate) fn uuid_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(idx)?;
    Uuid::parse_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

/// Copy `from` into `to` with SQLite's online backup API, in one step: the copy is the
/// database as of one read transaction — consistent while a server goes on writing (WAL
/// readers do not block its writer, nor it them). Blocking: call it off the runtime's
/// workers (`spawn_blocking`).
#[allow(clippy::disallowed_methods)] // the retry's sleep is on a blocking thread, by contract
pub(crate) fn copy_database(from: &Connection, to: &Path) -> Result<()> {
    let mut dest = Connection::open(to).map_err(db_err)?;
    let backup = rusqlite::backup::Backup::new(from, &mut dest).map_err(db_err)?;
    // Every page in one step (-1); a busy source is tried again for up to 10 s.
    let started = crate::kernel::clock::monotonic();
    loop {
        match backup.step(-1).map_err(db_err)? {
            rusqlite::backup::StepResult::Done => break,
            _ if started.elapsed() > std::time::Duration::from_secs(10) => {
                return Err(EngineError::Unavailable("the store stayed busy for 10 s: try the backup again".into()))
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    drop(backup);
    dest.execute_batch("PRAGMA journal_mode=DELETE;").map_err(db_err)?;
    Ok(())
}

/// `agentidp backup`: copy the store in `dir` to the new file `dest` (owner-only), while
/// it serves. The master key is not in it. Blocking.
pub fn backup(dir: &Path, dest: &Path) -> Result<()> {
    let db = dir.join("agentidp.db");
    if !db.exists() {
        return Err(EngineError::NotFound { kind: "store (no agentidp.db in the data dir)" });
    }
    let mut claim = std::fs::OpenOptions::new();
    claim.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut claim, 0o600);
    claim
        .open(dest)
        .map_err(|e| EngineError::Conflict(format!("{}: {e} (a backup never overwrites)", dest.display())))?;
    let source = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db_err)?;
    source.busy_timeout(std::time::Duration::from_secs(5)).map_err(db_err)?;
    let outcome = copy_database(&source, dest);
    if outcome.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    outcome
}

/// `agentidp restore`: make the backup `src` the store of `dir`, which must hold none
/// yet. The backup is checked first (SQLite's integrity check, and AgentIdP's schema).
/// Blocking.
pub fn restore(src: &Path, dir: &Path) -> Result<()> {
    let db = dir.join("agentidp.db");
    if db.exists() {
        return Err(EngineError::Conflict(format!(
            "{} already holds a store: restore into an empty data dir",
            dir.display()
        )));
    }
    let source = Connection::open_with_flags(src, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db_err)?;
    let bad = |why: &str| EngineError::invalid("backup", format!("{} is not an AgentIdP backup: {why}", src.display()));
    let ok: String =
        source.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|_| bad("not a SQLite database"))?;
    if ok != "ok" {
        return Err(bad(&format!("its integrity check says {ok}")));
    }
    source
        .query_row("SELECT COUNT(*) FROM audit_heads", [], |r| r.get::<_, i64>(0))
        .map_err(|_| bad("it has no audit trail"))?;
    crate::runtime::private_fs::private_dir(dir)
        .map_err(|e| EngineError::Unavailable(format!("cannot create {} owner-only: {e}", dir.display())))?;
    crate::runtime::private_fs::private_file(&db)
        .map_err(|e| EngineError::Unavailable(format!("cannot create {} owner-only: {e}", db.display())))?;
    let outcome = copy_database(&source, &db);
    if outcome.is_err() {
        let _ = std::fs::remove_file(&db);
    }
    outcome
}

impl SqliteStore {
    /// Open (creating if needed) `dir/agentidp.db`.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = dir.join("agentidp.db");
        let private = |what: &Path, e: std::io::Error| {
            EngineError::Unavailable(format!("cannot create {} (data_dir) owner-only: {e}", what.display()))
        };
        crate::runtime::private_fs::private_dir(dir).map_err(|e| private(dir, e))?;
        // SQLite gives the -wal and -shm files the database file's mode.
        crate::runtime::private_fs::private_file(&db).map_err(|e| private(&db, e))?;
        let conn = Connection::open(&db).map_err(db_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;
             PRAGMA busy_timeout=5000;",
        )
        .map_err(db_err)?;
        for side in ["agentidp.db-wal", "agentidp.db-shm"] {
            let path = dir.join(side);
            crate::runtime::private_fs::restrict_if_present(&path).map_err(|e| private(&path, e))?;
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
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
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
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
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

pub(crate) const ORG_COLS: &str = "id, name, tier, created_at, updated_at, delegation";
pub(crate) const AGENT_COLS: &str = "id, org_id, name, description, status, scopes, metadata, created_at, updated_at";
pub(crate) const CRED_COLS: &str =
    "id, agent_id, org_id, client_id, kind, status, secret_prefix, created_at, rotated_at, revoked_at, public_jwk";

pub(crate) fn collect<P, T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    row: fn(&Row<'_>) -> rusqlite::Result<P>,
    build: fn(P) -> Result<T>,
) -> Result<Vec<T>> {
    let parts = stmt.query_map(params, row).map_err(db_err)?.collect::<rusqlite::Result<Vec<P>>>().map_err(db_err)?;
    parts.into_iter().map(build).collect()
}

pub(crate) fn json_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(EngineError::internal)
}

#[async_trait]
impl Migrate for SqliteStore {
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
}

#[async_trait]
impl Ping for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db_err)).await
    }
}
