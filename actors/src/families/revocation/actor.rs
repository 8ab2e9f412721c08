//! RevocationActor: keeps the set of revoked access-token ids that every authentication
//! reads. A revocation is committed to `token_revocations` with its audit event (and its
//! entry in the cluster change feed) before it is acknowledged, and applied to the set on
//! the node that made it; other nodes learn it from the coordinator or the change feed
//! and send it here. Entries leave the set (and the table) once their token would have
//! expired anyway. A restarted actor re-reads the table, which also covers announcements
//! missed while it was down; so does the periodic purge, which re-reads it.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::families::revocation::{Revocation, RevocationStore};
use crate::kernel::clock::Clock;
use crate::kernel::error::Result;
use crate::runtime::actor::{ChildSpec, Slot};
use crate::runtime::events::Listeners;

const PURGE_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub(crate) struct RevocationActor;

/// What the actor is started with.
#[derive(Clone)]
pub(crate) struct Deps {
    pub store: Arc<dyn RevocationStore>,
    pub clock: Arc<dyn Clock>,
}

/// Revoked token ids and their expiry (unix seconds): written by this actor (and by the
/// engine for a revocation it just committed), read by every authentication.
type RevokedSet = Arc<DashMap<String, i64>>;

/// The engine's handle: the set to read, and the actor to tell.
#[derive(Clone)]
pub(crate) struct Revocations {
    set: RevokedSet,
    slot: Arc<Slot<Msg>>,
}

impl Revocations {
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.set.contains_key(jti)
    }

    /// A revocation committed on this node: effective here at once.
    pub fn apply_committed(&self, jti: String, expires_at: i64) {
        self.set.insert(jti, expires_at);
    }

    /// A revocation made elsewhere (announced, or read from the change feed).
    pub fn announced(&self, revocation: Revocation) {
        if let Some(r) = self.slot.load_full() {
            let _ = r.send_message(Msg::Announced(revocation));
        }
    }

    /// Re-read the table (after a gap in what this node heard).
    pub fn reread(&self) {
        if let Some(r) = self.slot.load_full() {
            let _ = r.send_message(Msg::Purge);
        }
    }
}

/// A revocation counts on the committing node before it is answered, and on every other
/// node as soon as it is heard of; after a gap in what this node heard, the set is read
/// again.
pub(crate) fn listen(revocations: &Revocations, listeners: &mut Listeners) {
    let (here, elsewhere, gap) = (revocations.clone(), revocations.clone(), revocations.clone());
    listeners
        .here(move |r: Revocation| {
            here.apply_committed(r.jti, r.expires_at);
            async { Ok(()) }
        })
        .elsewhere(move |r: Revocation| elsewhere.announced(r))
        .urgent::<Revocation>()
        .everything(move || gap.reread());
}

/// Register the actor: its child specification and the engine's handle.
pub(crate) fn child(deps: Deps) -> (ChildSpec, Revocations) {
    let handle = Revocations { set: RevokedSet::default(), slot: Arc::default() };
    let set = handle.set.clone();
    let spec = ChildSpec::singleton(
        "revocations",
        RevocationActor,
        move || (deps.clone(), set.clone()),
        handle.slot.clone(),
        || Msg::Crash,
    );
    (spec, handle)
}

pub(crate) enum Msg {
    /// A revocation announced by another node (or re-read from the change feed).
    Announced(Revocation),
    /// Forget revocations of expired tokens.
    Purge,
    /// Fail on purpose (fault injection): the supervisor must restart this actor.
    Crash,
}

pub(crate) struct State {
    deps: Deps,
    set: RevokedSet,
    purger: JoinHandle<()>,
}

impl Actor for RevocationActor {
    type Msg = Msg;
    type State = State;
    type Arguments = (Deps, RevokedSet);

    async fn pre_start(
        &self,
        myself: ActorRef<Msg>,
        (deps, set): Self::Arguments,
    ) -> Result<State, ActorProcessingErr> {
        let now_s = deps.clock.now_ms() / 1000;
        let revoked = deps.store.revocations(now_s).await?;
        set.clear();
        for r in revoked {
            set.insert(r.jti, r.expires_at);
        }
        let purger = myself.send_interval(PURGE_EVERY, || Msg::Purge);
        Ok(State { deps, set, purger })
    }

    async fn post_stop(&self, _: ActorRef<Msg>, state: &mut State) -> Result<(), ActorProcessingErr> {
        state.purger.abort();
        Ok(())
    }

    async fn handle(&self, _: ActorRef<Msg>, msg: Msg, state: &mut State) -> Result<(), ActorProcessingErr> {
        let (deps, set) = (&state.deps, &state.set);
        match msg {
            Msg::Announced(r) => {
                set.insert(r.jti, r.expires_at);
            }
            Msg::Purge => {
                let now_s = deps.clock.now_ms() / 1000;
                set.retain(|_, exp| *exp > now_s);
                // Re-reading the table also repairs an announcement this node missed.
                match deps.store.revocations(now_s).await {
                    Ok(all) => all.into_iter().for_each(|r| {
                        set.insert(r.jti, r.expires_at);
                    }),
                    Err(e) => tracing::warn!(error = %e, "could not reload revocations"),
                }
            }
            Msg::Crash => panic!("revocation actor: fault injected"),
        }
        Ok(())
    }
}

/// The janitor's sweep of revocations whose tokens have expired (refused by their
/// `exp` anyway).
pub(crate) fn sweep(store: Arc<dyn RevocationStore>) -> crate::runtime::janitor::Sweep {
    crate::runtime::janitor::Sweep {
        what: "revocations",
        run: Arc::new(move |now, batch| {
            let store = store.clone();
            Box::pin(async move { store.purge_revocations(now / 1000, batch).await })
        }),
    }
}
