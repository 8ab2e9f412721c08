//! SQLite: webhook subscriptions' queues ([`crate::families::webhooks::WebhookStore`]; subscriptions
//! are written by `changes.rs`). One node owns an embedded store, so leases are its own.

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::WebhookChange;
use crate::families::webhooks::rules::{Delivery, DeliveryStatus, Webhook};
use crate::families::webhooks::{WebhookRecord, WebhookStore};
use crate::kernel::tiers::check_webhook_room;
use crate::store::sqlite::*;
use crate::store::SealedSecret;

const WEBHOOK_COLS: &str = "id, org_id, url, event_types, description, enabled, disabled_reason, created_at, \
     updated_at, secret_kid, secret, secret_ref, previous_kid, previous, previous_ref, previous_until, \
     audit_cursor, failing_since";
const DELIVERY_COLS: &str = "id, subscription_id, audit_seq, event_type, payload, status, attempts, \
     next_attempt_at, response_status, last_error, latency_ms, created_at, delivered_at";

/// A row, with its event types still JSON text.
fn record_from_row(row: &Row<'_>) -> rusqlite::Result<(WebhookRecord, String)> {
    let previous = match (row.get::<_, Option<String>>(12)?, row.get::<_, Option<i64>>(15)?) {
        (Some(kid), Some(until)) => Some((
            SealedSecret { kid, sealed: row.get::<_, Option<Vec<u8>>>(13)?.unwrap_or_default(), key_ref: row.get(14)? },
            until,
        )),
        _ => None,
    };
    let webhook = Webhook {
        id: uuid_col(row, 0)?,
        org_id: uuid_col(row, 1)?,
        url: row.get(2)?,
        event_types: Vec::new(),
        description: row.get(4)?,
        enabled: row.get(5)?,
        disabled_reason: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
    };
    let record = WebhookRecord {
        webhook,
        secret: SealedSecret { kid: row.get(9)?, sealed: row.get(10)?, key_ref: row.get(11)? },
        previous,
        audit_cursor: row.get(16)?,
        failing_since: row.get(17)?,
    };
    Ok((record, row.get(3)?))
}

fn with_types((mut record, types): (WebhookRecord, String)) -> Result<WebhookRecord> {
    record.webhook.event_types = json_column(&types)?;
    Ok(record)
}

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<(Delivery, String)> {
    let d = Delivery {
        id: uuid_col(row, 0)?,
        webhook_id: uuid_col(row, 1)?,
        audit_seq: row.get(2)?,
        event_type: row.get(3)?,
        payload: row.get(4)?,
        status: DeliveryStatus::Pending,
        attempts: row.get(6)?,
        next_attempt_at: row.get(7)?,
        response_status: row.get(8)?,
        last_error: row.get(9)?,
        latency_ms: row.get(10)?,
        created_at: row.get(11)?,
        delivered_at: row.get(12)?,
    };
    Ok((d, row.get(5)?))
}

fn with_status((mut d, status): (Delivery, String)) -> Result<Delivery> {
    d.status = enum_column(&status, DeliveryStatus::parse)?;
    Ok(d)
}

fn one<T>(items: Vec<T>) -> Option<T> {
    items.into_iter().next()
}

fn count(conn: &Connection, sql: &str, id: Uuid) -> Result<u64> {
    conn.query_row(sql, params![id.to_string()], |r| r.get::<_, i64>(0)).map(|n| n.max(0) as u64).map_err(db_err)
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn webhook(&self, org_id: Option<Uuid>, id: Uuid) -> Result<Option<WebhookRecord>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {WEBHOOK_COLS} FROM webhook_subscriptions WHERE id = ?1 AND (?2 IS NULL OR org_id = ?2)"
                ))
                .map_err(db_err)?;
            let org = org_id.map(|o| o.to_string());
            Ok(one(collect(&mut stmt, params![id.to_string(), org], record_from_row, with_types)?))
        })
        .await
    }

    async fn list_webhooks(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Webhook>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {WEBHOOK_COLS} FROM webhook_subscriptions
                     WHERE org_id = ?1 AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3"
                ))
                .map_err(db_err)?;
            let after = after.map(|a| a.to_string());
            let records = collect(&mut stmt, params![org_id.to_string(), after, limit], record_from_row, with_types)?;
            Ok(records.into_iter().map(|r| r.webhook).collect())
        })
        .await
    }

    async fn count_webhooks(&self, org_id: Uuid) -> Result<u64> {
        self.read(move |conn| count(conn, "SELECT COUNT(*) FROM webhook_subscriptions WHERE org_id = ?1", org_id)).await
    }

    async fn claim_webhooks(&self, node: &str, now: Millis, until: Millis, limit: u32) -> Result<Vec<(Uuid, Uuid)>> {
        let node = node.to_string();
        self.write(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "UPDATE webhook_subscriptions SET lease_owner = ?1, lease_until = ?3
                     WHERE id IN (
                         SELECT id FROM webhook_subscriptions
                         WHERE enabled AND (lease_owner = ?1 OR lease_until <= ?2) ORDER BY id LIMIT ?4
                     )
                     RETURNING id, org_id",
                )
                .map_err(db_err)?;
            collect(&mut stmt, params![node, now, until, limit], |r| Ok((uuid_col(r, 0)?, uuid_col(r, 1)?)), Ok)
        })
        .await
    }

    async fn release_webhooks(&self, node: &str) -> Result<()> {
        let node = node.to_string();
        self.write(move |conn| {
            conn.execute(
                "UPDATE webhook_subscriptions SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?1",
                params![node],
            )
            .map(|_| ())
            .map_err(db_err)
        })
        .await
    }

    async fn enqueue_deliveries(&self, webhook_id: Uuid, deliveries: Vec<Delivery>, cursor: i64) -> Result<()> {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            {
                let mut insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO webhook_deliveries ({DELIVERY_COLS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                         ON CONFLICT (subscription_id, audit_seq) DO NOTHING"
                    ))
                    .map_err(db_err)?;
                for d in &deliveries {
                    insert
                        .execute(params![
                            d.id.to_string(),
                            d.webhook_id.to_string(),
                            d.audit_seq,
                            d.event_type,
                            d.payload,
                            d.status.as_str(),
                            d.attempts,
                            d.next_attempt_at,
                            d.response_status,
                            d.last_error,
                            d.latency_ms,
                            d.created_at,
                            d.delivered_at
                        ])
                        .map_err(db_err)?;
                }
                tx.execute(
                    "UPDATE webhook_subscriptions SET audit_cursor = MAX(audit_cursor, ?2) WHERE id = ?1",
                    params![webhook_id.to_string(), cursor],
                )
                .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn pending_deliveries(&self, webhook_id: Uuid, limit: u32) -> Result<Vec<Delivery>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLS} FROM webhook_deliveries
                     WHERE subscription_id = ?1 AND status = 'pending' ORDER BY audit_seq LIMIT ?2"
                ))
                .map_err(db_err)?;
            collect(&mut stmt, params![webhook_id.to_string(), limit], delivery_from_row, with_status)
        })
        .await
    }

    async fn queue_depth(&self, webhook_id: Uuid) -> Result<u64> {
        self.read(move |conn| {
            count(
                conn,
                "SELECT COUNT(*) FROM webhook_deliveries WHERE subscription_id = ?1 AND status = 'pending'",
                webhook_id,
            )
        })
        .await
    }

    async fn record_attempts(&self, deliveries: &[Delivery], failed: bool, now: Millis) -> Result<Option<Millis>> {
        let Some(webhook_id) = deliveries.last().map(|d| d.webhook_id) else { return Ok(None) };
        let deliveries = deliveries.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            {
                let mut update = tx
                    .prepare_cached(
                        "UPDATE webhook_deliveries SET status = ?2, attempts = ?3, next_attempt_at = ?4,
                             response_status = ?5, last_error = ?6, latency_ms = ?7, delivered_at = ?8
                         WHERE id = ?1",
                    )
                    .map_err(db_err)?;
                for d in &deliveries {
                    update
                        .execute(params![
                            d.id.to_string(),
                            d.status.as_str(),
                            d.attempts,
                            d.next_attempt_at,
                            d.response_status,
                            d.last_error,
                            d.latency_ms,
                            d.delivered_at
                        ])
                        .map_err(db_err)?;
                }
            }
            let since: Option<Option<i64>> = tx
                .query_row(
                    "UPDATE webhook_subscriptions
                     SET failing_since = CASE WHEN ?2 THEN COALESCE(failing_since, ?3) ELSE NULL END
                     WHERE id = ?1 RETURNING failing_since",
                    params![webhook_id.to_string(), failed, now],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(since.flatten())
        })
        .await
    }

    async fn list_deliveries(&self, webhook_id: Uuid, before: Option<Uuid>, limit: u32) -> Result<Vec<Delivery>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLS} FROM webhook_deliveries
                     WHERE subscription_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
                ))
                .map_err(db_err)?;
            let before = before.map(|b| b.to_string());
            collect(&mut stmt, params![webhook_id.to_string(), before, limit], delivery_from_row, with_status)
        })
        .await
    }

    async fn get_delivery(&self, webhook_id: Uuid, id: Uuid) -> Result<Option<Delivery>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE subscription_id = ?1 AND id = ?2"
                ))
                .map_err(db_err)?;
            Ok(one(collect(
                &mut stmt,
                params![webhook_id.to_string(), id.to_string()],
                delivery_from_row,
                with_status,
            )?))
        })
        .await
    }

    async fn redeliver(&self, webhook_id: Uuid, id: Uuid, now: Millis) -> Result<Delivery> {
        self.write(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?3
                     WHERE subscription_id = ?1 AND id = ?2 RETURNING {DELIVERY_COLS}"
                ))
                .map_err(db_err)?;
            one(collect(
                &mut stmt,
                params![webhook_id.to_string(), id.to_string(), now],
                delivery_from_row,
                with_status,
            )?)
            .ok_or_else(|| EngineError::not_found("delivery"))
        })
        .await
    }

    async fn purge_deliveries(&self, before: Millis, limit: usize) -> Result<u64> {
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM webhook_deliveries WHERE id IN \
                 (SELECT id FROM webhook_deliveries WHERE created_at < ?1 AND status IN ('delivered', 'failed') \
                  ORDER BY created_at LIMIT ?2)",
                params![before, limit as i64],
            )
            .map(|n| n as u64)
            .map_err(db_err)
        })
        .await
    }
}

/// Apply one of the family's changes on the writer's open transaction.
pub(crate) fn apply(conn: &Connection, change: &WebhookChange) -> Result<()> {
    match change {
        WebhookChange::HasRoomForWebhook { org_id, tiers } => {
            let (tier, webhooks) = tier_and_count(conn, *org_id, "webhook_subscriptions")?;
            check_webhook_room(&tier, webhooks, tiers)?;
        }
        WebhookChange::InsertWebhook(r) => {
            let w = &r.webhook;
            let types = json_text(&w.event_types)?;
            conn.prepare_cached(
                "INSERT INTO webhook_subscriptions (id, org_id, url, event_types, description, enabled, disabled_reason,
                     secret_kid, secret, secret_ref, audit_cursor, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
                     COALESCE((SELECT seq FROM audit_heads WHERE chain = ?2), 0), ?11, ?12)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    w.id.to_string(),
                    w.org_id.to_string(),
                    w.url,
                    types,
                    w.description,
                    w.enabled,
                    w.disabled_reason,
                    r.secret.kid,
                    r.secret.sealed,
                    r.secret.key_ref,
                    w.created_at,
                    w.updated_at
                ])
            })
            .map_err(db_err)?;
        }
        WebhookChange::UpdateWebhook(w) => {
            let types = json_text(&w.event_types)?;
            let n = conn
                .prepare_cached(
                    "UPDATE webhook_subscriptions SET url = ?3, event_types = ?4, description = ?5, enabled = ?6,
                         disabled_reason = ?7, updated_at = ?8,
                         failing_since = CASE WHEN ?6 AND NOT enabled THEN NULL ELSE failing_since END
                     WHERE id = ?1 AND org_id = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        w.id.to_string(),
                        w.org_id.to_string(),
                        w.url,
                        types,
                        w.description,
                        w.enabled,
                        w.disabled_reason,
                        w.updated_at
                    ])
                })
                .map_err(db_err)?;
            one_row(n, "webhook")?;
        }
        WebhookChange::RotateWebhookSecret { org_id, id, secret, previous_until, at } => {
            let n = conn
                .execute(
                    "UPDATE webhook_subscriptions SET previous_kid = secret_kid, previous = secret,
                         previous_ref = secret_ref, previous_until = ?3,
                         secret_kid = ?4, secret = ?5, secret_ref = ?6, updated_at = ?7
                     WHERE id = ?1 AND org_id = ?2",
                    params![
                        id.to_string(),
                        org_id.to_string(),
                        previous_until,
                        secret.kid,
                        secret.sealed,
                        secret.key_ref,
                        at
                    ],
                )
                .map_err(db_err)?;
            one_row(n, "webhook")?;
        }
        WebhookChange::DeleteWebhook { org_id, id } => {
            let n = conn
                .execute(
                    "DELETE FROM webhook_subscriptions WHERE id = ?1 AND org_id = ?2",
                    params![id.to_string(), org_id.to_string()],
                )
                .map_err(db_err)?;
            one_row(n, "webhook")?;
        }
    }
    Ok(())
}
