//! PostgreSQL: agents' DID keys ([`crate::families::dids::DidStore`]; written by `changes.rs`).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::DidChange;
use crate::families::dids::{DidKeyRecord, DidStore};
use crate::store::postgres::*;
use crate::store::SealedSecret;
use tokio_postgres::Transaction;

fn key(row: &Row) -> Result<DidKeyRecord> {
    let sealed = row.get::<_, Option<String>>(4).map(|kid| SealedSecret {
        kid,
        sealed: row.get::<_, Option<Vec<u8>>>(5).unwrap_or_default(),
        key_ref: row.get(6),
    });
    Ok(DidKeyRecord {
        agent_id: row.get(0),
        org_id: row.get(1),
        key_id: row.get(2),
        public_jwk: json_column(row.get(3))?,
        sealed,
        created_at: row.get(7),
    })
}

#[async_trait]
impl DidStore for PostgresStore {
    async fn did_keys(&self, agent_id: Uuid) -> Result<Vec<DidKeyRecord>> {
        self.query(
            "SELECT agent_id, org_id, key_id, public_jwk, sealed_kid, sealed, sealed_ref, created_at
             FROM agent_did_keys WHERE agent_id = $1 ORDER BY created_at, key_id",
            &[&agent_id],
        )
        .await?
        .iter()
        .map(key)
        .collect()
    }

    async fn did_agent(&self, agent_id: Uuid) -> Result<Option<Agent>> {
        self.query_opt(&format!("SELECT {AGENT_COLS} FROM agents WHERE id = $1"), &[&agent_id])
            .await?
            .as_ref()
            .map(crate::families::directory::postgres::agent)
            .transpose()
    }

    async fn agent_deleted(&self, agent_id: Uuid) -> Result<bool> {
        Ok(self.query_opt("SELECT 1 FROM deleted_agents WHERE agent_id = $1", &[&agent_id]).await?.is_some())
    }
}

/// Apply one of the family's changes on the open transaction.
pub(crate) async fn apply(tx: &Transaction<'_>, change: &DidChange) -> Result<()> {
    match change {
        DidChange::InsertDidKey(k) => {
            let sealed = k.sealed.as_ref();
            tx.execute(
                "INSERT INTO agent_did_keys (agent_id, key_id, org_id, public_jwk, sealed_kid, sealed, sealed_ref, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &k.agent_id,
                    &k.key_id,
                    &k.org_id,
                    &json_text(&k.public_jwk)?,
                    &sealed.map(|s| &s.kid),
                    &sealed.map(|s| &s.sealed),
                    &sealed.and_then(|s| s.key_ref.as_ref()),
                    &k.created_at,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        DidChange::RemoveDidKey { agent_id, key_id } => {
            let n = tx
                .execute("DELETE FROM agent_did_keys WHERE agent_id = $1 AND key_id = $2", &[agent_id, key_id])
                .await
                .map_err(db_err)?;
            one_row(n, "DID key")?;
        }
    }
    Ok(())
}
