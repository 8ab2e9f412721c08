//! SQLite: the daily call quota's ledger ([`crate::families::tiers::QuotaStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use crate::families::tiers::{grantable, Grant, GrantRequest, QuotaStore};
use crate::store::sqlite::*;

#[async_trait]
impl QuotaStore for SqliteStore {
    async fn grant_calls(&self, org_id: Uuid, day: i64, request: GrantRequest) -> Result<Grant> {
        // Durable: `seen` has nothing to restore.
        let GrantRequest { want, limit, owed, .. } = request;
        // On the one writer: nothing commits between the read and the update.
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let org = org_id.to_string();
            let granted: u64 = tx
                .query_row("SELECT granted FROM quota_usage WHERE org_id = ?1 AND day = ?2", params![org, day], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db_err)?
                .unwrap_or(0)
                + owed;
            let now = grantable(granted, want, limit);
            tx.execute(
                "INSERT INTO quota_usage (org_id, day, granted) VALUES (?1, ?2, ?3)
                 ON CONFLICT (org_id, day) DO UPDATE SET granted = granted + excluded.granted",
                params![org, day, owed + now],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(Grant { granted: now, total: granted + now, nodes: None })
        })
        .await
    }

    async fn calls_granted(&self, org_id: Uuid, day: i64) -> Result<u64> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT granted FROM quota_usage WHERE org_id = ?1 AND day = ?2",
                params![org_id.to_string(), day],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)
            .map(|g| g.unwrap_or(0))
        })
        .await
    }
}
