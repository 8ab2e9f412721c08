//! The PostgreSQL store (tokio-postgres behind a deadpool pool). Several nodes may share
//! one database: migrations take an advisory lock, and audit chain heads are row-locked
//! inside each group commit, so chains stay linear whichever node writes.

pub(crate) use std::str::FromStr;

pub(crate) use async_trait::async_trait;
pub(crate) use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
pub(crate) use futures_util::future::try_join_all;
pub(crate) use tokio_postgres::types::ToSql;
pub(crate) use tokio_postgres::{NoTls, Row};
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

pub(crate) const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../../../migrations/postgres/0002_token_lifecycle.sql")),
    (3, include_str!("../../../../migrations/postgres/0003_audit_index.sql")),
    (4, include_str!("../../../../migrations/postgres/0004_cluster_feed.sql")),
    (5, include_str!("../../../../migrations/postgres/0005_quota.sql")),
    (6, include_str!("../../../../migrations/postgres/0006_analytics.sql")),
    (7, include_str!("../../../../migrations/postgres/0007_delegations.sql")),
    (8, include_str!("../../../../migrations/postgres/0008_org_delegation.sql")),
    (9, include_str!("../../../../migrations/postgres/0009_webhooks.sql")),
    (10, include_str!("../../../../migrations/postgres/0010_federation.sql")),
    (11, include_str!("../../../../migrations/postgres/0011_did_keys.sql")),
    (12, include_str!("../../../../migrations/postgres/0012_billing.sql")),
    (13, include_str!("../../../../migrations/postgres/0013_janitor.sql")),
    (14, include_str!("../../../../migrations/postgres/0014_audit_checkpoints.sql")),
    (15, include_str!("../../../../migrations/postgres/0015_audit_records.sql")),
    (16, include_str!("../../../../migrations/postgres/0016_users.sql")),
    (17, include_str!("../../../../migrations/postgres/0017_resource_servers.sql")),
    (18, include_str!("../../../../migrations/postgres/0018_app_clients.sql")),
];
/// Arbitrary constant naming the advisory lock that serializes migrations across nodes.
pub(crate) const MIGRATION_LOCK: i64 = 0x0041_676e_7449_6450;

pub struct PostgresStore {
    pool: Pool,
}

pub(crate) fn db_err(e: tokio_postgres::Error) -> EngineError {
    if let Some(db) = e.as_db_error() {
        if db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION
            || db.code() == &tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION
        {
            // The database's own words name tables and columns: logged, never answered.
            tracing::debug!(error = db.message(), "postgres constraint violation");
            return EngineError::Conflict(crate::store::CONFLICT.into());
        }
        // The server is not there to serve (shutting down, starting, out of connections or
        // resources) or asks for a retry (serialization failure, deadlock): say so with a
        // 503, never a 500. Classes 08, 53, 57 and 58; 40001 and 40P01.
        let code = db.code().code();
        if ["08", "53", "57", "58"].iter().any(|class| code.starts_with(class)) || code == "40001" || code == "40P01" {
            return EngineError::Unavailable(format!("postgres: {}", db.message()));
        }
        return EngineError::internal(format!("postgres: {}", db.message()));
    }
    if e.is_closed() {
        return EngineError::Unavailable("postgres connection closed".into());
    }
    match std::error::Error::source(&e) {
        Some(cause) => EngineError::Unavailable(format!("postgres: {e}: {cause}")),
        None => EngineError::Unavailable(format!("postgres: {e}")),
    }
}

pub(crate) fn pool_err(e: deadpool_postgres::PoolError) -> EngineError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_err(e),
        other => EngineError::Unavailable(format!("postgres pool: {other}")),
    }
}

impl PostgresStore {
    /// Where `url` points (hosts, ports, database), without the password.
    pub fn describe(url: &str) -> String {
        match tokio_postgres::Config::from_str(url) {
            Ok(c) => {
                let hosts: Vec<String> = c
                    .get_hosts()
                    .iter()
                    .zip(c.get_ports().iter().chain(std::iter::repeat(&5432)))
                    .map(|(h, p)| match h {
                        tokio_postgres::config::Host::Tcp(h) => format!("{h}:{p}"),
                        #[cfg(unix)]
                        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                    })
                    .collect();
                format!("{} database {}", hosts.join(","), c.get_dbname().unwrap_or("(default)"))
            }
            Err(_) => "an unparsable URL".into(),
        }
    }

    pub fn connect(url: &str) -> Result<Self> {
        let config =
            tokio_postgres::Config::from_str(url).map_err(|e| EngineError::invalid("database_url", e.to_string()))?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(16)
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| EngineError::internal(format!("postgres pool: {e}")))?;
        Ok(PostgresStore { pool })
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_err)
    }

    pub(crate) async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db_err)?;
        client.query(&stmt, params).await.map_err(db_err)
    }

    pub(crate) async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    pub(crate) async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db_err)?;
        client.execute(&stmt, params).await.map_err(db_err)
    }
}

pub(crate) const ORG_COLS: &str = "id, name, tier, created_at, updated_at, delegation";
pub(crate) const AGENT_COLS: &str = "id, org_id, name, description, status, scopes, metadata, created_at, updated_at";
pub(crate) const CRED_COLS: &str =
    "id, agent_id, org_id, client_id, kind, status, secret_prefix, created_at, rotated_at, revoked_at, public_jwk";

pub(crate) fn json_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(EngineError::internal)
}

#[async_trait]
impl Migrate for PostgresStore {
    async fn migrate(&self) -> Result<u32> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db_err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(db_err)?;
        let current: i32 =
            tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await.map_err(db_err)?.get(0);
        let mut version = current;
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql).await.map_err(db_err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, extract(epoch from now())::bigint)",
                &[v],
            )
            .await
            .map_err(db_err)?;
            version = *v;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(version as u32)
    }
}

#[async_trait]
impl Ping for PostgresStore {
    async fn ping(&self) -> Result<()> {
        self.query("SELECT 1", &[]).await.map(|_| ())
    }
}
