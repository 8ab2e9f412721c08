//! PostgreSQL: applications ([`super::ClientStore`]).

use super::store::{Client, ClientChange, ClientRecord, ClientStatus, ClientStore};
use crate::store::postgres::*;
use tokio_postgres::Transaction;

const COLS: &str = "id, org_id, client_id, name, redirect_uris, token_endpoint_auth_method, grant_types, scopes, \
                    resources, agent_id, jwks, first_party, status, secret_prefix, secret_hash, created_at, updated_at";

fn record(row: &Row) -> Result<ClientRecord> {
    Ok(ClientRecord {
        client: Client {
            id: row.get(0),
            org_id: row.get(1),
            client_id: row.get(2),
            name: row.get(3),
            redirect_uris: json_column(row.get(4))?,
            token_endpoint_auth_method: row.get(5),
            grant_types: json_column(row.get(6))?,
            scopes: json_column(row.get(7))?,
            resources: json_column(row.get(8))?,
            agent_id: row.get(9),
            jwks: row.get::<_, Option<&str>>(10).map(json_column).transpose()?,
            first_party: row.get(11),
            status: enum_column(row.get(12), ClientStatus::parse)?,
            secret_prefix: row.get(13),
            created_at: row.get(15),
            updated_at: row.get(16),
        },
        secret_hash: row.get(14),
    })
}

#[async_trait]
impl ClientStore for PostgresStore {
    async fn get_app_client(&self, org_id: Uuid, id: Uuid) -> Result<Option<Client>> {
        let sql = format!("SELECT {COLS} FROM app_clients WHERE org_id = $1 AND id = $2");
        self.query_opt(&sql, &[&org_id, &id]).await?.as_ref().map(|r| record(r).map(|r| r.client)).transpose()
    }

    async fn app_client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        let sql = format!("SELECT {COLS} FROM app_clients WHERE client_id = $1");
        self.query_opt(&sql, &[&client_id]).await?.as_ref().map(record).transpose()
    }

    async fn list_app_clients(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Client>> {
        let sql = format!(
            "SELECT {COLS} FROM app_clients WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        self.query(&sql, &[&org_id, &after, &i64::from(limit)])
            .await?
            .iter()
            .map(|r| record(r).map(|r| r.client))
            .collect()
    }
}

/// Apply one of the family's changes in the commit's transaction.
pub(crate) async fn apply(tx: &Transaction<'_>, change: &ClientChange) -> Result<()> {
    match change {
        ClientChange::Insert { client: c, secret_hash } => {
            let jwks = c.jwks.as_ref().map(json_text).transpose()?;
            tx.execute(
                &format!(
                    "INSERT INTO app_clients ({COLS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
                ),
                &[
                    &c.id,
                    &c.org_id,
                    &c.client_id,
                    &c.name,
                    &json_text(&c.redirect_uris)?,
                    &c.token_endpoint_auth_method,
                    &json_text(&c.grant_types)?,
                    &json_text(&c.scopes)?,
                    &json_text(&c.resources)?,
                    &c.agent_id,
                    &jwks,
                    &c.first_party,
                    &c.status.as_str(),
                    &c.secret_prefix,
                    secret_hash,
                    &c.created_at,
                    &c.updated_at,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        ClientChange::Update(c) => {
            let jwks = c.jwks.as_ref().map(json_text).transpose()?;
            let n = tx
                .execute(
                    "UPDATE app_clients SET name = $3, redirect_uris = $4, grant_types = $5, scopes = $6, resources = $7, \
                     jwks = $8, first_party = $9, status = $10, updated_at = $11 WHERE org_id = $1 AND id = $2",
                    &[
                        &c.org_id,
                        &c.id,
                        &c.name,
                        &json_text(&c.redirect_uris)?,
                        &json_text(&c.grant_types)?,
                        &json_text(&c.scopes)?,
                        &json_text(&c.resources)?,
                        &jwks,
                        &c.first_party,
                        &c.status.as_str(),
                        &c.updated_at,
                    ],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "client")?;
        }
        ClientChange::SetSecret { org_id, id, prefix, secret_hash, at } => {
            let n = tx
                .execute(
                    "UPDATE app_clients SET secret_prefix = $3, secret_hash = $4, updated_at = $5 \
                     WHERE org_id = $1 AND id = $2",
                    &[org_id, id, prefix, secret_hash, at],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "client")?;
        }
        ClientChange::Delete { org_id, id } => {
            let n = tx
                .execute("DELETE FROM app_clients WHERE org_id = $1 AND id = $2", &[org_id, id])
                .await
                .map_err(db_err)?;
            one_row(n, "client")?;
        }
    }
    Ok(())
}
