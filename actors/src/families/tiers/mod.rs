//! The daily call quota of each organization's tier: per-node leases refilled by one
//! actor per organization (`counters.rs`) from a ledger — the store, or Redis
//! (`redis.rs`) — and the tier listing and usage (`handle.rs`). The tiers' limits
//! themselves are `kernel::tiers`. docs/design/tiers.md.

pub(crate) mod counters;
pub(crate) mod handle;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
pub(crate) mod sqlite;
mod store;
pub use store::*;
