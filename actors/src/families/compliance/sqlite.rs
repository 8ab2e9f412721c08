//! SQLite: what the compliance report reads ([`crate::families::compliance::ComplianceStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use crate::families::compliance::rules::AgentFacts;
use crate::families::compliance::ComplianceStore;
use crate::store::sqlite::*;

impl SqliteStore {
    async fn agent_ids(&self, sql: &'static str, params: Vec<Value>) -> Result<Vec<Uuid>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
            collect(&mut stmt, params_from_iter(params), |row| uuid_col(row, 0), Ok)
        })
        .await
    }
}

#[async_trait]
impl ComplianceStore for SqliteStore {
    async fn agent_facts(&self, org_id: Uuid) -> Result<Vec<AgentFacts>> {
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT id, status, scopes FROM agents WHERE org_id = ?1").map_err(db_err)?;
            collect(
                &mut stmt,
                params![org_id.to_string()],
                |row| Ok((uuid_col(row, 0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?)),
                |(id, status, scopes)| {
                    Ok(AgentFacts {
                        id,
                        status: enum_column(&status, AgentStatus::parse)?,
                        scopes: json_column(&scopes)?,
                    })
                },
            )
        })
        .await
    }

    async fn org_credentials(&self, org_id: Uuid) -> Result<Vec<Credential>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {CRED_COLS} FROM credentials WHERE org_id = ?1 AND status = 'active'"))
                .map_err(db_err)?;
            collect(
                &mut stmt,
                params![org_id.to_string()],
                crate::families::directory::sqlite::cred_from_row,
                crate::families::directory::sqlite::cred_from_parts,
            )
        })
        .await
    }

    async fn agents_with_did_keys(&self, org_id: Uuid) -> Result<Vec<Uuid>> {
        self.agent_ids(
            "SELECT DISTINCT agent_id FROM agent_did_keys WHERE org_id = ?1",
            vec![Value::Text(org_id.to_string())],
        )
        .await
    }

    async fn agents_with_tokens_since(&self, org_id: Uuid, day: i64) -> Result<Vec<Uuid>> {
        self.agent_ids(
            "SELECT DISTINCT agent_id FROM analytics_events WHERE org_id = ?1 AND day >= ?2 AND metric = 'tokens_issued'",
            vec![Value::Text(org_id.to_string()), Value::Integer(day)],
        )
        .await
    }
}
