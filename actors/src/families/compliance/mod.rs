//! The compliance report: its checks, pure (`rules.rs`), over what one query per kind
//! gathers (`store.rs`), cached in the coordinator (`handle.rs`).
//! docs/design/compliance.md.

pub(crate) mod handle;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub mod rules;
pub(crate) mod sqlite;
mod store;
pub use store::*;

/// The audit writer drops an organization's cached report after a commit that changes
/// what it reads.
pub(crate) const REPORT_STALE: crate::families::audit::writer::StaleAfter =
    crate::families::audit::writer::StaleAfter { action: rules::changes_report, key: rules::cache_key };
