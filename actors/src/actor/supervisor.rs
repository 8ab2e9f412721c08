//! EngineSupervisor: the root of the actor tree. It spawns every child linked to itself,
//! publishes each child's reference in its slot, and restarts a child that fails (a
//! panic or an error from a handler). A restarted child re-hydrates from the store in
//! its `pre_start`. A child that keeps failing (more than `MAX_RESTARTS` within
//! `RESTART_WINDOW`) is not restarted again: the supervisor stops, and with it the
//! engine reports itself not ready — crash loops must be seen, not hidden.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::{audit_writer, cache_keeper, key_manager, revocations, ActorKind};
use crate::Shared;

const MAX_RESTARTS: usize = 10;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
const RESPAWN_DELAY: Duration = Duration::from_secs(1);

pub(crate) struct EngineSupervisor;

pub(crate) enum Msg {
    /// Ask a child to fail (fault injection, for resilience tests and drills).
    InjectFault(ActorKind),
    /// Try again to start a child whose restart failed (e.g. the store was down).
    Respawn(ActorKind),
}

pub(crate) struct State {
    shared: Arc<Shared>,
    /// Which child each live actor id is.
    children: HashMap<ActorId, ActorKind>,
    /// Recent restart times per child, for the crash-loop limit.
    restarts: HashMap<ActorKind, Vec<Instant>>,
    /// Set once shutdown began: children that stop now are not restarted.
    stopping: bool,
}

async fn spawn_child(
    kind: ActorKind,
    shared: &Arc<Shared>,
    supervisor: ActorCell,
) -> Result<ActorCell, ActorProcessingErr> {
    let cell = match kind {
        ActorKind::KeyManager => {
            let (r, _) = Actor::spawn_linked(None, key_manager::KeyManager, shared.clone(), supervisor).await?;
            shared.slots.keys.store(Some(Arc::new(r.clone())));
            r.get_cell()
        }
        ActorKind::AuditWriter => {
            let (r, _) = Actor::spawn_linked(None, audit_writer::AuditWriter, shared.clone(), supervisor).await?;
            shared.slots.audit.store(Some(Arc::new(r.clone())));
            r.get_cell()
        }
        ActorKind::CacheKeeper => {
            let (r, _) = Actor::spawn_linked(None, cache_keeper::CacheKeeper, shared.clone(), supervisor).await?;
            shared.slots.keeper.store(Some(Arc::new(r.clone())));
            r.get_cell()
        }
        ActorKind::Revocations => {
            let (r, _) = Actor::spawn_linked(None, revocations::RevocationActor, shared.clone(), supervisor).await?;
            shared.slots.revocations.store(Some(Arc::new(r.clone())));
            r.get_cell()
        }
    };
    Ok(cell)
}

fn clear_slot(kind: ActorKind, shared: &Shared) {
    match kind {
        ActorKind::KeyManager => shared.slots.keys.store(None),
        ActorKind::AuditWriter => shared.slots.audit.store(None),
        ActorKind::CacheKeeper => shared.slots.keeper.store(None),
        ActorKind::Revocations => shared.slots.revocations.store(None),
    }
}

impl Actor for EngineSupervisor {
    type Msg = Msg;
    type State = State;
    type Arguments = Arc<Shared>;

    async fn pre_start(&self, myself: ActorRef<Msg>, shared: Arc<Shared>) -> Result<State, ActorProcessingErr> {
        let mut children = HashMap::new();
        for kind in ActorKind::ALL {
            let cell = spawn_child(kind, &shared, myself.get_cell()).await?;
            children.insert(cell.get_id(), kind);
        }
        Ok(State { shared, children, restarts: HashMap::new(), stopping: false })
    }

    async fn post_stop(&self, myself: ActorRef<Msg>, state: &mut State) -> Result<(), ActorProcessingErr> {
        state.stopping = true;
        myself.stop_children_and_wait(None, Some(Duration::from_secs(10))).await;
        Ok(())
    }

    async fn handle(&self, myself: ActorRef<Msg>, msg: Msg, state: &mut State) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::InjectFault(kind) => match kind {
                ActorKind::KeyManager => {
                    if let Some(r) = state.shared.slots.keys.load_full() {
                        r.send_message(key_manager::Msg::Crash)?;
                    }
                }
                ActorKind::AuditWriter => {
                    if let Some(r) = state.shared.slots.audit.load_full() {
                        r.send_message(audit_writer::Msg::Crash)?;
                    }
                }
                ActorKind::CacheKeeper => {
                    if let Some(r) = state.shared.slots.keeper.load_full() {
                        r.send_message(cache_keeper::Msg::Crash)?;
                    }
                }
                ActorKind::Revocations => {
                    if let Some(r) = state.shared.slots.revocations.load_full() {
                        r.send_message(revocations::Msg::Crash)?;
                    }
                }
            },
            Msg::Respawn(kind) => respawn(kind, &myself, state).await,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Msg>,
        event: SupervisionEvent,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failure) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, reason),
            _ => return Ok(()),
        };
        let Some(kind) = state.children.remove(&cell.get_id()) else {
            return Ok(());
        };
        clear_slot(kind, &state.shared);
        if state.stopping {
            return Ok(());
        }
        tracing::error!(actor = kind.name(), reason = ?failure, "supervised actor stopped; restarting");
        let now = Instant::now();
        let recent = state.restarts.entry(kind).or_default();
        recent.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        if recent.len() >= MAX_RESTARTS {
            tracing::error!(actor = kind.name(), "crash loop: giving up on restarts");
            myself.stop(Some(format!("{} keeps failing", kind.name())));
            return Ok(());
        }
        recent.push(now);
        state.shared.metrics.actor_restarts.with_label_values(&[kind.name()]).inc();
        respawn(kind, &myself, state).await;
        Ok(())
    }
}

/// Start `kind` again; if its `pre_start` fails (its store is unreachable, say), retry
/// in a second rather than take the whole tree down.
async fn respawn(kind: ActorKind, myself: &ActorRef<Msg>, state: &mut State) {
    match spawn_child(kind, &state.shared, myself.get_cell()).await {
        Ok(cell) => {
            state.children.insert(cell.get_id(), kind);
        }
        Err(e) => {
            tracing::error!(actor = kind.name(), error = %e, "restart failed; retrying");
            myself.send_after(RESPAWN_DELAY, move || Msg::Respawn(kind));
        }
    }
}
