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

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::error::{EngineError, Result};
use crate::store::Commit;
use crate::Shared;

pub(crate) struct AuditWriter;

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
    shared: Arc<Shared>,
    /// Events waiting for the next group commit, with the callers waiting on them.
    pending: Vec<(Commit, Reply)>,
    /// A `Flush` is already in the mailbox.
    flush_queued: bool,
}

impl State {
    /// Write every pending event, in batches of at most `audit_batch_max`.
    async fn flush(&mut self) {
        while !self.pending.is_empty() {
            let take = self.pending.len().min(self.shared.config.audit_batch_max.max(1));
            let (entries, replies): (Vec<_>, Vec<_>) = self.pending.drain(..take).unzip();
            let n = entries.len();
            let timer = self.shared.metrics.audit_commit_seconds.start_timer();
            let outcome = self.shared.store.append_audit(entries).await;
            timer.observe_duration();
            self.shared.metrics.audit_batch_size.observe(n as f64);
            match outcome {
                Ok(outcomes) => {
                    let written = outcomes.iter().filter(|o| o.is_ok()).count();
                    self.shared.metrics.audit_events.inc_by(written as u64);
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
    type Arguments = Arc<Shared>;

    async fn pre_start(&self, _: ActorRef<Msg>, shared: Arc<Shared>) -> Result<State, ActorProcessingErr> {
        // Chain heads live in the store and are read inside each commit, so a restarted
        // writer has nothing to re-hydrate but a check that the store answers.
        shared.store.ping().await?;
        Ok(State { shared, pending: Vec::new(), flush_queued: false })
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
