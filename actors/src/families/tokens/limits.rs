//! Per-client limits at the token endpoint (issue 11, item 5), on governor keyed
//! limiters bounded in memory ([`BoundedLimiter`]).
//!
//! **Token rate.** Each client may request tokens at its tier's rate (`token_rate`
//! per second, bursts of `token_burst`); past it, 429 with `Retry-After`.
//!
//! **Brute-force protection.** Failed client authentications are counted per claimed
//! client_id *at one peer address* ([`client_lockout_key`]) and, in a second
//! [`Lockout`], per peer address, by governor keyed limiters (`lockout_failures` /
//! `lockout_address_failures` a `lockout_window`, as a burst that refills over the
//! window). The failure that finds the limiter empty locks that client_id at that
//! address (or the address) out for the window: every request naming it from there (or
//! from the address) — with the right secret too — is refused with 429 and
//! `Retry-After` until the window has passed, and one `auth.locked` audit event records
//! the lockout. No lockout is per client_id alone: that would let anyone who knows an id
//! lock its agent out everywhere. Limits are per node: N nodes allow N times the
//! failures. Refusals naming no organization are audited through a [`RefusalSampler`].
//!
//! Memory is bounded: the limiter forgets keys whose state is back to fresh
//! (`retain_recent`, then `shrink_to_fit`) on every sweep, and past `MAX_TRACKED` keys
//! the limiter is cleared (an attacker spraying random ids resets its own counts, not
//! anyone's lockout; lockouts are kept in their own map, itself capped).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::kernel::clock::Clock;
use crate::kernel::error::EngineError;
use crate::kernel::model::{Millis, Tier};
use crate::kernel::tiers::{TierLimits, TierTable};

/// Most client ids whose failures are tracked at once.
pub const MAX_TRACKED: usize = 100_000;
/// Most lockouts kept at once (the oldest go first past it).
const MAX_LOCKED: usize = 100_000;
/// Sweep after this many failures.
const SWEEP_EVERY: u64 = 4_096;

/// The engine's clock for governor, so lockout windows follow the injected clock.
#[derive(Clone)]
struct EngineClock(Arc<dyn Clock>);

impl GovernorClock for EngineClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_millis(self.0.now_ms().max(0) as u64)
    }
}

type Limiter = RateLimiter<String, DashMapStateStore<String>, EngineClock, NoOpMiddleware<Duration>>;

/// A keyed governor limiter whose memory is bounded: keys back to a fresh state are
/// swept every [`SWEEP_EVERY`] checks, and past [`MAX_TRACKED`] keys it starts afresh
/// (forgetting counts, never admitting more than a fresh limiter would).
pub(crate) struct BoundedLimiter {
    limiter: ArcSwap<Limiter>,
    quota: Quota,
    clock: Arc<dyn Clock>,
    seen: AtomicU64,
}

impl BoundedLimiter {
    /// `burst` cells, refilled one every `period`.
    pub fn new(burst: u32, period: Duration, clock: Arc<dyn Clock>) -> Self {
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .map(|q| q.allow_burst(burst))
            .unwrap_or_else(|| Quota::per_second(burst));
        let limiter = ArcSwap::from_pointee(RateLimiter::dashmap_with_clock(quota, EngineClock(clock.clone())));
        BoundedLimiter { limiter, quota, clock, seen: AtomicU64::new(0) }
    }

    /// Take one cell for `key`; `Err(wait)` when none is left.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.seen.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        let limiter = self.limiter.load();
        limiter
            .check_key(&key.to_string())
            .map_err(|not_until| not_until.wait_time_from(GovernorClock::now(&EngineClock(self.clock.clone()))))
    }

    fn sweep(&self) {
        let limiter = self.limiter.load();
        limiter.retain_recent();
        if limiter.len() > MAX_TRACKED {
            let fresh = RateLimiter::dashmap_with_clock(self.quota, EngineClock(self.clock.clone()));
            self.limiter.store(Arc::new(fresh));
        } else {
            limiter.shrink_to_fit();
        }
    }

    /// Keys tracked now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.limiter.load().len()
    }
}

/// Whole seconds to wait, at least one.
pub(crate) fn whole_secs(wait: Duration) -> Duration {
    Duration::from_secs((wait.as_secs_f64().ceil() as u64).max(1))
}

/// The token rate of each tier.
pub(crate) struct ClientRates {
    free: BoundedLimiter,
    pro: BoundedLimiter,
    enterprise: BoundedLimiter,
    tiers: TierTable,
}

impl ClientRates {
    pub fn new(tiers: &TierTable, clock: &Arc<dyn Clock>) -> Self {
        let limiter = |l: TierLimits| {
            let rate = l.token_rate.max(1);
            BoundedLimiter::new(l.token_burst, Duration::from_secs(1) / rate, clock.clone())
        };
        ClientRates {
            free: limiter(tiers.free),
            pro: limiter(tiers.pro),
            enterprise: limiter(tiers.enterprise),
            tiers: tiers.clone(),
        }
    }

    /// One token request of `client_id` on `tier`: `RateLimited` past the tier's rate.
    pub fn check(&self, tier: Tier, client_id: &str) -> crate::kernel::error::Result<()> {
        let limiter = match tier {
            Tier::Free => &self.free,
            Tier::Pro => &self.pro,
            Tier::Enterprise => &self.enterprise,
        };
        limiter.check(client_id).map_err(|wait| EngineError::LockedOut {
            reason: format!(
                "the {} tier allows a client {} token requests a second",
                tier.as_str(),
                self.tiers.limits(tier).token_rate
            ),
            retry_after: whole_secs(wait),
        })
    }
}

/// Most (action, address) keys whose refusals are sampled at once; past it (after a
/// sweep of lapsed windows) a refusal is only counted.
const MAX_SAMPLED: usize = 100_000;

/// Refusals that name no organization — an unknown client id, a JWT-bearer assertion
/// that is no partner's — come from anyone, so writing each to the audit trail would let
/// anyone grow the store without bound. One per (action, address) and window is
/// written, carrying how many of that key went unwritten in the window before; the rest
/// are counted (`agentidp_anonymous_refusals_total`).
pub(crate) struct RefusalSampler {
    /// Per key: when its window began, and the refusals not written in it.
    windows: DashMap<String, (Millis, u64)>,
    window: Duration,
    clock: Arc<dyn Clock>,
}

impl RefusalSampler {
    pub fn new(window: Duration, clock: Arc<dyn Clock>) -> Self {
        RefusalSampler { windows: DashMap::new(), window, clock }
    }

    /// One refusal of `key`: `Some(unwritten)` when its event is to be written (the
    /// first of a window; `unwritten` is the count the previous window left unwritten),
    /// `None` when it is only counted.
    pub fn admit(&self, key: &str) -> Option<u64> {
        let now = self.clock.now_ms();
        let window = self.window.as_millis() as i64;
        if self.windows.len() >= MAX_SAMPLED && !self.windows.contains_key(key) {
            self.windows.retain(|_, (start, _)| now.saturating_sub(*start) < window);
            if self.windows.len() >= MAX_SAMPLED {
                return None;
            }
        }
        let mut entry = self.windows.entry(key.to_string()).or_insert((Millis::MIN, 0));
        let (start, unwritten) = *entry;
        if now.saturating_sub(start) >= window {
            *entry = (now, 0);
            Some(unwritten)
        } else {
            entry.1 += 1;
            None
        }
    }
}

pub(crate) struct Lockout {
    /// Failures per client id.
    failures: BoundedLimiter,
    /// Locked client ids, and when their lockout ends.
    locked: DashMap<String, Millis>,
    window: Duration,
    clock: Arc<dyn Clock>,
}

impl Lockout {
    pub fn new(failures: u32, window: Duration, clock: Arc<dyn Clock>) -> Self {
        let period = window / failures.max(1);
        Lockout {
            failures: BoundedLimiter::new(failures, period, clock.clone()),
            locked: DashMap::new(),
            window,
            clock,
        }
    }

    /// How long `client_id` stays locked out, if it is.
    pub fn locked_for(&self, client_id: &str) -> Option<Duration> {
        let until = *self.locked.get(client_id)?;
        let now = self.clock.now_ms();
        if until > now {
            return Some(Duration::from_millis((until - now) as u64));
        }
        self.locked.remove_if(client_id, |_, u| *u <= now);
        None
    }

    /// Count a failed authentication of `client_id`; `true` when this failure starts a
    /// lockout (the caller audits it, once).
    pub fn failed(&self, client_id: &str) -> bool {
        if self.failures.check(client_id).is_ok() {
            return false;
        }
        let until = self.clock.now_ms() + self.window.as_millis() as i64;
        if self.locked.len() >= MAX_LOCKED {
            let now = self.clock.now_ms();
            self.locked.retain(|_, u| *u > now);
        }
        self.locked.insert(client_id.to_string(), until).is_none_or(|previous| previous <= self.clock.now_ms())
    }

    /// Client ids whose failures are tracked now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.failures.tracked()
    }
}

/// The key a client's failures are counted under: the client id *and* the address it is
/// claimed from, so that failures from one address never lock the client out of another
/// (a lockout per client id alone hands a denial of service to anyone who knows it).
pub(crate) fn client_lockout_key(client_id: &str, address: Option<&str>) -> String {
    format!("{client_id} {}", address.unwrap_or("-"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::clock::ManualClock;

    fn rss() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
    }

    #[test]
    fn refusals_are_written_once_per_key_and_window_and_the_rest_counted() {
        let clock = Arc::new(ManualClock::default());
        let sampler = RefusalSampler::new(Duration::from_secs(60), clock.clone());
        let written: Vec<Option<u64>> = (0..1000).map(|_| sampler.admit("grant 10.0.0.1")).collect();
        assert_eq!(written[0], Some(0));
        assert!(written[1..].iter().all(Option::is_none));
        assert_eq!(sampler.admit("grant 10.0.0.2"), Some(0), "another address has its own window");
        clock.advance(Duration::from_secs(60));
        assert_eq!(sampler.admit("grant 10.0.0.1"), Some(999), "the next window says how many went unwritten");
        assert_eq!(sampler.admit("grant 10.0.0.1"), None);
    }

    #[test]
    fn ten_failures_lock_a_client_out_for_the_window_and_it_lapses() {
        let clock = Arc::new(ManualClock::default());
        let lockout = Lockout::new(10, Duration::from_secs(60), clock.clone());
        let started: Vec<bool> = (0..20).map(|_| lockout.failed("aidp_ci_x")).collect();
        assert_eq!(started.iter().filter(|s| **s).count(), 1, "one lockout, reported once: {started:?}");
        assert!(started[10], "the eleventh failure starts it: {started:?}");
        assert!(lockout.locked_for("aidp_ci_x").is_some_and(|d| d <= Duration::from_secs(60)));
        assert!(lockout.locked_for("aidp_ci_other").is_none());
        clock.advance(Duration::from_secs(61));
        assert!(lockout.locked_for("aidp_ci_x").is_none());
    }

    /// A million distinct client ids (a spray of random names): the tracked set stays
    /// under its cap (plus one sweep interval), and memory within a stated bound. The
    /// memory is the process's, so the test runs itself again in a process of its own:
    /// the other tests of this binary run beside it and would count as its growth.
    #[test]
    fn a_million_random_client_ids_stay_within_the_bounds() {
        const ALONE: &str = "AGENTIDP_TEST_RSS_ALONE";
        if std::env::var_os(ALONE).is_none() {
            let exe = std::env::current_exe().expect("the test binary");
            let name = "families::tokens::limits::tests::a_million_random_client_ids_stay_within_the_bounds";
            let out = std::process::Command::new(exe)
                .args([name, "--exact", "--nocapture", "--test-threads=1"])
                .env(ALONE, "1")
                .output()
                .expect("the test binary runs");
            let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && text.contains("1 passed"), "in a process of its own:\n{text}");
            return;
        }
        let clock = Arc::new(ManualClock::default());
        let lockout = Lockout::new(10, Duration::from_secs(60), clock.clone());
        let before = rss();
        let mut peak = 0;
        for i in 0..1_000_000u64 {
            lockout.failed(&format!("aidp_ci_{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            if i % 10_000 == 0 {
                peak = peak.max(lockout.tracked());
                clock.advance(Duration::from_millis(50));
            }
        }
        let grown = rss().saturating_sub(before);
        assert!(peak <= MAX_TRACKED + SWEEP_EVERY as usize, "{peak} tracked");
        // 100k keys of ~40 bytes with their state, and the map's slack.
        assert!(grown < 96 << 20, "RSS grew {} MiB", grown >> 20);
        eprintln!("1M client ids: peak {peak} tracked, RSS grew {} MiB", grown >> 20);
    }
}
