//! The keyed actor host through its public interface: a test family of per-key counters
//! whose "store" is a map the test can read, so re-hydration shows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentidp_engine::{EngineError, KeyedConfig, KeyedFamily, KeyedHost, KeyedMetrics, RestartBudget, Result};
use async_trait::async_trait;
use ractor::RpcReplyPort;

/// Per-key counters, written through to `store` on every change.
#[derive(Default)]
struct Counters {
    store: Mutex<HashMap<String, u64>>,
    starts: AtomicUsize,
}

enum Msg {
    Add(u64, RpcReplyPort<Result<u64>>),
    /// Panic while handling (a bug in one key's actor).
    Panic,
}

/// The family: shares its counters with the test.
struct Family(Arc<Counters>);

#[async_trait]
impl KeyedFamily for Family {
    const NAME: &'static str = "counters";
    type Key = String;
    type Msg = Msg;
    type State = u64;

    async fn start(&self, key: &String) -> Result<u64> {
        self.0.starts.fetch_add(1, Ordering::SeqCst);
        Ok(self.0.store.lock().map_err(|_| EngineError::internal("poisoned"))?.get(key).copied().unwrap_or(0))
    }

    async fn handle(&self, key: &String, state: &mut u64, msg: Msg) -> Result<()> {
        match msg {
            Msg::Add(n, reply) => {
                *state += n;
                self.0.store.lock().map_err(|_| EngineError::internal("poisoned"))?.insert(key.clone(), *state);
                let _ = reply.send(Ok(*state));
            }
            Msg::Panic => panic!("counter {key}: a bug"),
        }
        Ok(())
    }
}

async fn host(config: KeyedConfig) -> (KeyedHost<Family>, Arc<Counters>, prometheus::Registry) {
    let family = Arc::new(Counters::default());
    let registry = prometheus::Registry::new();
    let host = KeyedHost::spawn(Family(family.clone()), config, KeyedMetrics::new(&registry).unwrap()).await.unwrap();
    (host, family, registry)
}

async fn add(host: &KeyedHost<Family>, key: &str, n: u64) -> Result<u64> {
    host.call(&key.to_string(), |reply| Msg::Add(n, reply)).await
}

fn metric(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| {
            f.get_metric().iter().map(|m| m.get_counter().get_value() + m.get_gauge().get_value()).collect::<Vec<_>>()
        })
        .sum()
}

/// Wait (bounded) for `cond`.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_keyed_actor_that_panics_is_restarted_and_rehydrates() {
    let (host, family, registry) = host(KeyedConfig::default()).await;
    assert_eq!(add(&host, "a", 5).await.unwrap(), 5);
    assert_eq!(add(&host, "b", 1).await.unwrap(), 1);
    host.send(&"a".to_string(), Msg::Panic).await.unwrap();
    eventually("a's actor to be gone", || !host.is_live(&"a".to_string())).await;
    // The next call starts a fresh actor, which reads its state back from the store.
    assert_eq!(add(&host, "a", 2).await.unwrap(), 7);
    assert_eq!(family.starts.load(Ordering::SeqCst), 3, "a twice, b once");
    assert_eq!(add(&host, "b", 1).await.unwrap(), 2, "b was never touched");
    assert_eq!(metric(&registry, "keyed_actor_failures_total"), 1.0);
    host.stop().await;
}

#[tokio::test]
async fn a_crash_looping_key_is_quarantined_and_the_others_keep_working() {
    let config = KeyedConfig {
        budget: RestartBudget { max_restarts: 3, window: Duration::from_secs(60) },
        ..KeyedConfig::default()
    };
    let (host, _, registry) = host(config).await;
    let bad = "bad".to_string();
    assert_eq!(add(&host, "good", 1).await.unwrap(), 1);
    // Four failures in the window: over the budget of three.
    for _ in 0..4 {
        add(&host, "bad", 1).await.unwrap();
        host.send(&bad, Msg::Panic).await.unwrap();
        eventually("bad's actor to fail", || !host.is_live(&bad)).await;
    }
    eventually("bad to be quarantined", || !host.quarantined().is_empty()).await;
    let err = add(&host, "bad", 1).await.unwrap_err();
    assert!(matches!(&err, EngineError::Unavailable(m) if m.contains("quarantined")), "{err:?}");
    assert_eq!(metric(&registry, "keyed_quarantines_total"), 1.0);
    // Other keys never noticed.
    assert_eq!(add(&host, "good", 1).await.unwrap(), 2);
    assert_eq!(add(&host, "new", 3).await.unwrap(), 3);
    // An operator lifts it: it starts again with a full budget, from its stored state.
    assert!(host.lift_quarantine(&bad).await);
    assert_eq!(add(&host, "bad", 1).await.unwrap(), 5);
    assert!(host.quarantined().is_empty());
    host.stop().await;
}

#[tokio::test]
async fn idle_actors_are_stopped_and_come_back_on_the_next_call() {
    let config = KeyedConfig { idle_after: Duration::from_millis(200), ..KeyedConfig::default() };
    let (host, family, registry) = host(config).await;
    let key = "sleepy".to_string();
    assert_eq!(add(&host, &key, 4).await.unwrap(), 4);
    assert!(host.is_live(&key));
    eventually("the idle actor to stop", || !host.is_live(&key)).await;
    assert_eq!(metric(&registry, "keyed_actors_live"), 0.0);
    assert_eq!(add(&host, &key, 1).await.unwrap(), 5);
    assert_eq!(family.starts.load(Ordering::SeqCst), 2);
    host.stop().await;
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
}

/// 100,000 distinct keys through a host that keeps at most 1,000 alive: the live count
/// never passes the cap, every key's state survives its eviction, and the process grows
/// by less than 64 MiB (the store map of 100k counters included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_survives_100k_distinct_keys_within_its_bounds() {
    const KEYS: usize = 100_000;
    let config = KeyedConfig { max_live: 1_000, ..KeyedConfig::default() };
    let (host, family, _) = host(config).await;
    let before = rss();
    let mut peak_live = 0;
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(64) {
        let calls = chunk.iter().map(|i| {
            let host = host.clone();
            async move { add(&host, &format!("key-{i}"), 1).await }
        });
        for result in futures_util::future::join_all(calls).await {
            assert_eq!(result.unwrap(), 1);
        }
        peak_live = peak_live.max(host.live_count());
    }
    let grown = rss().saturating_sub(before);
    assert!(peak_live <= 1_000, "{peak_live} live actors");
    assert_eq!(family.store.lock().unwrap().len(), KEYS);
    // An evicted key comes back with its state.
    assert_eq!(add(&host, "key-0", 1).await.unwrap(), 2);
    eprintln!("100k keys: peak {peak_live} live, RSS grew {} MiB", grown / (1 << 20));
    assert!(grown < 64 << 20, "RSS grew {} MiB", grown / (1 << 20));
    host.stop().await;
}
