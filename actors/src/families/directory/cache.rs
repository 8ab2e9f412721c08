//! What the directory keeps in memory of its agents, dropped by its own `AgentChanged`
//! here and on every node: each agent as authentication needs it (status, organization,
//! scopes; the tokens family fills it with the credentials it caches), and whole agent
//! records for management reads (`GET /agents/{id}`).

use std::sync::Arc;

use uuid::Uuid;

use super::events::AgentChanged;
use crate::kernel::model::{Agent, AgentStatus};
use crate::runtime::cache::EpochMap;
use crate::runtime::events::Listeners;

/// What authentication needs of an agent.
#[derive(Debug)]
pub struct AgentEntry {
    pub org_id: Uuid,
    pub status: AgentStatus,
    pub scopes: Vec<String>,
}

impl AgentEntry {
    pub fn of(agent: &Agent) -> AgentEntry {
        AgentEntry { org_id: agent.org_id, status: agent.status, scopes: agent.scopes.clone() }
    }
}

/// Agents as authentication needs them.
pub type AgentEntries = EpochMap<Uuid, AgentEntry>;

/// Whole agent records.
pub type AgentRecords = EpochMap<Uuid, Agent>;

/// Upper bound of each map.
pub const AGENT_LIMIT: usize = 200_000;

/// Both maps follow the directory's agent changes, here and on every node.
pub(crate) fn listen(entries: &Arc<AgentEntries>, records: &Arc<AgentRecords>, listeners: &mut Listeners) {
    let (e1, e2, r1, r2) = (entries.clone(), entries.clone(), records.clone(), records.clone());
    listeners
        .everywhere(move |e: AgentChanged| {
            e1.forget(&e.agent_id);
            r1.forget(&e.agent_id);
        })
        .everything(move || {
            e2.forget_all();
            r2.forget_all();
        });
}
