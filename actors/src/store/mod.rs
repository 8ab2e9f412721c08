//! The two backends and what every family's port shares. A family declares its own port
//! (`families/<name>/store.rs`) and implements it for each backend beside it
//! (`sqlite.rs`, `postgres.rs`); this layer holds the connections, their migrations and
//! error mapping, the [`Change`] a family commits, and nothing that names a family
//! (the union of every port is composition's: `engine::Store`).
//!
//! Both adapters store timestamps as unix milliseconds and JSON as text, so records read
//! back identically from either (the audit hash chain depends on that).

use async_trait::async_trait;
use uuid::Uuid;

use crate::kernel::error::Result;

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

/// A backend's schema: its migrations, applied in order.
#[async_trait]
pub trait Migrate: Send + Sync + 'static {
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
