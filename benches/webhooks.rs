//! Webhook deliveries, measured in-process on the embedded store with a local receiver
//! (warp, on the same two cores): deliveries per second, event-to-delivery latency idle
//! and under a token load, and token throughput with and without active subscriptions
//! in the same sitting. Not criterion: these are rates and latency distributions of a
//! pipeline, not one call.
//!
//! `cargo bench --bench webhooks`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentidp_engine::{Call, Engine, EngineConfig, Origin, TokenRequest};
use futures_util::{stream, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;
use warp::Filter;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Events of the throughput run.
const BURST: usize = 2000;
/// Events of each latency run, one at a time.
const SINGLES: usize = 300;
/// How long each token-throughput run lasts.
const TOKEN_RUN: Duration = Duration::from_secs(5);

/// A receiver answering 204 to everything; each delivery is reported on the channel.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Instant>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let route = warp::post().and(warp::body::bytes()).map(move |_: bytes::Bytes| {
        let _ = tx.send(Instant::now());
        warp::reply::with_status("", warp::http::StatusCode::NO_CONTENT)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/hook"), rx)
}

async fn call(engine: &Engine, id: &str, secret: &str) -> Call {
    let req = TokenRequest::client_credentials(id, secret, None);
    let token = engine.issue_token(req, &Origin::default()).await.unwrap().access_token;
    Call { caller: engine.authenticate(&token).await.unwrap(), request_id: None }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Tokens issued for `TOKEN_RUN` with 64 in flight: tokens per second.
async fn token_rate(engine: &Engine, clients: &[(String, String)]) -> f64 {
    let start = Instant::now();
    let mut issued = 0usize;
    while start.elapsed() < TOKEN_RUN {
        let reqs: Vec<_> = (0..1024)
            .map(|i| {
                TokenRequest::client_credentials(&clients[i % clients.len()].0, &clients[i % clients.len()].1, None)
            })
            .collect();
        let origin = Origin::default();
        let done =
            stream::iter(reqs).map(|r| engine.issue_token(r, &origin)).buffer_unordered(64).collect::<Vec<_>>().await;
        issued += done.iter().filter(|r| r.is_ok()).count();
    }
    issued as f64 / start.elapsed().as_secs_f64()
}

/// One event at a time: from the commit's answer to the receiver's, `SINGLES` times.
async fn latencies(
    engine: &Engine,
    admin: &Call,
    agent: uuid::Uuid,
    rx: &mut mpsc::UnboundedReceiver<Instant>,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(SINGLES);
    for i in 0..SINGLES {
        let patch = serde_json::from_value(json!({"description": format!("single {i}")})).unwrap();
        engine.update_agent(admin, None, agent, patch).await.unwrap();
        let committed = Instant::now();
        let received = rx.recv().await.unwrap();
        out.push(received.saturating_duration_since(committed));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    out.sort();
    out
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = EngineConfig::embedded(dir.path());
        config.webhooks.destinations.allow_loopback_http = true;
        let engine = Engine::start(config).await.unwrap();
        let boot = engine.bootstrap().await.unwrap();
        let platform = call(&engine, &boot.platform_client_id, &boot.platform_client_secret).await;
        let tier = serde_json::from_value(json!({"tier": "enterprise"})).unwrap();
        engine.update_org(&platform, boot.org_id, tier).await.unwrap();
        let admin = call(&engine, &boot.client_id, &boot.client_secret).await;
        let mut clients = Vec::new();
        for i in 0..64 {
            let new = serde_json::from_value(json!({"name": format!("client-{i}")})).unwrap();
            let agent = engine.create_agent(&admin, new).await.unwrap();
            let cred = engine.create_credential(&admin, None, agent.id, Default::default()).await.unwrap();
            clients.push((cred.credential.client_id, cred.client_secret.unwrap()));
        }
        let target = engine.create_agent(&admin, serde_json::from_value(json!({"name": "target"})).unwrap()).await.unwrap();

        // Token throughput with no subscription.
        let _ = token_rate(&engine, &clients).await;
        let tokens_without = token_rate(&engine, &clients).await;

        // Five active subscriptions to every event; the first one's receiver is watched.
        let (url, mut rx) = receiver().await;
        let mut quiet = Vec::new();
        engine
            .create_webhook(&admin, serde_json::from_value(json!({"url": url, "event_types": ["agent.updated"]})).unwrap())
            .await
            .unwrap();
        for _ in 0..4 {
            let (url, rx) = receiver().await;
            quiet.push(rx);
            engine
                .create_webhook(&admin, serde_json::from_value(json!({"url": url, "event_types": ["*"]})).unwrap())
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let tokens_with = token_rate(&engine, &clients).await;

        // Latency, idle.
        while rx.try_recv().is_ok() {}
        let idle = latencies(&engine, &admin, target.id, &mut rx).await;

        // Latency under a token load (64 requests in flight for the whole run).
        let stop = Arc::new(AtomicBool::new(false));
        let loaded_tokens = Arc::new(AtomicU64::new(0));
        let load = {
            let (engine, clients, stop, count) = (engine.clone(), clients.clone(), stop.clone(), loaded_tokens.clone());
            tokio::spawn(async move {
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let reqs: Vec<_> = (0..256)
                        .map(|k| {
                            let (id, s) = &clients[(i + k) % clients.len()];
                            TokenRequest::client_credentials(id, s, None)
                        })
                        .collect();
                    i += 256;
                    let origin = Origin::default();
                    let done = stream::iter(reqs).map(|r| engine.issue_token(r, &origin)).buffer_unordered(64).collect::<Vec<_>>().await;
                    count.fetch_add(done.len() as u64, Ordering::Relaxed);
                }
            })
        };
        let loaded_start = Instant::now();
        let loaded = latencies(&engine, &admin, target.id, &mut rx).await;
        stop.store(true, Ordering::Relaxed);
        load.await.unwrap();
        let load_rate = loaded_tokens.load(Ordering::Relaxed) as f64 / loaded_start.elapsed().as_secs_f64();

        // Throughput: BURST events committed 64 at a time; deliveries per second to the
        // watched subscription, from the first commit to the last delivery.
        while rx.try_recv().is_ok() {}
        let start = Instant::now();
        let committed = stream::iter(0..BURST)
            .map(|i| {
                let (engine, admin) = (engine.clone(), admin.clone());
                async move {
                    let patch = serde_json::from_value(json!({"description": format!("burst {i}")})).unwrap();
                    engine.update_agent(&admin, None, target.id, patch).await.unwrap();
                }
            })
            .buffer_unordered(64)
            .count()
            .await;
        let commit_secs = start.elapsed().as_secs_f64();
        for _ in 0..committed {
            rx.recv().await.unwrap();
        }
        let deliver_secs = start.elapsed().as_secs_f64();

        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("webhooks bench (embedded SQLite store, receiver in-process, 5 subscriptions)");
        println!("  tokens/s, no subscription:            {tokens_without:.0}");
        println!("  tokens/s, 5 active subscriptions:     {tokens_with:.0}  (ratio {:.2})", tokens_with / tokens_without);
        println!(
            "  event→delivery, idle:                 p50 {:.2} ms  p99 {:.2} ms  (n={SINGLES})",
            ms(percentile(&idle, 0.5)),
            ms(percentile(&idle, 0.99))
        );
        println!(
            "  event→delivery, under token load:     p50 {:.2} ms  p99 {:.2} ms  (load {load_rate:.0} tokens/s)",
            ms(percentile(&loaded, 0.5)),
            ms(percentile(&loaded, 0.99))
        );
        println!(
            "  burst of {BURST} events: committed {:.0}/s; delivered to one subscription {:.0}/s (all in {deliver_secs:.2} s)",
            BURST as f64 / commit_secs,
            BURST as f64 / deliver_secs
        );
        engine.shutdown().await;
    });
}
