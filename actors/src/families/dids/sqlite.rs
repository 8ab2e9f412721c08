//! SQLite: agents' DID keys ([`crate::families::dids::DidStore`]; written by `changes.rs`).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::DidChange;
use crate::families::dids::{DidKeyRecord, DidStore};
use crate::store::sqlite::*;
use crate::store::SealedSecret;

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
                crate::families::directory::sqlite::agent_from_row,
            )
            .optional()
            .map_err(db_err)?
            .map(crate::families::directory::sqlite::agent_from_parts)
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

/// Apply one of the family's changes on the writer's open transaction.
pub(crate) fn apply(conn: &Connection, change: &DidChange) -> Result<()> {
    match change {
        DidChange::InsertDidKey(k) => {
            let jwk = json_text(&k.public_jwk)?;
            let sealed = k.sealed.as_ref();
            conn.prepare_cached(
                "INSERT INTO agent_did_keys (agent_id, key_id, org_id, public_jwk, sealed_kid, sealed, sealed_ref, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    k.agent_id.to_string(),
                    k.key_id,
                    k.org_id.to_string(),
                    jwk,
                    sealed.map(|s| &s.kid),
                    sealed.map(|s| &s.sealed),
                    sealed.and_then(|s| s.key_ref.as_ref()),
                    k.created_at
                ])
            })
            .map_err(db_err)?;
        }
        DidChange::RemoveDidKey { agent_id, key_id } => {
            let n = conn
                .execute(
                    "DELETE FROM agent_did_keys WHERE agent_id = ?1 AND key_id = ?2",
                    params![agent_id.to_string(), key_id],
                )
                .map_err(db_err)?;
            one_row(n, "DID key")?;
        }
    }
    Ok(())
}
