//! The directory family's changes: committed with their audit event in the audit writer's
//! group commit, so a change is durable exactly when its event is.

use uuid::Uuid;

use crate::kernel::model::{Agent, Credential, Millis, Organization};
use crate::kernel::tiers::TierTable;

#[derive(Debug, Clone)]
pub enum DirectoryChange {
    /// Refuse (with `TierLimit`) unless the organization, at its tier as committed, has
    /// fewer agents than that tier allows. Checked in the transaction — under the
    /// organization's row lock on PostgreSQL — so concurrent creations on any node
    /// never pass the limit, and a tier change counts at once.
    HasRoomForAgent {
        org_id: Uuid,
        tiers: TierTable,
    },
    InsertOrg(Organization),
    /// Name, tier and `updated_at`; `NotFound` if the organization is gone.
    UpdateOrg(Organization),
    /// The organization's delegation settings alone (a tier change beside it is kept).
    SetOrgDelegation {
        org_id: Uuid,
        settings: crate::kernel::model::DelegationSettings,
        at: crate::kernel::model::Millis,
    },
    /// Deletes the organization with its agents and credentials (audit events stay).
    DeleteOrg(Uuid),
    InsertAgent(Agent),
    /// `NotFound` if the agent is gone.
    UpdateAgent(Agent),
    DeleteAgent {
        org_id: Uuid,
        id: Uuid,
    },
    InsertCredential {
        credential: Credential,
        secret_hash: Vec<u8>,
    },
    /// Replace the secret of an active credential; `Conflict` if it is not active.
    RotateCredential {
        agent_id: Uuid,
        id: Uuid,
        secret_prefix: String,
        secret_hash: Vec<u8>,
        now: Millis,
    },
    RevokeCredential {
        agent_id: Uuid,
        id: Uuid,
        now: Millis,
    },
}

crate::store::applied_by_adapters!(DirectoryChange);
