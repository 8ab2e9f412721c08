//! PostgreSQL: federation partners ([`crate::store::FederationStore`]; partners are
//! written by `changes.rs`).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::*;
use crate::domain::federation::Partner;
use crate::store::FederationStore;

const PARTNER_COLS: &str = "id, org_id, issuer, rules, enabled, expires_at, created_at, updated_at";

fn partner(row: &Row) -> Result<Partner> {
    Ok(Partner {
        id: row.get(0),
        org_id: row.get(1),
        issuer: row.get(2),
        rules: json_column(row.get(3))?,
        enabled: row.get(4),
        expires_at: row.get(5),
        created_at: row.get(6),
        updated_at: row.get(7),
    })
}

#[async_trait]
impl FederationStore for PostgresStore {
    async fn all_partners(&self) -> Result<Vec<Partner>> {
        self.query(&format!("SELECT {PARTNER_COLS} FROM federation_partners ORDER BY id"), &[])
            .await?
            .iter()
            .map(partner)
            .collect()
    }

    async fn partner(&self, org_id: Option<Uuid>, id: Uuid) -> Result<Option<Partner>> {
        self.query_opt(
            &format!(
                "SELECT {PARTNER_COLS} FROM federation_partners WHERE id = $1 AND ($2::uuid IS NULL OR org_id = $2)"
            ),
            &[&id, &org_id],
        )
        .await?
        .as_ref()
        .map(partner)
        .transpose()
    }

    async fn list_partners(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Partner>> {
        self.query(
            &format!(
                "SELECT {PARTNER_COLS} FROM federation_partners
                 WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
            ),
            &[&org_id, &after, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(partner)
        .collect()
    }
}
