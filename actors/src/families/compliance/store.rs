//! The compliance family's store port: what it reads and writes, and its records.

use async_trait::async_trait;
use uuid::Uuid;

use crate::kernel::error::Result;
use crate::kernel::model::Credential;

/// What the compliance report reads of an organization in one query each (indexed by
/// organization), so it stays fast at a hundred thousand agents.
#[async_trait]
pub trait ComplianceStore: Send + Sync + 'static {
    /// Every agent of the organization: id, status and scopes (no more, at 100k agents).
    async fn agent_facts(&self, org_id: Uuid) -> Result<Vec<crate::families::compliance::rules::AgentFacts>>;
    /// Every active credential of the organization.
    async fn org_credentials(&self, org_id: Uuid) -> Result<Vec<Credential>>;
    /// The agents that have at least one DID key.
    async fn agents_with_did_keys(&self, org_id: Uuid) -> Result<Vec<Uuid>>;
    /// The agents that were issued a token on `day` or later (from the analytics counts).
    async fn agents_with_tokens_since(&self, org_id: Uuid, day: i64) -> Result<Vec<Uuid>>;
}
