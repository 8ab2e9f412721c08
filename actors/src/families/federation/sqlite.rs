//! SQLite: federation partners ([`crate::families::federation::FederationStore`]; partners are written
//! by `changes.rs`).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::{same_issuer, PartnerChange};
use crate::families::federation::rules::Partner;
use crate::families::federation::FederationStore;
use crate::store::sqlite::*;

const PARTNER_COLS: &str = "id, org_id, issuer, rules, enabled, expires_at, created_at, updated_at";

/// A row's columns, its rules still JSON text.
type PartnerRow = (Uuid, Uuid, String, String, bool, Option<i64>, i64, i64);

fn partner_from_row(row: &Row<'_>) -> rusqlite::Result<PartnerRow> {
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

fn with_rules((id, org_id, issuer, rules, enabled, expires_at, created_at, updated_at): PartnerRow) -> Result<Partner> {
    Ok(Partner { id, org_id, issuer, rules: json_column(&rules)?, enabled, expires_at, created_at, updated_at })
}

#[async_trait]
impl FederationStore for SqliteStore {
    async fn all_partners(&self) -> Result<Vec<Partner>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {PARTNER_COLS} FROM federation_partners ORDER BY id"))
                .map_err(db_err)?;
            collect(&mut stmt, [], partner_from_row, with_rules)
        })
        .await
    }

    async fn partner(&self, org_id: Option<Uuid>, id: Uuid) -> Result<Option<Partner>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {PARTNER_COLS} FROM federation_partners WHERE id = ?1 AND (?2 IS NULL OR org_id = ?2)"
                ))
                .map_err(db_err)?;
            let args = params![id.to_string(), org_id.map(|o| o.to_string())];
            Ok(collect(&mut stmt, args, partner_from_row, with_rules)?.into_iter().next())
        })
        .await
    }

    async fn list_partners(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Partner>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {PARTNER_COLS} FROM federation_partners WHERE org_id = ?1 AND id > ?2
                     ORDER BY id LIMIT ?3"
                ))
                .map_err(db_err)?;
            let args = params![org_id.to_string(), after.map(|a| a.to_string()).unwrap_or_default(), limit];
            collect(&mut stmt, args, partner_from_row, with_rules)
        })
        .await
    }
}

/// Apply one of the family's changes on the writer's open transaction.
pub(crate) fn apply(conn: &Connection, change: &PartnerChange) -> Result<()> {
    match change {
        PartnerChange::InsertPartner(p) => {
            let rules = json_text(&p.rules)?;
            conn.prepare_cached(
                "INSERT INTO federation_partners (id, org_id, issuer, rules, enabled, expires_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    p.id.to_string(),
                    p.org_id.to_string(),
                    p.issuer,
                    rules,
                    p.enabled,
                    p.expires_at,
                    p.created_at,
                    p.updated_at
                ])
            })
            .map_err(|e| same_issuer(db_err(e)))?;
        }
        PartnerChange::UpdatePartner(p) => {
            let rules = json_text(&p.rules)?;
            let n = conn
                .prepare_cached(
                    "UPDATE federation_partners SET issuer = ?3, rules = ?4, enabled = ?5, expires_at = ?6,
                         updated_at = ?7
                     WHERE id = ?1 AND org_id = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        p.id.to_string(),
                        p.org_id.to_string(),
                        p.issuer,
                        rules,
                        p.enabled,
                        p.expires_at,
                        p.updated_at
                    ])
                })
                .map_err(|e| same_issuer(db_err(e)))?;
            one_row(n, "federation partner")?;
        }
        PartnerChange::DeletePartner { org_id, id } => {
            let n = conn
                .execute(
                    "DELETE FROM federation_partners WHERE id = ?1 AND org_id = ?2",
                    params![id.to_string(), org_id.to_string()],
                )
                .map_err(db_err)?;
            one_row(n, "federation partner")?;
        }
    }
    Ok(())
}
