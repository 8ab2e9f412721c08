//! Hot-path snapshots shared by every request: the credential directory (client id →
//! what authentication needs) and verified Bearer tokens. Reads are lock-free shard
//! lookups; invalidation belongs to the CacheKeeper actor.
//!
//! A reader that misses loads from the store and inserts — but a mutation may land
//! between its load and its insert, and the stale row would then be cached until the
//! next change. Every invalidation bumps `epoch`; a fill only inserts if the epoch it
//! read before loading is still current, so a racing fill is simply not cached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use uuid::Uuid;

use crate::coord::ClusterEvent;
use crate::model::{AgentStatus, CredentialStatus};
use crate::store::ClientRecord;

/// What the token endpoint needs of a credential.
#[derive(Debug)]
pub struct ClientEntry {
    pub status: CredentialStatus,
    pub secret_hash: Vec<u8>,
    pub agent_id: Uuid,
}

/// What the token endpoint needs of an agent.
#[derive(Debug)]
pub struct AgentEntry {
    pub org_id: Uuid,
    pub status: AgentStatus,
    pub scopes: Vec<String>,
}

/// Upper bound of cached bearer tokens; the cache is cleared when it is reached (tokens
/// are short-lived, so this only costs a re-verification).
const BEARER_LIMIT: usize = 200_000;

#[derive(Default)]
pub struct Caches {
    epoch: AtomicU64,
    clients: DashMap<String, Arc<ClientEntry>>,
    agents: DashMap<Uuid, Arc<AgentEntry>>,
    bearer: DashMap<[u8; 32], Arc<crate::Caller>>,
}

impl Caches {
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn client(&self, client_id: &str) -> Option<(Arc<ClientEntry>, Arc<AgentEntry>)> {
        let client = self.clients.get(client_id)?.clone();
        let agent = self.agents.get(&client.agent_id)?.clone();
        Some((client, agent))
    }

    /// Cache a record read from the store, unless an invalidation happened since `epoch`.
    pub fn fill(&self, epoch: u64, record: &ClientRecord) -> (Arc<ClientEntry>, Arc<AgentEntry>) {
        let client = Arc::new(ClientEntry {
            status: record.credential_status,
            secret_hash: record.secret_hash.clone(),
            agent_id: record.agent_id,
        });
        let agent = Arc::new(AgentEntry {
            org_id: record.org_id,
            status: record.agent_status,
            scopes: record.agent_scopes.clone(),
        });
        if self.epoch() == epoch {
            self.agents.insert(record.agent_id, agent.clone());
            self.clients
                .insert(record.client_id.clone(), client.clone());
            // An invalidation may have slipped in between the check and the inserts.
            if self.epoch() != epoch {
                self.clients.remove(&record.client_id);
                self.agents.remove(&record.agent_id);
            }
        }
        (client, agent)
    }

    /// Apply an invalidation. Only the CacheKeeper actor calls this.
    pub(crate) fn apply(&self, event: &ClusterEvent) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        match event {
            ClusterEvent::ClientChanged { client_id } => {
                self.clients.remove(client_id);
            }
            ClusterEvent::AgentChanged { agent_id } => {
                self.agents.remove(agent_id);
                self.clients.retain(|_, c| c.agent_id != *agent_id);
            }
            ClusterEvent::Everything => {
                self.clients.clear();
                self.agents.clear();
                self.bearer.clear();
            }
        }
    }

    pub fn bearer(&self, hash: &[u8; 32]) -> Option<Arc<crate::Caller>> {
        self.bearer.get(hash).map(|c| c.clone())
    }

    pub fn remember_bearer(&self, hash: [u8; 32], caller: Arc<crate::Caller>) {
        if self.bearer.len() >= BEARER_LIMIT {
            self.bearer.clear();
        }
        self.bearer.insert(hash, caller);
    }
}
