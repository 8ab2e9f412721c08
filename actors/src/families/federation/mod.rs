//! Federation partners: trusted issuers whose JWTs an organization accepts (`rules.rs`),
//! their keys fetched and cached by one actor per partner (`actor.rs`, `jwks.rs`),
//! checking a partner's JWT (`assertion.rs`), and the partner API and the JWT-bearer
//! grant (`handle.rs`). docs/design/federation.md.

pub(crate) mod actor;
mod assertion;
pub(crate) mod handle;
mod jwks;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub mod rules;
pub mod settings;
pub(crate) mod sqlite;
mod store;
pub use store::*;
mod changes;
pub use changes::PartnerChange;
