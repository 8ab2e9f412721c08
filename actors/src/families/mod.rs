//! The capabilities, one folder each: the engine verbs the family offers (`handle.rs`),
//! its pure rules, its actors, its store port's adapters (`sqlite.rs`, `postgres.rs`).

pub mod analytics;
pub mod audit;
pub mod billing;
pub mod clients;
pub mod compliance;
pub mod delegation;
pub mod dids;
pub mod directory;
pub mod federation;
pub mod resources;
pub mod revocation;
pub mod signing;
pub mod tiers;
pub mod tokens;
pub mod users;
pub mod webhooks;

/// The toy family of docs/architecture.md's "Adding a capability" (tests only).
#[cfg(test)]
mod notes;
