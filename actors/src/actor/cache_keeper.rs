//! CacheKeeper: the one owner of cache invalidation, and the node's listener on the
//! cluster channel. Local mutations ask it to invalidate (it applies the change here,
//! then announces it to the cluster through the coordinator); announcements from other
//! nodes arrive through its subscription, and those meant for other owners (token
//! revocations, key rotations) are forwarded to them. A restarted keeper drops every
//! cached entry: the caches re-hydrate from the store on their next miss.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;

use super::{key_manager, revocations};
use crate::coord::ClusterEvent;
use crate::error::Result;
use crate::store::Revocation;
use crate::Shared;

pub(crate) struct CacheKeeper;

pub(crate) enum Msg {
    /// A mutation on this node: apply it, announce it, then reply.
    Invalidate(ClusterEvent, RpcReplyPort<Result<()>>),
    /// An announcement received from the cluster: apply it.
    Announced(ClusterEvent),
    /// Fail on purpose (fault injection): the supervisor must restart this actor.
    Crash,
}

pub(crate) struct State {
    shared: Arc<Shared>,
    /// Forwards the coordinator subscription into this mailbox.
    listener: JoinHandle<()>,
}

impl Actor for CacheKeeper {
    type Msg = Msg;
    type State = State;
    type Arguments = Arc<Shared>;

    async fn pre_start(&self, myself: ActorRef<Msg>, shared: Arc<Shared>) -> Result<State, ActorProcessingErr> {
        let mut events = shared.coord.subscribe().await?;
        shared.caches.apply(&ClusterEvent::Everything);
        let owners = shared.clone();
        let listener = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    ClusterEvent::TokenRevoked { jti, org_id, expires_at } => {
                        if let Some(r) = owners.slots.revocations.load_full() {
                            let _ = r.send_message(revocations::Msg::Announced(Revocation { jti, org_id, expires_at }));
                        }
                    }
                    ClusterEvent::KeysChanged => {
                        if let Some(k) = owners.slots.keys.load_full() {
                            let _ = k.send_message(key_manager::Msg::Tick);
                        }
                    }
                    other => {
                        if myself.send_message(Msg::Announced(other)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(State { shared, listener })
    }

    async fn post_stop(&self, _: ActorRef<Msg>, state: &mut State) -> Result<(), ActorProcessingErr> {
        state.listener.abort();
        Ok(())
    }

    async fn handle(&self, _: ActorRef<Msg>, msg: Msg, state: &mut State) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Invalidate(event, reply) => {
                state.shared.caches.apply(&event);
                let _ = reply.send(state.shared.coord.publish(&event).await);
            }
            Msg::Announced(event) => state.shared.caches.apply(&event),
            Msg::Crash => panic!("cache keeper: fault injected"),
        }
        Ok(())
    }
}
