//! Agents' DID documents as served: rendered once per change (a key added or removed,
//! the agent's status) and dropped by the directory's `AgentChanged` that announces it.

use std::sync::Arc;

use uuid::Uuid;

use super::rules::DocumentMetadata;
use crate::families::directory::events::AgentChanged;
use crate::kernel::jose::PublicJwk;
use crate::kernel::model::Agent;
use crate::runtime::cache::EpochMap;
use crate::runtime::events::Listeners;

/// An agent's DID document as served.
pub struct RenderedDid {
    /// The document's JSON text (`application/did+json`).
    pub body: String,
    pub metadata: DocumentMetadata,
    /// The DID keys' public JWKs by fragment (what a DID-key client assertion verifies
    /// with), parsed once; empty for a deactivated DID.
    pub keys: Vec<(String, Arc<PublicJwk>)>,
    /// The agent, when it is active: who a DID-key assertion signs in as.
    pub agent: Option<Arc<Agent>>,
}

/// Rendered documents by agent.
pub type DidDocuments = EpochMap<Uuid, RenderedDid>;

/// Upper bound of cached documents.
pub const DOCUMENT_LIMIT: usize = 200_000;

/// The documents follow the directory's agent changes, here and on every node.
pub(crate) fn listen(documents: &Arc<DidDocuments>, listeners: &mut Listeners) {
    let (d1, d2) = (documents.clone(), documents.clone());
    listeners.everywhere(move |e: AgentChanged| d1.forget(&e.agent_id)).everything(move || d2.forget_all());
}
