//! The actor tree. Each module holds one actor family: its struct, its dependencies (a
//! `Deps` struct it is started with — never the engine's whole state), a documented
//! `State`, a `Msg` enum, the handle the engine reaches it through, and a `child`
//! function that registers it with the root supervisor. Actor references never leave
//! the engine crate.
//!
//! Adding a family is a new module plus one registration line in `Engine::start`
//! (docs/architecture.md, "Adding an actor family"): the supervisor, readiness, fault
//! injection, shutdown drains and the resilience test all iterate the registered
//! children. One actor per key (organization, partner, subscription) runs in a
//! [`keyed::KeyedHost`], which is itself one registered child.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::kernel::clock::monotonic_ms;
use crate::kernel::error::{EngineError, Result};

/// Where the engine finds the live instance of an actor; empty while it is restarting.
pub type Slot<M> = ArcSwapOption<ActorRef<M>>;

/// How often a child may fail within a window before it counts as crash-looping: past
/// it the supervisor still restarts it, but with a growing delay, and `/health` fails
/// until a window has passed without an over-budget failure.
#[derive(Debug, Clone, Copy)]
pub struct RestartBudget {
    pub max_restarts: usize,
    pub window: Duration,
}

impl Default for RestartBudget {
    fn default() -> Self {
        RestartBudget { max_restarts: 10, window: Duration::from_secs(60) }
    }
}

type Start = Box<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, ActorProcessingErr>> + Send + Sync>;
type Drain = Box<dyn Fn(Duration) -> BoxFuture<'static, bool> + Send + Sync>;

/// One registered child of the root supervisor: its name (also its metrics label and its
/// fault-injection name), its restart budget, and how to start it, clear its handle,
/// make it fail, tell whether it runs, and — for a family that holds pending work —
/// drain it before shutdown.
pub struct ChildSpec {
    pub name: &'static str,
    pub budget: RestartBudget,
    start: Start,
    clear: Box<dyn Fn() + Send + Sync>,
    fault: Box<dyn Fn() + Send + Sync>,
    running: Box<dyn Fn() -> bool + Send + Sync>,
    drain: Option<Drain>,
    /// Until when (milliseconds on [`crate::kernel::clock::monotonic_ms`]) the child counts as crash-looping;
    /// 0: it never was. Set by the supervisor, read by liveness.
    crash_loop_until: AtomicU64,
}

impl ChildSpec {
    /// A child that is one actor, reached through `slot`: started with `args()` (fresh on
    /// every restart), made to fail by sending it `crash()`.
    pub(crate) fn singleton<A>(
        name: &'static str,
        actor: A,
        args: impl Fn() -> A::Arguments + Send + Sync + 'static,
        slot: Arc<Slot<A::Msg>>,
        crash: fn() -> A::Msg,
    ) -> ChildSpec
    where
        A: Actor + Clone + Sync,
    {
        let (start_slot, clear_slot, fault_slot, running_slot) = (slot.clone(), slot.clone(), slot.clone(), slot);
        ChildSpec {
            name,
            budget: RestartBudget::default(),
            start: Box::new(move |supervisor| {
                let (actor, args, slot) = (actor.clone(), args(), start_slot.clone());
                Box::pin(async move {
                    let (r, _) = Actor::spawn_linked(None, actor, args, supervisor).await?;
                    slot.store(Some(Arc::new(r.clone())));
                    Ok(r.get_cell())
                })
            }),
            clear: Box::new(move || clear_slot.store(None)),
            fault: Box::new(move || {
                if let Some(r) = fault_slot.load_full() {
                    let _ = r.send_message(crash());
                }
            }),
            running: Box::new(move || running_slot.load().is_some()),
            drain: None,
            crash_loop_until: AtomicU64::new(0),
        }
    }

    /// Register a drain: shutdown waits (at most the given time) for it before stopping
    /// the tree; it answers whether everything pending was done.
    pub(crate) fn with_drain(
        mut self,
        drain: impl Fn(Duration) -> BoxFuture<'static, bool> + Send + Sync + 'static,
    ) -> Self {
        self.drain = Some(Box::new(drain));
        self
    }

    pub(crate) async fn start(&self, supervisor: ActorCell) -> Result<ActorCell, ActorProcessingErr> {
        (self.start)(supervisor).await
    }

    pub(crate) fn clear(&self) {
        (self.clear)()
    }

    pub(crate) fn inject_fault(&self) {
        (self.fault)()
    }

    pub fn is_running(&self) -> bool {
        (self.running)()
    }

    /// Whether the child failed more often than its budget allows within the last window.
    pub fn is_crash_looping(&self) -> bool {
        monotonic_ms() < self.crash_loop_until.load(Ordering::Relaxed)
    }

    /// Count the child as crash-looping for the next `window`.
    pub(crate) fn mark_crash_loop(&self, window: Duration) {
        let until = monotonic_ms().saturating_add(window.as_millis() as u64);
        self.crash_loop_until.store(until, Ordering::Relaxed);
    }

    pub(crate) async fn drain(&self, within: Duration) -> bool {
        match &self.drain {
            Some(drain) => drain(within).await,
            None => true,
        }
    }
}

/// The registered children, in start order (and drain order).
#[derive(Default)]
pub struct Children {
    specs: Vec<ChildSpec>,
}

impl Children {
    /// Register a child; returns the handle the engine reaches it through.
    pub(crate) fn register<H>(&mut self, (spec, handle): (ChildSpec, H)) -> H {
        assert!(self.specs.iter().all(|s| s.name != spec.name), "two children named {}", spec.name);
        self.specs.push(spec);
        handle
    }

    pub fn iter(&self) -> impl Iterator<Item = &ChildSpec> {
        self.specs.iter()
    }

    pub(crate) fn get(&self, index: usize) -> &ChildSpec {
        &self.specs[index]
    }

    pub fn find(&self, name: &str) -> Option<&ChildSpec> {
        self.specs.iter().find(|s| s.name == name)
    }
}

/// Ask the actor in `slot` and wait for its answer, at most `timeout`. An actor that is
/// restarting, stops while answering or does not answer in time is `Unavailable` (503).
pub(crate) async fn ask<M, T>(
    slot: &Slot<M>,
    timeout: Duration,
    build: impl FnOnce(RpcReplyPort<Result<T>>) -> M,
) -> Result<T>
where
    M: ractor::Message,
    T: Send + 'static,
{
    let actor = slot.load_full().ok_or_else(|| EngineError::Unavailable("engine actor is restarting".into()))?;
    match actor.call(build, Some(timeout)).await {
        Ok(ractor::rpc::CallResult::Success(result)) => result,
        Ok(ractor::rpc::CallResult::Timeout) => Err(EngineError::Unavailable("engine actor timed out".into())),
        Ok(ractor::rpc::CallResult::SenderError) | Err(_) => {
            Err(EngineError::Unavailable("engine actor stopped while answering".into()))
        }
    }
}
