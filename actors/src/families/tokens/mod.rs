//! The token endpoint and what happens to a token after: client authentication (secret,
//! private_key_jwt, an agent's DID key) and its lockouts (`client_auth.rs`, `limits.rs`),
//! the grants and DPoP binding (`handle.rs`), the access token's claims (`claims.rs`),
//! and introspection, revocation and Bearer authentication (`bearer.rs`).
//! docs/design/tokens.md.

pub(crate) mod bearer;
pub mod cache;
pub mod claims;
pub(crate) mod client_auth;
pub(crate) mod handle;
pub(crate) mod jwt_bearer;
pub(crate) mod limits;
