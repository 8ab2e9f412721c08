//! Time as a dependency. The engine reads the clock only through [`Clock`], so tests and
//! embedders can drive time-dependent behaviour (token expiry, key activation and
//! retirement) without sleeping.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::kernel::model::Millis;

pub trait Clock: Debug + Send + Sync + 'static {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> Millis;
}

/// The operating system's clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one place the engine reads the wall clock (clippy.toml).
    #[allow(clippy::disallowed_methods)]
    fn now_ms(&self) -> Millis {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// A clock that moves only when told to; starts at the system time.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock(AtomicI64::new(SystemClock.now_ms()))
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// Milliseconds since the first call in this process, never 0: a monotonic clock a plain
/// atomic can hold (crash-loop windows, a connection's wait on its reader). Not the
/// injected [`Clock`]: these measure the process's own time, which tests do not move.
pub fn monotonic_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(monotonic).elapsed().as_millis() as u64 + 1
}

/// The process's monotonic clock, for the runtime's own timers and measurements (idle
/// actors, quarantines, TTLs of in-process caches, latencies). Never for a rule: rules
/// take `now` from the [`Clock`]. The one place the engine reads it (clippy.toml).
#[allow(clippy::disallowed_methods)]
pub fn monotonic() -> std::time::Instant {
    std::time::Instant::now()
}
