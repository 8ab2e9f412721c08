//! PostgreSQL: revoked tokens ([`crate::families::revocation::RevocationStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::RevocationChange;
use super::{Revocation, RevocationStore};
use crate::store::postgres::*;
use tokio_postgres::Transaction;

#[async_trait]
impl RevocationStore for PostgresStore {
    async fn revocations(&self, now_secs: i64) -> Result<Vec<Revocation>> {
        Ok(self
            .query("SELECT jti, org_id, expires_at FROM token_revocations WHERE expires_at > $1", &[&now_secs])
            .await?
            .iter()
            .map(|r| Revocation { jti: r.get(0), org_id: r.get(1), expires_at: r.get(2) })
            .collect())
    }

    async fn purge_revocations(&self, now_secs: i64, limit: usize) -> Result<u64> {
        self.execute(
            "DELETE FROM token_revocations WHERE jti IN \
             (SELECT jti FROM token_revocations WHERE expires_at <= $1 LIMIT $2)",
            &[&now_secs, &(limit as i64)],
        )
        .await
    }
}

/// Apply one of the family's changes on the open transaction.
pub(crate) async fn apply(tx: &Transaction<'_>, change: &RevocationChange) -> Result<()> {
    match change {
        RevocationChange::RevokeToken { revocation: r, now } => {
            tx.execute(
                "INSERT INTO token_revocations (jti, org_id, expires_at, revoked_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (jti) DO NOTHING",
                &[&r.jti, &r.org_id, &r.expires_at, now],
            )
            .await
            .map_err(db_err)?;
        }
    }
    Ok(())
}
