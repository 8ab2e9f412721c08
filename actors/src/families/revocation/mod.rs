//! Revoked access tokens, remembered until they would have expired: the
//! RevocationActor's set, published as a snapshot every token check reads (`actor.rs`).
//! Revoking is a verb of the tokens family. docs/design/tokens.md.

pub(crate) mod actor;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod sqlite;
mod store;
pub use store::*;
mod changes;
pub use changes::RevocationChange;
