//! AuditWriter: makes audit events durable with group commit. Appends queue in the
//! mailbox while a batch is being written; the next flush takes all of them in one
//! transaction, so concurrent requests share one commit and one flush to disk. An append
//! may carry the directory changes its event records (and their announcement to the
//! cluster): they are written in the same transaction, so no change is ever committed
//! without its audit event. A caller's reply is sent only after the store returned, when
//! its entry is committed and flushed — that is what lets the engine acknowledge a
//! mutation or return a token only once it and its audit event are durable. There is no timer: batches grow with the load
//! and the disk's latency, and an idle writer writes a lone event at once.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::Commit;
use crate::families::audit::AuditStore;
use crate::kernel::error::{EngineError, Result};
use crate::runtime::actor::{ask, ChildSpec, Slot};
use crate::runtime::coord::Coordinator;
use crate::runtime::metrics::EngineMetrics;

#[derive(Clone)]
pub(crate) struct AuditWriter;

/// What the writer is started with.
#[derive(Clone)]
pub(crate) struct Deps {
    pub store: Arc<dyn AuditStore>,
    pub dict: Arc<super::record::Dictionary>,
    /// Where derived reports are cached: a commit that changes what one reads drops it.
    pub coord: Arc<dyn Coordinator>,
    pub metrics: EngineMetrics,
    /// Most entries in one group commit.
    pub batch_max: usize,
    /// The cached reports that commits make stale, registered by the families that cache
    /// them.
    pub stale: Vec<StaleAfter>,
    /// What families do once an event is durable, registered by them.
    pub durable: Vec<OnDurable>,
}

/// What a family does once an event that concerns it is durable, before the commit is
/// answered (the webhooks family nudges the organization's deliveries). Registered by
/// the family, so the writer (and every path that commits through it) names none.
#[derive(Clone)]
pub(crate) struct OnDurable {
    /// Whether an event audited as this action concerns it.
    pub action: fn(&str) -> bool,
    /// What it does, given the event's organization.
    pub run: Arc<dyn Fn(uuid::Uuid) + Send + Sync>,
}

/// A value cached in the coordinator (per organization) that a committed change can make
/// stale: dropped after the commit, before its answer, so whoever reads it after the
/// answer gets a fresh one. Registered by the family that caches it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StaleAfter {
    /// Whether a change audited as this action makes it stale.
    pub action: fn(&str) -> bool,
    /// Where an organization's value is cached.
    pub key: fn(uuid::Uuid) -> String,
}

/// The engine's handle on the writer.
#[derive(Clone)]
pub(crate) struct AuditLog {
    slot: Arc<Slot<Msg>>,
    timeout: Duration,
}

impl AuditLog {
    /// Make `commit` durable (its event, its changes, its announcement), then return.
    pub async fn append(&self, commit: Commit) -> Result<()> {
        ask(&self.slot, self.timeout, |reply| Msg::Append(commit, reply)).await
    }

    /// Write everything pending; false if the writer did not finish within `within`.
    async fn drain(slot: &Slot<Msg>, within: Duration) -> bool {
        let Some(writer) = slot.load_full() else { return true };
        matches!(writer.call(Msg::Drain, Some(within)).await, Ok(ractor::rpc::CallResult::Success(())))
    }
}

/// Register the writer: it holds pending work, so it registers a drain.
pub(crate) fn child(deps: Deps, call_timeout: Duration) -> (ChildSpec, AuditLog) {
    let handle = AuditLog { slot: Arc::default(), timeout: call_timeout };
    let drain_slot = handle.slot.clone();
    let spec =
        ChildSpec::singleton("audit_writer", AuditWriter, move || deps.clone(), handle.slot.clone(), || Msg::Crash)
            .with_drain(move |within| {
                let slot = drain_slot.clone();
                Box::pin(async move { AuditLog::drain(&slot, within).await })
            });
    (spec, handle)
}

type Reply = RpcReplyPort<Result<()>>;

// `Append` is nearly every message: boxing its event would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    /// Make the entry (event, and the changes it records) durable, then reply.
    Append(Commit, Reply),
    /// Write what is pending (sent to itself after the first append of a batch).
    Flush,
    /// Write everything pending now and reply; used by graceful shutdown.
    Drain(RpcReplyPort<()>),
    /// Fail on purpose (fault injection): the supervisor must restart this actor.
    Crash,
}

pub(crate) struct State {
    deps: Deps,
    /// Events waiting for the next group commit, with the callers waiting on them.
    pending: Vec<(Commit, Reply)>,
    /// A `Flush` is already in the mailbox.
    flush_queued: bool,
}

impl State {
    /// Give each event its record; words new to the dictionary are interned first (in
    /// their own statement: a number given to a word whose batch then fails is harmless).
    async fn encode(&self, entries: &mut [Commit]) -> Result<()> {
        let mut missing = Vec::new();
        for _ in 0..2 {
            for commit in entries.iter_mut().filter(|c| c.event.encoded.is_none()) {
                commit.event.encoded = super::record::encode(&commit.event.event, &self.deps.dict, &mut missing);
            }
            if missing.is_empty() {
                return Ok(());
            }
            self.deps.dict.learn(self.deps.store.intern(std::mem::take(&mut missing)).await?);
        }
        Err(EngineError::internal("audit words were interned but are still unknown"))
    }

    /// Write every pending event, in batches of at most `audit_batch_max`.
    async fn flush(&mut self) {
        while !self.pending.is_empty() {
            let take = self.pending.len().min(self.deps.batch_max.max(1));
            let (mut entries, replies): (Vec<_>, Vec<_>) = self.pending.drain(..take).unzip();
            let n = entries.len();
            // The cached values the entries make stale: none in a batch of issued tokens
            // (no changes), so nothing is allocated there.
            let stale: Vec<(usize, String)> = entries
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.changes.is_empty())
                .filter_map(|(i, c)| Some((i, c.event.event.org_id?, c.event.event.action.as_str())))
                .flat_map(|(i, org, action)| {
                    self.deps.stale.iter().filter(move |s| (s.action)(action)).map(move |s| (i, (s.key)(org)))
                })
                .collect();
            let durable: Vec<(usize, uuid::Uuid, &OnDurable)> = entries
                .iter()
                .enumerate()
                .filter_map(|(i, c)| Some((i, c.event.event.org_id?, c.event.event.action.as_str())))
                .flat_map(|(i, org, action)| {
                    self.deps.durable.iter().filter(move |d| (d.action)(action)).map(move |d| (i, org, d))
                })
                .collect();
            let timer = self.deps.metrics.audit_commit_seconds.start_timer();
            let outcome = match self.encode(&mut entries).await {
                Ok(()) => self.deps.store.append_audit(entries).await,
                Err(e) => Err(e),
            };
            timer.observe_duration();
            self.deps.metrics.audit_batch_size.observe(n as f64);
            match outcome {
                Ok(outcomes) => {
                    let written = outcomes.iter().filter(|o| o.is_ok()).count();
                    self.deps.metrics.audit_events.inc_by(written as u64);
                    // Before the replies: whoever reads the report after an answer gets
                    // a fresh one.
                    let mut keys: Vec<String> = stale
                        .into_iter()
                        .filter(|(i, _)| outcomes.get(*i).is_some_and(Result::is_ok))
                        .map(|(_, key)| key)
                        .collect();
                    keys.sort_unstable();
                    keys.dedup();
                    for key in keys {
                        if let Err(e) = self.deps.coord.cache_drop(&key).await {
                            tracing::warn!(error = %e, key, "a stale cached report may be served until it expires");
                        }
                    }
                    for (_, org, hook) in durable.iter().filter(|(i, _, _)| outcomes.get(*i).is_some_and(Result::is_ok))
                    {
                        (hook.run)(*org);
                    }
                    replies.into_iter().zip(outcomes).for_each(|(r, outcome)| {
                        let _ = r.send(outcome);
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, events = n, "audit batch not written");
                    replies.into_iter().for_each(|r| {
                        let _ = r.send(Err(EngineError::Unavailable("audit store unavailable".into())));
                    });
                }
            }
        }
    }
}

impl Actor for AuditWriter {
    type Msg = Msg;
    type State = State;
    type Arguments = Deps;

    async fn pre_start(&self, _: ActorRef<Msg>, deps: Deps) -> Result<State, ActorProcessingErr> {
        // Chain heads live in the store and are read inside each commit, so a restarted
        // writer has nothing to re-hydrate but a check that the store answers.
        deps.store.ping().await?;
        Ok(State { deps, pending: Vec::new(), flush_queued: false })
    }

    async fn handle(&self, myself: ActorRef<Msg>, msg: Msg, state: &mut State) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Append(event, reply) => {
                state.pending.push((event, reply));
                if !state.flush_queued {
                    state.flush_queued = true;
                    myself.send_message(Msg::Flush)?;
                }
            }
            Msg::Flush => {
                state.flush_queued = false;
                state.flush().await;
            }
            Msg::Drain(reply) => {
                state.flush().await;
                let _ = reply.send(());
            }
            Msg::Crash => panic!("audit writer: fault injected"),
        }
        Ok(())
    }
}
