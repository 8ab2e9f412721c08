//! Delegation chains: one DelegationActor per organization (a keyed family) owns that
//! organization's chains — it makes each new link and each revocation durable (with its
//! audit event, through the AuditWriter) one at a time, and keeps the organization's
//! published [`ChainIndex`] of unexpired links: a new link is added to it in place, a
//! revocation replaces it with one re-read from the store.
//!
//! Verification (of a delegation token, at `verify-delegation` and on every use of one)
//! reads the index and never waits on the mailbox. Only a link the index does not
//! know — made a moment ago on another node — makes it ask the actor to re-read the
//! store once. A restarted (or idle-stopped and restarted) actor re-hydrates the index
//! from `delegation_chains`; changes made on other nodes arrive as
//! `DelegationsChanged` and make it re-read.

use std::sync::Arc;

use async_trait::async_trait;
use dashmap::DashMap;
use ractor::RpcReplyPort;
use uuid::Uuid;

use crate::families::audit::writer::AuditLog;
use crate::families::audit::Commit;
use crate::families::delegation::rules::{ChainIndex, Delegation, DelegationStatus};
use crate::families::delegation::DelegationStore;
use crate::kernel::clock::Clock;
use crate::kernel::error::Result;
use crate::runtime::events::{Event, Listeners};
use crate::runtime::keyed::{KeyedFamily, KeyedHost};

/// Every organization's published index on this node.
pub(crate) type Snapshots = Arc<DashMap<Uuid, Arc<ChainIndex>>>;

/// Organizations whose re-read is already asked for (so a burst of changes elsewhere
/// costs one re-read, not one each).
pub(crate) type Pending = Arc<dashmap::DashSet<Uuid>>;

/// The family: what each organization's actor is started with.
pub(crate) struct DelegationChains {
    pub store: Arc<dyn DelegationStore>,
    pub audit: AuditLog,
    pub clock: Arc<dyn Clock>,
    pub snapshots: Snapshots,
    pub pending: Pending,
}

pub(crate) enum Msg {
    /// Make `commit` (the link's audit event and its `InsertDelegation`) durable, then add
    /// `link` to the index.
    Create { link: Box<Delegation>, commit: Commit, reply: RpcReplyPort<Result<()>> },
    /// Make `commit` (its audit event and `RevokeDelegation`) durable, re-read the index,
    /// and answer the links it revoked.
    Revoke { commit: Commit, reply: RpcReplyPort<Result<Vec<Uuid>>> },
    /// Re-read the index from the store; answer it if asked.
    Reload(Option<RpcReplyPort<Result<Arc<ChainIndex>>>>),
}

impl DelegationChains {
    async fn load(&self, org_id: Uuid) -> Result<Arc<ChainIndex>> {
        let links = self.store.live_delegations(org_id, self.clock.now_ms()).await?;
        let index = Arc::new(ChainIndex::new(links));
        self.snapshots.insert(org_id, index.clone());
        Ok(index)
    }
}

#[async_trait]
impl KeyedFamily for DelegationChains {
    const NAME: &'static str = "delegations";
    type Key = Uuid;
    type Msg = Msg;
    type State = Arc<ChainIndex>;

    async fn start(&self, org_id: &Uuid) -> Result<Arc<ChainIndex>> {
        self.load(*org_id).await
    }

    async fn handle(&self, org_id: &Uuid, index: &mut Arc<ChainIndex>, msg: Msg) -> Result<()> {
        match msg {
            Msg::Create { link, commit, reply } => {
                let outcome = self.audit.append(commit).await;
                if outcome.is_ok() {
                    index.insert(*link);
                }
                let _ = reply.send(outcome);
            }
            Msg::Revoke { commit, reply } => {
                let before = index.clone();
                let outcome = match self.audit.append(commit).await {
                    Ok(()) => self.load(*org_id).await.map(|after| {
                        *index = after.clone();
                        // What this revocation turned from active to revoked.
                        let was_active =
                            |id: &Uuid| before.get(id).is_none_or(|l| l.status == DelegationStatus::Active);
                        after.revoked_ids().into_iter().filter(|id| was_active(id)).collect()
                    }),
                    Err(e) => Err(e),
                };
                let _ = reply.send(outcome);
            }
            Msg::Reload(reply) => {
                // Changes announced from now on ask again; those before are in this read.
                self.pending.remove(org_id);
                let outcome = self.load(*org_id).await;
                if let Ok(fresh) = &outcome {
                    *index = fresh.clone();
                }
                match reply {
                    Some(reply) => {
                        let _ = reply.send(outcome);
                    }
                    None => {
                        outcome?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The engine's handle on the delegation chains.
#[derive(Clone)]
pub(crate) struct Delegations {
    host: KeyedHost<DelegationChains>,
    snapshots: Snapshots,
    pending: Pending,
    /// This node, as announcements name it.
    node: Uuid,
}

impl Delegations {
    pub fn new(host: KeyedHost<DelegationChains>, snapshots: Snapshots, pending: Pending) -> Self {
        Delegations { host, snapshots, pending, node: Uuid::now_v7() }
    }

    /// The id this node's announcements carry as their origin.
    pub fn node(&self) -> Uuid {
        self.node
    }

    /// The organization's published index; the first use on this node loads it.
    pub async fn index(&self, org_id: Uuid) -> Result<Arc<ChainIndex>> {
        match self.snapshots.get(&org_id) {
            Some(index) => Ok(index.clone()),
            None => self.reload(org_id).await,
        }
    }

    /// The index re-read from the store (a link this node has not seen yet).
    pub async fn reload(&self, org_id: Uuid) -> Result<Arc<ChainIndex>> {
        self.host.call(&org_id, |reply| Msg::Reload(Some(reply))).await
    }

    pub async fn create(&self, org_id: Uuid, link: Delegation, commit: Commit) -> Result<()> {
        self.host.call(&org_id, |reply| Msg::Create { link: Box::new(link), commit, reply }).await
    }

    /// Revoke (the change is in `commit`); answers the links revoked.
    pub async fn revoke(&self, org_id: Uuid, commit: Commit) -> Result<Vec<Uuid>> {
        self.host.call(&org_id, |reply| Msg::Revoke { commit, reply }).await
    }

    /// `origin` changed `org_id`'s chains: re-read them, if this node holds them and did
    /// not make the change itself (its own changes are in its index already), and no
    /// re-read is pending yet.
    pub fn changed_elsewhere(&self, org_id: Uuid, origin: Uuid) {
        if origin != self.node && self.snapshots.contains_key(&org_id) && self.pending.insert(org_id) {
            let (host, pending) = (self.host.clone(), self.pending.clone());
            tokio::spawn(async move {
                if let Err(e) = host.send(&org_id, Msg::Reload(None)).await {
                    pending.remove(&org_id);
                    tracing::warn!(org_id = %org_id, error = %e, "delegation index not re-read");
                }
            });
        }
    }

    /// Anything may have changed: every index is loaded again on its next use.
    pub fn forget_all(&self) {
        self.snapshots.clear();
        self.pending.clear();
    }
}

/// An organization's delegation chains changed (a link made or revoked) on the node
/// `origin`: the other nodes read its index again (the origin already has it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DelegationsChanged {
    pub org_id: Uuid,
    pub origin: Uuid,
}

impl Event for DelegationsChanged {
    const KIND: &'static str = "delegations_changed";
}

/// The organization's actor has its index when the change is answered; other nodes read
/// theirs again.
pub(crate) fn listen(delegations: &Delegations, listeners: &mut Listeners) {
    let (elsewhere, everything) = (delegations.clone(), delegations.clone());
    listeners
        .elsewhere(move |e: DelegationsChanged| elsewhere.changed_elsewhere(e.org_id, e.origin))
        .everything(move || everything.forget_all());
}
