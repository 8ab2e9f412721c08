//! SQLite: revoked tokens ([`crate::families::revocation::RevocationStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::RevocationChange;
use super::{Revocation, RevocationStore};
use crate::store::sqlite::*;

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

    async fn purge_revocations(&self, now_secs: i64, limit: usize) -> Result<u64> {
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM token_revocations WHERE jti IN \
                 (SELECT jti FROM token_revocations WHERE expires_at <= ?1 LIMIT ?2)",
                params![now_secs, limit as i64],
            )
            .map(|n| n as u64)
            .map_err(db_err)
        })
        .await
    }
}

/// Apply one of the family's changes on the writer's open transaction.
pub(crate) fn apply(conn: &Connection, change: &RevocationChange) -> Result<()> {
    match change {
        RevocationChange::RevokeToken { revocation: r, now } => {
            conn.prepare_cached(
                "INSERT INTO token_revocations (jti, org_id, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (jti) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![r.jti, r.org_id.to_string(), r.expires_at, now]))
            .map_err(db_err)?;
        }
    }
    Ok(())
}
