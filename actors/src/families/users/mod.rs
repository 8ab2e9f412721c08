//! People: the members of an organization who sign in — its administrators and
//! operators, and the people agents act for. Their records and the rules of their
//! emails and passwords (`rules.rs`), argon2id hashing (`password.rs`), the store port
//! and its adapters, and the verbs: managing users, and signing in (`handle.rs`).

mod bootstrap;
pub(crate) mod handle;
pub mod password;
#[cfg(feature = "postgres")]
mod postgres;
pub mod rules;
mod sqlite;
mod store;

pub use bootstrap::BOOTSTRAP_ADMIN_EMAIL;
pub use handle::{UserQuery, SIGN_IN_FAILED};
pub use store::*;
