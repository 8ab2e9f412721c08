//! The federation family's changes: committed with their audit event in the audit writer's
//! group commit, so a change is durable exactly when its event is.

use uuid::Uuid;

use super::rules::Partner;

#[derive(Debug, Clone)]
pub enum PartnerChange {
    /// A new federation partner; `Conflict` if the organization has one with its issuer.
    InsertPartner(Box<Partner>),
    /// Everything but the ids and `created_at`; `NotFound` if the partner is gone.
    UpdatePartner(Box<Partner>),
    DeletePartner {
        org_id: Uuid,
        id: Uuid,
    },
}

crate::store::applied_by_adapters!(PartnerChange);
