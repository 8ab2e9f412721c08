//! AuditWriter: makes audit events durable with group commit. An event is durable once
//! the transaction holding it is committed and then flushed to disk
//! ([`Store::sync`](crate::store::Store::sync)); the caller's reply waits for both — that
//! is what lets the engine acknowledge a mutation or return a token only once its audit
//! event is durable.
//!
//! One flush is in flight at a time. Events that arrive during it could not be covered
//! by it anyway, so they wait — uncommitted — and when it returns they are committed in
//! one transaction and the next flush starts at once. Batches therefore grow with the
//! disk's latency and the load, at no cost in latency; an idle writer commits and
//! flushes a lone event at once.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::domain::audit_chain::SealedEvent;
use crate::error::{EngineError, Result};
use crate::Shared;

pub(crate) struct AuditWriter;

type Reply = RpcReplyPort<Result<()>>;

// `Append` is nearly every message: boxing its event would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    /// Make `event` durable, then reply.
    Append(SealedEvent, Reply),
    /// Commit what is pending and flush it, unless a flush is in flight (sent to itself
    /// after the first append of a batch).
    Flush,
    /// The flush in flight finished (its callers are answered): commit and flush what
    /// arrived meanwhile.
    Synced,
    /// Commit and sync everything pending now and reply; used by graceful shutdown.
    Drain(RpcReplyPort<()>),
    /// Fail on purpose (fault injection): the supervisor must restart this actor.
    Crash,
}

pub(crate) struct State {
    shared: Arc<Shared>,
    /// Events waiting for the next group commit, with the callers waiting on them.
    pending: Vec<(SealedEvent, Reply)>,
    /// Callers whose events are committed and wait for the next flush.
    unsynced: Vec<Reply>,
    /// A `Flush` is already in the mailbox.
    flush_queued: bool,
    /// A flush is in flight.
    syncing: bool,
}

fn unavailable() -> EngineError {
    EngineError::Unavailable("audit store unavailable".into())
}

impl State {
    /// Commit every pending event, in batches of at most `audit_batch_max`.
    async fn commit(&mut self) {
        while !self.pending.is_empty() {
            let take = self.pending.len().min(self.shared.config.audit_batch_max.max(1));
            let (events, replies): (Vec<_>, Vec<_>) = self.pending.drain(..take).unzip();
            let n = events.len();
            let timer = self.shared.metrics.audit_commit_seconds.start_timer();
            let outcome = self.shared.store.append_audit(events).await;
            timer.observe_duration();
            self.shared.metrics.audit_batch_size.observe(n as f64);
            match outcome {
                Ok(_) => {
                    self.shared.metrics.audit_events.inc_by(n as u64);
                    self.unsynced.extend(replies);
                }
                Err(e) => {
                    tracing::error!(error = %e, events = n, "audit batch not written");
                    replies.into_iter().for_each(|r| {
                        let _ = r.send(Err(unavailable()));
                    });
                }
            }
        }
    }

    /// Commit what is pending and start flushing it, unless a flush is in flight (its
    /// `Synced` comes back here).
    async fn commit_and_sync(&mut self, myself: &ActorRef<Msg>) {
        if self.syncing {
            return;
        }
        self.commit().await;
        if self.unsynced.is_empty() {
            return;
        }
        self.syncing = true;
        let replies = std::mem::take(&mut self.unsynced);
        let shared = self.shared.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let timer = shared.metrics.audit_sync_seconds.start_timer();
            let outcome = shared.store.sync().await;
            timer.observe_duration();
            answer(replies, outcome);
            let _ = myself.send_message(Msg::Synced);
        });
    }
}

fn answer(replies: Vec<Reply>, outcome: Result<()>) {
    if let Err(e) = &outcome {
        tracing::error!(error = %e, events = replies.len(), "audit batch committed but not synced");
    }
    replies.into_iter().for_each(|r| {
        let _ = r.send(outcome.as_ref().map(|_| ()).map_err(|_| unavailable()));
    });
}

impl Actor for AuditWriter {
    type Msg = Msg;
    type State = State;
    type Arguments = Arc<Shared>;

    async fn pre_start(&self, _: ActorRef<Msg>, shared: Arc<Shared>) -> Result<State, ActorProcessingErr> {
        // Chain heads live in the store and are read inside each commit, so a restarted
        // writer has nothing to re-hydrate but a check that the store answers.
        shared.store.ping().await?;
        Ok(State { shared, pending: Vec::new(), unsynced: Vec::new(), flush_queued: false, syncing: false })
    }

    async fn handle(&self, myself: ActorRef<Msg>, msg: Msg, state: &mut State) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Append(event, reply) => {
                state.pending.push((event, reply));
                if state.pending.len() >= state.shared.config.audit_batch_max.max(1) {
                    state.commit().await;
                } else if !state.flush_queued && !state.syncing {
                    state.flush_queued = true;
                    myself.send_message(Msg::Flush)?;
                }
            }
            Msg::Flush => {
                state.flush_queued = false;
                state.commit_and_sync(&myself).await;
            }
            Msg::Synced => {
                state.syncing = false;
                state.commit_and_sync(&myself).await;
            }
            Msg::Drain(reply) => {
                state.commit().await;
                let replies = std::mem::take(&mut state.unsynced);
                answer(replies, state.shared.store.sync().await);
                let _ = reply.send(());
            }
            Msg::Crash => panic!("audit writer: fault injected"),
        }
        Ok(())
    }
}
