//! RevocationActor: owns the set of revoked access-token ids. A revocation is written to
//! `token_revocations` before it is acknowledged, applied to the shared set that every
//! authentication reads, and announced to the cluster. Entries leave the set (and the
//! table) once their token would have expired anyway. A restarted actor re-reads the
//! table, which also covers announcements missed while it was down; so does the
//! periodic purge, which re-reads it.

use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::coord::ClusterEvent;
use crate::error::Result;
use crate::store::Revocation;
use crate::Shared;

const PURGE_EVERY: Duration = Duration::from_secs(60);

pub(crate) struct RevocationActor;

pub(crate) enum Msg {
    /// Revoke a token: persist, apply, announce, then reply.
    Revoke(Revocation, RpcReplyPort<Result<()>>),
    /// A revocation announced by another node.
    Announced(Revocation),
    /// Forget revocations of expired tokens.
    Purge,
    /// Fail on purpose (fault injection): the supervisor must restart this actor.
    Crash,
}

pub(crate) struct State {
    shared: Arc<Shared>,
    purger: JoinHandle<()>,
}

impl Actor for RevocationActor {
    type Msg = Msg;
    type State = State;
    type Arguments = Arc<Shared>;

    async fn pre_start(&self, myself: ActorRef<Msg>, shared: Arc<Shared>) -> Result<State, ActorProcessingErr> {
        let now_s = shared.now_ms() / 1000;
        let revoked = shared.store.revocations(now_s).await?;
        shared.revoked.clear();
        for r in revoked {
            shared.revoked.insert(r.jti, r.expires_at);
        }
        let purger = myself.send_interval(PURGE_EVERY, || Msg::Purge);
        Ok(State { shared, purger })
    }

    async fn post_stop(&self, _: ActorRef<Msg>, state: &mut State) -> Result<(), ActorProcessingErr> {
        state.purger.abort();
        Ok(())
    }

    async fn handle(&self, _: ActorRef<Msg>, msg: Msg, state: &mut State) -> Result<(), ActorProcessingErr> {
        let shared = &state.shared;
        match msg {
            Msg::Revoke(r, reply) => {
                let result = async {
                    shared.store.insert_revocation(&r, shared.now_ms()).await?;
                    shared.revoked.insert(r.jti.clone(), r.expires_at);
                    shared
                        .coord
                        .publish(&ClusterEvent::TokenRevoked { jti: r.jti, org_id: r.org_id, expires_at: r.expires_at })
                        .await
                }
                .await;
                let _ = reply.send(result);
            }
            Msg::Announced(r) => {
                shared.revoked.insert(r.jti, r.expires_at);
            }
            Msg::Purge => {
                let now_s = shared.now_ms() / 1000;
                shared.revoked.retain(|_, exp| *exp > now_s);
                // Re-reading the table also repairs an announcement this node missed.
                match shared.store.revocations(now_s).await {
                    Ok(all) => all.into_iter().for_each(|r| {
                        shared.revoked.insert(r.jti, r.expires_at);
                    }),
                    Err(e) => tracing::warn!(error = %e, "could not reload revocations"),
                }
                if let Err(e) = shared.store.purge_revocations(now_s).await {
                    tracing::warn!(error = %e, "could not purge expired revocations");
                }
            }
            Msg::Crash => panic!("revocation actor: fault injected"),
        }
        Ok(())
    }
}
