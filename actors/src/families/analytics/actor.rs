//! AnalyticsAggregator: counts what happens per (organization, agent, UTC day, metric)
//! and writes the counts to the store in batches.
//!
//! A request never waits on it: it adds one to a shared tally (a short mutex, no
//! mailbox, no I/O). On every `analytics_flush` interval the aggregator takes the tally
//! whole and adds it to `analytics_events` in one transaction (UPSERTs, so every node adds
//! to the same rows); graceful shutdown drains it the same way. The tally lives beside
//! the actor, not in it, so a restarted aggregator loses nothing; a batch the store
//! refuses is kept and retried with the next. A crash of the process loses what was
//! counted since the last flush: at most one interval.
//!
//! Reads add what is not yet written to what is, so a node reads its own counts at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use uuid::Uuid;

use crate::families::analytics::rules::{Day, DayRange, Metric};
use crate::families::analytics::{AnalyticsCount, AnalyticsStore};
use crate::kernel::error::Result;
use crate::runtime::actor::{ChildSpec, Slot};
use crate::runtime::metrics::AnalyticsMetrics;

#[derive(Clone)]
pub(crate) struct AnalyticsAggregator;

/// What the aggregator is started with.
#[derive(Clone)]
pub(crate) struct Deps {
    pub store: Arc<dyn AnalyticsStore>,
    pub tally: Arc<Tally>,
    pub metrics: AnalyticsMetrics,
    /// How often the tally is written.
    pub interval: Duration,
}

type Key = (Uuid, Uuid, Day, Metric);

/// The counts not yet in the store.
#[derive(Default)]
pub(crate) struct Tally {
    /// Counted since the last flush began: what requests add to.
    pending: Mutex<HashMap<Key, u64>>,
    /// Taken from `pending` and being written (or refused last time, to be retried).
    /// Held for the whole write, and by a read for its store query, so a read never
    /// counts a batch twice (in the store and here) or not at all.
    flushing: tokio::sync::Mutex<HashMap<Key, u64>>,
}

impl Tally {
    fn add_into(into: &mut HashMap<Key, u64>, from: HashMap<Key, u64>) {
        for (key, n) in from {
            *into.entry(key).or_default() += n;
        }
    }

    /// Write what is pending; false if the store refused it (it is kept for next time).
    async fn flush(&self, store: &dyn AnalyticsStore, metrics: &AnalyticsMetrics) -> bool {
        let mut flushing = self.flushing.lock().await;
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        Self::add_into(&mut flushing, pending);
        if flushing.is_empty() {
            return true;
        }
        let counts: Vec<AnalyticsCount> = flushing
            .iter()
            .map(|(&(org_id, agent_id, day, metric), &count)| AnalyticsCount { org_id, agent_id, day, metric, count })
            .collect();
        let rows = counts.len();
        let timer = metrics.flush_seconds.start_timer();
        let outcome = store.add_analytics(counts).await;
        timer.observe_duration();
        match outcome {
            Ok(()) => {
                metrics.flush_rows.observe(rows as f64);
                flushing.clear();
                true
            }
            Err(e) => {
                metrics.flush_failures.inc();
                tracing::warn!(error = %e, rows, "analytics not written; kept for the next flush");
                false
            }
        }
    }
}

/// The engine's handle: counts, and reads.
#[derive(Clone)]
pub(crate) struct Analytics {
    tally: Arc<Tally>,
    store: Arc<dyn AnalyticsStore>,
}

impl Analytics {
    /// Count one `metric` for `agent_id` of `org_id` on `day`. Never waits on I/O.
    pub fn count(&self, org_id: Uuid, agent_id: Uuid, day: Day, metric: Metric) {
        let mut pending = self.tally.pending.lock().unwrap_or_else(|p| p.into_inner());
        *pending.entry((org_id, agent_id, day, metric)).or_default() += 1;
    }

    /// The agents of `org_id` with a count of `metric` on `since` or later that this node
    /// has not written yet (what the store does not show).
    pub async fn unwritten_agents(&self, org_id: Uuid, metric: Metric, since: Day) -> Vec<Uuid> {
        let flushing = self.tally.flushing.lock().await;
        let pending = self.tally.pending.lock().unwrap_or_else(|p| p.into_inner());
        flushing
            .keys()
            .chain(pending.keys())
            .filter(|(org, _, day, m)| *org == org_id && *m == metric && *day >= since)
            .map(|k| k.1)
            .collect()
    }

    /// The counts of `org_id` (of one agent, or all) per metric and day over `range`:
    /// what the store holds plus what this node has not written yet.
    pub async fn counts(
        &self,
        org_id: Uuid,
        agent_id: Option<Uuid>,
        metric: Option<Metric>,
        range: DayRange,
    ) -> Result<HashMap<(Metric, Day), u64>> {
        let flushing = self.tally.flushing.lock().await;
        let stored = self.store.analytics(org_id, agent_id, metric, range).await?;
        let mut out: HashMap<(Metric, Day), u64> = stored.into_iter().map(|(m, d, n)| ((m, d), n)).collect();
        let pending = self.tally.pending.lock().unwrap_or_else(|p| p.into_inner());
        let wanted = |&(org, agent, day, m): &Key| {
            org == org_id
                && agent_id.is_none_or(|a| a == agent)
                && metric.is_none_or(|w| w == m)
                && (range.from..=range.to).contains(&day)
        };
        for (key, n) in flushing.iter().chain(pending.iter()).filter(|(k, _)| wanted(k)) {
            *out.entry((key.3, key.2)).or_default() += n;
        }
        Ok(out)
    }
}

/// Register the aggregator: it holds pending counts, so it registers a drain.
pub(crate) fn child(deps: Deps) -> (ChildSpec, Analytics) {
    let handle = Analytics { tally: deps.tally.clone(), store: deps.store.clone() };
    let slot: Arc<Slot<Msg>> = Arc::default();
    let drain_slot = slot.clone();
    let spec =
        ChildSpec::singleton("analytics_aggregator", AnalyticsAggregator, move || deps.clone(), slot, || Msg::Crash)
            .with_drain(move |within| {
                let slot = drain_slot.clone();
                Box::pin(async move {
                    let Some(aggregator) = slot.load_full() else { return false };
                    matches!(
                        aggregator.call(Msg::Drain, Some(within)).await,
                        Ok(ractor::rpc::CallResult::Success(true))
                    )
                })
            });
    (spec, handle)
}

pub(crate) enum Msg {
    /// Write the tally (every interval).
    Flush,
    /// Write the tally now and answer whether it was written; used by graceful shutdown.
    Drain(RpcReplyPort<bool>),
    /// Fail on purpose (fault injection): the supervisor must restart this actor.
    Crash,
}

pub(crate) struct State {
    deps: Deps,
    ticker: tokio::task::JoinHandle<()>,
}

impl Actor for AnalyticsAggregator {
    type Msg = Msg;
    type State = State;
    type Arguments = Deps;

    async fn pre_start(&self, myself: ActorRef<Msg>, deps: Deps) -> Result<State, ActorProcessingErr> {
        let ticker = myself.send_interval(deps.interval, || Msg::Flush);
        Ok(State { deps, ticker })
    }

    async fn post_stop(&self, _: ActorRef<Msg>, state: &mut State) -> Result<(), ActorProcessingErr> {
        state.ticker.abort();
        Ok(())
    }

    async fn handle(&self, _: ActorRef<Msg>, msg: Msg, state: &mut State) -> Result<(), ActorProcessingErr> {
        let deps = &state.deps;
        match msg {
            Msg::Flush => {
                deps.tally.flush(deps.store.as_ref(), &deps.metrics).await;
            }
            Msg::Drain(reply) => {
                let _ = reply.send(deps.tally.flush(deps.store.as_ref(), &deps.metrics).await);
            }
            Msg::Crash => panic!("analytics aggregator: fault injected"),
        }
        Ok(())
    }
}

/// The janitor's sweep that rolls per-agent counts older than `detail` into their
/// organization's totals (see [`super::AnalyticsStore::roll_up_analytics`]).
pub(crate) fn sweep(store: Arc<dyn AnalyticsStore>, detail: Duration) -> crate::runtime::janitor::Sweep {
    let detail = i64::try_from(detail.as_millis()).unwrap_or(i64::MAX);
    crate::runtime::janitor::Sweep {
        what: "analytics_detail",
        run: Arc::new(move |now, batch| {
            let store = store.clone();
            Box::pin(
                async move { store.roll_up_analytics(super::rules::day_of(now.saturating_sub(detail)), batch).await },
            )
        }),
    }
}
