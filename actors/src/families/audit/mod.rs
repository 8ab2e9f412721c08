//! The audit trail: the hash chain (`chain.rs`), the AuditWriter that group-commits
//! every change with its event (`writer.rs`), and reading and verifying a chain
//! (`handle.rs`). docs/design/audit.md.

pub mod chain;
pub mod checkpointer;
pub(crate) mod handle;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod sqlite;
mod store;
pub(crate) mod writer;
pub use store::*;
