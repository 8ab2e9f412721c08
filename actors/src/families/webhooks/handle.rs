//! Webhook subscriptions and their deliveries (the operations; delivering is the
//! DeliveryQueue actors' work, see `actor/webhooks.rs`). A subscription belongs to the
//! caller's organization.

use serde_json::json;
use uuid::Uuid;

use crate::engine::{Call, Engine};
use crate::families::webhooks::rules::{
    self, Delivery, EventType, NewWebhook, Webhook, WebhookPatch, WebhookWithSecret, EVENT_TYPES,
};
use crate::families::webhooks::WebhookChange;
use crate::families::webhooks::WebhookRecord;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{Page, PageRequest};
use crate::kernel::paging::{decode_cursor, next_cursor, page_limit};
use crate::store::SealedSecret;

/// The longest description a subscription may have, in characters.
const MAX_DESCRIPTION: usize = 1024;

fn check_description(d: Option<String>) -> Result<Option<String>> {
    match d {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => {
            Err(EngineError::invalid("description", format!("at most {MAX_DESCRIPTION} characters")))
        }
        other => Ok(other),
    }
}

impl Engine {
    /// Every event type a subscription can ask for.
    pub fn webhook_event_types(&self, call: &Call) -> Result<&'static [EventType]> {
        self.authorize(call, "webhooks.event_types", call.caller.org_id)?;
        Ok(EVENT_TYPES)
    }

    /// Check a subscription URL: its form, and every address its host resolves to.
    async fn check_webhook_url(&self, url: &str) -> Result<String> {
        let settings = &self.shared.config.webhooks;
        crate::runtime::outbound::check_destination(settings.destinations, self.shared.config.resolver.as_ref(), url)
            .await
            .map_err(|why| EngineError::invalid("url", why))?;
        Ok(url.to_string())
    }

    /// Seal a new `whsec_` secret for subscription `id`.
    async fn seal_webhook_secret(&self, id: Uuid) -> Result<(String, SealedSecret)> {
        let secret = rules::new_secret();
        let kid = format!("whsec-{id}-{}", Uuid::now_v7().simple());
        let sealed = self.shared.keystore.seal(&kid, secret.as_bytes()).await?;
        Ok((secret, SealedSecret { kid, sealed: sealed.private_key, key_ref: sealed.key_ref }))
    }

    /// Subscribe the caller's organization; the answer carries the signing secret, shown
    /// this once. The tier's subscription limit is checked in the insert's transaction.
    pub async fn create_webhook(&self, call: &Call, new: NewWebhook) -> Result<WebhookWithSecret> {
        let org_id = call.caller.org_id;
        self.authorize(call, "webhooks.create", org_id)?;
        let event_types =
            rules::check_event_types(&new.event_types).map_err(|m| EngineError::invalid("event_types", m))?;
        let description = check_description(new.description)?;
        let url = self.check_webhook_url(&new.url).await?;
        let now = self.shared.now_ms();
        let id = Uuid::now_v7();
        let (secret, sealed) = self.seal_webhook_secret(id).await?;
        let webhook = Webhook {
            id,
            org_id,
            url,
            event_types,
            description,
            enabled: new.enabled.unwrap_or(true),
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        };
        let record = WebhookRecord {
            webhook: webhook.clone(),
            secret: sealed,
            previous: None,
            audit_cursor: 0,
            failing_since: None,
        };
        let detail = json!({"url": webhook.url, "event_types": webhook.event_types});
        let event = self.call_event(call, org_id, "webhook.create", id, detail);
        let room = WebhookChange::HasRoomForWebhook { org_id, tiers: self.shared.config.tiers.clone() }.into();
        self.commit(event, vec![room, WebhookChange::InsertWebhook(Box::new(record)).into()], None).await?;
        Ok(WebhookWithSecret { webhook, secret })
    }

    pub async fn list_webhooks(&self, call: &Call, page: PageRequest) -> Result<Page<Webhook>> {
        let org_id = call.caller.org_id;
        self.authorize(call, "webhooks.list", org_id)?;
        let limit = page_limit(&page)?;
        let items = self.shared.store.list_webhooks(org_id, decode_cursor(&page)?, limit).await?;
        let next_cursor = next_cursor(&items, limit, |w| w.id);
        Ok(Page { items, next_cursor })
    }

    async fn webhook_record(&self, call: &Call, operation: &'static str, id: Uuid) -> Result<WebhookRecord> {
        let org_id = call.caller.org_id;
        self.authorize(call, operation, org_id)?;
        self.shared.store.webhook(Some(org_id), id).await?.ok_or_else(|| EngineError::not_found("webhook"))
    }

    pub async fn get_webhook(&self, call: &Call, id: Uuid) -> Result<Webhook> {
        Ok(self.webhook_record(call, "webhooks.get", id).await?.webhook)
    }

    /// Change a subscription. Enabling one the engine disabled clears why it did.
    pub async fn update_webhook(&self, call: &Call, id: Uuid, patch: WebhookPatch) -> Result<Webhook> {
        let mut webhook = self.webhook_record(call, "webhooks.update", id).await?.webhook;
        if let Some(types) = patch.event_types {
            webhook.event_types =
                rules::check_event_types(&types).map_err(|m| EngineError::invalid("event_types", m))?;
        }
        if let Some(url) = patch.url {
            webhook.url = self.check_webhook_url(&url).await?;
        }
        if patch.description.is_some() {
            webhook.description = check_description(patch.description)?;
        }
        if let Some(enabled) = patch.enabled {
            if enabled {
                webhook.disabled_reason = None;
            }
            webhook.enabled = enabled;
        }
        webhook.updated_at = self.shared.now_ms();
        let detail = json!({"url": webhook.url, "event_types": webhook.event_types, "enabled": webhook.enabled});
        let event = self.call_event(call, webhook.org_id, "webhook.update", id, detail);
        self.commit(event, vec![WebhookChange::UpdateWebhook(webhook.clone()).into()], None).await?;
        Ok(webhook)
    }

    /// Delete a subscription and its deliveries.
    pub async fn delete_webhook(&self, call: &Call, id: Uuid) -> Result<()> {
        let webhook = self.webhook_record(call, "webhooks.delete", id).await?.webhook;
        let event = self.call_event(call, webhook.org_id, "webhook.delete", id, json!({"url": webhook.url}));
        self.commit(event, vec![WebhookChange::DeleteWebhook { org_id: webhook.org_id, id }.into()], None).await
    }

    /// A new signing secret, shown this once; the old one goes on signing beside it for
    /// `webhooks.secret_overlap`, so receivers can switch without missing a delivery.
    pub async fn rotate_webhook_secret(&self, call: &Call, id: Uuid) -> Result<WebhookWithSecret> {
        let mut webhook = self.webhook_record(call, "webhooks.rotate_secret", id).await?.webhook;
        let (secret, sealed) = self.seal_webhook_secret(id).await?;
        let now = self.shared.now_ms();
        let previous_until = now + self.shared.config.webhooks.secret_overlap.as_millis() as i64;
        let detail = json!({"previous_valid_until": crate::kernel::model::rfc3339::format(previous_until)});
        let event = self.call_event(call, webhook.org_id, "webhook.rotate_secret", id, detail);
        let change =
            WebhookChange::RotateWebhookSecret { org_id: webhook.org_id, id, secret: sealed, previous_until, at: now }
                .into();
        self.commit(event, vec![change], None).await?;
        webhook.updated_at = now;
        Ok(WebhookWithSecret { webhook, secret })
    }

    /// Send a `webhook.test` event to the subscription (through its queue, like any
    /// other event: signed, in order, retried). Answers the audit event's id.
    pub async fn test_webhook(&self, call: &Call, id: Uuid) -> Result<Uuid> {
        let webhook = self.webhook_record(call, "webhooks.test", id).await?.webhook;
        let event = self.call_event(call, webhook.org_id, "webhook.test", id, json!({"message": "a test event"}));
        let event_id = event.id;
        self.commit(event, Vec::new(), None).await?;
        Ok(event_id)
    }

    /// The subscription's deliveries, newest first.
    pub async fn list_deliveries(&self, call: &Call, id: Uuid, page: PageRequest) -> Result<Page<Delivery>> {
        self.webhook_record(call, "webhooks.deliveries", id).await?;
        let limit = page_limit(&page)?;
        let items = self.shared.store.list_deliveries(id, decode_cursor(&page)?, limit).await?;
        let next_cursor = next_cursor(&items, limit, |d| d.id);
        Ok(Page { items, next_cursor })
    }

    /// Make a delivery pending again, due now, its attempts counted from zero (it keeps
    /// its `webhook-id`).
    pub async fn redeliver(&self, call: &Call, id: Uuid, delivery_id: Uuid) -> Result<Delivery> {
        let webhook = self.webhook_record(call, "webhooks.redeliver", id).await?.webhook;
        let delivery = self.shared.store.redeliver(id, delivery_id, self.shared.now_ms()).await?;
        let event = self.call_event(call, webhook.org_id, "webhook.redeliver", delivery_id, json!({"webhook_id": id}));
        self.audit(event).await?;
        self.shared.webhooks.pump_now(id);
        Ok(delivery)
    }
}
