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

use crate::families::directory::ClientRecord;
use crate::families::tokens::claims::AccessClaims;
use crate::kernel::jose::{parse_public_jwk, PublicJwk};
use crate::kernel::model::{Agent, AgentStatus, CredentialStatus};

/// An access token whose signature and issuer were verified, with the caller it names.
/// Time, revocation and the client's status are checked on every use, not cached.
pub struct Verified {
    pub claims: AccessClaims,
    pub caller: Arc<crate::kernel::model::Caller>,
}

/// What the token endpoint needs of a credential.
pub struct ClientEntry {
    pub status: CredentialStatus,
    pub key: ClientKey,
    pub agent_id: Uuid,
}

/// How a credential proves itself.
pub enum ClientKey {
    /// The keyed hash of a client secret.
    Secret(Vec<u8>),
    /// The registered public key that signs client assertions.
    PublicKey(Arc<PublicJwk>),
    /// A stored key that no longer parses: it authenticates nothing.
    Unusable,
}

/// What the token endpoint needs of an agent.
#[derive(Debug)]
pub struct AgentEntry {
    pub org_id: Uuid,
    pub status: AgentStatus,
    pub scopes: Vec<String>,
}

/// An agent's DID document as served: rendered once per change (a key added or removed,
/// the agent's status) and dropped by the `AgentChanged` that announces it.
pub struct RenderedDid {
    /// The document's JSON text (`application/did+json`).
    pub body: String,
    pub metadata: crate::families::dids::rules::DocumentMetadata,
    /// The DID keys' public JWKs by fragment (what a DID-key client assertion verifies
    /// with), parsed once; empty for a deactivated DID.
    pub keys: Vec<(String, Arc<PublicJwk>)>,
    /// The agent, when it is active: who a DID-key assertion signs in as.
    pub agent: Option<Arc<Agent>>,
}

/// Upper bound of cached bearer tokens; the cache is cleared when it is reached (tokens
/// are short-lived, so this only costs a re-verification).
const BEARER_LIMIT: usize = 200_000;

#[derive(Default)]
pub struct Caches {
    epoch: AtomicU64,
    clients: DashMap<String, Arc<ClientEntry>>,
    agents: DashMap<Uuid, Arc<AgentEntry>>,
    bearer: DashMap<[u8; 32], Arc<Verified>>,
    /// Whole agent records, for management reads (`GET /agents/{id}`).
    records: DashMap<Uuid, Arc<Agent>>,
    /// Agents' rendered DID documents.
    did_docs: DashMap<Uuid, Arc<RenderedDid>>,
}

/// Upper bound of cached agent records; the cache is cleared when it is reached.
const RECORD_LIMIT: usize = 200_000;

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
        let key = match (record.kind.as_str(), &record.public_jwk) {
            ("private_key_jwt", Some(jwk)) => match parse_public_jwk(jwk) {
                Ok(parsed) => ClientKey::PublicKey(Arc::new(parsed)),
                Err(e) => {
                    tracing::error!(client_id = %record.client_id, error = %e, "stored client key is unusable");
                    ClientKey::Unusable
                }
            },
            ("client_secret", _) => ClientKey::Secret(record.secret_hash.clone()),
            _ => ClientKey::Unusable,
        };
        let client = Arc::new(ClientEntry { status: record.credential_status, key, agent_id: record.agent_id });
        let agent = Arc::new(AgentEntry {
            org_id: record.org_id,
            status: record.agent_status,
            scopes: record.agent_scopes.clone(),
        });
        if self.epoch() == epoch {
            self.agents.insert(record.agent_id, agent.clone());
            self.clients.insert(record.client_id.clone(), client.clone());
            // An invalidation may have slipped in between the check and the inserts.
            if self.epoch() != epoch {
                self.clients.remove(&record.client_id);
                self.agents.remove(&record.agent_id);
            }
        }
        (client, agent)
    }

    pub fn agent_record(&self, agent_id: Uuid) -> Option<Arc<Agent>> {
        self.records.get(&agent_id).map(|a| a.clone())
    }

    /// Cache an agent record read from the store, under the epoch rule.
    /// An agent's rendered DID document (its JSON text) and metadata.
    pub fn did_document(&self, agent_id: Uuid) -> Option<Arc<RenderedDid>> {
        self.did_docs.get(&agent_id).map(|d| d.clone())
    }

    pub fn fill_did_document(&self, epoch: u64, agent_id: Uuid, rendered: RenderedDid) -> Arc<RenderedDid> {
        let rendered = Arc::new(rendered);
        if self.epoch() == epoch {
            if self.did_docs.len() >= RECORD_LIMIT {
                self.did_docs.clear();
            }
            self.did_docs.insert(agent_id, rendered.clone());
            if self.epoch() != epoch {
                self.did_docs.remove(&agent_id);
            }
        }
        rendered
    }

    pub fn fill_record(&self, epoch: u64, agent: &Agent) {
        if self.epoch() == epoch {
            if self.records.len() >= RECORD_LIMIT {
                self.records.clear();
            }
            self.records.insert(agent.id, Arc::new(agent.clone()));
            if self.epoch() != epoch {
                self.records.remove(&agent.id);
            }
        }
    }

    pub fn agent(&self, agent_id: Uuid) -> Option<Arc<AgentEntry>> {
        self.agents.get(&agent_id).map(|a| a.clone())
    }

    /// Cache an agent read from the store, under the same epoch rule as [`Caches::fill`].
    pub fn fill_agent(&self, epoch: u64, agent: &Agent) {
        if self.epoch() == epoch {
            let entry = AgentEntry { org_id: agent.org_id, status: agent.status, scopes: agent.scopes.clone() };
            self.agents.insert(agent.id, Arc::new(entry));
            if self.epoch() != epoch {
                self.agents.remove(&agent.id);
            }
        }
    }

    /// Drop a credential (its secret or status changed). Invalidations come from the
    /// directory's cluster events (`families::directory::events`).
    pub(crate) fn forget_client(&self, client_id: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.clients.remove(client_id);
    }

    /// Drop what is cached of an agent: its record, its DID document, its credentials.
    pub(crate) fn forget_agent(&self, agent_id: Uuid) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.agents.remove(&agent_id);
        self.records.remove(&agent_id);
        self.did_docs.remove(&agent_id);
        self.clients.retain(|_, c| c.agent_id != agent_id);
    }

    /// Drop every cached entry.
    pub(crate) fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.records.clear();
        self.did_docs.clear();
        self.clients.clear();
        self.agents.clear();
        self.bearer.clear();
    }

    pub fn bearer(&self, hash: &[u8; 32]) -> Option<Arc<Verified>> {
        self.bearer.get(hash).map(|c| c.clone())
    }

    pub fn forget_bearer(&self, hash: &[u8; 32]) {
        self.bearer.remove(hash);
    }

    pub fn remember_bearer(&self, hash: [u8; 32], caller: Arc<Verified>) {
        if self.bearer.len() >= BEARER_LIMIT {
            self.bearer.clear();
        }
        self.bearer.insert(hash, caller);
    }
}
