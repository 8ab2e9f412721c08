//! Issue 37, item 3: an organization's audit retention (its tier's, or the platform
//! administrator's), the archive the old events move to, and `agentidp audit
//! verify-archive`, on both stores.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::cli::agentidp;
use crate::support::{backends, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_archives_exactly_the_old_events_and_the_archive_verifies() {
    for backend in backends() {
        let archive = tempfile::tempdir().unwrap();
        let dir = archive.path().to_path_buf();
        let app = spawn_app_with(&backend, |config| {
            config.archive.dir = Some(dir.clone());
            config.archive.every = Duration::from_millis(100);
            config.archive.batch = 3;
        })
        .await;
        let (admin, platform) = (app.admin_token().await, app.platform_token().await);
        let path = format!("/api/v1/organizations/{}/audit-retention", app.boot.org_id);

        // Its tier's, until the platform administrator — and only they — sets another.
        let (status, retention) = app.call(Method::GET, &path, &admin, None).await;
        assert_eq!(status, StatusCode::OK, "{retention}");
        assert_eq!(
            retention,
            json!({"org_id": app.boot.org_id, "seconds": 7_776_000, "overridden": false, "tier_seconds": 7_776_000})
        );
        let (status, _) = app.call(Method::PUT, &path, &admin, Some(json!({"seconds": 3600}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        for bad in [json!({"seconds": 10}), json!({"seconds": "soon"}), json!({"seconds": 3600.5}), json!({})] {
            let (status, problem) = app.call(Method::PUT, &path, &platform, Some(bad.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
        }
        // 3600.0 is 3600: JSON does not tell them apart.
        let (status, retention) = app.call(Method::PUT, &path, &platform, Some(json!({"seconds": 3600.0}))).await;
        assert_eq!(status, StatusCode::OK, "{retention}");
        assert_eq!((retention["seconds"].clone(), retention["overridden"].clone()), (json!(3600), json!(true)));

        for i in 0..4 {
            app.call(Method::POST, "/api/v1/agents", &admin, Some(json!({"name": format!("old-{i}")}))).await;
        }
        let old_head = newest(&app, &admin).await;
        app.storage.clock.advance(Duration::from_secs(7200));
        let admin = app.admin_token().await;
        app.call(Method::POST, "/api/v1/agents", &admin, Some(json!({"name": "young"}))).await;

        // Exactly the events older than the retention leave the store.
        let start = std::time::Instant::now();
        let remaining = loop {
            let (_, page) = app.call(Method::GET, "/api/v1/audit-events?limit=200", &admin, None).await;
            let items = page["items"].as_array().unwrap_or_else(|| panic!("{page}")).clone();
            if items.iter().all(|e| e["seq"].as_i64().unwrap() > old_head) {
                break items;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "not archived: {page}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(remaining.last().unwrap()["seq"].as_i64().unwrap(), old_head + 1, "{remaining:?}");
        let (_, report) = app.call(Method::GET, "/api/v1/audit-events/verify?full=true", &admin, None).await;
        assert_eq!(report["intact"], true, "{report}");
        assert_eq!(report["events_checked"].as_i64().unwrap(), remaining.len() as i64, "{report}");

        // The archive verifies offline against the JWKS, and goes on where the store does.
        let jwks = archive.path().join("jwks.json");
        let text = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().text().await.unwrap();
        std::fs::write(&jwks, text).unwrap();
        let chain = archive.path().join(app.boot.org_id.to_string());
        let run = |extra: &[&str]| {
            let mut cmd = agentidp();
            cmd.args(["audit", "verify-archive"]).arg(&dir).arg("--jwks").arg(&jwks).args(extra);
            cmd.arg("--data-dir").arg(&app.storage.data_dir);
            // The key the test apps seal their keys with (support.rs).
            cmd.env("AGENTIDP_MASTER_KEY", base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
            if let Some(url) = &app.storage.database_url {
                cmd.arg("--database-url").arg(url);
            }
            cmd.output().unwrap()
        };
        let out = run(&[]);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let reports: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let ours = reports.iter().find(|r| r["chain"] == app.boot.org_id.to_string()).expect("our chain");
        assert_eq!((ours["events"].as_i64(), ours["last_seq"].as_i64()), (Some(old_head), Some(old_head)), "{ours}");
        assert!(ours["segments"].as_i64().unwrap() >= 2, "batches of 3: {ours}");

        // A missing segment is detected.
        let mut manifests: Vec<_> = std::fs::read_dir(&chain)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        manifests.sort();
        std::fs::remove_file(&manifests[0]).unwrap();
        let out = run(&["--offline"]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("a segment is missing"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// The organization's newest event's `seq`.
async fn newest(app: &crate::support::App, token: &str) -> i64 {
    let (_, page) = app.call(Method::GET, "/api/v1/audit-events?limit=1", token, None).await;
    page["items"][0]["seq"].as_i64().unwrap()
}

/// Issue 37, item 2: each new checkpoint is also POSTed to the configured receiver, as
/// published, its JWT vouching for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_pushed_to_the_configured_receiver() {
    use std::sync::{Arc, Mutex};
    use warp::Filter;
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let route = warp::post().and(warp::body::json()).map(move |body: Value| {
        sink.lock().unwrap().push(body);
        warp::reply()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/checkpoints", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    for backend in backends() {
        received.lock().unwrap().clear();
        let app = spawn_app_with(&backend, |config| {
            config.checkpoints.every = Duration::from_millis(50);
            config.checkpoints.every_events = 1;
            config.checkpoint_webhook = Some(url.clone());
            config.webhooks.destinations.allow_loopback_http = true;
        })
        .await;
        let admin = app.admin_token().await;
        app.call(Method::POST, "/api/v1/agents", &admin, Some(json!({"name": "pushed"}))).await;
        let head = newest(&app, &admin).await;
        let start = std::time::Instant::now();
        let pushed = loop {
            let found = received.lock().unwrap().iter().find(|b| b["seq"] == head).cloned();
            if let Some(body) = found {
                break body;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no checkpoint of {head} pushed");
            tokio::time::sleep(Duration::from_millis(30)).await;
        };
        let (_, page) = app.call(Method::GET, "/api/v1/audit-events/checkpoints?limit=200", &admin, None).await;
        let published = page["items"].as_array().unwrap().iter().find(|c| c["seq"] == head).expect("published").clone();
        assert_eq!(
            (pushed["hash"].clone(), pushed["jwt"].clone()),
            (published["hash"].clone(), published["jwt"].clone())
        );
        assert_eq!(pushed["chain"], app.boot.org_id.to_string());
        let (header, claims) = crate::support::jwt_parts(pushed["jwt"].as_str().unwrap());
        assert_eq!(header["typ"], "audit-checkpoint+jwt");
        assert_eq!((claims["seq"].clone(), claims["hash"].clone()), (pushed["seq"].clone(), pushed["hash"].clone()));
    }
}
