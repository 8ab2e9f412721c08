//! Pure domain logic: no I/O, no clock, no actors. Everything here takes `now` and its
//! inputs as parameters and is tested without a runtime.

pub mod analytics;
pub mod audit_chain;
pub mod billing;
pub mod biscuit;
pub mod claims;
pub mod compliance;
pub mod delegation;
pub mod did;
pub mod federation;
pub mod jose;
pub mod privilege;
pub mod scopes;
pub mod secrets;
pub mod tiers;
pub mod validity;
pub mod webhooks;
