//! Delegation: chains of links from one agent to another with attenuated scope
//! (`rules.rs`), their biscuit form (`biscuit.rs`, `root_key.rs`), one actor per
//! organization keeping the chain index (`actor.rs`), and making, verifying, listing
//! and revoking links (`handle.rs`). docs/design/delegation.md.

pub(crate) mod actor;
pub mod biscuit;
pub(crate) mod handle;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub mod rules;
pub(crate) mod sqlite;
mod store;
pub use store::*;
mod changes;
pub(crate) mod root_key;
pub use changes::DelegationChange;
