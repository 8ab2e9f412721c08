//! Resource servers: the APIs and MCP servers an organization's tokens are for (RFC
//! 8707). A token request that names one with `resource` gets a token whose `aud` is
//! its identifier, carrying only the scopes it offers, for its lifetime, DPoP-bound when
//! it requires it; without `resource`, tokens are for AgentIdP's own API as before.

pub(crate) mod handle;
#[cfg(feature = "postgres")]
mod postgres;
pub mod rules;
mod sqlite;
mod store;

pub use store::*;
