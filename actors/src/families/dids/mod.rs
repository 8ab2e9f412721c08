//! Agents' W3C DIDs (did:web): syntax, documents and resolution (`rules.rs`), and the
//! keys an agent's DID document lists (`handle.rs`). docs/design/directory.md.

pub mod cache;
pub(crate) mod handle;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub mod rules;
pub(crate) mod sqlite;
mod store;
pub use store::*;
mod changes;
pub use changes::DidChange;
