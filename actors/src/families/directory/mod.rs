//! Organizations, agents and credentials: creating, changing and deleting them under the
//! privilege rules (`kernel::privilege`), client secrets and their keyed hash
//! (`secrets.rs`), and the first start and `admin recover` (`bootstrap.rs`).
//! docs/design/directory.md.

pub(crate) mod bootstrap;
pub mod cache;
pub mod events;
pub(crate) mod handle;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub mod secrets;
pub(crate) mod sqlite;
mod store;
pub use store::*;
mod changes;
pub use changes::DirectoryChange;
