//! Applications: the OAuth clients people authorize with the authorization code grant —
//! public (no secret, PKCE only) or confidential, or an agent that acts for the people
//! who authorize it. Their rules (redirect URIs matched exactly, a loopback redirect on
//! any port), records, store port and adapters, and the verbs that manage them.

pub(crate) mod handle;
#[cfg(feature = "postgres")]
mod postgres;
pub mod rules;
mod sqlite;
mod store;

pub use handle::APP_CLIENT_ID_PREFIX;
pub use store::*;
