//! What the token endpoint and Bearer authentication keep in memory: each credential as
//! authentication needs it (read from the directory's records, with its agent into the
//! directory's `AgentEntries`; dropped by its `ClientChanged`/`AgentChanged`), and tokens
//! whose signature was verified.

use std::sync::Arc;

use dashmap::DashMap;
use uuid::Uuid;

use super::claims::AccessClaims;
use crate::families::directory::cache::{AgentEntries, AgentEntry};
use crate::families::directory::events::{AgentChanged, ClientChanged};
use crate::families::directory::ClientRecord;
use crate::kernel::jose::{parse_public_jwk, PublicJwk};
use crate::kernel::model::{Caller, CredentialStatus};
use crate::runtime::cache::{Epoch, EpochMap};
use crate::runtime::events::Listeners;

/// An access token whose signature and issuer were verified, with the caller it names.
/// Time, revocation and the client's status are checked on every use, not cached.
pub struct Verified {
    pub claims: AccessClaims,
    pub caller: Arc<Caller>,
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

/// Upper bound of cached credentials; the map is cleared when it is reached.
const CLIENT_LIMIT: usize = 200_000;
/// Upper bound of cached bearer tokens (tokens are short-lived: clearing only costs a
/// re-verification).
const BEARER_LIMIT: usize = 200_000;

/// The family's caches.
pub struct TokenCaches {
    clients: EpochMap<String, ClientEntry>,
    /// The directory's, which a credential's read fills too.
    agents: Arc<AgentEntries>,
    bearer: DashMap<[u8; 32], Arc<Verified>>,
}

impl TokenCaches {
    pub fn new(epoch: Arc<Epoch>, agents: Arc<AgentEntries>) -> TokenCaches {
        TokenCaches { clients: EpochMap::new(epoch, CLIENT_LIMIT), agents, bearer: DashMap::new() }
    }

    pub fn epoch(&self) -> u64 {
        self.clients.epoch()
    }

    pub fn client(&self, client_id: &str) -> Option<(Arc<ClientEntry>, Arc<AgentEntry>)> {
        let client = self.clients.get(client_id)?;
        let agent = self.agents.get(&client.agent_id)?;
        Some((client, agent))
    }

    /// Cache a credential read from the store (after reading `epoch`), with its agent.
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
        let agent = self.agents.fill(epoch, record.agent_id, agent);
        (self.clients.fill(epoch, record.client_id.clone(), client), agent)
    }

    pub fn bearer(&self, hash: &[u8; 32]) -> Option<Arc<Verified>> {
        self.bearer.get(hash).map(|c| c.clone())
    }

    pub fn forget_bearer(&self, hash: &[u8; 32]) {
        self.bearer.remove(hash);
    }

    pub fn remember_bearer(&self, hash: [u8; 32], verified: Arc<Verified>) {
        if self.bearer.len() >= BEARER_LIMIT {
            self.bearer.clear();
        }
        self.bearer.insert(hash, verified);
    }

    fn forget_client(&self, client_id: &str) {
        self.clients.forget(client_id);
    }

    /// Its credentials (the directory drops the agent's entry).
    fn forget_agent(&self, agent_id: Uuid) {
        self.clients.forget_where(|_, c| c.agent_id == agent_id);
    }

    fn forget_all(&self) {
        self.clients.forget_all();
        self.bearer.clear();
    }
}

/// The caches follow the directory's changes, here and on every node.
pub(crate) fn listen(caches: &Arc<TokenCaches>, listeners: &mut Listeners) {
    let (c1, c2, c3) = (caches.clone(), caches.clone(), caches.clone());
    listeners
        .everywhere(move |e: ClientChanged| c1.forget_client(&e.client_id))
        .everywhere(move |e: AgentChanged| c2.forget_agent(e.agent_id))
        .everything(move || c3.forget_all());
}
