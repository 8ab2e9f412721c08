//! Webhooks (issue 14): signed deliveries verified by the Standard Webhooks reference
//! library, in order per subscription; the retry schedule driven by the injected clock;
//! 410, Retry-After and timeouts; secret rotation's overlap; the SSRF guard at
//! registration and at delivery (a DNS answer that changed); bad input; and two nodes,
//! the delivering one killed mid-delivery.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentidp_engine::runtime::outbound::Resolver;
use agentidp_engine::EngineConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{backends, spawn_app, spawn_app_with, App, JsonBody, ProcessCluster, ServeProcess};

/// Development destinations (plain http to loopback), a quick poll, a short timeout.
fn dev(config: &mut EngineConfig) {
    config.webhooks.destinations.allow_loopback_http = true;
    config.webhooks.poll = Duration::from_millis(50);
    config.webhooks.timeout = Duration::from_millis(700);
}

/// Wait (up to 15 s of real time) until `check` holds.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(15), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn subscribe(app: &App, token: &str, url: &str, types: Value) -> (String, String) {
    let (status, body) =
        app.call(Method::POST, "/api/v1/webhooks", token, Some(json!({"url": url, "event_types": types}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["secret"].as_str().unwrap().starts_with("whsec_"), "{body}");
    (body["id"].as_str().unwrap().to_string(), body["secret"].as_str().unwrap().to_string())
}

async fn new_agent(app: &App, token: &str, name: &str) -> String {
    let (status, agent) = app.call(Method::POST, "/api/v1/agents", token, Some(json!({"name": name}))).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    agent["id"].as_str().unwrap().to_string()
}

/// Wait (with fresh tokens: the test moves the clock) for a delivery `check` accepts.
async fn until_delivery(app: &App, hook: &str, check: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    let token = app.admin_token().await;
    loop {
        let listed = deliveries(app, &token, hook).await;
        if let Some(d) = listed.iter().find(|d| check(d)) {
            return d.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no such delivery: {listed:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn deliveries(app: &App, token: &str, hook: &str) -> Vec<Value> {
    let (status, page) = app.call(Method::GET, &format!("/api/v1/webhooks/{hook}/deliveries"), token, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// The Python receiver: every signature checked by `standardwebhooks`.
struct PyReceiver {
    child: std::process::Child,
    url: String,
    secrets: PathBuf,
    log: PathBuf,
    offset: PathBuf,
    _dir: tempfile::TempDir,
}

impl PyReceiver {
    fn start() -> PyReceiver {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let (secrets, log, offset) = (dir.path().join("secrets"), dir.path().join("log"), dir.path().join("offset"));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/webhook_receiver.py");
        let mut child = std::process::Command::new("python3")
            .args([script, secrets.to_str().unwrap(), log.to_str().unwrap(), offset.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the webhook receiver");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("receiver printed {line:?}"));
        PyReceiver { child, url: format!("http://127.0.0.1:{port}/hook"), secrets, log, offset, _dir: dir }
    }

    /// The server's clock is this far ahead of the real one.
    fn clock_moved(&self, by: Duration) {
        std::fs::write(&self.offset, by.as_secs().to_string()).unwrap();
    }

    fn add_secret(&self, secret: &str) {
        let mut text = std::fs::read_to_string(&self.secrets).unwrap_or_default();
        text.push_str(secret);
        text.push('\n');
        std::fs::write(&self.secrets, text).unwrap();
    }

    fn entries(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for PyReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_ordered_and_verified_by_standard_webhooks() {
    for backend in backends() {
        let app = spawn_app_with(&backend, dev).await;
        let admin = app.admin_token().await;
        let receiver = PyReceiver::start();
        let (status, types) = app.call(Method::GET, "/api/v1/webhooks/event-types", &admin, None).await;
        assert_eq!(status, StatusCode::OK);
        let names: Vec<&str> = types["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        for name in ["agent.created", "credential.rotated", "token.revoked", "delegation.revoked", "webhook.test"] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        assert!(!names.contains(&"token.issued"), "issuance is not an event");

        let (hook, secret) = subscribe(
            &app,
            &admin,
            &receiver.url,
            json!(["agent.created", "agent.updated", "agent.deleted", "webhook.test"]),
        )
        .await;
        receiver.add_secret(&secret);
        let (_, listed) = app.call(Method::GET, &format!("/api/v1/webhooks/{hook}"), &admin, None).await;
        assert!(listed.get("secret").is_none(), "the secret is shown once: {listed}");

        let mut ids = Vec::new();
        for i in 0..4 {
            ids.push(new_agent(&app, &admin, &format!("hooked-{i}")).await);
        }
        let (status, _) = app
            .call(Method::PATCH, &format!("/api/v1/agents/{}", ids[0]), &admin, Some(json!({"description": "x"})))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app.call(Method::DELETE, &format!("/api/v1/agents/{}", ids[1]), &admin, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = app.call(Method::POST, &format!("/api/v1/webhooks/{hook}/test"), &admin, None).await;
        assert_eq!(status, StatusCode::ACCEPTED);

        until("seven deliveries", || receiver.entries().len() >= 7).await;
        let got = receiver.entries();
        let kinds: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "agent.created",
                "agent.created",
                "agent.created",
                "agent.created",
                "agent.updated",
                "agent.deleted",
                "webhook.test"
            ]
        );
        assert!(got.iter().all(|e| e["valid_with"] == json!([0])), "every signature verifies: {got:?}");
        let seqs: Vec<i64> = got.iter().map(|e| e["audit_seq"].as_i64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in audit order: {seqs:?}");
        // An outcome is recorded after the receiver answered: it may trail the receipt.
        let mut listed = deliveries(&app, &admin, &hook).await;
        for _ in 0..100 {
            if listed.iter().all(|d| d["status"] == "delivered") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            listed = deliveries(&app, &admin, &hook).await;
        }
        assert_eq!(listed.len(), 7);
        assert!(listed.iter().all(|d| d["status"] == "delivered" && d["attempts"] == 1), "{listed:?}");
        let mut hook_ids: Vec<&str> = got.iter().map(|e| e["webhook_id"].as_str().unwrap()).collect();
        hook_ids.dedup();
        assert_eq!(hook_ids.len(), 7, "one webhook-id per event");

        // Usage counts the subscription; the free tier allows one.
        let org = app.boot.org_id;
        let (_, usage) = app.call(Method::GET, &format!("/api/v1/organizations/{org}/usage"), &admin, None).await;
        assert_eq!(usage["webhooks"], json!({"used": 1, "limit": 1}), "{usage}");
        let (status, body) = app
            .call(Method::POST, "/api/v1/webhooks", &admin, Some(json!({"url": receiver.url, "event_types": ["*"]})))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

        // Rotation: both signatures during the overlap, only the new one after it.
        let (status, rotated) =
            app.call(Method::POST, &format!("/api/v1/webhooks/{hook}/rotate-secret"), &admin, None).await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        receiver.add_secret(rotated["secret"].as_str().unwrap());
        new_agent(&app, &admin, "during-overlap").await;
        until("the overlap delivery", || receiver.entries().len() >= 8).await;
        let during = &receiver.entries()[7];
        assert_eq!((during["valid_with"].clone(), during["signatures"].clone()), (json!([0, 1]), json!(2)), "{during}");
        app.storage.clock.advance(Duration::from_secs(24 * 3600 + 1));
        receiver.clock_moved(Duration::from_secs(24 * 3600 + 1));
        let admin = app.admin_token().await;
        new_agent(&app, &admin, "after-overlap").await;
        until("the delivery after the overlap", || receiver.entries().len() >= 9).await;
        let after = &receiver.entries()[8];
        assert_eq!((after["valid_with"].clone(), after["signatures"].clone()), (json!([1]), json!(1)), "{after}");

        let (status, _) = app.call(Method::DELETE, &format!("/api/v1/webhooks/{hook}"), &admin, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = app.call(Method::GET, &format!("/api/v1/webhooks/{hook}"), &admin, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        app.stop().await;
    }
}

/// A receiver in the test: answers from a plan (204 once the plan is spent) and keeps
/// every request.
#[derive(Clone, Default)]
struct Receiver {
    plan: Arc<Mutex<VecDeque<Reply>>>,
    hits: Arc<Mutex<Vec<(String, Value)>>>,
}

#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    Hang(Duration),
}

impl Receiver {
    async fn start(&self) -> String {
        use warp::Filter;
        let me = self.clone();
        let route = warp::post().and(warp::header::<String>("webhook-id")).and(warp::body::bytes()).then(
            move |id: String, body: bytes::Bytes| {
                let me = me.clone();
                async move {
                    let reply = me.plan.lock().unwrap().pop_front();
                    me.hits.lock().unwrap().push((id, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                    let status = |s: u16| warp::http::StatusCode::from_u16(s).unwrap();
                    match reply {
                        None => warp::http::Response::builder().status(204).body(String::new()).unwrap(),
                        Some(Reply::Status(s)) => {
                            warp::http::Response::builder().status(status(s)).body(String::new()).unwrap()
                        }
                        Some(Reply::RetryAfter(s, secs)) => warp::http::Response::builder()
                            .status(status(s))
                            .header("retry-after", secs.to_string())
                            .body(String::new())
                            .unwrap(),
                        Some(Reply::Hang(d)) => {
                            tokio::time::sleep(d).await;
                            warp::http::Response::builder().status(204).body(String::new()).unwrap()
                        }
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        format!("http://{addr}/hook")
    }

    fn plan(&self, replies: &[Reply]) {
        self.plan.lock().unwrap().extend(replies.iter().copied());
    }

    fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    fn hits(&self) -> Vec<(String, Value)> {
        self.hits.lock().unwrap().clone()
    }
}

/// Real time passes (so a due attempt would be made) while the injected clock does not.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_follow_the_schedule_on_the_injected_clock_and_keep_the_order() {
    for backend in backends() {
        let app = spawn_app_with(&backend, dev).await;
        let admin = app.admin_token().await;
        let receiver = Receiver::default();
        let url = receiver.start().await;
        receiver.plan(&[Reply::Status(500), Reply::Hang(Duration::from_secs(2)), Reply::RetryAfter(503, 7200)]);
        let (hook, _) = subscribe(&app, &admin, &url, json!(["agent.created"])).await;
        new_agent(&app, &admin, "first").await;
        new_agent(&app, &admin, "second").await;
        let clock = &app.storage.clock;

        // 500: the next attempt is 5 s (+ up to 10 % jitter) later, and "second" waits.
        until("the first attempt", || receiver.count() == 1).await;
        settle().await;
        assert_eq!(receiver.count(), 1, "nothing before the retry is due");
        clock.advance(Duration::from_secs(4));
        settle().await;
        assert_eq!(receiver.count(), 1, "not at 4 s");
        clock.advance(Duration::from_millis(1600));
        // The second attempt hangs past the timeout: the next is 5 min later.
        until("the second attempt", || receiver.count() == 2).await;
        let head = until_delivery(&app, &hook, |d| d["attempts"] == 2).await;
        assert!(head["last_error"].as_str().unwrap().contains("timed out"), "{head}");
        assert_eq!(head["status"], "pending");
        clock.advance(Duration::from_secs(299));
        settle().await;
        assert_eq!(receiver.count(), 2, "not before 5 min");
        clock.advance(Duration::from_secs(32));
        // 503 with Retry-After of 2 h, longer than the schedule's 30 min: honoured.
        until("the third attempt", || receiver.count() == 3).await;
        until_delivery(&app, &hook, |d| d["attempts"] == 3).await;
        clock.advance(Duration::from_secs(33 * 60 + 1));
        settle().await;
        assert_eq!(receiver.count(), 3, "Retry-After asked for 2 h");
        clock.advance(Duration::from_secs(7200 - 33 * 60));
        until("both events delivered", || receiver.count() == 5).await;
        let hits = receiver.hits();
        assert!(hits[..4].iter().all(|(id, _)| *id == hits[0].0), "every retry carries the same webhook-id");
        assert_ne!(hits[4].0, hits[0].0);
        let names: Vec<&str> = hits.iter().map(|(_, b)| b["data"]["detail"]["name"].as_str().unwrap_or("")).collect();
        assert_eq!(names, ["first", "first", "first", "first", "second"], "the second event waited for the first");
        until_delivery(&app, &hook, |d| d["status"] == "delivered" && d["attempts"] == 4).await;

        // 410 Gone disables the subscription at once.
        receiver.plan(&[Reply::Status(410)]);
        let admin = app.admin_token().await;
        new_agent(&app, &admin, "third").await;
        until("the 410", || receiver.count() == 6).await;
        let start = Instant::now();
        loop {
            let (_, hook_now) = app.call(Method::GET, &format!("/api/v1/webhooks/{hook}"), &admin, None).await;
            if hook_now["enabled"] == false {
                assert!(hook_now["disabled_reason"].as_str().unwrap().contains("410"), "{hook_now}");
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "not disabled: {hook_now}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        new_agent(&app, &admin, "fourth").await;
        settle().await;
        assert_eq!(receiver.count(), 6, "a disabled subscription gets nothing");
        let (_, audit) = app.call(Method::GET, "/api/v1/audit-events?action=webhook.disable", &admin, None).await;
        assert_eq!(audit["items"].as_array().map(Vec::len), Some(1), "{audit}");

        // A redelivery of the failed delivery, once re-enabled, goes out with its id.
        let (status, _) =
            app.call(Method::PATCH, &format!("/api/v1/webhooks/{hook}"), &admin, Some(json!({"enabled": true}))).await;
        assert_eq!(status, StatusCode::OK);
        let listed = deliveries(&app, &admin, &hook).await;
        let gone = listed.iter().find(|d| d["status"] == "failed").unwrap_or_else(|| panic!("{listed:?}"));
        let gone_id = gone["id"].as_str().unwrap();
        let (status, again) = app
            .call(Method::POST, &format!("/api/v1/webhooks/{hook}/deliveries/{gone_id}/redeliver"), &admin, None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{again}");
        until("the redelivery", || receiver.hits().iter().filter(|(id, _)| id == gone_id).count() == 2).await;
        app.stop().await;
    }
}

/// A resolver whose answer the test changes.
#[derive(Debug)]
struct Switch(Mutex<Vec<IpAddr>>);

#[async_trait::async_trait]
impl Resolver for Switch {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        match host {
            "hooks.test" => Ok(self.0.lock().unwrap().clone()),
            _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such host")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssrf_guard_refuses_at_registration_and_at_delivery() {
    for backend in backends() {
        // Production rules: https only, public addresses only, in every encoding.
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        for url in [
            "https://127.0.0.1/hook",
            "https://0x7f000001/hook",
            "https://2130706433/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://10.1.2.3/hook",
            "https://[fd00::1]/hook",
            "https://localhost/hook",
            "http://example.com/hook",
            "ftp://example.com/hook",
            "not a url",
        ] {
            let (status, body) = app
                .call(Method::POST, "/api/v1/webhooks", &admin, Some(json!({"url": url, "event_types": ["*"]})))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
            assert_eq!(body["field"], "url", "{url}: {body}");
        }
        // Bad input: unknown event types, an empty list, a long description, an unknown field.
        for (body, field) in [
            (json!({"url": "https://example.com/h", "event_types": ["agent.exploded"]}), Some("event_types")),
            (json!({"url": "https://example.com/h", "event_types": []}), Some("event_types")),
            (
                json!({"url": "https://example.com/h", "event_types": ["*"], "description": "x".repeat(1025)}),
                Some("description"),
            ),
            (json!({"url": "https://example.com/h", "event_types": ["*"], "secret": "mine"}), None),
            (json!({"event_types": ["*"]}), None),
        ] {
            let (status, problem) = app.call(Method::POST, "/api/v1/webhooks", &admin, Some(body.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
            if let Some(field) = field {
                assert_eq!(problem["field"], field, "{problem}");
            }
        }
        let (status, _) = app.call(Method::GET, "/api/v1/webhooks/not-an-id", &admin, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        app.stop().await;

        // A name whose answer changes after registration: refused at delivery, and the
        // connection never made.
        let switch = Arc::new(Switch(Mutex::new(vec!["127.0.0.1".parse().unwrap()])));
        let resolver = switch.clone();
        let app = spawn_app_with(&backend, move |c| {
            dev(c);
            c.resolver = resolver;
        })
        .await;
        let admin = app.admin_token().await;
        let receiver = Receiver::default();
        let url = receiver.start().await;
        let port = url.split(':').nth(2).unwrap().split('/').next().unwrap().to_string();
        let (hook, _) = subscribe(&app, &admin, &format!("http://hooks.test:{port}/hook"), json!(["*"])).await;
        new_agent(&app, &admin, "resolved").await;
        until("the delivery to the name", || receiver.count() == 1).await;
        *switch.0.lock().unwrap() = vec!["127.0.0.1".parse().unwrap(), "169.254.169.254".parse().unwrap()];
        new_agent(&app, &admin, "rebound").await;
        let refused = until_delivery(&app, &hook, |d| d["attempts"] == 1 && d["status"] == "pending").await;
        assert!(refused["last_error"].as_str().unwrap().contains("169.254.169.254"), "{refused}");
        assert_eq!(receiver.count(), 1, "the refused delivery never connected");
        let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("agentidp_webhook_attempts_total{outcome=\"refused\"} 1"), "{metrics}");
        app.stop().await;
    }
}

/// Two `agentidp serve` nodes on PostgreSQL + Redis: the node delivering is killed
/// (SIGKILL) while the receiver holds its request; the other node takes the lease over
/// and delivers the same event with the same `webhook-id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_delivering_node_is_taken_over_with_the_same_webhook_id() {
    let Some(cluster) = ProcessCluster::new(None, None).await else {
        eprintln!("no PostgreSQL configured: the two-node webhook test needs one");
        return;
    };
    let node = |name: &str| {
        let mut cmd = cluster.command(name);
        cmd.env("AGENTIDP_WEBHOOK_ALLOW_LOOPBACK_HTTP", "true")
            .env("AGENTIDP_WEBHOOK_POLL_MS", "100")
            .env("AGENTIDP_WEBHOOK_LEASE", "2")
            .arg("serve");
        ServeProcess::start(cmd)
    };
    let a = node("a").await;
    let http = reqwest::Client::new();
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let admin = cluster.admin_token(&a.base).await;
    let created: Value = http
        .post(format!("{}/api/v1/webhooks", a.base))
        .bearer_auth(&admin)
        .json(&json!({"url": url, "event_types": ["agent.created", "webhook.test"]}))
        .json_body()
        .await;
    let hook = created["id"].as_str().unwrap().to_string();
    // Node A alone: it takes the lease and delivers the test event.
    http.post(format!("{}/api/v1/webhooks/{hook}/test", a.base)).bearer_auth(&admin).send().await.unwrap();
    until("node A's first delivery", || receiver.count() == 1).await;
    let b = node("b").await;
    let b_admin = cluster.admin_token(&b.base).await;
    // The next request hangs at the receiver; meanwhile node A dies.
    receiver.plan(&[Reply::Hang(Duration::from_secs(30))]);
    let status = http
        .post(format!("{}/api/v1/agents", b.base))
        .bearer_auth(&b_admin)
        .json(&json!({"name": "survives-a-crash"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::CREATED);
    until("node A's attempt", || receiver.count() == 2).await;
    drop(a); // SIGKILL, mid-delivery
    until("node B's delivery of the same event", || receiver.count() == 3).await;
    let hits = receiver.hits();
    assert_eq!(hits[1].0, hits[2].0, "the retry after the crash carries the same webhook-id");
    assert_eq!(hits[2].1["data"]["detail"]["name"], "survives-a-crash");
    drop(b);
}

/// Issue 37, item 5: the janitor removes settled deliveries past their retention, in
/// batches, oldest first, and keeps pending ones whatever their age; it also drops
/// revocations of expired tokens. Its counter says what it removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_janitor_removes_settled_deliveries_past_their_retention_and_expired_revocations() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |config| {
            dev(config);
            config.webhooks.delivery_retention = Duration::from_secs(7 * 86_400);
            config.webhooks.disable_after = Duration::from_secs(365 * 86_400);
            config.janitor.batch = 2;
        })
        .await;
        let admin = app.admin_token().await;
        let receiver = Receiver::default();
        let url = receiver.start().await;
        let (hook, _) = subscribe(&app, &admin, &url, json!(["agent.created"])).await;
        for name in ["a", "b", "c"] {
            new_agent(&app, &admin, name).await;
        }
        until("three deliveries", || receiver.count() == 3).await;
        let settled = |listed: &[Value]| listed.iter().filter(|d| d["status"] == "delivered").count();
        let start = Instant::now();
        while settled(&deliveries(&app, &admin, &hook).await) < 3 {
            assert!(start.elapsed() < Duration::from_secs(15), "not all delivered");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        // A revoked token, and a delivery that stays pending (the receiver now fails).
        let (client_id, secret) = (app.boot.client_id.clone(), app.boot.client_secret.clone());
        let doomed = app.token(&client_id, &secret, None).await;
        let resp = app
            .http
            .post(app.url("/api/v1/oauth2/revoke"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[("token", doomed.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        receiver.plan(&[Reply::Status(500); 20]);
        new_agent(&app, &admin, "d").await;
        until("the failing attempt", || receiver.count() == 4).await;

        // Within the retention: nothing of it goes.
        let clock = &app.storage.clock;
        clock.advance(Duration::from_secs(6 * 86_400));
        let removed = |report: &[(&str, u64)], what: &str| report.iter().find(|(w, _)| *w == what).map(|r| r.1);
        let report = app.engine.sweep().await;
        assert_eq!(removed(&report, "webhook_deliveries"), Some(0), "{report:?}");
        // The token expired long ago: its revocation is swept.
        assert_eq!(removed(&report, "revocations"), Some(1), "{report:?}");

        // Past it: the three delivered ones go (in batches of two), the pending one stays.
        clock.advance(Duration::from_secs(2 * 86_400));
        let report = app.engine.sweep().await;
        assert_eq!(removed(&report, "webhook_deliveries"), Some(3), "{report:?}");
        let admin = app.admin_token().await;
        let left = deliveries(&app, &admin, &hook).await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0]["status"], "pending");
        assert_eq!(removed(&app.engine.sweep().await, "webhook_deliveries"), Some(0));
        let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(
            metrics.contains(r#"agentidp_janitor_removed_total{what="webhook_deliveries"} 3"#),
            "{}",
            metrics.lines().filter(|l| l.contains("janitor")).collect::<Vec<_>>().join("\n")
        );
    }
}
