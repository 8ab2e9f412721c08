//! SQLite: agents' DID keys ([`crate::store::DidStore`]; written by `changes.rs`).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::*;
use crate::store::{DidKeyRecord, DidStore, SealedSecret};

/// A row's columns, its JWK still JSON text.
type KeyRow = (Uuid, Uuid, String, String, Option<String>, Option<Vec<u8>>, Option<String>, i64);

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok((
        uuid_col(row, 0)?,
        uuid_col(row, 1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn with_jwk((agent_id, org_id, key_id, jwk, kid, sealed, key_ref, created_at): KeyRow) -> Result<DidKeyRecord> {
    let sealed = kid.map(|kid| SealedSecret { kid, sealed: sealed.unwrap_or_default(), key_ref });
    Ok(DidKeyRecord { agent_id, org_id, key_id, public_jwk: json_column(&jwk)?, sealed, created_at })
}

#[async_trait]
impl DidStore for SqliteStore {
    async fn did_keys(&self, agent_id: Uuid) -> Result<Vec<DidKeyRecord>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT agent_id, org_id, key_id, public_jwk, sealed_kid, sealed, sealed_ref, created_at
                     FROM agent_did_keys WHERE agent_id = ?1 ORDER BY created_at, key_id",
                )
                .map_err(db_err)?;
            collect(&mut stmt, params![agent_id.to_string()], key_from_row, with_jwk)
        })
        .await
    }

    async fn did_agent(&self, agent_id: Uuid) -> Result<Option<Agent>> {
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {AGENT_COLS} FROM agents WHERE id = ?1"),
                params![agent_id.to_string()],
                super::directory::agent_from_row,
            )
            .optional()
            .map_err(db_err)?
            .map(super::directory::agent_from_parts)
            .transpose()
        })
        .await
    }

    async fn agent_deleted(&self, agent_id: Uuid) -> Result<bool> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT 1 FROM deleted_agents WHERE agent_id = ?1",
                params![agent_id.to_string()],
                |_| Ok(()),
            )
            .optional()
            .map(|row| row.is_some())
            .map_err(db_err)
        })
        .await
    }
}
