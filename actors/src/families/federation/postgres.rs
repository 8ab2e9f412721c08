//! PostgreSQL: federation partners ([`crate::families::federation::FederationStore`]; partners are
//! written by `changes.rs`).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::{same_issuer, PartnerChange};
use crate::families::federation::rules::Partner;
use crate::families::federation::FederationStore;
use crate::store::postgres::*;
use tokio_postgres::Transaction;

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

/// Apply one of the family's changes on the open transaction.
pub(crate) async fn apply(tx: &Transaction<'_>, change: &PartnerChange) -> Result<()> {
    match change {
        PartnerChange::InsertPartner(p) => {
            tx.execute(
                "INSERT INTO federation_partners (id, org_id, issuer, rules, enabled, expires_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&p.id, &p.org_id, &p.issuer, &json_text(&p.rules)?, &p.enabled, &p.expires_at, &p.created_at, &p.updated_at],
            )
            .await
            .map_err(|e| same_issuer(db_err(e)))?;
        }
        PartnerChange::UpdatePartner(p) => {
            let n = tx
                .execute(
                    "UPDATE federation_partners SET issuer = $3, rules = $4, enabled = $5, expires_at = $6,
                         updated_at = $7
                     WHERE id = $1 AND org_id = $2",
                    &[&p.id, &p.org_id, &p.issuer, &json_text(&p.rules)?, &p.enabled, &p.expires_at, &p.updated_at],
                )
                .await
                .map_err(|e| same_issuer(db_err(e)))?;
            one_row(n, "federation partner")?;
        }
        PartnerChange::DeletePartner { org_id, id } => {
            let n = tx
                .execute("DELETE FROM federation_partners WHERE id = $1 AND org_id = $2", &[id, org_id])
                .await
                .map_err(db_err)?;
            one_row(n, "federation partner")?;
        }
    }
    Ok(())
}
