//! PostgreSQL: resource servers ([`super::ResourceStore`]).

use super::store::{ResourceChange, ResourceServer, ResourceStore};
use crate::store::postgres::*;
use tokio_postgres::Transaction;

const COLS: &str = "id, org_id, identifier, name, scopes, access_token_ttl, dpop_required, created_at, updated_at";

fn resource(row: &Row) -> Result<ResourceServer> {
    Ok(ResourceServer {
        id: row.get(0),
        org_id: row.get(1),
        identifier: row.get(2),
        name: row.get(3),
        scopes: json_column(row.get(4))?,
        access_token_ttl: row.get::<_, Option<i64>>(5).map(|s| s.max(0) as u64),
        dpop_required: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
    })
}

#[async_trait]
impl ResourceStore for PostgresStore {
    async fn get_resource_server(&self, org_id: Uuid, id: Uuid) -> Result<Option<ResourceServer>> {
        let sql = format!("SELECT {COLS} FROM resource_servers WHERE org_id = $1 AND id = $2");
        self.query_opt(&sql, &[&org_id, &id]).await?.as_ref().map(resource).transpose()
    }

    async fn resource_server_by_identifier(&self, org_id: Uuid, identifier: &str) -> Result<Option<ResourceServer>> {
        let sql = format!("SELECT {COLS} FROM resource_servers WHERE org_id = $1 AND identifier = $2");
        self.query_opt(&sql, &[&org_id, &identifier]).await?.as_ref().map(resource).transpose()
    }

    async fn list_resource_servers(
        &self,
        org_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<ResourceServer>> {
        let sql = format!(
            "SELECT {COLS} FROM resource_servers WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        self.query(&sql, &[&org_id, &after, &i64::from(limit)]).await?.iter().map(resource).collect()
    }
}

/// Apply one of the family's changes in the commit's transaction.
pub(crate) async fn apply(tx: &Transaction<'_>, change: &ResourceChange) -> Result<()> {
    match change {
        ResourceChange::Insert(r) => {
            tx.execute(
                &format!("INSERT INTO resource_servers ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
                &[
                    &r.id,
                    &r.org_id,
                    &r.identifier,
                    &r.name,
                    &json_text(&r.scopes)?,
                    &r.access_token_ttl.map(|s| s as i64),
                    &r.dpop_required,
                    &r.created_at,
                    &r.updated_at,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        ResourceChange::Update(r) => {
            let n = tx
                .execute(
                    "UPDATE resource_servers SET name = $3, scopes = $4, access_token_ttl = $5, dpop_required = $6, \
                     updated_at = $7 WHERE org_id = $1 AND id = $2",
                    &[
                        &r.org_id,
                        &r.id,
                        &r.name,
                        &json_text(&r.scopes)?,
                        &r.access_token_ttl.map(|s| s as i64),
                        &r.dpop_required,
                        &r.updated_at,
                    ],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "resource server")?;
        }
        ResourceChange::Delete { org_id, id } => {
            let n = tx
                .execute("DELETE FROM resource_servers WHERE org_id = $1 AND id = $2", &[org_id, id])
                .await
                .map_err(db_err)?;
            one_row(n, "resource server")?;
        }
    }
    Ok(())
}
