//! RevocationActor: keeps the set of revoked access-token ids that every authentication
//! reads. A revocation is committed to `token_revocations` with its audit event (and its
//! entry in the cluster change feed) before it is acknowledged, and applied to the set on
//! the node that made it; other nodes learn it from the coordinator or the change feed
//! and send it here. Entries leave the set (and the table) once their token would have
//! expired anyway. A restarted actor re-reads the table, which also covers announcements
//! missed while it was down; so does the periodic purge, which re-reads it.

use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::error::Result;
use crate::store::Revocation;
use crate::Shared;

const PURGE_EVERY: Duration = Duration::from_secs(60);

pub(crate) struct RevocationActor;

pub(crate) enum Msg {
    /// A revocation announced by another node (or re-read from the change feed).
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
