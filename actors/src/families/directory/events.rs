//! The directory's cluster events, and what every node does with them: drop what it
//! cached of the credential, the agent, or everything.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::runtime::cache::Caches;
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

/// The shared caches follow the directory's changes, here and on every node.
pub(crate) fn listen(caches: &Arc<Caches>, listeners: &mut Listeners) {
    let (c1, c2, c3, c4, c5) = (caches.clone(), caches.clone(), caches.clone(), caches.clone(), caches.clone());
    listeners
        .here(move |e: ClientChanged| {
            c1.forget_client(&e.client_id);
            async { Ok(()) }
        })
        .elsewhere(move |e: ClientChanged| c2.forget_client(&e.client_id))
        .here(move |e: AgentChanged| {
            c3.forget_agent(e.agent_id);
            async { Ok(()) }
        })
        .elsewhere(move |e: AgentChanged| c4.forget_agent(e.agent_id))
        .everything(move || c5.forget_all());
}
