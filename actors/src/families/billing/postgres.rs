//! PostgreSQL: organizations' subscriptions and processed Stripe events
//! ([`crate::families::billing::BillingStore`]; written by `changes.rs`).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::BillingChange;
use crate::families::billing::rules::TenantSubscription;
use crate::families::billing::BillingStore;
use crate::store::enum_column;
use crate::store::postgres::*;
use tokio_postgres::Transaction;

const SUBSCRIPTION_COLS: &str = "org_id, customer_id, subscription_id, tier, status, current_period_end, \
     cancel_at_period_end, grace_until, updated_at";

fn subscription(row: &Row) -> Result<TenantSubscription> {
    Ok(TenantSubscription {
        org_id: row.get(0),
        customer_id: row.get(1),
        subscription_id: row.get(2),
        tier: enum_column(row.get(3), Tier::parse)?,
        status: row.get(4),
        current_period_end: row.get(5),
        cancel_at_period_end: row.get(6),
        grace_until: row.get(7),
        updated_at: row.get(8),
    })
}

#[async_trait]
impl BillingStore for PostgresStore {
    async fn subscription(&self, org_id: Uuid) -> Result<Option<TenantSubscription>> {
        let sql = format!("SELECT {SUBSCRIPTION_COLS} FROM tenant_subscriptions WHERE org_id = $1");
        self.query_opt(&sql, &[&org_id]).await?.map(|r| subscription(&r)).transpose()
    }

    async fn subscription_by_customer(&self, customer_id: &str) -> Result<Option<TenantSubscription>> {
        let sql = format!("SELECT {SUBSCRIPTION_COLS} FROM tenant_subscriptions WHERE customer_id = $1");
        self.query_opt(&sql, &[&customer_id]).await?.map(|r| subscription(&r)).transpose()
    }

    async fn stripe_event_seen(&self, id: &str) -> Result<bool> {
        Ok(self.query_opt("SELECT 1 FROM stripe_events WHERE id = $1", &[&id]).await?.is_some())
    }

    async fn lapsed_subscriptions(&self, now: Millis) -> Result<Vec<TenantSubscription>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLS} FROM tenant_subscriptions WHERE status = 'past_due' AND grace_until <= $1"
        );
        self.query(&sql, &[&now]).await?.iter().map(subscription).collect()
    }
}

/// Apply one of the family's changes on the open transaction.
pub(crate) async fn apply(tx: &Transaction<'_>, change: &BillingChange) -> Result<()> {
    match change {
        BillingChange::ClaimStripeEvent { id, kind, at } => {
            tx.execute("INSERT INTO stripe_events (id, type, received_at) VALUES ($1, $2, $3)", &[id, kind, at])
                .await
                .map_err(db_err)?;
        }
        BillingChange::PutSubscription(t) => {
            tx.execute(
                "INSERT INTO tenant_subscriptions (org_id, customer_id, subscription_id, tier, status,
                     current_period_end, cancel_at_period_end, grace_until, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (org_id) DO UPDATE SET customer_id = excluded.customer_id,
                     subscription_id = excluded.subscription_id, tier = excluded.tier, status = excluded.status,
                     current_period_end = excluded.current_period_end,
                     cancel_at_period_end = excluded.cancel_at_period_end, grace_until = excluded.grace_until,
                     updated_at = excluded.updated_at",
                &[
                    &t.org_id,
                    &t.customer_id,
                    &t.subscription_id,
                    &t.tier.as_str(),
                    &t.status,
                    &t.current_period_end,
                    &t.cancel_at_period_end,
                    &t.grace_until,
                    &t.updated_at,
                ],
            )
            .await
            .map_err(db_err)?;
        }
    }
    Ok(())
}
