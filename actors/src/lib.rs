//! `agentidp-engine`: the identity engine of AgentIdP — domain, actors, supervision and
//! storage, with no HTTP in it. Embedders, the HTTP front-end, tests and benches all use
//! the same cloneable [`Engine`] handle:
//!
//! ```no_run
//! # async fn demo() -> Result<(), agentidp_engine::EngineError> {
//! use agentidp_engine::{Engine, EngineConfig, Origin, TokenRequest};
//! let engine = Engine::start(EngineConfig::embedded("./agentidp-data")).await?;
//! let admin = engine.bootstrap().await?;
//! let token = engine
//!     .issue_token(
//!         TokenRequest::client_credentials(&admin.client_id, &admin.client_secret, None),
//!         &Origin::default(),
//!     )
//!     .await?;
//! let caller = engine.authenticate(&token.access_token).await?;
//! # let _ = caller;
//! engine.shutdown().await;
//! # Ok(()) }
//! ```

pub mod config;
mod engine;
pub mod families;
pub mod kernel;
pub mod runtime;
pub mod store;

pub use config::EngineConfig;
pub use engine::*;
pub use families::billing::settings::BillingSettings;
pub use families::federation::settings::FederationSettings;
pub use families::webhooks::settings::WebhookSettings;
pub use kernel::clock::{Clock, ManualClock, SystemClock};
pub use kernel::error::{EngineError, Result};
pub use kernel::model::*;
pub use runtime::actor::RestartBudget;
pub use runtime::keyed::{KeyedConfig, KeyedFamily, KeyedHost, KeyedMetrics};
pub use runtime::keystore::vault_from_env;
pub use runtime::keystore::VaultConfig;
