//! PostgreSQL: what the compliance report reads ([`crate::families::compliance::ComplianceStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use crate::families::compliance::rules::AgentFacts;
use crate::families::compliance::ComplianceStore;
use crate::store::postgres::*;

#[async_trait]
impl ComplianceStore for PostgresStore {
    async fn agent_facts(&self, org_id: Uuid) -> Result<Vec<AgentFacts>> {
        let rows = self.query("SELECT id, status, scopes FROM agents WHERE org_id = $1", &[&org_id]).await?;
        rows.iter()
            .map(|r| {
                Ok(AgentFacts {
                    id: r.get(0),
                    status: enum_column(r.get(1), AgentStatus::parse)?,
                    scopes: json_column(r.get(2))?,
                })
            })
            .collect()
    }

    async fn org_credentials(&self, org_id: Uuid) -> Result<Vec<Credential>> {
        let sql = format!("SELECT {CRED_COLS} FROM credentials WHERE org_id = $1 AND status = 'active'");
        self.query(&sql, &[&org_id]).await?.iter().map(crate::families::directory::postgres::credential).collect()
    }

    async fn agents_with_did_keys(&self, org_id: Uuid) -> Result<Vec<Uuid>> {
        let rows = self.query("SELECT DISTINCT agent_id FROM agent_did_keys WHERE org_id = $1", &[&org_id]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn agents_with_tokens_since(&self, org_id: Uuid, day: i64) -> Result<Vec<Uuid>> {
        let rows = self
            .query(
                "SELECT DISTINCT agent_id FROM analytics_events
                 WHERE org_id = $1 AND day >= $2 AND metric = 'tokens_issued'",
                &[&org_id, &day],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
