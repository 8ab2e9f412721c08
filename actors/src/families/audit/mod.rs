//! The audit trail: the hash chain (`chain.rs`), the compact record each event is
//! stored as (`record.rs`), the AuditWriter that group-commits every change with its
//! event (`writer.rs`), reading records back as events (`read.rs`), and the API's
//! reading and verifying (`handle.rs`). docs/design/audit.md.

pub mod archive;
pub mod chain;
pub mod checkpointer;
pub(crate) mod handle;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod read;
pub mod record;
pub(crate) mod sqlite;
mod store;
pub(crate) mod upgrade;
pub(crate) mod writer;
pub use store::*;
