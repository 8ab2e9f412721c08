//! Usage analytics: counts per organization, agent, UTC day and metric, tallied in
//! memory and flushed by the AnalyticsAggregator (`actor.rs`), read back with this
//! node's unwritten counts (`handle.rs`). docs/design/runtime.md, "Analytics".

pub(crate) mod actor;
pub(crate) mod handle;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub mod rules;
pub(crate) mod sqlite;
mod store;
pub use store::*;
