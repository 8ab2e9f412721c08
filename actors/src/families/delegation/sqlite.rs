//! SQLite: delegation chains ([`crate::families::delegation::DelegationStore`]; links are written by
//! `changes.rs`).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::DelegationChange;
use crate::families::delegation::rules::{Delegation, DelegationStatus, TokenFormat};
use crate::families::delegation::{DelegationFilter, DelegationStore};
use crate::store::sqlite::*;

pub(crate) const DELEGATION_COLS: &str =
    "id, org_id, chain_id, parent_id, delegator_id, delegatee_id, scope, audience, \
     depth, max_depth, token_format, token_id, created_at, expires_at, status, revoked_at";

/// A row, with its format and status still text (checked by [`with_status`]).
fn delegation_from_row(row: &Row<'_>) -> rusqlite::Result<(Delegation, String, String)> {
    let parent: Option<String> = row.get(3)?;
    let parent_id = parent
        .map(|p| Uuid::parse_str(&p))
        .transpose()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e)))?;
    let link = Delegation {
        id: uuid_col(row, 0)?,
        org_id: uuid_col(row, 1)?,
        chain_id: uuid_col(row, 2)?,
        parent_id,
        delegator_id: uuid_col(row, 4)?,
        delegatee_id: uuid_col(row, 5)?,
        scope: row.get(6)?,
        audience: row.get(7)?,
        depth: row.get(8)?,
        max_depth: row.get(9)?,
        token_format: TokenFormat::Jwt,
        token_id: row.get(11)?,
        created_at: row.get(12)?,
        expires_at: row.get(13)?,
        status: DelegationStatus::Active,
        revoked_at: row.get(15)?,
    };
    Ok((link, row.get(10)?, row.get(14)?))
}

fn with_status((mut link, format, status): (Delegation, String, String)) -> Result<Delegation> {
    link.token_format = enum_column(&format, TokenFormat::parse)?;
    link.status = enum_column(&status, DelegationStatus::parse)?;
    Ok(link)
}

#[async_trait]
impl DelegationStore for SqliteStore {
    async fn live_delegations(&self, org_id: Uuid, now: Millis) -> Result<Vec<Delegation>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {DELEGATION_COLS} FROM delegation_chains WHERE org_id = ?1 AND expires_at > ?2"
                ))
                .map_err(db_err)?;
            collect(&mut stmt, params![org_id.to_string(), now], delegation_from_row, with_status)
        })
        .await
    }

    async fn get_delegation(&self, org_id: Uuid, id: Uuid) -> Result<Option<Delegation>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {DELEGATION_COLS} FROM delegation_chains WHERE id = ?1 AND org_id = ?2"
                ))
                .map_err(db_err)?;
            Ok(collect(&mut stmt, params![id.to_string(), org_id.to_string()], delegation_from_row, with_status)?
                .into_iter()
                .next())
        })
        .await
    }

    async fn revoked_biscuits(&self, now: Millis) -> Result<Vec<String>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT token_id FROM delegation_chains
                     WHERE token_format = 'biscuit' AND status = 'revoked' AND expires_at > ?1 ORDER BY token_id",
                )
                .map_err(db_err)?;
            let ids = stmt.query_map(params![now], |r| r.get(0)).map_err(db_err)?;
            ids.collect::<rusqlite::Result<Vec<String>>>().map_err(db_err)
        })
        .await
    }

    async fn list_delegations(
        &self,
        org_id: Uuid,
        filter: &DelegationFilter,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Delegation>> {
        let filter = filter.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {DELEGATION_COLS} FROM delegation_chains
                     WHERE org_id = ?1 AND id > ?2
                       AND (?3 IS NULL OR delegator_id = ?3) AND (?4 IS NULL OR delegatee_id = ?4)
                       AND (?5 IS NULL
                            OR (?5 = 'revoked' AND status = 'revoked')
                            OR (?5 = 'active' AND status = 'active' AND expires_at > ?6)
                            OR (?5 = 'expired' AND status = 'active' AND expires_at <= ?6))
                     ORDER BY id LIMIT ?7"
                ))
                .map_err(db_err)?;
            let args = params![
                org_id.to_string(),
                after.map(|a| a.to_string()).unwrap_or_default(),
                filter.delegator_id.map(|a| a.to_string()),
                filter.delegatee_id.map(|a| a.to_string()),
                filter.status.map(DelegationStatus::as_str),
                filter.now,
                limit
            ];
            collect(&mut stmt, args, delegation_from_row, with_status)
        })
        .await
    }
}

/// Apply one of the family's changes on the writer's open transaction.
pub(crate) fn apply(conn: &Connection, change: &DelegationChange) -> Result<()> {
    match change {
        DelegationChange::InsertDelegation(d) => {
            if let Some(parent) = d.parent_id {
                // The one writer: nothing commits between this read and the insert.
                let status: Option<String> = conn
                    .query_row(
                        "SELECT status FROM delegation_chains WHERE id = ?1 AND org_id = ?2",
                        params![parent.to_string(), d.org_id.to_string()],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db_err)?;
                if status.as_deref() != Some("active") {
                    return Err(EngineError::Conflict("the delegation this one is made from is revoked".into()));
                }
            }
            conn.prepare_cached(&format!(
                "INSERT INTO delegation_chains ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                crate::families::delegation::sqlite::DELEGATION_COLS
            ))
            .and_then(|mut s| {
                s.execute(params![
                    d.id.to_string(),
                    d.org_id.to_string(),
                    d.chain_id.to_string(),
                    d.parent_id.map(|p| p.to_string()),
                    d.delegator_id.to_string(),
                    d.delegatee_id.to_string(),
                    d.scope,
                    d.audience,
                    d.depth,
                    d.max_depth,
                    d.token_format.as_str(),
                    d.token_id,
                    d.created_at,
                    d.expires_at,
                    d.status.as_str(),
                    d.revoked_at
                ])
            })
            .map_err(db_err)?;
        }
        DelegationChange::RevokeDelegation { org_id, id, now } => {
            let exists: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM delegation_chains WHERE id = ?1 AND org_id = ?2)",
                    params![id.to_string(), org_id.to_string()],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            if !exists {
                return Err(EngineError::not_found("delegation"));
            }
            conn.execute(
                "WITH RECURSIVE below(id) AS (
                     SELECT ?1
                     UNION SELECT c.id FROM delegation_chains c JOIN below b ON c.parent_id = b.id
                 )
                 UPDATE delegation_chains SET status = 'revoked', revoked_at = ?3
                 WHERE org_id = ?2 AND status = 'active' AND id IN (SELECT id FROM below)",
                params![id.to_string(), org_id.to_string(), now],
            )
            .map_err(db_err)?;
        }
    }
    Ok(())
}
