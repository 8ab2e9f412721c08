//! The backends the engine runs on: the store (SQLite, or PostgreSQL) and the
//! coordinator (in-process, or Redis), opened from the configuration, with start-up
//! errors that name the setting to look at and where it points.

use std::sync::Arc;

use crate::config::EngineConfig;
#[cfg(feature = "redis")]
use crate::families::tiers::redis::RedisLedger;
use crate::families::tiers::QuotaStore;
use crate::kernel::error::{EngineError, Result};
use crate::runtime::coord::memory::MemoryCoordinator;
#[cfg(feature = "redis")]
use crate::runtime::coord::redis::RedisCoordinator;
use crate::runtime::coord::Coordinator;
#[cfg(feature = "postgres")]
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Migrate, Ping, SettingsStore};

/// The whole durable store: every family's port, and the backend's migrations. The
/// engine opens one backend and hands each actor the narrow port it uses (an
/// `Arc<dyn Store>` coerces to any of them); a new family adds its port here.
pub(crate) trait Store:
    Migrate
    + Ping
    + SettingsStore
    + crate::families::directory::DirectoryStore
    + crate::families::signing::SigningKeyStore
    + crate::families::revocation::RevocationStore
    + crate::families::audit::AuditStore
    + crate::runtime::events::FeedStore
    + QuotaStore
    + crate::families::analytics::AnalyticsStore
    + crate::families::delegation::DelegationStore
    + crate::families::webhooks::WebhookStore
    + crate::families::federation::FederationStore
    + crate::families::dids::DidStore
    + crate::families::billing::BillingStore
    + crate::families::compliance::ComplianceStore
    + crate::families::users::UserStore
    + crate::families::resources::ResourceStore
    + crate::families::clients::ClientStore
{
}

impl Store for SqliteStore {}
#[cfg(feature = "postgres")]
impl Store for PostgresStore {}

/// A start-up failure, naming the setting to look at and where it points.
fn startup_err(setting: &str, target: &str, e: EngineError) -> EngineError {
    let cause = match e {
        EngineError::Unavailable(m) | EngineError::Internal(m) => m,
        EngineError::Invalid { message, .. } => message,
        other => other.to_string(),
    };
    EngineError::Unavailable(format!("{setting} ({target}): {cause}"))
}

/// A setting names a backend this build of the engine left out (a cargo feature).
#[cfg(not(all(feature = "postgres", feature = "redis", feature = "stripe")))]
pub(super) fn not_built(setting: &'static str, what: &str, feature: &str) -> EngineError {
    EngineError::invalid(setting, format!("this build has no {what} support (the engine's `{feature}` feature)"))
}

/// Open the configured store and apply its migrations: the store and its schema version.
pub(super) async fn open_store(config: &EngineConfig) -> Result<(Arc<dyn Store>, u32)> {
    let (store, setting, target): (Arc<dyn Store>, _, String) = match &config.database_url {
        #[cfg(feature = "postgres")]
        Some(url) => {
            let target = PostgresStore::describe(url);
            let store = PostgresStore::connect(url).map_err(|e| startup_err("DATABASE_URL", &target, e))?;
            (Arc::new(store), "DATABASE_URL", target)
        }
        #[cfg(not(feature = "postgres"))]
        Some(_) => return Err(not_built("DATABASE_URL", "PostgreSQL", "postgres")),
        None => {
            let target = config.data_dir.display().to_string();
            let store = SqliteStore::open(&config.data_dir).map_err(|e| startup_err("data_dir", &target, e))?;
            (Arc::new(store), "data_dir", target)
        }
    };
    let version = store.migrate().await.map_err(|e| startup_err(setting, &target, e))?;
    Ok((store, version))
}

/// The coordinator, and the quota's ledger: with Redis, Redis is both; without, an
/// in-process coordinator and the store as the ledger.
pub(super) async fn connect_coordinator(
    config: &EngineConfig,
    store: &Arc<dyn Store>,
) -> Result<(Arc<dyn Coordinator>, Arc<dyn QuotaStore>)> {
    Ok(match &config.redis_url {
        #[cfg(not(feature = "redis"))]
        Some(_) => return Err(not_built("REDIS_URL", "Redis", "redis")),
        #[cfg(feature = "redis")]
        Some(url) => {
            let redis_err = |e| startup_err("REDIS_URL", &RedisCoordinator::describe(url), e);
            let coord = RedisCoordinator::connect(url, &config.redis_namespace).await.map_err(redis_err)?;
            let ledger =
                RedisLedger::connect(url, &config.redis_namespace, config.clock.clone()).await.map_err(redis_err)?;
            (Arc::new(coord), Arc::new(ledger))
        }
        None => (Arc::new(MemoryCoordinator::new(config.clock.now_ms())), store.clone()),
    })
}
