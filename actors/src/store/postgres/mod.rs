//! The PostgreSQL store (tokio-postgres behind a deadpool pool). Several nodes may share
//! one database: migrations take an advisory lock, and audit chain heads are row-locked
//! inside each group commit, so chains stay linear whichever node writes.

use std::str::FromStr;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::future::try_join_all;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
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

const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../../../migrations/postgres/0002_token_lifecycle.sql")),
    (3, include_str!("../../../../migrations/postgres/0003_audit_index.sql")),
    (4, include_str!("../../../../migrations/postgres/0004_cluster_feed.sql")),
];
/// Arbitrary constant naming the advisory lock that serializes migrations across nodes.
const MIGRATION_LOCK: i64 = 0x0041_676e_7449_6450;

pub struct PostgresStore {
    pool: Pool,
}

fn db_err(e: tokio_postgres::Error) -> EngineError {
    if let Some(db) = e.as_db_error() {
        if db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION
            || db.code() == &tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION
        {
            return EngineError::Conflict(db.message().to_string());
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

fn pool_err(e: deadpool_postgres::PoolError) -> EngineError {
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

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_err)
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db_err)?;
        client.query(&stmt, params).await.map_err(db_err)
    }

    async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db_err)?;
        client.execute(&stmt, params).await.map_err(db_err)
    }
}

const ORG_COLS: &str = "id, name, tier, created_at, updated_at";
const AGENT_COLS: &str = "id, org_id, name, description, status, scopes, metadata, created_at, updated_at";
const CRED_COLS: &str =
    "id, agent_id, org_id, client_id, kind, status, secret_prefix, created_at, rotated_at, revoked_at, public_jwk";
const AUDIT_COLS: &str =
    "id, org_id, seq, occurred_at, actor, action, target, outcome, request_id, detail, prev_hash, hash";

fn org(row: &Row) -> Result<Organization> {
    Ok(Organization {
        id: row.get(0),
        name: row.get(1),
        tier: enum_column(row.get(2), Tier::parse)?,
        created_at: row.get(3),
        updated_at: row.get(4),
    })
}

fn agent(row: &Row) -> Result<Agent> {
    Ok(Agent {
        id: row.get(0),
        org_id: row.get(1),
        name: row.get(2),
        description: row.get(3),
        status: enum_column(row.get(4), AgentStatus::parse)?,
        scopes: json_column(row.get(5))?,
        metadata: json_column(row.get(6))?,
        created_at: row.get(7),
        updated_at: row.get(8),
    })
}

fn credential(row: &Row) -> Result<Credential> {
    Ok(Credential {
        id: row.get(0),
        agent_id: row.get(1),
        org_id: row.get(2),
        client_id: row.get(3),
        kind: row.get(4),
        status: enum_column(row.get(5), CredentialStatus::parse)?,
        secret_prefix: row.get(6),
        created_at: row.get(7),
        rotated_at: row.get(8),
        revoked_at: row.get(9),
        jwk: row.get::<_, Option<&str>>(10).map(json_column).transpose()?,
    })
}

fn audit(row: &Row) -> Result<AuditEvent> {
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

fn json_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(EngineError::internal)
}

#[async_trait]
impl Store for PostgresStore {
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

    async fn ping(&self) -> Result<()> {
        self.query("SELECT 1", &[]).await.map(|_| ())
    }

    async fn setting_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        self.execute("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", &[&key, &value])
            .await?;
        let row = self
            .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
            .await?
            .ok_or_else(|| EngineError::internal("setting vanished"))?;
        Ok(row.get(0))
    }

    async fn get_org(&self, id: Uuid) -> Result<Option<Organization>> {
        self.query_opt(&format!("SELECT {ORG_COLS} FROM organizations WHERE id = $1"), &[&id])
            .await?
            .as_ref()
            .map(org)
            .transpose()
    }

    async fn list_orgs(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Organization>> {
        let after = after.unwrap_or(Uuid::nil());
        self.query(
            &format!("SELECT {ORG_COLS} FROM organizations WHERE id > $1 ORDER BY id LIMIT $2"),
            &[&after, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(org)
        .collect()
    }

    async fn count_orgs(&self) -> Result<u64> {
        let rows = self.query("SELECT COUNT(*) FROM organizations", &[]).await?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0) as u64)
    }

    async fn get_agent(&self, org_id: Uuid, id: Uuid) -> Result<Option<Agent>> {
        self.query_opt(&format!("SELECT {AGENT_COLS} FROM agents WHERE id = $1 AND org_id = $2"), &[&id, &org_id])
            .await?
            .as_ref()
            .map(agent)
            .transpose()
    }

    async fn list_agents(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Agent>> {
        let after = after.unwrap_or(Uuid::nil());
        self.query(
            &format!("SELECT {AGENT_COLS} FROM agents WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"),
            &[&org_id, &after, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(agent)
        .collect()
    }

    async fn agents_with_scope(&self, scope: &str) -> Result<Vec<Agent>> {
        // Scopes are a JSON array in text: the LIKE narrows, the exact check decides.
        let pattern = format!("%{}%", json_text(&scope)?);
        let rows = self.query(&format!("SELECT {AGENT_COLS} FROM agents WHERE scopes LIKE $1"), &[&pattern]).await?;
        let agents: Vec<Agent> = rows.iter().map(agent).collect::<Result<_>>()?;
        Ok(agents.into_iter().filter(|a| a.scopes.iter().any(|s| s == scope)).collect())
    }

    async fn list_credentials(&self, agent_id: Uuid) -> Result<Vec<Credential>> {
        self.query(&format!("SELECT {CRED_COLS} FROM credentials WHERE agent_id = $1 ORDER BY id"), &[&agent_id])
            .await?
            .iter()
            .map(credential)
            .collect()
    }

    async fn get_credential(&self, agent_id: Uuid, id: Uuid) -> Result<Option<Credential>> {
        self.query_opt(
            &format!("SELECT {CRED_COLS} FROM credentials WHERE id = $1 AND agent_id = $2"),
            &[&id, &agent_id],
        )
        .await?
        .as_ref()
        .map(credential)
        .transpose()
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        let row = self
            .query_opt(
                "SELECT c.client_id, c.status, c.secret_hash, a.id, a.org_id, a.status, a.scopes, c.kind, c.public_jwk
                 FROM credentials c JOIN agents a ON a.id = c.agent_id WHERE c.client_id = $1",
                &[&client_id],
            )
            .await?;
        row.map(|r| {
            Ok(ClientRecord {
                client_id: r.get(0),
                credential_status: enum_column(r.get(1), CredentialStatus::parse)?,
                secret_hash: r.get(2),
                agent_id: r.get(3),
                org_id: r.get(4),
                agent_status: enum_column(r.get(5), AgentStatus::parse)?,
                agent_scopes: json_column(r.get(6))?,
                kind: r.get(7),
                public_jwk: r.get::<_, Option<&str>>(8).map(json_column).transpose()?,
            })
        })
        .transpose()
    }

    async fn insert_signing_key(&self, k: &KeyRecord) -> Result<()> {
        self.execute(
            "INSERT INTO signing_keys (kid, alg, private_key, key_ref, created_at, activates_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&k.kid, &k.alg, &k.private_key, &k.key_ref, &k.created_at, &k.activates_at],
        )
        .await
        .map(|_| ())
    }

    async fn signing_keys(&self) -> Result<Vec<KeyRecord>> {
        Ok(self
            .query(
                "SELECT kid, alg, private_key, key_ref, created_at, activates_at FROM signing_keys ORDER BY activates_at, kid",
                &[],
            )
            .await?
            .iter()
            .map(|r| KeyRecord {
                kid: r.get(0),
                alg: r.get(1),
                private_key: r.get(2),
                key_ref: r.get(3),
                created_at: r.get(4),
                activates_at: r.get(5),
            })
            .collect())
    }

    async fn revocations(&self, now_secs: i64) -> Result<Vec<Revocation>> {
        Ok(self
            .query("SELECT jti, org_id, expires_at FROM token_revocations WHERE expires_at > $1", &[&now_secs])
            .await?
            .iter()
            .map(|r| Revocation { jti: r.get(0), org_id: r.get(1), expires_at: r.get(2) })
            .collect())
    }

    async fn purge_revocations(&self, now_secs: i64) -> Result<u64> {
        self.execute("DELETE FROM token_revocations WHERE expires_at <= $1", &[&now_secs]).await
    }

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
                    &[chain, &audit_chain::GENESIS],
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
            let e = audit_chain::link(event, head.0, &head.1);
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

    async fn cluster_events_since(&self, since: Millis) -> Result<Vec<FeedEntry>> {
        self.query("SELECT seq, created_at, event FROM cluster_events WHERE created_at >= $1 ORDER BY seq", &[&since])
            .await?
            .iter()
            .map(|r| Ok(FeedEntry { seq: r.get(0), created_at: r.get(1), event: json_column(r.get(2))? }))
            .collect()
    }

    async fn purge_cluster_events(&self, before: Millis) -> Result<u64> {
        self.execute("DELETE FROM cluster_events WHERE created_at < $1", &[&before]).await
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
}
