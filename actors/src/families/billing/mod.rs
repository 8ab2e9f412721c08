//! Billing with Stripe: Checkout Sessions and the signed webhook (`handle.rs`), the
//! provider port and its Stripe adapter (`provider.rs`, `stripe.rs`), reading
//! subscriptions of any API version (`rules.rs`), and the grace-period sweeper
//! (`actor.rs`). docs/design/billing.md.

#[cfg(feature = "stripe")]
pub(crate) mod actor;
pub(crate) mod handle;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub mod provider;
pub mod rules;
pub mod settings;
pub(crate) mod sqlite;
mod store;
#[cfg(feature = "stripe")]
pub mod stripe;
pub use store::*;
mod changes;
pub use changes::BillingChange;
