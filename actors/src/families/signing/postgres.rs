//! PostgreSQL: signing keys ([`crate::families::signing::SigningKeyStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::{KeyRecord, SigningKeyStore};
use crate::store::postgres::*;

#[async_trait]
impl SigningKeyStore for PostgresStore {
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
}
