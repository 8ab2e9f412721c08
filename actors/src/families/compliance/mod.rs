//! The compliance report: its checks, pure (`rules.rs`), over what one query per kind
//! gathers (`store.rs`), cached in the coordinator (`handle.rs`).
//! docs/design/compliance.md.

pub(crate) mod handle;
pub(crate) mod postgres;
pub mod rules;
pub(crate) mod sqlite;
mod store;
pub use store::*;
