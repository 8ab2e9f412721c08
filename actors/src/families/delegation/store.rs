//! The delegation family's store port: what it reads and writes, and its records.

use async_trait::async_trait;
use uuid::Uuid;

use super::rules::{Delegation, DelegationStatus};

use crate::kernel::error::Result;
use crate::kernel::model::Millis;

/// What a delegation listing is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct DelegationFilter {
    pub delegator_id: Option<Uuid>,
    pub delegatee_id: Option<Uuid>,
    /// `Expired` is an active link past its expiry at `now`; `Active` one before it.
    pub status: Option<DelegationStatus>,
    pub now: Millis,
}

/// Delegation chains (the DelegationActor's port; links are written as [`Change`]s).
#[async_trait]
pub trait DelegationStore: Send + Sync + 'static {
    /// The links of `org_id` that have not expired by `now`, revoked ones included.
    async fn live_delegations(&self, org_id: Uuid, now: Millis) -> Result<Vec<Delegation>>;
    async fn get_delegation(&self, org_id: Uuid, id: Uuid) -> Result<Option<Delegation>>;
    /// The authority-block revocation ids of revoked biscuit links (of every
    /// organization) that have not expired by `now`: what offline verifiers refuse.
    async fn revoked_biscuits(&self, now: Millis) -> Result<Vec<String>>;
    /// Oldest first (by id), after the `after` cursor.
    async fn list_delegations(
        &self,
        org_id: Uuid,
        filter: &DelegationFilter,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Delegation>>;
}
