//! CacheKeeper: the node's listener for changes made elsewhere. Changes made on this node
//! are applied here by the engine as they commit; changes made on other nodes (or by an
//! operator command on the same store) arrive two ways:
//!
//! 1. the coordinator's announcements (Redis pub/sub: milliseconds), and
//! 2. the store's change feed (`cluster_events`), written in the same transaction as each
//!    change, which this actor polls every `feed_poll`. The feed is the guarantee: an
//!    announcement lost with Redis (down, restarted, a dropped subscription) is applied
//!    within one poll interval all the same.
//!
//! What an event does is registered by its family (`runtime::events::Listeners`); every
//! reaction is idempotent (drop a cache entry, remember a revocation), so seeing one twice
//! is harmless. Urgent kinds (token revocations, key rotations) are applied straight off
//! the subscription. A restarted keeper has every family drop what it cached: the caches
//! re-hydrate from the store on their next miss.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle as TimerHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;

use crate::kernel::clock::Clock;
use crate::kernel::model::Millis;
use crate::runtime::actor::{ChildSpec, Slot};
use crate::runtime::coord::Coordinator;
use crate::runtime::events::{ClusterEvent, FeedStore, Listeners};
use crate::runtime::janitor::Sweep;

/// How far back each poll of the change feed reads. Feed entries are stamped by the
/// writing node's clock and become visible at commit, which may be out of `seq` order
/// across nodes; re-reading a window (and skipping what was seen) catches late commits
/// and clock skew between nodes of up to about this much.
const FEED_WINDOW: Duration = Duration::from_secs(30);
/// Feed entries older than this are deleted (by whichever node's janitor gets there
/// first).
const FEED_RETENTION: Duration = Duration::from_secs(600);

/// The janitor's sweep of the change feed.
pub(crate) fn feed_sweep(store: Arc<dyn FeedStore>) -> Sweep {
    Sweep {
        what: "cluster_events",
        run: Arc::new(move |now, batch| {
            let store = store.clone();
            Box::pin(async move { store.purge_cluster_events(now - FEED_RETENTION.as_millis() as i64, batch).await })
        }),
    }
}

#[derive(Clone)]
pub(crate) struct CacheKeeper;

/// What the keeper is started with: where changes come from, and what the families do
/// with them (registered by each family; the keeper names none).
#[derive(Clone)]
pub(crate) struct Deps {
    pub store: Arc<dyn FeedStore>,
    pub coord: Arc<dyn Coordinator>,
    pub clock: Arc<dyn Clock>,
    pub listeners: Arc<Listeners>,
    pub feed_poll: Duration,
}

/// Register the keeper. The engine never calls it: it only listens.
pub(crate) fn child(deps: Deps) -> (ChildSpec, ()) {
    let slot: Arc<Slot<Msg>> = Arc::default();
    (ChildSpec::singleton("cache_keeper", CacheKeeper, move || deps.clone(), slot, || Msg::Crash), ())
}

pub(crate) enum Msg {
    /// An announcement received from the cluster: apply it.
    Announced(ClusterEvent),
    /// Read the change feed and apply what is new.
    Poll,
    /// Fail on purpose (fault injection): the supervisor must restart this actor.
    Crash,
}

pub(crate) struct State {
    deps: Deps,
    /// Forwards the coordinator subscription into this mailbox.
    listener: JoinHandle<()>,
    poller: TimerHandle<()>,
    /// Feed entries already applied, with their creation time (pruned past the window).
    seen: HashMap<i64, Millis>,
    /// When the feed was last read successfully; a longer gap than the window means
    /// entries may have been missed, and everything is dropped instead.
    last_read: Millis,
}

impl State {
    async fn poll(&mut self) {
        let deps = &self.deps;
        let now = deps.clock.now_ms();
        let window = FEED_WINDOW.as_millis() as i64;
        let entries = match deps.store.cluster_events_since(now - window).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the cluster change feed");
                return;
            }
        };
        if now - self.last_read > window / 2 {
            // Entries may have come and gone from the window unseen: start clean.
            tracing::warn!(gap_ms = now - self.last_read, "change feed unread for too long; dropping all caches");
            deps.listeners.forget_everything();
        }
        self.last_read = now;
        for entry in entries {
            if self.seen.insert(entry.seq, entry.created_at).is_none() {
                deps.listeners.arrived(&entry.event);
            }
        }
        self.seen.retain(|_, at| *at >= now - window);
    }
}

impl Actor for CacheKeeper {
    type Msg = Msg;
    type State = State;
    type Arguments = Deps;

    async fn pre_start(&self, myself: ActorRef<Msg>, deps: Deps) -> Result<State, ActorProcessingErr> {
        let mut events = deps.coord.subscribe().await?;
        // What the feed holds now is older than this node's empty caches: mark it seen.
        let now = deps.clock.now_ms();
        let seen = deps
            .store
            .cluster_events_since(now - FEED_WINDOW.as_millis() as i64)
            .await?
            .into_iter()
            .map(|e| (e.seq, e.created_at))
            .collect();
        deps.listeners.forget_everything();
        let (owners, me) = (deps.clone(), myself.clone());
        let listener = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if owners.listeners.is_urgent(&event) {
                    owners.listeners.arrived(&event);
                } else if me.send_message(Msg::Announced(event)).is_err() {
                    return;
                }
            }
        });
        let poller = myself.send_interval(deps.feed_poll, || Msg::Poll);
        Ok(State { deps, listener, poller, seen, last_read: now })
    }

    async fn post_stop(&self, _: ActorRef<Msg>, state: &mut State) -> Result<(), ActorProcessingErr> {
        state.listener.abort();
        state.poller.abort();
        Ok(())
    }

    async fn handle(&self, _: ActorRef<Msg>, msg: Msg, state: &mut State) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Announced(event) => state.deps.listeners.arrived(&event),
            Msg::Poll => state.poll().await,
            Msg::Crash => panic!("cache keeper: fault injected"),
        }
        Ok(())
    }
}
