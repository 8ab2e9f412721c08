//! The federation family's store port: what it reads and writes, and its records.

use async_trait::async_trait;
use uuid::Uuid;

use super::rules::Partner;

use crate::kernel::error::EngineError;
use crate::kernel::error::Result;

/// Federation partners (written by changes).
#[async_trait]
pub trait FederationStore: Send + Sync + 'static {
    /// Every partner of every organization (the node's index of issuers is built from it).
    async fn all_partners(&self) -> Result<Vec<Partner>>;
    /// One partner; `org_id` confines the lookup to an organization.
    async fn partner(&self, org_id: Option<Uuid>, id: Uuid) -> Result<Option<Partner>>;
    /// An organization's partners by id, after `after`.
    async fn list_partners(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Partner>>;
}

/// A partner's unique (organization, issuer) pair was taken: say so in the API's words.
pub(crate) fn same_issuer(e: EngineError) -> EngineError {
    match e {
        EngineError::Conflict(_) => {
            EngineError::Conflict("the organization already has a federation partner with this issuer".into())
        }
        e => e,
    }
}
