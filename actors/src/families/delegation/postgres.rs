//! PostgreSQL: delegation chains ([`crate::families::delegation::DelegationStore`]; links are written
//! by `changes.rs`).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::DelegationChange;
use crate::families::delegation::rules::{Delegation, DelegationStatus, TokenFormat};
use crate::families::delegation::{DelegationFilter, DelegationStore};
use crate::store::postgres::*;
use tokio_postgres::Transaction;

pub(crate) const DELEGATION_COLS: &str =
    "id, org_id, chain_id, parent_id, delegator_id, delegatee_id, scope, audience, \
     depth, max_depth, token_format, token_id, created_at, expires_at, status, revoked_at";

fn delegation_from_row(row: &Row) -> Result<Delegation> {
    Ok(Delegation {
        id: row.get(0),
        org_id: row.get(1),
        chain_id: row.get(2),
        parent_id: row.get(3),
        delegator_id: row.get(4),
        delegatee_id: row.get(5),
        scope: row.get(6),
        audience: row.get(7),
        depth: row.get::<_, i32>(8).max(0) as u32,
        max_depth: row.get::<_, i32>(9).max(0) as u32,
        token_format: enum_column(row.get(10), TokenFormat::parse)?,
        token_id: row.get(11),
        created_at: row.get(12),
        expires_at: row.get(13),
        status: enum_column(row.get(14), DelegationStatus::parse)?,
        revoked_at: row.get(15),
    })
}

#[async_trait]
impl DelegationStore for PostgresStore {
    async fn live_delegations(&self, org_id: Uuid, now: Millis) -> Result<Vec<Delegation>> {
        let sql = format!("SELECT {DELEGATION_COLS} FROM delegation_chains WHERE org_id = $1 AND expires_at > $2");
        self.query(&sql, &[&org_id, &now]).await?.iter().map(delegation_from_row).collect()
    }

    async fn get_delegation(&self, org_id: Uuid, id: Uuid) -> Result<Option<Delegation>> {
        let sql = format!("SELECT {DELEGATION_COLS} FROM delegation_chains WHERE id = $1 AND org_id = $2");
        self.query_opt(&sql, &[&id, &org_id]).await?.as_ref().map(delegation_from_row).transpose()
    }

    async fn revoked_biscuits(&self, now: Millis) -> Result<Vec<String>> {
        let rows = self
            .query(
                "SELECT token_id FROM delegation_chains
                 WHERE token_format = 'biscuit' AND status = 'revoked' AND expires_at > $1 ORDER BY token_id",
                &[&now],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn list_delegations(
        &self,
        org_id: Uuid,
        filter: &DelegationFilter,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Delegation>> {
        let sql = format!(
            "SELECT {DELEGATION_COLS} FROM delegation_chains
             WHERE org_id = $1 AND id > $2
               AND ($3::uuid IS NULL OR delegator_id = $3) AND ($4::uuid IS NULL OR delegatee_id = $4)
               AND ($5::text IS NULL
                    OR ($5 = 'revoked' AND status = 'revoked')
                    OR ($5 = 'active' AND status = 'active' AND expires_at > $6)
                    OR ($5 = 'expired' AND status = 'active' AND expires_at <= $6))
             ORDER BY id LIMIT $7"
        );
        let after = after.unwrap_or(Uuid::nil());
        let status = filter.status.map(DelegationStatus::as_str);
        let rows = self
            .query(
                &sql,
                &[&org_id, &after, &filter.delegator_id, &filter.delegatee_id, &status, &filter.now, &i64::from(limit)],
            )
            .await?;
        rows.iter().map(delegation_from_row).collect()
    }
}

/// Apply one of the family's changes on the open transaction.
pub(crate) async fn apply(tx: &Transaction<'_>, change: &DelegationChange) -> Result<()> {
    match change {
        DelegationChange::InsertDelegation(d) => {
            if let Some(parent) = d.parent_id {
                // The parent's row lock orders this insert after (or before) a revocation
                // of the parent on any node.
                let row = tx
                    .query_opt(
                        "SELECT status FROM delegation_chains WHERE id = $1 AND org_id = $2 FOR UPDATE",
                        &[&parent, &d.org_id],
                    )
                    .await
                    .map_err(db_err)?;
                if row.map(|r| r.get::<_, String>(0)).as_deref() != Some("active") {
                    return Err(EngineError::Conflict("the delegation this one is made from is revoked".into()));
                }
            }
            let (depth, max_depth) = (d.depth as i32, d.max_depth as i32);
            tx.execute(
                &format!(
                    "INSERT INTO delegation_chains ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                    crate::families::delegation::postgres::DELEGATION_COLS
                ),
                &[
                    &d.id,
                    &d.org_id,
                    &d.chain_id,
                    &d.parent_id,
                    &d.delegator_id,
                    &d.delegatee_id,
                    &d.scope,
                    &d.audience,
                    &depth,
                    &max_depth,
                    &d.token_format.as_str(),
                    &d.token_id,
                    &d.created_at,
                    &d.expires_at,
                    &d.status.as_str(),
                    &d.revoked_at,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        DelegationChange::RevokeDelegation { org_id, id, now } => {
            let exists = tx
                .query_opt("SELECT 1 FROM delegation_chains WHERE id = $1 AND org_id = $2 FOR UPDATE", &[id, org_id])
                .await
                .map_err(db_err)?;
            if exists.is_none() {
                return Err(EngineError::not_found("delegation"));
            }
            tx.execute(
                "WITH RECURSIVE below(id) AS (
                     SELECT $1::uuid
                     UNION SELECT c.id FROM delegation_chains c JOIN below b ON c.parent_id = b.id
                 )
                 UPDATE delegation_chains SET status = 'revoked', revoked_at = $3
                 WHERE org_id = $2 AND status = 'active' AND id IN (SELECT id FROM below)",
                &[id, org_id, now],
            )
            .await
            .map_err(db_err)?;
        }
    }
    Ok(())
}
