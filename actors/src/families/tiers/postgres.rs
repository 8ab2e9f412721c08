//! PostgreSQL: the daily call quota's ledger ([`crate::families::tiers::QuotaStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use crate::families::tiers::{grantable, Grant, GrantRequest, QuotaStore};
use crate::store::postgres::*;

#[async_trait]
impl QuotaStore for PostgresStore {
    async fn grant_calls(&self, org_id: Uuid, day: i64, request: GrantRequest) -> Result<Grant> {
        // Durable: `seen` has nothing to restore.
        let GrantRequest { want, limit, owed, .. } = request;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        // The row lock orders the grants of every node for this organization and day.
        tx.execute(
            "INSERT INTO quota_usage (org_id, day, granted) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
            &[&org_id, &day],
        )
        .await
        .map_err(db_err)?;
        let granted: i64 = tx
            .query_one("SELECT granted FROM quota_usage WHERE org_id = $1 AND day = $2 FOR UPDATE", &[&org_id, &day])
            .await
            .map_err(db_err)?
            .get(0);
        let granted = granted.max(0) as u64 + owed;
        let now = grantable(granted, want, limit);
        tx.execute(
            "UPDATE quota_usage SET granted = granted + $3 WHERE org_id = $1 AND day = $2",
            &[&org_id, &day, &((owed + now) as i64)],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Grant { granted: now, total: granted + now, nodes: None })
    }

    async fn calls_granted(&self, org_id: Uuid, day: i64) -> Result<u64> {
        let row =
            self.query_opt("SELECT granted FROM quota_usage WHERE org_id = $1 AND day = $2", &[&org_id, &day]).await?;
        Ok(row.map(|r| r.get::<_, i64>(0).max(0) as u64).unwrap_or(0))
    }
}
