//! BillingSweeper: ends grace periods. A failed payment leaves an organization on its
//! paid tier until `grace_until`; when no later event from Stripe has settled it by then,
//! this actor (one per node, when billing is configured) moves the organization to free,
//! audited as `billing.tier_change`. Every node sweeps; the commit claims the lapse as a
//! once-only event, so exactly one node applies it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::json;

use crate::families::audit::writer::AuditLog;
use crate::families::audit::Commit;
use crate::families::billing::handle::tier_commit;
use crate::families::billing::BillingChange;
use crate::families::billing::BillingStore;
use crate::families::directory::DirectoryStore;
use crate::kernel::clock::Clock;
use crate::kernel::error::Result;
use crate::kernel::model::Tier;
use crate::runtime::actor::ChildSpec;

#[derive(Clone)]
pub(crate) struct Deps {
    /// Subscriptions whose grace period ended.
    pub subscriptions: Arc<dyn BillingStore>,
    /// Their organizations.
    pub directory: Arc<dyn DirectoryStore>,
    pub audit: AuditLog,
    pub clock: Arc<dyn Clock>,
    pub every: Duration,
}

/// Register the sweeper; it has no handle (it only ticks).
pub(crate) fn child(deps: Deps) -> (ChildSpec, ()) {
    crate::runtime::ticker::child("billing_sweeper", deps.every, deps, round)
}

fn round(deps: &Deps) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        match sweep(deps).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(organizations = n, "grace periods ended: moved to the free tier"),
            Err(e) => tracing::warn!(error = %e, "grace periods not swept; trying again at the next tick"),
        }
    })
}

/// Move every organization whose grace period has ended to free.
async fn sweep(deps: &Deps) -> Result<usize> {
    let now = deps.clock.now_ms();
    let mut lapsed = 0;
    for mut sub in deps.subscriptions.lapsed_subscriptions(now).await? {
        let Some(org) = deps.directory.get_org(sub.org_id).await? else { continue };
        let grace_until = sub.grace_until.unwrap_or(now);
        // The lapse is an event of its own, claimed once whichever node gets there first.
        let claim = BillingChange::ClaimStripeEvent {
            id: format!("grace:{}:{grace_until}", sub.org_id),
            kind: "agentidp.grace_period_ended".into(),
            at: now,
        }
        .into();
        let detail = json!({"status": "unpaid", "from": org.tier, "to": Tier::Free, "grace_until": grace_until});
        let (event, tier_change, announce) = tier_commit("agentidp", &org, Tier::Free, &detail, now);
        sub.status = "unpaid".into();
        sub.updated_at = now;
        let mut changes = vec![claim, BillingChange::PutSubscription(Box::new(sub)).into()];
        changes.extend(tier_change);
        match deps.audit.append(Commit { event: event.seal(), changes, announce }).await {
            Ok(()) => lapsed += 1,
            // Another node applied it first.
            Err(crate::EngineError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(lapsed)
}
