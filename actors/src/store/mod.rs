//! The durable-records ports and their two adapters. Domain code and actors see only the
//! narrow port they use ([`DirectoryStore`], [`AuditStore`], …; [`Store`] is all of them);
//! each adapter is a folder with one file per port, converts its driver's errors into
//! [`EngineError`] once, and owns its SQL.
//!
//! Both adapters store timestamps as unix milliseconds and JSON as text, so records read
//! back identically from either (the audit hash chain depends on that).

use async_trait::async_trait;
use uuid::Uuid;

use crate::families::analytics::AnalyticsStore;
use crate::families::audit::chain::SealedEvent;
use crate::families::audit::AuditStore;
use crate::families::billing::BillingStore;
use crate::families::compliance::ComplianceStore;
use crate::families::delegation::DelegationStore;
use crate::families::dids::DidStore;
use crate::families::directory::DirectoryStore;
use crate::families::federation::FederationStore;
use crate::families::revocation::RevocationStore;
use crate::families::signing::SigningKeyStore;
use crate::families::tiers::QuotaStore;
use crate::families::webhooks::WebhookStore;
use crate::kernel::error::Result;
use crate::runtime::events::{ClusterEvent, FeedStore};

/// What a store says of a change that breaks a uniqueness or reference rule: the
/// engine names what is taken where it knows (`name_taken`, …); the database's own
/// message never reaches a client.
pub const CONFLICT: &str = "the change conflicts with a record that exists (or refers to one that does not)";

#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

/// Chain key of audit events that no organization can be named for.
pub const UNATTRIBUTED_CHAIN: Uuid = Uuid::nil();

/// A change a family commits with the audit event that records it, in the same
/// transaction: either both are durable or neither is. Each family declares its changes
/// (an enum in its `changes.rs`) and how each backend applies them, so no list here names
/// every family. An `Err` undoes the entry's changes and leaves its event out.
#[async_trait]
pub trait Change: std::fmt::Debug + Send + Sync + 'static {
    /// Apply on the SQLite writer's open transaction.
    fn apply_sqlite(&self, conn: &rusqlite::Connection) -> Result<()>;
    /// Apply on the open PostgreSQL transaction.
    #[cfg(feature = "postgres")]
    async fn apply_postgres(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<()>;
}

/// Implements [`Change`] for a family's change type by the `apply` functions of the
/// family's adapters, `super::sqlite::apply` and `super::postgres::apply`.
macro_rules! applied_by_adapters {
    ($change:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Change for $change {
            fn apply_sqlite(&self, conn: &rusqlite::Connection) -> $crate::kernel::error::Result<()> {
                super::sqlite::apply(conn, self)
            }

            #[cfg(feature = "postgres")]
            async fn apply_postgres(&self, tx: &tokio_postgres::Transaction<'_>) -> $crate::kernel::error::Result<()> {
                super::postgres::apply(tx, self).await
            }
        }
    };
}
pub(crate) use applied_by_adapters;

impl<C: Change> From<C> for Box<dyn Change> {
    fn from(change: C) -> Self {
        Box::new(change)
    }
}

/// One entry of a group commit: an audit event, the changes it records, and what every
/// node must be told about them. The changes, the announcement (in the cluster change
/// feed) and the event are written together, or — if a change fails — none of them, and
/// the rest of the batch goes on.
#[derive(Debug)]
pub struct Commit {
    pub event: SealedEvent,
    pub changes: Vec<Box<dyn Change>>,
    pub announce: Option<ClusterEvent>,
}

impl Commit {
    /// An audit event that records no change (e.g. a token issued).
    pub fn event(event: SealedEvent) -> Commit {
        Commit { event, changes: Vec::new(), announce: None }
    }
}

/// A store that answers: one cheap round trip, for readiness checks and for an actor
/// that must not start without its store.
#[async_trait]
pub trait Ping: Send + Sync + 'static {
    async fn ping(&self) -> Result<()>;
}

/// Settings the engine keeps in the store (e.g. the secret-hash key).
#[async_trait]
pub trait SettingsStore: Send + Sync + 'static {
    /// Store `value` under `key` unless a value is there; return the value in force.
    async fn setting_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>>;
    /// The value under `key`, if any.
    async fn setting(&self, key: &str) -> Result<Option<Vec<u8>>>;
}

/// A webhook signing secret as stored: sealed by the keystore under `kid` (or a
/// reference into Vault in `key_ref`).
#[derive(Debug, Clone, PartialEq)]
pub struct SealedSecret {
    pub kid: String,
    pub sealed: Vec<u8>,
    pub key_ref: Option<String>,
}

/// The whole durable store: every port, and its migrations. The engine opens one and
/// hands each actor the narrow port it uses; a new family adds its own port here (and
/// one adapter file per backend).
#[async_trait]
pub trait Store:
    Ping
    + SettingsStore
    + DirectoryStore
    + SigningKeyStore
    + RevocationStore
    + AuditStore
    + FeedStore
    + QuotaStore
    + AnalyticsStore
    + DelegationStore
    + WebhookStore
    + FederationStore
    + DidStore
    + BillingStore
    + ComplianceStore
{
    /// Apply pending migrations; returns the schema version now in force.
    async fn migrate(&self) -> Result<u32>;
}

/// Decode a JSON text column written by this crate.
pub(crate) fn json_column<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| crate::EngineError::internal(format!("bad json column: {e}")))
}

pub(crate) fn enum_column<T>(value: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(value).ok_or_else(|| crate::EngineError::internal(format!("bad enum column {value:?}")))
}
