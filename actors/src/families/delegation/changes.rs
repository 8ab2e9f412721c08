//! The delegation family's changes: committed with their audit event in the audit writer's
//! group commit, so a change is durable exactly when its event is.

use uuid::Uuid;

use super::rules::Delegation;
use crate::kernel::model::Millis;

#[derive(Debug, Clone)]
pub enum DelegationChange {
    /// Record a delegation link; `Conflict` unless its parent (if any) is active — checked
    /// under the parent's row lock on PostgreSQL, so a link is never added below one a
    /// concurrent revocation is revoking.
    InsertDelegation(Delegation),
    /// Revoke the link `id` of `org_id` and every active link below it, at any depth
    /// (found in the store, so links made on other nodes are included). `NotFound` if
    /// there is no such link.
    RevokeDelegation { org_id: Uuid, id: Uuid, now: Millis },
}

crate::store::applied_by_adapters!(DelegationChange);
