//! SQLite: resource servers ([`super::ResourceStore`]).

use super::store::{ResourceChange, ResourceServer, ResourceStore};
use crate::store::sqlite::*;

const COLS: &str = "id, org_id, identifier, name, scopes, access_token_ttl, dpop_required, created_at, updated_at";

type Parts = (Uuid, Uuid, String, String, String, Option<i64>, bool, i64, i64);

fn from_row(row: &Row<'_>) -> rusqlite::Result<Parts> {
    Ok((
        uuid_col(row, 0)?,
        uuid_col(row, 1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

fn from_parts(p: Parts) -> Result<ResourceServer> {
    Ok(ResourceServer {
        id: p.0,
        org_id: p.1,
        identifier: p.2,
        name: p.3,
        scopes: json_column(&p.4)?,
        access_token_ttl: p.5.map(|s| s.max(0) as u64),
        dpop_required: p.6,
        created_at: p.7,
        updated_at: p.8,
    })
}

#[async_trait]
impl ResourceStore for SqliteStore {
    async fn get_resource_server(&self, org_id: Uuid, id: Uuid) -> Result<Option<ResourceServer>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {COLS} FROM resource_servers WHERE org_id = ?1 AND id = ?2"))
                .map_err(db_err)?;
            Ok(collect(&mut stmt, params![org_id.to_string(), id.to_string()], from_row, from_parts)?.pop())
        })
        .await
    }

    async fn resource_server_by_identifier(&self, org_id: Uuid, identifier: &str) -> Result<Option<ResourceServer>> {
        let identifier = identifier.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {COLS} FROM resource_servers WHERE org_id = ?1 AND identifier = ?2"))
                .map_err(db_err)?;
            Ok(collect(&mut stmt, params![org_id.to_string(), identifier], from_row, from_parts)?.pop())
        })
        .await
    }

    async fn list_resource_servers(
        &self,
        org_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<ResourceServer>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {COLS} FROM resource_servers WHERE org_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                ))
                .map_err(db_err)?;
            let after = after.map(|a| a.to_string()).unwrap_or_default();
            collect(&mut stmt, params![org_id.to_string(), after, limit], from_row, from_parts)
        })
        .await
    }
}

/// Apply one of the family's changes on the writer's open transaction.
pub(crate) fn apply(conn: &Connection, change: &ResourceChange) -> Result<()> {
    match change {
        ResourceChange::Insert(r) => {
            conn.execute(
                &format!("INSERT INTO resource_servers ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                params![
                    r.id.to_string(),
                    r.org_id.to_string(),
                    r.identifier,
                    r.name,
                    json_text(&r.scopes)?,
                    r.access_token_ttl.map(|s| s as i64),
                    r.dpop_required,
                    r.created_at,
                    r.updated_at
                ],
            )
            .map_err(db_err)?;
        }
        ResourceChange::Update(r) => {
            let n = conn
                .execute(
                    "UPDATE resource_servers SET name = ?3, scopes = ?4, access_token_ttl = ?5, dpop_required = ?6, \
                     updated_at = ?7 WHERE org_id = ?1 AND id = ?2",
                    params![
                        r.org_id.to_string(),
                        r.id.to_string(),
                        r.name,
                        json_text(&r.scopes)?,
                        r.access_token_ttl.map(|s| s as i64),
                        r.dpop_required,
                        r.updated_at
                    ],
                )
                .map_err(db_err)?;
            one_row(n, "resource server")?;
        }
        ResourceChange::Delete { org_id, id } => {
            let n = conn
                .execute(
                    "DELETE FROM resource_servers WHERE org_id = ?1 AND id = ?2",
                    params![org_id.to_string(), id.to_string()],
                )
                .map_err(db_err)?;
            one_row(n, "resource server")?;
        }
    }
    Ok(())
}
