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

mod actor;
pub mod billing;
mod cache;
pub mod clock;
pub mod config;
pub mod coord;
pub mod domain;
mod engine;
pub mod error;
pub mod keys;
mod keystore;
mod metrics;
pub mod model;
pub mod outbound;
mod policy;
mod private_fs;
pub mod store;

pub use actor::keyed::{KeyedConfig, KeyedFamily, KeyedHost, KeyedMetrics};
pub use actor::RestartBudget;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{BillingSettings, EngineConfig, FederationSettings, VaultConfig, WebhookSettings};
pub use engine::*;
pub use error::{EngineError, Result};
pub use keystore::vault_from_env;
pub use model::*;
