//! SQLite: federation partners ([`crate::store::FederationStore`]; partners are written
//! by `changes.rs`).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::*;
use crate::domain::federation::Partner;
use crate::store::FederationStore;

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
