//! SQLite: applications ([`super::ClientStore`]).

use super::store::{Client, ClientChange, ClientRecord, ClientStatus, ClientStore};
use crate::store::sqlite::*;

const COLS: &str = "id, org_id, client_id, name, redirect_uris, token_endpoint_auth_method, grant_types, scopes, \
                    resources, agent_id, jwks, first_party, status, secret_prefix, secret_hash, created_at, updated_at";

/// A row as read, before its JSON columns are parsed.
struct Parts {
    id: Uuid,
    org_id: Uuid,
    client_id: String,
    name: String,
    redirect_uris: String,
    method: String,
    grant_types: String,
    scopes: String,
    resources: String,
    agent_id: Option<String>,
    jwks: Option<String>,
    first_party: bool,
    status: String,
    secret_prefix: Option<String>,
    secret_hash: Option<Vec<u8>>,
    created_at: i64,
    updated_at: i64,
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Parts> {
    Ok(Parts {
        id: uuid_col(row, 0)?,
        org_id: uuid_col(row, 1)?,
        client_id: row.get(2)?,
        name: row.get(3)?,
        redirect_uris: row.get(4)?,
        method: row.get(5)?,
        grant_types: row.get(6)?,
        scopes: row.get(7)?,
        resources: row.get(8)?,
        agent_id: row.get(9)?,
        jwks: row.get(10)?,
        first_party: row.get(11)?,
        status: row.get(12)?,
        secret_prefix: row.get(13)?,
        secret_hash: row.get(14)?,
        created_at: row.get(15)?,
        updated_at: row.get(16)?,
    })
}

fn record(p: Parts) -> Result<ClientRecord> {
    Ok(ClientRecord {
        client: Client {
            id: p.id,
            org_id: p.org_id,
            client_id: p.client_id,
            name: p.name,
            redirect_uris: json_column(&p.redirect_uris)?,
            token_endpoint_auth_method: p.method,
            grant_types: json_column(&p.grant_types)?,
            scopes: json_column(&p.scopes)?,
            resources: json_column(&p.resources)?,
            agent_id: p.agent_id.as_deref().map(Uuid::parse_str).transpose().map_err(EngineError::internal)?,
            jwks: p.jwks.as_deref().map(json_column).transpose()?,
            first_party: p.first_party,
            status: enum_column(&p.status, ClientStatus::parse)?,
            secret_prefix: p.secret_prefix,
            created_at: p.created_at,
            updated_at: p.updated_at,
        },
        secret_hash: p.secret_hash,
    })
}

fn client(p: Parts) -> Result<Client> {
    record(p).map(|r| r.client)
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn get_app_client(&self, org_id: Uuid, id: Uuid) -> Result<Option<Client>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {COLS} FROM app_clients WHERE org_id = ?1 AND id = ?2"))
                .map_err(db_err)?;
            Ok(collect(&mut stmt, params![org_id.to_string(), id.to_string()], from_row, client)?.pop())
        })
        .await
    }

    async fn app_client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        let client_id = client_id.to_string();
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {COLS} FROM app_clients WHERE client_id = ?1")).map_err(db_err)?;
            Ok(collect(&mut stmt, params![client_id], from_row, record)?.pop())
        })
        .await
    }

    async fn list_app_clients(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Client>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {COLS} FROM app_clients WHERE org_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                ))
                .map_err(db_err)?;
            let after = after.map(|a| a.to_string()).unwrap_or_default();
            collect(&mut stmt, params![org_id.to_string(), after, limit], from_row, client)
        })
        .await
    }
}

/// Apply one of the family's changes on the writer's open transaction.
pub(crate) fn apply(conn: &Connection, change: &ClientChange) -> Result<()> {
    match change {
        ClientChange::Insert { client: c, secret_hash } => {
            conn.execute(
                &format!(
                    "INSERT INTO app_clients ({COLS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
                ),
                params![
                    c.id.to_string(),
                    c.org_id.to_string(),
                    c.client_id,
                    c.name,
                    json_text(&c.redirect_uris)?,
                    c.token_endpoint_auth_method,
                    json_text(&c.grant_types)?,
                    json_text(&c.scopes)?,
                    json_text(&c.resources)?,
                    c.agent_id.map(|a| a.to_string()),
                    c.jwks.as_ref().map(json_text).transpose()?,
                    c.first_party,
                    c.status.as_str(),
                    c.secret_prefix,
                    secret_hash,
                    c.created_at,
                    c.updated_at
                ],
            )
            .map_err(db_err)?;
        }
        ClientChange::Update(c) => {
            let n = conn
                .execute(
                    "UPDATE app_clients SET name = ?3, redirect_uris = ?4, grant_types = ?5, scopes = ?6, resources = ?7, \
                     jwks = ?8, first_party = ?9, status = ?10, updated_at = ?11 WHERE org_id = ?1 AND id = ?2",
                    params![
                        c.org_id.to_string(),
                        c.id.to_string(),
                        c.name,
                        json_text(&c.redirect_uris)?,
                        json_text(&c.grant_types)?,
                        json_text(&c.scopes)?,
                        json_text(&c.resources)?,
                        c.jwks.as_ref().map(json_text).transpose()?,
                        c.first_party,
                        c.status.as_str(),
                        c.updated_at
                    ],
                )
                .map_err(db_err)?;
            one_row(n, "client")?;
        }
        ClientChange::SetSecret { org_id, id, prefix, secret_hash, at } => {
            let n = conn
                .execute(
                    "UPDATE app_clients SET secret_prefix = ?3, secret_hash = ?4, updated_at = ?5 \
                     WHERE org_id = ?1 AND id = ?2",
                    params![org_id.to_string(), id.to_string(), prefix, secret_hash, at],
                )
                .map_err(db_err)?;
            one_row(n, "client")?;
        }
        ClientChange::Delete { org_id, id } => {
            let n = conn
                .execute(
                    "DELETE FROM app_clients WHERE org_id = ?1 AND id = ?2",
                    params![org_id.to_string(), id.to_string()],
                )
                .map_err(db_err)?;
            one_row(n, "client")?;
        }
    }
    Ok(())
}
