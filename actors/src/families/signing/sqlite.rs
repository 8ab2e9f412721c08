//! SQLite: signing keys ([`crate::families::signing::SigningKeyStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::{KeyRecord, SigningKeyStore};
use crate::store::sqlite::*;

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn insert_signing_key(&self, key: &KeyRecord) -> Result<()> {
        let k = key.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO signing_keys (kid, alg, private_key, key_ref, created_at, activates_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![k.kid, k.alg, k.private_key, k.key_ref, k.created_at, k.activates_at],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn signing_keys(&self) -> Result<Vec<KeyRecord>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT kid, alg, private_key, key_ref, created_at, activates_at FROM signing_keys ORDER BY activates_at, kid",
                )
                .map_err(db_err)?;
            collect(
                &mut stmt,
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                |(kid, alg, private_key, key_ref, created_at, activates_at)| {
                    Ok(KeyRecord { kid, alg, private_key, key_ref, created_at, activates_at })
                },
            )
        })
        .await
    }
}
