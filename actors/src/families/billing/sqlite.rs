//! SQLite: organizations' subscriptions and processed Stripe events
//! ([`crate::families::billing::BillingStore`]; written by `changes.rs`).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::BillingChange;
use crate::families::billing::rules::TenantSubscription;
use crate::families::billing::BillingStore;
use crate::store::enum_column;
use crate::store::sqlite::*;

pub(crate) const SUBSCRIPTION_COLS: &str = "org_id, customer_id, subscription_id, tier, status, current_period_end, \
     cancel_at_period_end, grace_until, updated_at";

type SubscriptionRow = (Uuid, String, Option<String>, String, String, Option<i64>, bool, Option<i64>, i64);

fn subscription_row(row: &Row<'_>) -> rusqlite::Result<SubscriptionRow> {
    Ok((
        uuid_col(row, 0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

fn subscription(
    (
        org_id,
        customer_id,
        subscription_id,
        tier,
        status,
        current_period_end,
        cancel_at_period_end,
        grace_until,
        updated_at,
    ): SubscriptionRow,
) -> Result<TenantSubscription> {
    Ok(TenantSubscription {
        org_id,
        customer_id,
        subscription_id,
        tier: enum_column(&tier, Tier::parse)?,
        status,
        current_period_end,
        cancel_at_period_end,
        grace_until,
        updated_at,
    })
}

impl SqliteStore {
    async fn subscriptions_where(&self, clause: &'static str, param: Value) -> Result<Vec<TenantSubscription>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {SUBSCRIPTION_COLS} FROM tenant_subscriptions WHERE {clause}"))
                .map_err(db_err)?;
            collect(&mut stmt, params![param], subscription_row, subscription)
        })
        .await
    }
}

#[async_trait]
impl BillingStore for SqliteStore {
    async fn subscription(&self, org_id: Uuid) -> Result<Option<TenantSubscription>> {
        Ok(self.subscriptions_where("org_id = ?1", Value::Text(org_id.to_string())).await?.pop())
    }

    async fn subscription_by_customer(&self, customer_id: &str) -> Result<Option<TenantSubscription>> {
        Ok(self.subscriptions_where("customer_id = ?1", Value::Text(customer_id.to_string())).await?.pop())
    }

    async fn stripe_event_seen(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.query_row("SELECT 1 FROM stripe_events WHERE id = ?1", params![id], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
                .map_err(db_err)
        })
        .await
    }

    async fn lapsed_subscriptions(&self, now: Millis) -> Result<Vec<TenantSubscription>> {
        self.subscriptions_where("status = 'past_due' AND grace_until <= ?1", Value::Integer(now)).await
    }
}

/// Apply one of the family's changes on the writer's open transaction.
pub(crate) fn apply(conn: &Connection, change: &BillingChange) -> Result<()> {
    match change {
        BillingChange::ClaimStripeEvent { id, kind, at } => {
            conn.prepare_cached("INSERT INTO stripe_events (id, type, received_at) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| s.execute(params![id, kind, at]))
                .map_err(db_err)?;
        }
        BillingChange::PutSubscription(t) => {
            conn.prepare_cached(&format!(
                "INSERT INTO tenant_subscriptions ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (org_id) DO UPDATE SET customer_id = excluded.customer_id,
                     subscription_id = excluded.subscription_id, tier = excluded.tier, status = excluded.status,
                     current_period_end = excluded.current_period_end,
                     cancel_at_period_end = excluded.cancel_at_period_end, grace_until = excluded.grace_until,
                     updated_at = excluded.updated_at",
                crate::families::billing::sqlite::SUBSCRIPTION_COLS
            ))
            .and_then(|mut s| {
                s.execute(params![
                    t.org_id.to_string(),
                    t.customer_id,
                    t.subscription_id,
                    t.tier.as_str(),
                    t.status,
                    t.current_period_end,
                    t.cancel_at_period_end,
                    t.grace_until,
                    t.updated_at
                ])
            })
            .map_err(db_err)?;
        }
    }
    Ok(())
}
