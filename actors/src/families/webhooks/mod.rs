//! Webhooks: subscriptions, and deliveries derived from the audit trail (the outbox) and
//! sent by one DeliveryQueue actor per subscription under a lease (`actor.rs`); the event
//! catalogue, signing and destination rules (`rules.rs`). docs/design/webhooks.md.

pub(crate) mod actor;
pub(crate) mod handle;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub mod rules;
pub mod settings;
pub(crate) mod sqlite;
mod store;
pub use store::*;
mod changes;
pub use changes::WebhookChange;
