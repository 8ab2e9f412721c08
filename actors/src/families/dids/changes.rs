//! The dids family's changes: committed with their audit event in the audit writer's
//! group commit, so a change is durable exactly when its event is.

use uuid::Uuid;

use super::DidKeyRecord;

#[derive(Debug, Clone)]
pub enum DidChange {
    /// A new verification method of an agent's DID; `Conflict` if its key id is taken.
    InsertDidKey(Box<DidKeyRecord>),
    /// `NotFound` if the agent has no such key.
    RemoveDidKey { agent_id: Uuid, key_id: String },
}

crate::store::applied_by_adapters!(DidChange);
