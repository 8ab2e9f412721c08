//! PostgreSQL: revoked tokens ([`crate::store::RevocationStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::*;
use crate::store::RevocationStore;

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

    async fn purge_revocations(&self, now_secs: i64) -> Result<u64> {
        self.execute("DELETE FROM token_revocations WHERE expires_at <= $1", &[&now_secs]).await
    }
}
