//! SQLite: revoked tokens ([`crate::store::RevocationStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::*;
use crate::store::RevocationStore;

#[async_trait]
impl RevocationStore for SqliteStore {
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
}
