//! AuditWriter: makes audit events durable with group commit. Appends queue in the
//! mailbox while a batch is being written; the next flush takes all of them in one
//! transaction, so concurrent requests share one write. A caller's reply is sent only
//! after the transaction holding its event committed — that is what lets the engine
//! acknowledge a mutation or return a token only once its audit event is durable.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::domain::audit_chain::PendingEvent;
use crate::error::{EngineError, Result};
use crate::Shared;

pub(crate) struct AuditWriter;

pub(crate) enum Msg {
    /// Make `event` durable, then reply.
    Append(PendingEvent, RpcReplyPort<Result<()>>),
    /// Write what is pending (sent to itself after the first append of a batch).
    Flush,
    /// Write everything pending now and reply; used by graceful shutdown.
    Drain(RpcReplyPort<()>),
    /// Fail on purpose (fault injection): the supervisor must restart this actor.
    Crash,
}

pub(crate) struct State {
    shared: Arc<Shared>,
    /// Events waiting for the next group commit, with the callers waiting on them.
    pending: Vec<(PendingEvent, RpcReplyPort<Result<()>>)>,
    /// A `Flush` is already in the mailbox.
    flush_queued: bool,
    /// Events in the last group commit: a busy writer waits a moment to gather more.
    last_batch: usize,
    /// The queued `Flush` was already put off once.
    deferred: bool,
}

/// Under load (the last commit held at least `BUSY` events) a flush of fewer than
/// `GATHER` events waits `GATHER_DELAY` for more: a commit costs about as much for 16
/// events as for 64, so fuller commits save CPU for a little latency. An idle writer
/// commits at once.
const BUSY: usize = 8;
const GATHER: usize = 64;
const GATHER_DELAY: std::time::Duration = std::time::Duration::from_millis(1);

impl State {
    async fn flush(&mut self) {
        while !self.pending.is_empty() {
            let take = self.pending.len().min(self.shared.config.audit_batch_max.max(1));
            let batch: Vec<_> = self.pending.drain(..take).collect();
            let (events, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let n = events.len();
            let outcome = self.shared.store.append_audit(events).await;
            self.shared.metrics.audit_batch_size.observe(n as f64);
            match outcome {
                Ok(_) => {
                    self.shared.metrics.audit_events.inc_by(n as u64);
                    replies.into_iter().for_each(|r| {
                        let _ = r.send(Ok(()));
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
    type Arguments = Arc<Shared>;

    async fn pre_start(&self, _: ActorRef<Msg>, shared: Arc<Shared>) -> Result<State, ActorProcessingErr> {
        // Chain heads live in the store and are read inside each commit, so a restarted
        // writer has nothing to re-hydrate but a check that the store answers.
        shared.store.ping().await?;
        Ok(State { shared, pending: Vec::new(), flush_queued: false, last_batch: 0, deferred: false })
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
                if !state.deferred && state.last_batch >= BUSY && state.pending.len() < GATHER {
                    state.deferred = true;
                    myself.send_after(GATHER_DELAY, || Msg::Flush);
                    return Ok(());
                }
                state.deferred = false;
                state.flush_queued = false;
                state.last_batch = state.pending.len();
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
