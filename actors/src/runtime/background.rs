//! Work that must get done but should never be what a request waits behind — the audit
//! archiver's linking, JSON and compression — runs on a thread of its own at a lower
//! scheduling priority (nice +10 on Linux): when the cores are busy with requests, the
//! kernel gives it the time they leave, not an equal share.

use crate::kernel::error::{EngineError, Result};

/// The `nice` increment of background threads: their CFS weight is about a tenth of a
/// request thread's.
const NICE: i32 = 10;

/// Run `job` on a new low-priority thread named `name`; its result.
pub(crate) async fn run<T, F>(name: &str, job: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(job());
        })
        .map_err(|e| EngineError::internal(format!("{name}: no thread: {e}")))?;
    rx.await.map_err(|_| EngineError::internal(format!("{name}: the job panicked")))
}

/// On Linux a thread has a nice value of its own: this sets the calling thread's only.
fn lower_priority() {
    let me = Some(rustix::thread::gettid());
    if let Err(e) = rustix::process::setpriority_process(me, NICE) {
        tracing::debug!(error = %e, "a background thread keeps the normal priority");
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_job_runs_at_a_lower_priority_and_returns_its_result() {
        let nice = super::run("test-background", || {
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).expect("getpriority")
        })
        .await
        .expect("ran");
        assert!(nice >= super::NICE, "nice {nice}");
        assert!(super::run("test-background", || panic!("boom")).await.map(|()| ()).is_err());
    }
}
