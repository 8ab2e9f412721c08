//! A supervised singleton that does one thing on a timer: a round every `every` (the
//! billing sweeper, the janitor, the audit checkpointer). A round that fails logs and
//! waits for the next tick; fault injection makes the actor fail so its supervisor
//! restarts it, like any child.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::runtime::actor::{ChildSpec, Slot};

/// One round over the ticker's dependencies.
pub(crate) type Round<D> = for<'a> fn(&'a D) -> BoxFuture<'a, ()>;

/// Register a ticker named `name`: `round(&deps)` every `every`.
pub(crate) fn child<D: Clone + Send + Sync + 'static>(
    name: &'static str,
    every: Duration,
    deps: D,
    round: Round<D>,
) -> (ChildSpec, ()) {
    let slot: Arc<Slot<Msg>> = Arc::default();
    let ticker = Ticker { name, round };
    (ChildSpec::singleton(name, ticker, move || (deps.clone(), every), slot, || Msg::Crash), ())
}

pub(crate) struct Ticker<D> {
    name: &'static str,
    round: Round<D>,
}

impl<D> Clone for Ticker<D> {
    fn clone(&self) -> Self {
        Ticker { name: self.name, round: self.round }
    }
}

pub(crate) enum Msg {
    Tick,
    /// Fail on purpose (fault injection): the supervisor must restart this actor.
    Crash,
}

pub(crate) struct State<D> {
    deps: D,
    ticker: JoinHandle<()>,
}

impl<D: Send + Sync + 'static> Actor for Ticker<D> {
    type Msg = Msg;
    type State = State<D>;
    type Arguments = (D, Duration);

    async fn pre_start(
        &self,
        myself: ActorRef<Msg>,
        (deps, every): (D, Duration),
    ) -> Result<State<D>, ActorProcessingErr> {
        let ticker = myself.send_interval(every, || Msg::Tick);
        Ok(State { deps, ticker })
    }

    async fn post_stop(&self, _: ActorRef<Msg>, state: &mut State<D>) -> Result<(), ActorProcessingErr> {
        state.ticker.abort();
        Ok(())
    }

    async fn handle(&self, _: ActorRef<Msg>, msg: Msg, state: &mut State<D>) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Tick => (self.round)(&state.deps).await,
            Msg::Crash => panic!("{}: fault injected", self.name),
        }
        Ok(())
    }
}
