//! The webhooks family's store port: what it reads and writes, and its records.

use async_trait::async_trait;
use uuid::Uuid;

use super::rules::{Delivery, Webhook};

use crate::kernel::error::Result;
use crate::kernel::model::Millis;
use crate::store::SealedSecret;

/// A subscription as stored: the record, its sealed secrets and where its queue stands.
#[derive(Debug, Clone)]
pub struct WebhookRecord {
    pub webhook: Webhook,
    pub secret: SealedSecret,
    /// The secret rotated away and until when it still signs.
    pub previous: Option<(SealedSecret, Millis)>,
    /// The last seq of the organization's audit chain turned into deliveries.
    pub audit_cursor: i64,
    /// When the current run of failed attempts began.
    pub failing_since: Option<Millis>,
}

/// Webhook subscriptions' queues (the DeliveryQueue actors' port, and the webhook
/// endpoints'). Subscriptions themselves change as [`Change`]s, with their audit events;
/// the events deliveries are derived from are read from the audit trail.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// The subscription `id` (of `org_id`, when given).
    async fn webhook(&self, org_id: Option<Uuid>, id: Uuid) -> Result<Option<WebhookRecord>>;
    /// Oldest first (by id), after the `after` cursor.
    async fn list_webhooks(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Webhook>>;
    async fn count_webhooks(&self, org_id: Uuid) -> Result<u64>;
    /// Take or keep the lease on every enabled subscription whose lease is free, expired
    /// at `now`, or `node`'s own, until `until`; at most `limit` of them. Answers
    /// (subscription, organization) for every lease `node` holds now.
    async fn claim_webhooks(&self, node: &str, now: Millis, until: Millis, limit: u32) -> Result<Vec<(Uuid, Uuid)>>;
    /// Give up `node`'s leases (a graceful shutdown: another node takes over at once).
    async fn release_webhooks(&self, node: &str) -> Result<()>;
    /// Queue `deliveries` (ignoring any already queued for their audit event) and move the
    /// subscription's cursor to `cursor`, in one transaction.
    async fn enqueue_deliveries(&self, webhook_id: Uuid, deliveries: Vec<Delivery>, cursor: i64) -> Result<()>;
    /// The pending deliveries with the lowest audit seqs, in that order: the head of the
    /// queue, at most `limit`.
    async fn pending_deliveries(&self, webhook_id: Uuid, limit: u32) -> Result<Vec<Delivery>>;
    /// Pending deliveries.
    async fn queue_depth(&self, webhook_id: Uuid) -> Result<u64>;
    /// Store the outcomes of consecutive attempts (status, attempts, next attempt,
    /// response, latency) in one transaction, and the subscription's run of failures:
    /// begun at `now` if the last attempt `failed` and it had not begun, ended if not.
    /// Answers when the run began, if it goes on.
    async fn record_attempts(&self, deliveries: &[Delivery], failed: bool, now: Millis) -> Result<Option<Millis>>;
    /// Newest first (by id), before the `before` cursor.
    async fn list_deliveries(&self, webhook_id: Uuid, before: Option<Uuid>, limit: u32) -> Result<Vec<Delivery>>;
    async fn get_delivery(&self, webhook_id: Uuid, id: Uuid) -> Result<Option<Delivery>>;
    /// Make a delivery pending again, due at `now`, its attempts counted from zero.
    /// `NotFound` if there is no such delivery.
    async fn redeliver(&self, webhook_id: Uuid, id: Uuid, now: Millis) -> Result<Delivery>;
    /// Remove at most `limit` settled deliveries (delivered, or failed for good) created
    /// before `before`, oldest first (the janitor's sweep); returns how many. Pending ones
    /// stay whatever their age.
    async fn purge_deliveries(&self, before: Millis, limit: usize) -> Result<u64>;
}
