//! The dids family's store port: what it reads and writes, and its records.

use async_trait::async_trait;
use uuid::Uuid;

use crate::kernel::error::Result;
use crate::kernel::model::{Agent, Millis};
use crate::store::SealedSecret;

/// One of an agent's DID keys as stored.
#[derive(Debug, Clone)]
pub struct DidKeyRecord {
    pub agent_id: Uuid,
    pub org_id: Uuid,
    /// The verification method's fragment (`key-1`).
    pub key_id: String,
    pub public_jwk: serde_json::Value,
    /// The private key, when AgentIdP generated it.
    pub sealed: Option<SealedSecret>,
    pub created_at: Millis,
}

/// Agents' DID keys (written by changes).
#[async_trait]
pub trait DidStore: Send + Sync + 'static {
    /// The agent's keys, oldest first.
    async fn did_keys(&self, agent_id: Uuid) -> Result<Vec<DidKeyRecord>>;
    /// The agent a DID names, whatever its organization (a DID names no organization).
    async fn did_agent(&self, agent_id: Uuid) -> Result<Option<Agent>>;
    /// Whether an agent of this id existed and was deleted (its DID is deactivated).
    async fn agent_deleted(&self, agent_id: Uuid) -> Result<bool>;
}
