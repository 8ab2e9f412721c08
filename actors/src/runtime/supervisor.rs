//! EngineSupervisor: the root of the actor tree. It starts every registered child
//! ([`crate::runtime::actor::Children`]) linked to itself, in registration order, and restarts a child
//! that fails (a panic or an error from a handler). A restarted child re-hydrates from
//! the store in its `pre_start`. A child that fails more often than its
//! [`crate::runtime::actor::RestartBudget`] allows is crash-looping: the supervisor never gives up on it
//! (giving up left a node that answered nothing until someone restarted the process,
//! issue 28 item 9) but restarts it after a delay that doubles with each over-budget
//! failure, from [`BACKOFF_FIRST`] to [`BACKOFF_MAX`], and the child counts as
//! crash-looping — `/health` fails, so an orchestrator that probes it may restart the
//! process — until a budget window passes without an over-budget failure. A crash loop
//! in a core actor must be seen, not hidden, and must not outlive its cause.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::IntCounterVec;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::runtime::actor::Children;

const RESPAWN_DELAY: Duration = Duration::from_secs(1);
/// The delay before restarting a child at its first failure past its budget; it doubles
/// with each further one, up to [`BACKOFF_MAX`].
pub(crate) const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(30);

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
    /// Recent failure times per child, for its restart budget.
    restarts: Vec<Vec<Instant>>,
    /// Failures past its budget per child since it was last within it: its backoff.
    over_budget: Vec<u32>,
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
        let over_budget = vec![0; args.children.iter().count()];
        Ok(State { args, live, restarts, over_budget, stopping: false })
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
        let now = crate::kernel::clock::monotonic();
        let recent = &mut state.restarts[index];
        recent.retain(|t| now.duration_since(*t) < child.budget.window);
        recent.push(now);
        state.args.restarts.with_label_values(&[child.name]).inc();
        // Within its budget and not in a crash loop (an over-budget failure within the
        // last window): restart at once.
        if recent.len() <= child.budget.max_restarts && !child.is_crash_looping() {
            state.over_budget[index] = 0;
            tracing::error!(actor = child.name, reason = ?failure, "supervised actor stopped; restarting");
            respawn(index, &myself, state).await;
            return Ok(());
        }
        // Past its budget, or failing again within a window of that: keep trying, ever
        // more slowly, and say so.
        let over = &mut state.over_budget[index];
        *over = over.saturating_add(1);
        let delay = backoff(*over);
        child.mark_crash_loop(child.budget.window);
        tracing::error!(
            actor = child.name,
            reason = ?failure,
            failures = recent.len(),
            window_secs = child.budget.window.as_secs(),
            retry_in_ms = delay.as_millis() as u64,
            "crash loop: the actor keeps failing; restarting it with backoff (/health fails meanwhile)"
        );
        myself.send_after(delay, move || Msg::Respawn(index));
        Ok(())
    }
}

/// The delay before restarting a child at its `over`-th failure past its budget (1-based).
fn backoff(over: u32) -> Duration {
    BACKOFF_FIRST.saturating_mul(1 << over.saturating_sub(1).min(16)).min(BACKOFF_MAX)
}

/// Start child `index` again; if its `pre_start` fails (its store is unreachable, say),
/// retry in a second rather than take the whole tree down.
async fn respawn(index: usize, myself: &ActorRef<Msg>, state: &mut State) {
    if state.stopping || state.live.values().any(|i| *i == index) {
        return;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_delay_up_to_the_cap() {
        assert_eq!(backoff(1), BACKOFF_FIRST);
        assert_eq!(backoff(2), BACKOFF_FIRST * 2);
        assert_eq!(backoff(3), BACKOFF_FIRST * 4);
        assert_eq!(backoff(40), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
