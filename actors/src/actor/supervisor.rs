//! EngineSupervisor: the root of the actor tree. It starts every registered child
//! ([`super::Children`]) linked to itself, in registration order, and restarts a child
//! that fails (a panic or an error from a handler). A restarted child re-hydrates from
//! the store in its `pre_start`. A child that fails more often than its
//! [`super::RestartBudget`] allows is not restarted again: the supervisor stops, and with
//! it the engine reports itself not ready — a crash loop in a core actor must be seen,
//! not hidden.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::IntCounterVec;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::Children;

const RESPAWN_DELAY: Duration = Duration::from_secs(1);

pub(crate) struct EngineSupervisor;

pub(crate) struct Args {
    pub children: Arc<Children>,
    /// `actor_restarts_total`, labelled with the child's name.
    pub restarts: IntCounterVec,
}

pub(crate) enum Msg {
    /// Ask the child at this index to fail (fault injection, for resilience tests and
    /// drills).
    InjectFault(usize),
    /// Try again to start a child whose restart failed (e.g. the store was down).
    Respawn(usize),
}

pub(crate) struct State {
    args: Args,
    /// Which child (by index) each live actor id is.
    live: HashMap<ActorId, usize>,
    /// Recent restart times per child, for its restart budget.
    restarts: Vec<Vec<Instant>>,
    /// Set once shutdown began: children that stop now are not restarted.
    stopping: bool,
}

impl Actor for EngineSupervisor {
    type Msg = Msg;
    type State = State;
    type Arguments = Args;

    async fn pre_start(&self, myself: ActorRef<Msg>, args: Args) -> Result<State, ActorProcessingErr> {
        let mut live = HashMap::new();
        for (index, child) in args.children.iter().enumerate() {
            let cell = child.start(myself.get_cell()).await?;
            live.insert(cell.get_id(), index);
        }
        let restarts = args.children.iter().map(|_| Vec::new()).collect();
        Ok(State { args, live, restarts, stopping: false })
    }

    async fn post_stop(&self, myself: ActorRef<Msg>, state: &mut State) -> Result<(), ActorProcessingErr> {
        state.stopping = true;
        myself.stop_children_and_wait(None, Some(Duration::from_secs(10))).await;
        Ok(())
    }

    async fn handle(&self, myself: ActorRef<Msg>, msg: Msg, state: &mut State) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::InjectFault(index) => state.args.children.get(index).inject_fault(),
            Msg::Respawn(index) => respawn(index, &myself, state).await,
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
        let Some(index) = state.live.remove(&cell.get_id()) else {
            return Ok(());
        };
        let child = state.args.children.get(index);
        child.clear();
        if state.stopping {
            return Ok(());
        }
        tracing::error!(actor = child.name, reason = ?failure, "supervised actor stopped; restarting");
        let now = Instant::now();
        let recent = &mut state.restarts[index];
        recent.retain(|t| now.duration_since(*t) < child.budget.window);
        if recent.len() >= child.budget.max_restarts {
            tracing::error!(actor = child.name, "crash loop: giving up on restarts");
            myself.stop(Some(format!("{} keeps failing", child.name)));
            return Ok(());
        }
        recent.push(now);
        state.args.restarts.with_label_values(&[child.name]).inc();
        respawn(index, &myself, state).await;
        Ok(())
    }
}

/// Start child `index` again; if its `pre_start` fails (its store is unreachable, say),
/// retry in a second rather than take the whole tree down.
async fn respawn(index: usize, myself: &ActorRef<Msg>, state: &mut State) {
    let child = state.args.children.get(index);
    match child.start(myself.get_cell()).await {
        Ok(cell) => {
            state.live.insert(cell.get_id(), index);
        }
        Err(e) => {
            tracing::error!(actor = child.name, error = %e, "restart failed; retrying");
            myself.send_after(RESPAWN_DELAY, move || Msg::Respawn(index));
        }
    }
}
