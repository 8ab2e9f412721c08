//! One actor per key — an organization, a partner, a subscription — under one host.
//!
//! A [`KeyedHost`] runs the actors of one [`KeyedFamily`]. It spawns a key's actor on
//! first use (the family's `start` re-hydrates its state from the store), stops it after
//! `idle_after` without calls, keeps at most `max_live` alive (the least recently used
//! idle ones make room), and counts each key's failures against its own restart budget.
//! A failed actor is not restarted eagerly: the next call for its key starts a fresh one,
//! which re-hydrates. A key that fails more often than its budget allows is quarantined:
//! its calls answer [`EngineError::Unavailable`] (503 with `Retry-After`) until
//! `quarantine_for` has passed or an operator lifts it, and a metric counts it. Nothing
//! of this touches the engine or the other keys.
//!
//! Calls reach a key's actor directly (a concurrent map from key to actor), so keys do
//! not queue behind one another; only spawning goes through the host actor, which makes
//! it happen once per key. The host is one registered child of the root supervisor.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::kernel::error::{EngineError, Result};
use crate::runtime::actor::{ChildSpec, RestartBudget, Slot};

/// A family of per-key actors: what one key's actor holds and how it handles a message.
#[async_trait]
pub trait KeyedFamily: Send + Sync + 'static {
    /// The family's name: its metrics label and the host's child name.
    const NAME: &'static str;
    type Key: Clone + Eq + Hash + Display + Send + Sync + 'static;
    type Msg: Send + 'static;
    type State: Send + 'static;

    /// Build a key's state, re-hydrating it from the store: on first use, and again after
    /// a failure or an idle stop. An error here is not a failure of the key (the store
    /// may be down): the call that needed the actor gets it.
    async fn start(&self, key: &Self::Key) -> Result<Self::State>;

    /// Handle one message. A panic or an error fails this key's actor (and counts
    /// against its budget); a reply port dropped with it answers its caller 503.
    async fn handle(&self, key: &Self::Key, state: &mut Self::State, msg: Self::Msg) -> Result<()>;
}

/// How a host runs its family.
#[derive(Debug, Clone, Copy)]
pub struct KeyedConfig {
    /// A key's actor is stopped after this long without a call.
    pub idle_after: Duration,
    /// At most this many keys' actors are alive at once.
    pub max_live: usize,
    /// Failures of one key before it is quarantined.
    pub budget: RestartBudget,
    /// How long a quarantine lasts unless lifted.
    pub quarantine_for: Duration,
    /// How long a caller waits for a key's answer (or for its actor to start).
    pub call_timeout: Duration,
}

impl Default for KeyedConfig {
    fn default() -> Self {
        KeyedConfig {
            idle_after: Duration::from_secs(300),
            max_live: 10_000,
            budget: RestartBudget { max_restarts: 5, window: Duration::from_secs(60) },
            quarantine_for: Duration::from_secs(600),
            call_timeout: Duration::from_secs(5),
        }
    }
}

/// The metrics of every keyed family, labelled `family`.
#[derive(Clone)]
pub struct KeyedMetrics {
    live: IntGaugeVec,
    failures: IntCounterVec,
    quarantines: IntCounterVec,
}

impl KeyedMetrics {
    /// Create the metrics and register them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
        let err = |e: prometheus::Error| EngineError::internal(format!("metrics: {e}"));
        let live = IntGaugeVec::new(Opts::new("keyed_actors_live", "Per-key actors alive, by family"), &["family"])
            .map_err(err)?;
        let failures = IntCounterVec::new(
            Opts::new("keyed_actor_failures_total", "Per-key actors that failed (panic or error), by family"),
            &["family"],
        )
        .map_err(err)?;
        let quarantines = IntCounterVec::new(
            Opts::new("keyed_quarantines_total", "Keys quarantined after failing past their restart budget"),
            &["family"],
        )
        .map_err(err)?;
        registry.register(Box::new(live.clone())).map_err(err)?;
        registry.register(Box::new(failures.clone())).map_err(err)?;
        registry.register(Box::new(quarantines.clone())).map_err(err)?;
        Ok(KeyedMetrics { live, failures, quarantines })
    }
}

/// A live actor's bookkeeping, shared by its callers and the sweeper.
struct Meta {
    /// Milliseconds since the host's epoch of the last call.
    last_used: AtomicI64,
    /// Calls under way: an actor with any is never stopped for idleness or room.
    in_flight: AtomicUsize,
}

struct Live<M> {
    actor: ActorRef<M>,
    meta: Arc<Meta>,
}

struct Inner<F: KeyedFamily> {
    family: Arc<F>,
    config: KeyedConfig,
    live: DashMap<F::Key, Live<F::Msg>>,
    /// Quarantined keys and when their quarantine ends.
    quarantined: DashMap<F::Key, Instant>,
    host: Arc<Slot<HostMsg<F>>>,
    metrics: KeyedMetrics,
    epoch: Instant,
}

impl<F: KeyedFamily> Inner<F> {
    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }

    fn set_live_gauge(&self) {
        self.metrics.live.with_label_values(&[F::NAME]).set(self.live.len() as i64);
    }

    /// Stop every live actor (the host is gone: they went with it).
    fn clear(&self) {
        for entry in self.live.iter() {
            entry.value().actor.stop(None);
        }
        self.live.clear();
        self.set_live_gauge();
    }
}

/// The handle on a family's host: cheap to clone.
pub struct KeyedHost<F: KeyedFamily> {
    inner: Arc<Inner<F>>,
}

impl<F: KeyedFamily> Clone for KeyedHost<F> {
    fn clone(&self) -> Self {
        KeyedHost { inner: self.inner.clone() }
    }
}

/// A call in flight: keeps its actor from being stopped until it is done.
struct InFlight {
    meta: Arc<Meta>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.meta.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<F: KeyedFamily> KeyedHost<F> {
    fn new(family: F, config: KeyedConfig, metrics: KeyedMetrics) -> Self {
        let inner = Inner {
            family: Arc::new(family),
            config,
            live: DashMap::new(),
            quarantined: DashMap::new(),
            host: Arc::default(),
            metrics,
            epoch: crate::kernel::clock::monotonic(),
        };
        KeyedHost { inner: Arc::new(inner) }
    }

    /// A host on its own, not under the engine's supervisor (embedders, tests).
    pub async fn spawn(family: F, config: KeyedConfig, metrics: KeyedMetrics) -> Result<Self> {
        let host = KeyedHost::new(family, config, metrics);
        let (r, _) = Actor::spawn(None, HostActor::<F>(PhantomData), host.inner.clone())
            .await
            .map_err(|e| EngineError::Unavailable(format!("{} host failed to start: {e}", F::NAME)))?;
        host.inner.host.store(Some(Arc::new(r)));
        Ok(host)
    }

    /// Stop the host and every key's actor.
    pub async fn stop(&self) {
        if let Some(host) = self.inner.host.swap(None) {
            let _ = host.stop_and_wait(None, Some(Duration::from_secs(5))).await;
        }
        self.inner.clear();
    }

    /// Send `key`'s actor the message `build` makes and wait for its answer.
    pub async fn call<T: Send + 'static>(
        &self,
        key: &F::Key,
        build: impl FnOnce(RpcReplyPort<Result<T>>) -> F::Msg,
    ) -> Result<T> {
        let (actor, _in_flight) = self.acquire(key).await?;
        match actor.call(build, Some(self.inner.config.call_timeout)).await {
            Ok(ractor::rpc::CallResult::Success(result)) => result,
            Ok(ractor::rpc::CallResult::Timeout) => {
                Err(EngineError::Unavailable(format!("{} {key} did not answer in time", F::NAME)))
            }
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => {
                Err(EngineError::Unavailable(format!("{} {key} failed while answering", F::NAME)))
            }
        }
    }

    /// Send `key`'s actor `msg` without waiting for it to be handled.
    pub async fn send(&self, key: &F::Key, msg: F::Msg) -> Result<()> {
        let (actor, _in_flight) = self.acquire(key).await?;
        actor.send_message(msg).map_err(|_| EngineError::Unavailable(format!("{} {key} is stopping", F::NAME)))
    }

    /// The live actor of `key` — started if need be — held in flight.
    async fn acquire(&self, key: &F::Key) -> Result<(ActorRef<F::Msg>, InFlight)> {
        if let Some(until) = self.quarantined_until(key) {
            let secs = until.saturating_duration_since(crate::kernel::clock::monotonic()).as_secs().max(1);
            return Err(EngineError::Unavailable(format!(
                "{} {key} is quarantined after repeated failures (for {secs} s more, unless an operator lifts it)",
                F::NAME
            )));
        }
        for _ in 0..3 {
            if let Some(live) = self.inner.live.get(key) {
                // Counted under the map's read lock, so the sweeper (which removes under
                // the write lock, only when nothing is in flight) cannot stop it now.
                live.meta.in_flight.fetch_add(1, Ordering::AcqRel);
                live.meta.last_used.store(self.inner.now_ms(), Ordering::Relaxed);
                return Ok((live.actor.clone(), InFlight { meta: live.meta.clone() }));
            }
            let host = self
                .inner
                .host
                .load_full()
                .ok_or_else(|| EngineError::Unavailable(format!("the {} host is restarting", F::NAME)))?;
            let key = key.clone();
            match host.call(|reply| HostMsg::Spawn(key, reply), Some(self.inner.config.call_timeout)).await {
                Ok(ractor::rpc::CallResult::Success(outcome)) => outcome?,
                Ok(ractor::rpc::CallResult::Timeout) => {
                    return Err(EngineError::Unavailable(format!("the {} host is busy", F::NAME)))
                }
                Ok(ractor::rpc::CallResult::SenderError) | Err(_) => {
                    return Err(EngineError::Unavailable(format!("the {} host is restarting", F::NAME)))
                }
            }
        }
        Err(EngineError::Unavailable(format!("{} {key} keeps stopping", F::NAME)))
    }

    fn quarantined_until(&self, key: &F::Key) -> Option<Instant> {
        let until = *self.inner.quarantined.get(key)?;
        if until > crate::kernel::clock::monotonic() {
            return Some(until);
        }
        self.inner.quarantined.remove(key);
        None
    }

    /// The keys in quarantine now, each with the time left.
    pub fn quarantined(&self) -> Vec<(F::Key, Duration)> {
        let now = crate::kernel::clock::monotonic();
        self.inner
            .quarantined
            .iter()
            .filter(|e| *e.value() > now)
            .map(|e| (e.key().clone(), e.value().saturating_duration_since(now)))
            .collect()
    }

    /// Lift `key`'s quarantine (an operator's decision); true if it was quarantined. Its
    /// failure record goes too: the key starts with a full budget.
    pub async fn lift_quarantine(&self, key: &F::Key) -> bool {
        let lifted = self.inner.quarantined.remove(key).is_some();
        if let Some(host) = self.inner.host.load_full() {
            let _ = host.send_message(HostMsg::Forgive(key.clone()));
        }
        lifted
    }

    /// How many keys have a live actor now.
    pub fn live_count(&self) -> usize {
        self.inner.live.len()
    }

    /// Whether `key` has a live actor now.
    pub fn is_live(&self, key: &F::Key) -> bool {
        self.inner.live.contains_key(key)
    }
}

/// Register a family's host with the root supervisor: its child specification (named
/// for the family) and the handle.
pub(crate) fn child<F: KeyedFamily>(
    family: F,
    config: KeyedConfig,
    metrics: KeyedMetrics,
) -> (ChildSpec, KeyedHost<F>) {
    let host = KeyedHost::new(family, config, metrics);
    let (inner, slot) = (host.inner.clone(), host.inner.host.clone());
    // While the host restarts, live keys keep answering; a key not yet live waits for it.
    let spec =
        ChildSpec::singleton(F::NAME, HostActor::<F>(PhantomData), move || inner.clone(), slot, || HostMsg::Crash);
    (spec, host)
}

enum HostMsg<F: KeyedFamily> {
    /// Start `key`'s actor unless it runs (or is quarantined).
    Spawn(F::Key, RpcReplyPort<Result<()>>),
    /// Stop idle actors; forget old failures and ended quarantines.
    Sweep,
    /// Forget `key`'s failures (its quarantine was lifted).
    Forgive(F::Key),
    /// Fail on purpose (fault injection).
    Crash,
}

struct HostActor<F>(PhantomData<fn() -> F>);

impl<F> Clone for HostActor<F> {
    fn clone(&self) -> Self {
        HostActor(PhantomData)
    }
}

struct HostState<F: KeyedFamily> {
    inner: Arc<Inner<F>>,
    /// Which key each live actor is.
    keys: HashMap<ActorId, F::Key>,
    /// Each key's recent failures (only keys that failed).
    failures: HashMap<F::Key, Vec<Instant>>,
    sweeper: JoinHandle<()>,
}

impl<F: KeyedFamily> HostState<F> {
    /// Make room for one more: stop the least recently used tenth of the idle actors.
    fn make_room(&mut self) -> Result<()> {
        let inner = &self.inner;
        if inner.live.len() < inner.config.max_live {
            return Ok(());
        }
        let mut idle: Vec<(i64, F::Key)> = inner
            .live
            .iter()
            .filter(|e| e.value().meta.in_flight.load(Ordering::Acquire) == 0)
            .map(|e| (e.value().meta.last_used.load(Ordering::Relaxed), e.key().clone()))
            .collect();
        idle.sort_unstable_by_key(|(at, _)| *at);
        let evict = (inner.config.max_live / 10).max(1);
        for (_, key) in idle.into_iter().take(evict) {
            if let Some((_, live)) = inner.live.remove_if(&key, |_, l| l.meta.in_flight.load(Ordering::Acquire) == 0) {
                live.actor.stop(None);
            }
        }
        inner.set_live_gauge();
        if inner.live.len() >= inner.config.max_live {
            return Err(EngineError::Unavailable(format!("every {} actor is busy", F::NAME)));
        }
        Ok(())
    }

    fn sweep(&mut self) {
        let inner = &self.inner;
        let stale = inner.now_ms() - inner.config.idle_after.as_millis() as i64;
        let idle: Vec<F::Key> = inner
            .live
            .iter()
            .filter(|e| e.value().meta.last_used.load(Ordering::Relaxed) < stale)
            .map(|e| e.key().clone())
            .collect();
        for key in idle {
            let removed = inner.live.remove_if(&key, |_, l| {
                l.meta.in_flight.load(Ordering::Acquire) == 0 && l.meta.last_used.load(Ordering::Relaxed) < stale
            });
            if let Some((_, live)) = removed {
                live.actor.stop(None);
            }
        }
        inner.set_live_gauge();
        let now = crate::kernel::clock::monotonic();
        let window = inner.config.budget.window;
        self.failures.retain(|_, times| {
            times.retain(|t| now.duration_since(*t) < window);
            !times.is_empty()
        });
        inner.quarantined.retain(|_, until| *until > now);
    }
}

impl<F: KeyedFamily> Actor for HostActor<F> {
    type Msg = HostMsg<F>;
    type State = HostState<F>;
    type Arguments = Arc<Inner<F>>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        inner: Arc<Inner<F>>,
    ) -> Result<Self::State, ActorProcessingErr> {
        // A restarted host starts empty: its actors went with the old one.
        inner.clear();
        let every = (inner.config.idle_after / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        let sweeper = myself.send_interval(every, || HostMsg::Sweep);
        Ok(HostState { inner, keys: HashMap::new(), failures: HashMap::new(), sweeper })
    }

    async fn post_stop(&self, _: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        state.sweeper.abort();
        state.inner.clear();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HostMsg::Spawn(key, reply) => {
                if state.inner.live.contains_key(&key) {
                    let _ = reply.send(Ok(()));
                    return Ok(());
                }
                if let Err(e) = state.make_room() {
                    let _ = reply.send(Err(e));
                    return Ok(());
                }
                let args = (state.inner.family.clone(), key.clone());
                match Actor::spawn_linked(None, KeyActor::<F>(PhantomData), args, myself.get_cell()).await {
                    Ok((actor, _)) => {
                        state.keys.insert(actor.get_id(), key.clone());
                        let meta = Arc::new(Meta {
                            last_used: AtomicI64::new(state.inner.now_ms()),
                            in_flight: AtomicUsize::new(0),
                        });
                        state.inner.live.insert(key, Live { actor, meta });
                        state.inner.set_live_gauge();
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply
                            .send(Err(EngineError::Unavailable(format!("{} {key} could not start: {e}", F::NAME))));
                    }
                }
            }
            HostMsg::Sweep => state.sweep(),
            HostMsg::Forgive(key) => {
                state.failures.remove(&key);
            }
            HostMsg::Crash => panic!("{} host: fault injected", F::NAME),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failure) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            SupervisionEvent::ActorTerminated(cell, ..) => (cell, None),
            _ => return Ok(()),
        };
        let Some(key) = state.keys.remove(&cell.get_id()) else {
            return Ok(());
        };
        let inner = &state.inner;
        // Only this actor's entry: a newer one for the same key stays.
        inner.live.remove_if(&key, |_, l| l.actor.get_id() == cell.get_id());
        inner.set_live_gauge();
        let Some(reason) = failure else {
            return Ok(()); // stopped for idleness or room
        };
        inner.metrics.failures.with_label_values(&[F::NAME]).inc();
        let now = crate::kernel::clock::monotonic();
        let budget = inner.config.budget;
        let recent = state.failures.entry(key.clone()).or_default();
        recent.retain(|t| now.duration_since(*t) < budget.window);
        recent.push(now);
        if recent.len() > budget.max_restarts {
            tracing::error!(family = F::NAME, key = %key, reason, "keyed actor keeps failing: quarantined");
            inner.quarantined.insert(key.clone(), now + inner.config.quarantine_for);
            inner.metrics.quarantines.with_label_values(&[F::NAME]).inc();
            state.failures.remove(&key);
        } else {
            tracing::warn!(family = F::NAME, key = %key, reason, "keyed actor failed; its next call starts it again");
        }
        Ok(())
    }
}

/// One key's actor: the family's state for that key.
struct KeyActor<F>(PhantomData<fn() -> F>);

impl<F: KeyedFamily> Actor for KeyActor<F> {
    type Msg = F::Msg;
    type State = (Arc<F>, F::Key, F::State);
    type Arguments = (Arc<F>, F::Key);

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        (family, key): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let state = family.start(&key).await?;
        Ok((family, key, state))
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        msg: Self::Msg,
        (family, key, state): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        family.handle(key, state, msg).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::actor::Children;
    use crate::runtime::supervisor::{self, EngineSupervisor};

    /// A family whose keys answer their own name, and panic on request.
    struct Echo;

    enum EchoMsg {
        Name(RpcReplyPort<Result<String>>),
        Panic,
    }

    #[async_trait]
    impl KeyedFamily for Echo {
        const NAME: &'static str = "echo";
        type Key = String;
        type Msg = EchoMsg;
        type State = ();

        async fn start(&self, _: &String) -> Result<()> {
            Ok(())
        }

        async fn handle(&self, key: &String, _: &mut (), msg: EchoMsg) -> Result<()> {
            match msg {
                EchoMsg::Name(reply) => {
                    let _ = reply.send(Ok(key.clone()));
                }
                EchoMsg::Panic => panic!("echo {key}: a bug"),
            }
            Ok(())
        }
    }

    async fn name(host: &KeyedHost<Echo>, key: &str) -> Result<String> {
        host.call(&key.to_string(), EchoMsg::Name).await
    }

    /// Under the engine's root supervisor: a crash-looping key is quarantined while the
    /// supervisor and its children stay up, and the host itself restarts like any child.
    #[tokio::test]
    async fn under_the_root_supervisor_one_bad_key_never_stops_the_tree() {
        let registry = Registry::new();
        let config = KeyedConfig {
            budget: RestartBudget { max_restarts: 1, window: Duration::from_secs(60) },
            ..Default::default()
        };
        let mut children = Children::default();
        let host = children.register(child(Echo, config, KeyedMetrics::new(&registry).unwrap()));
        let children = Arc::new(children);
        let restarts = IntCounterVec::new(Opts::new("restarts", "r"), &["actor"]).unwrap();
        let args = supervisor::Args { children: children.clone(), restarts: restarts.clone() };
        let (tree, _) = Actor::spawn(None, EngineSupervisor, args).await.unwrap();

        let bad = "bad".to_string();
        for _ in 0..2 {
            name(&host, "bad").await.unwrap();
            host.send(&bad, EchoMsg::Panic).await.unwrap();
            for _ in 0..200 {
                if !host.is_live(&bad) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        for _ in 0..200 {
            if !host.quarantined().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(matches!(name(&host, "bad").await, Err(EngineError::Unavailable(_))));
        assert_eq!(tree.get_status(), ractor::ActorStatus::Running);
        assert!(children.iter().all(|c| c.is_running()));
        assert_eq!(name(&host, "good").await.unwrap(), "good");

        // The host fails as a whole: the supervisor restarts it, and keys answer again.
        tree.send_message(supervisor::Msg::InjectFault(0)).unwrap();
        for _ in 0..200 {
            if restarts.with_label_values(&["echo"]).get() == 1 && children.iter().all(|c| c.is_running()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(restarts.with_label_values(&["echo"]).get(), 1);
        let mut answer = name(&host, "good").await;
        for _ in 0..200 {
            if answer.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            answer = name(&host, "good").await;
        }
        assert_eq!(answer.unwrap(), "good");
        tree.stop_and_wait(None, None).await.unwrap();
    }
}
