//! The directory family's store port: what it reads and writes, and its records.

use async_trait::async_trait;
use uuid::Uuid;

use crate::kernel::error::Result;
use crate::kernel::model::{Agent, AgentStatus, Credential, CredentialStatus, Organization};

/// Everything the token endpoint needs to authenticate a client, in one read.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub client_id: String,
    pub credential_status: CredentialStatus,
    /// `client_secret` or `private_key_jwt`.
    pub kind: String,
    pub secret_hash: Vec<u8>,
    /// The registered public key of a `private_key_jwt` credential.
    pub public_jwk: Option<serde_json::Value>,
    pub agent_id: Uuid,
    pub org_id: Uuid,
    pub agent_status: AgentStatus,
    pub agent_scopes: Vec<String>,
}

/// Organizations, agents and credentials, as the engine reads them. (They change only
/// with their audit event: see [`Change`] and [`AuditStore::append_audit`].)
#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    async fn get_org(&self, id: Uuid) -> Result<Option<Organization>>;
    async fn list_orgs(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Organization>>;
    async fn count_orgs(&self) -> Result<u64>;
    /// Agents of `org_id`, of any status.
    async fn count_agents(&self, org_id: Uuid) -> Result<u64>;

    async fn get_agent(&self, org_id: Uuid, id: Uuid) -> Result<Option<Agent>>;
    async fn list_agents(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Agent>>;
    /// Every agent, of any organization and status, that holds `scope` (e.g. the
    /// platform administrators).
    async fn agents_with_scope(&self, scope: &str) -> Result<Vec<Agent>>;

    async fn list_credentials(&self, agent_id: Uuid) -> Result<Vec<Credential>>;
    async fn get_credential(&self, agent_id: Uuid, id: Uuid) -> Result<Option<Credential>>;
    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>>;
}
