//! The directory's cluster events (other families' caches follow them too), and what
//! every node does with them here: drop its cached record of the agent, or everything.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::model::Agent;
use crate::runtime::cache::EpochMap;
use crate::runtime::events::{Event, Listeners};

/// A credential's secret or status changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientChanged {
    pub client_id: String,
}

impl Event for ClientChanged {
    const KIND: &'static str = "client_changed";
}

/// An agent's status, scopes or DID keys changed, or it was deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentChanged {
    pub agent_id: Uuid,
}

impl Event for AgentChanged {
    const KIND: &'static str = "agent_changed";
}

/// An organization changed (its tier, say): what depends on it reads it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgChanged {
    pub org_id: Uuid,
}

impl Event for OrgChanged {
    const KIND: &'static str = "org_changed";
}

/// Whole agent records, for management reads (`GET /agents/{id}`).
pub type AgentRecords = EpochMap<Uuid, Agent>;

/// Upper bound of cached agent records.
pub const RECORD_LIMIT: usize = 200_000;

/// The directory's record cache follows its changes, here and on every node.
pub(crate) fn listen(records: &Arc<AgentRecords>, listeners: &mut Listeners) {
    let (r1, r2) = (records.clone(), records.clone());
    listeners.everywhere(move |e: AgentChanged| r1.forget(&e.agent_id)).everything(move || r2.forget_all());
}
