//! The webhooks family's changes: committed with their audit event in the audit writer's
//! group commit, so a change is durable exactly when its event is.

use uuid::Uuid;

use super::rules::Webhook;
use super::WebhookRecord;
use crate::kernel::model::Millis;
use crate::kernel::tiers::TierTable;
use crate::store::SealedSecret;

#[derive(Debug, Clone)]
pub enum WebhookChange {
    /// Refuse (with `TierLimit`) unless the organization, at its tier as committed, has
    /// fewer webhook subscriptions than that tier allows (checked as for agents).
    HasRoomForWebhook { org_id: Uuid, tiers: TierTable },
    /// A new subscription. Its `audit_cursor` is set to its organization's chain head as
    /// committed (it receives what happens from now on), whatever the record says.
    InsertWebhook(Box<WebhookRecord>),
    /// URL, event types, description, enabled, disabled reason and `updated_at`;
    /// re-enabling clears `failing_since`. `NotFound` if the subscription is gone.
    UpdateWebhook(Webhook),
    /// A new signing secret; the one in force becomes the previous one, still signing
    /// beside it until `previous_until`.
    RotateWebhookSecret { org_id: Uuid, id: Uuid, secret: SealedSecret, previous_until: Millis, at: Millis },
    /// Deletes the subscription with its deliveries.
    DeleteWebhook { org_id: Uuid, id: Uuid },
}

crate::store::applied_by_adapters!(WebhookChange);
