//! The directory's cluster events: its own caches (`cache.rs`) and other families'
//! follow them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::runtime::events::Event;

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
