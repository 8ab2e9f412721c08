//! The revocation family's changes: committed with their audit event in the audit writer's
//! group commit, so a change is durable exactly when its event is.

use super::Revocation;
use crate::kernel::model::Millis;

#[derive(Debug, Clone)]
pub enum RevocationChange {
    /// Remember a revoked token (idempotent).
    RevokeToken { revocation: Revocation, now: Millis },
}

crate::store::applied_by_adapters!(RevocationChange);
