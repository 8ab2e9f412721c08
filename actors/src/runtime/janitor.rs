//! The janitor: what grows with use and has an end — expired revocations, webhook
//! deliveries past their retention, the cluster change feed — is removed here, on a
//! timer, in bounded batches (one short transaction each, never a table-wide delete
//! that would hold the writer or, on PostgreSQL, a long lock). Each family registers
//! its sweeps at start; the janitor runs them in turn and counts what each removed
//! (`agentidp_janitor_removed_total{what}`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use prometheus::{IntCounterVec, Opts, Registry};

use crate::kernel::clock::Clock;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::Millis;
use crate::runtime::actor::ChildSpec;

/// Remove at most `batch` items that are done by `now`; how many were removed.
pub type SweepFn = Arc<dyn Fn(Millis, usize) -> BoxFuture<'static, Result<u64>> + Send + Sync>;

/// One kind of thing the janitor removes, registered by its family.
#[derive(Clone)]
pub struct Sweep {
    /// Its name in the metric and the log.
    pub what: &'static str,
    pub run: SweepFn,
}

/// How often and how much.
#[derive(Debug, Clone, Copy)]
pub struct JanitorSettings {
    /// Time between two rounds of sweeps.
    pub every: Duration,
    /// Most items one batch (one transaction) removes.
    pub batch: usize,
    /// Most batches of one sweep in one round: what is left waits for the next round.
    pub max_batches: usize,
}

impl Default for JanitorSettings {
    fn default() -> Self {
        JanitorSettings { every: Duration::from_secs(60), batch: 1000, max_batches: 1000 }
    }
}

/// The sweeps, their settings and their counter.
#[derive(Clone)]
pub struct Janitor {
    sweeps: Arc<Vec<Sweep>>,
    clock: Arc<dyn Clock>,
    settings: JanitorSettings,
    removed: IntCounterVec,
}

impl Janitor {
    pub fn new(
        sweeps: Vec<Sweep>,
        clock: Arc<dyn Clock>,
        settings: JanitorSettings,
        registry: &Registry,
    ) -> Result<Janitor> {
        let removed = IntCounterVec::new(
            Opts::new("janitor_removed_total", "Items the janitor removed, by what they were"),
            &["what"],
        )
        .map_err(|e| EngineError::internal(format!("metrics: {e}")))?;
        registry.register(Box::new(removed.clone())).map_err(|e| EngineError::internal(format!("metrics: {e}")))?;
        for sweep in sweeps.iter() {
            removed.with_label_values(&[sweep.what]).inc_by(0);
        }
        Ok(Janitor { sweeps: Arc::new(sweeps), clock, settings, removed })
    }

    /// One round: every sweep, batch after batch until one comes back short (or the
    /// round's cap). A failing sweep is logged and the others still run; what each
    /// removed is returned.
    pub async fn round(&self) -> Vec<(&'static str, u64)> {
        let mut report = Vec::with_capacity(self.sweeps.len());
        for sweep in self.sweeps.iter() {
            let mut removed = 0;
            for _ in 0..self.settings.max_batches.max(1) {
                match (sweep.run)(self.clock.now_ms(), self.settings.batch.max(1)).await {
                    Ok(n) => {
                        removed += n;
                        self.removed.with_label_values(&[sweep.what]).inc_by(n);
                        if n < self.settings.batch.max(1) as u64 {
                            break;
                        }
                        // Between batches, let the requests waiting on the store go first.
                        tokio::task::yield_now().await;
                    }
                    Err(e) => {
                        tracing::warn!(what = sweep.what, error = %e, "janitor sweep failed; it runs again next round");
                        break;
                    }
                }
            }
            if removed > 0 {
                tracing::info!(what = sweep.what, removed, "janitor swept");
            }
            report.push((sweep.what, removed));
        }
        report
    }
}

/// Register the janitor's actor: a round every `every`.
pub(crate) fn child(janitor: Janitor) -> (ChildSpec, ()) {
    crate::runtime::ticker::child("janitor", janitor.settings.every, janitor, round)
}

fn round(janitor: &Janitor) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        janitor.round().await;
    })
}
