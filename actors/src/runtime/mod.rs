//! The shared runtime: supervision and the keyed host, the cache keeper and caches, the
//! cluster coordinator, outbound HTTP, the keystore and metrics.

pub(crate) mod actor;
pub(crate) mod background;
pub(crate) mod cache;
pub(crate) mod cache_keeper;
pub mod coord;
pub mod events;
pub(crate) mod janitor;
pub(crate) mod keyed;
pub(crate) mod keystore;
pub(crate) mod metrics;
pub mod outbound;
pub(crate) mod private_fs;
pub(crate) mod supervisor;
pub(crate) mod ticker;
