//! PostgreSQL: webhook subscriptions' queues ([`crate::families::webhooks::WebhookStore`];
//! subscriptions are written by `changes.rs`).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::WebhookChange;
use crate::families::webhooks::rules::{Delivery, DeliveryStatus, Webhook};
use crate::families::webhooks::{WebhookRecord, WebhookStore};
use crate::kernel::tiers::check_webhook_room;
use crate::store::postgres::*;
use crate::store::SealedSecret;
use tokio_postgres::Transaction;

const WEBHOOK_COLS: &str = "id, org_id, url, event_types, description, enabled, disabled_reason, created_at, \
     updated_at, secret_kid, secret, secret_ref, previous_kid, previous, previous_ref, previous_until, \
     audit_cursor, failing_since";
const DELIVERY_COLS: &str = "id, subscription_id, audit_seq, event_type, payload, status, attempts, \
     next_attempt_at, response_status, last_error, latency_ms, created_at, delivered_at";

fn webhook(row: &Row) -> Result<Webhook> {
    Ok(Webhook {
        id: row.get(0),
        org_id: row.get(1),
        url: row.get(2),
        event_types: json_column(row.get(3))?,
        description: row.get(4),
        enabled: row.get(5),
        disabled_reason: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
    })
}

fn record(row: &Row) -> Result<WebhookRecord> {
    let previous = match (row.get::<_, Option<String>>(12), row.get::<_, Option<i64>>(15)) {
        (Some(kid), Some(until)) => Some((
            SealedSecret { kid, sealed: row.get::<_, Option<Vec<u8>>>(13).unwrap_or_default(), key_ref: row.get(14) },
            until,
        )),
        _ => None,
    };
    Ok(WebhookRecord {
        webhook: webhook(row)?,
        secret: SealedSecret { kid: row.get(9), sealed: row.get(10), key_ref: row.get(11) },
        previous,
        audit_cursor: row.get(16),
        failing_since: row.get(17),
    })
}

fn delivery(row: &Row) -> Result<Delivery> {
    Ok(Delivery {
        id: row.get(0),
        webhook_id: row.get(1),
        audit_seq: row.get(2),
        event_type: row.get(3),
        payload: row.get(4),
        status: enum_column(row.get(5), DeliveryStatus::parse)?,
        attempts: row.get::<_, i32>(6).max(0) as u32,
        next_attempt_at: row.get(7),
        response_status: row.get::<_, Option<i32>>(8).map(|s| s.clamp(0, 999) as u16),
        last_error: row.get(9),
        latency_ms: row.get(10),
        created_at: row.get(11),
        delivered_at: row.get(12),
    })
}

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn webhook(&self, org_id: Option<Uuid>, id: Uuid) -> Result<Option<WebhookRecord>> {
        self.query_opt(
            &format!(
                "SELECT {WEBHOOK_COLS} FROM webhook_subscriptions WHERE id = $1 AND ($2::uuid IS NULL OR org_id = $2)"
            ),
            &[&id, &org_id],
        )
        .await?
        .as_ref()
        .map(record)
        .transpose()
    }

    async fn list_webhooks(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Webhook>> {
        self.query(
            &format!(
                "SELECT {WEBHOOK_COLS} FROM webhook_subscriptions
                 WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
            ),
            &[&org_id, &after, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(webhook)
        .collect()
    }

    async fn count_webhooks(&self, org_id: Uuid) -> Result<u64> {
        let row = self.query_opt("SELECT COUNT(*) FROM webhook_subscriptions WHERE org_id = $1", &[&org_id]).await?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }

    async fn claim_webhooks(&self, node: &str, now: Millis, until: Millis, limit: u32) -> Result<Vec<(Uuid, Uuid)>> {
        // SKIP LOCKED: a row another node is claiming right now is left to it; a row whose
        // lease is live and not ours is not taken.
        self.query(
            "UPDATE webhook_subscriptions SET lease_owner = $1, lease_until = $3
             WHERE id IN (
                 SELECT id FROM webhook_subscriptions
                 WHERE enabled AND (lease_owner = $1 OR lease_until <= $2)
                 ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED
             )
             RETURNING id, org_id",
            &[&node, &now, &until, &i64::from(limit)],
        )
        .await
        .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn release_webhooks(&self, node: &str) -> Result<()> {
        self.execute(
            "UPDATE webhook_subscriptions SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = $1",
            &[&node],
        )
        .await
        .map(|_| ())
    }

    async fn enqueue_deliveries(&self, webhook_id: Uuid, deliveries: Vec<Delivery>, cursor: i64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        let insert = tx
            .prepare_cached(&format!(
                "INSERT INTO webhook_deliveries ({DELIVERY_COLS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (subscription_id, audit_seq) DO NOTHING"
            ))
            .await
            .map_err(db_err)?;
        try_join_all(deliveries.iter().map(|d| {
            let (tx, insert) = (&tx, &insert);
            async move {
                tx.execute(
                    insert,
                    &[
                        &d.id,
                        &d.webhook_id,
                        &d.audit_seq,
                        &d.event_type,
                        &d.payload,
                        &d.status.as_str(),
                        &(d.attempts as i32),
                        &d.next_attempt_at,
                        &d.response_status.map(i32::from),
                        &d.last_error,
                        &d.latency_ms,
                        &d.created_at,
                        &d.delivered_at,
                    ],
                )
                .await
            }
        }))
        .await
        .map_err(db_err)?;
        tx.execute(
            "UPDATE webhook_subscriptions SET audit_cursor = GREATEST(audit_cursor, $2) WHERE id = $1",
            &[&webhook_id, &cursor],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn pending_deliveries(&self, webhook_id: Uuid, limit: u32) -> Result<Vec<Delivery>> {
        self.query(
            &format!(
                "SELECT {DELIVERY_COLS} FROM webhook_deliveries
                 WHERE subscription_id = $1 AND status = 'pending' ORDER BY audit_seq LIMIT $2"
            ),
            &[&webhook_id, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(delivery)
        .collect()
    }

    async fn queue_depth(&self, webhook_id: Uuid) -> Result<u64> {
        let row = self
            .query_opt(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE subscription_id = $1 AND status = 'pending'",
                &[&webhook_id],
            )
            .await?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }

    async fn record_attempts(&self, deliveries: &[Delivery], failed: bool, now: Millis) -> Result<Option<Millis>> {
        let Some(last) = deliveries.last() else { return Ok(None) };
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        let update = tx
            .prepare_cached(
                "UPDATE webhook_deliveries SET status = $2, attempts = $3, next_attempt_at = $4, response_status = $5,
                     last_error = $6, latency_ms = $7, delivered_at = $8
                 WHERE id = $1",
            )
            .await
            .map_err(db_err)?;
        try_join_all(deliveries.iter().map(|d| {
            let (tx, update) = (&tx, &update);
            async move {
                tx.execute(
                    update,
                    &[
                        &d.id,
                        &d.status.as_str(),
                        &(d.attempts as i32),
                        &d.next_attempt_at,
                        &d.response_status.map(i32::from),
                        &d.last_error,
                        &d.latency_ms,
                        &d.delivered_at,
                    ],
                )
                .await
            }
        }))
        .await
        .map_err(db_err)?;
        let row = tx
            .query_opt(
                "UPDATE webhook_subscriptions
                 SET failing_since = CASE WHEN $2 THEN COALESCE(failing_since, $3) ELSE NULL END
                 WHERE id = $1 RETURNING failing_since",
                &[&last.webhook_id, &failed, &now],
            )
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(row.and_then(|r| r.get(0)))
    }

    async fn list_deliveries(&self, webhook_id: Uuid, before: Option<Uuid>, limit: u32) -> Result<Vec<Delivery>> {
        self.query(
            &format!(
                "SELECT {DELIVERY_COLS} FROM webhook_deliveries
                 WHERE subscription_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
            ),
            &[&webhook_id, &before, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(delivery)
        .collect()
    }

    async fn get_delivery(&self, webhook_id: Uuid, id: Uuid) -> Result<Option<Delivery>> {
        self.query_opt(
            &format!("SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE subscription_id = $1 AND id = $2"),
            &[&webhook_id, &id],
        )
        .await?
        .as_ref()
        .map(delivery)
        .transpose()
    }

    async fn redeliver(&self, webhook_id: Uuid, id: Uuid, now: Millis) -> Result<Delivery> {
        self.query_opt(
            &format!(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $3
                 WHERE subscription_id = $1 AND id = $2 RETURNING {DELIVERY_COLS}"
            ),
            &[&webhook_id, &id, &now],
        )
        .await?
        .as_ref()
        .map(delivery)
        .transpose()?
        .ok_or_else(|| EngineError::not_found("delivery"))
    }

    async fn purge_deliveries(&self, before: Millis, limit: usize) -> Result<u64> {
        self.execute(
            "DELETE FROM webhook_deliveries WHERE id IN \
             (SELECT id FROM webhook_deliveries WHERE created_at < $1 AND status IN ('delivered', 'failed') \
              ORDER BY created_at LIMIT $2)",
            &[&before, &(limit as i64)],
        )
        .await
    }
}

/// Apply one of the family's changes on the open transaction.
pub(crate) async fn apply(tx: &Transaction<'_>, change: &WebhookChange) -> Result<()> {
    match change {
        WebhookChange::HasRoomForWebhook { org_id, tiers } => {
            let (tier, webhooks) = tier_and_count(tx, org_id, "webhook_subscriptions").await?;
            check_webhook_room(&tier, webhooks, tiers)?;
        }
        WebhookChange::InsertWebhook(r) => {
            let w = &r.webhook;
            tx.execute(
                "INSERT INTO webhook_subscriptions (id, org_id, url, event_types, description, enabled, disabled_reason,
                     secret_kid, secret, secret_ref, audit_cursor, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                     COALESCE((SELECT seq FROM audit_heads WHERE chain = $2), 0), $11, $12)",
                &[
                    &w.id,
                    &w.org_id,
                    &w.url,
                    &json_text(&w.event_types)?,
                    &w.description,
                    &w.enabled,
                    &w.disabled_reason,
                    &r.secret.kid,
                    &r.secret.sealed,
                    &r.secret.key_ref,
                    &w.created_at,
                    &w.updated_at,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        WebhookChange::UpdateWebhook(w) => {
            let n = tx
                .execute(
                    "UPDATE webhook_subscriptions SET url = $3, event_types = $4, description = $5, enabled = $6,
                         disabled_reason = $7, updated_at = $8,
                         failing_since = CASE WHEN $6 AND NOT enabled THEN NULL ELSE failing_since END
                     WHERE id = $1 AND org_id = $2",
                    &[
                        &w.id,
                        &w.org_id,
                        &w.url,
                        &json_text(&w.event_types)?,
                        &w.description,
                        &w.enabled,
                        &w.disabled_reason,
                        &w.updated_at,
                    ],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "webhook")?;
        }
        WebhookChange::RotateWebhookSecret { org_id, id, secret, previous_until, at } => {
            let n = tx
                .execute(
                    "UPDATE webhook_subscriptions SET previous_kid = secret_kid, previous = secret,
                         previous_ref = secret_ref, previous_until = $3,
                         secret_kid = $4, secret = $5, secret_ref = $6, updated_at = $7
                     WHERE id = $1 AND org_id = $2",
                    &[id, org_id, previous_until, &secret.kid, &secret.sealed, &secret.key_ref, at],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "webhook")?;
        }
        WebhookChange::DeleteWebhook { org_id, id } => {
            let n = tx
                .execute("DELETE FROM webhook_subscriptions WHERE id = $1 AND org_id = $2", &[id, org_id])
                .await
                .map_err(db_err)?;
            one_row(n, "webhook")?;
        }
    }
    Ok(())
}
