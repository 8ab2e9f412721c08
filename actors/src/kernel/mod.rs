//! The kernel below the families: errors, the shared model, the clock, the caller's
//! authorization (policy, scopes, privilege rules) and JOSE helpers.

pub mod clock;
pub mod error;
pub mod jose;
pub mod model;
pub mod names;
pub mod paging;
pub(crate) mod policy;
pub mod privilege;
pub mod scopes;
pub mod tiers;
pub mod validity;
