//! Signing keys: the parsed key ring (`keys.rs`), the KeyManager actor that creates,
//! rotates and publishes keys as a snapshot (`actor.rs`), and the published JWKS
//! (`handle.rs`). docs/design/signing.md.

pub(crate) mod actor;
pub(crate) mod handle;
pub mod keys;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod sqlite;
mod store;
pub use store::*;
