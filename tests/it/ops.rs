//! Operations endpoints, discovery documents and the shape of errors for unknown routes.

use crate::support::JsonBody;
use reqwest::StatusCode;
use serde_json::Value;

use crate::each_backend;

each_backend!(health_ready_metrics_and_openapi_answer, |app| {
    let resp = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app.http.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let token = app.admin_token().await;
    app.http.get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap();
    app.call(reqwest::Method::GET, "/api/v1/audit-events/verify", &token, None).await;
    app.http.get(app.url("/no/such/path")).send().await.unwrap();
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    // Every endpoint is labelled with its path template from the contract, its own.
    for series in [
        "agentidp_tokens_issued_total{grant_type=\"client_credentials\"}",
        "agentidp_http_requests_total{method=\"POST\",route=\"/api/v1/oauth2/token\",status=\"200\"}",
        "agentidp_http_requests_total{method=\"GET\",route=\"/.well-known/oauth-authorization-server\",status=\"200\"}",
        "agentidp_http_requests_total{method=\"GET\",route=\"/api/v1/audit-events/verify\",status=\"200\"}",
        "agentidp_http_request_duration_seconds_bucket",
        "agentidp_audit_events_total",
        "agentidp_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}",
        concat!("agentidp_build_info{version=\"", env!("CARGO_PKG_VERSION"), "\"} 1"),
        "agentidp_process_cpu_seconds_total",
        "agentidp_process_resident_memory_bytes",
        "agentidp_process_open_fds",
        "agentidp_webhook_queue_depth",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics");
    }
    let openapi: Value = app.http.get(app.url("/openapi.json")).json_body().await;
    assert_eq!(openapi["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
    for path in ["/api/v1/oauth2/token", "/api/v1/agents", "/api/v1/audit-events/verify"] {
        assert!(openapi["paths"][path].is_object(), "{path} missing from openapi.json");
    }
});

each_backend!(discovery_documents_describe_the_server, |app| {
    let meta: Value = app.http.get(app.url("/.well-known/oauth-authorization-server")).json_body().await;
    assert_eq!(meta["issuer"], app.base);
    assert_eq!(meta["token_endpoint"], format!("{}/api/v1/oauth2/token", app.base));
    assert_eq!(meta["jwks_uri"], format!("{}/.well-known/jwks.json", app.base));
    assert_eq!(
        meta["grant_types_supported"],
        serde_json::json!([
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        ])
    );
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "private_key_jwt"])
    );
    assert_eq!(meta["introspection_endpoint"], format!("{}/api/v1/oauth2/introspect", app.base));
    assert_eq!(meta["revocation_endpoint"], format!("{}/api/v1/oauth2/revoke", app.base));
    assert!(meta["dpop_signing_alg_values_supported"].as_array().is_some_and(|a| a.contains(&"ES256".into())));
    let jwks: Value = app.http.get(app.url("/.well-known/jwks.json")).json_body().await;
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    assert!(key.get("d").is_none(), "private key material must never be published");
});

each_backend!(the_server_says_it_is_not_an_openid_provider, |app| {
    let resp = app.http.get(app.url("/.well-known/openid-configuration")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let problem: Value = resp.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("/.well-known/oauth-authorization-server"), "{detail}");
    // An issuer at the host's root has no path-suffixed document.
    let resp = app.http.get(app.url("/.well-known/oauth-authorization-server/tenant")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
});

each_backend!(unknown_routes_are_problem_documents, |app| {
    let resp = app.http.get(app.url("/api/v1/nothing-here")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert!(resp.headers().contains_key("x-request-id"));
    let resp = app.http.delete(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert!(resp.headers().contains_key("x-request-id"));
});

/// Issue 15, item 12: every metric the Grafana dashboard queries is one the server
/// exports (after traffic that touches each: tokens, a refusal by the quota, an actor
/// restart), and the dashboard has a panel for each subject an operator watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_queries_only_exported_metrics() {
    let dashboard: Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana/agentidp.json"))).unwrap();
    let app = crate::support::spawn_app_with(&crate::support::backends()[0], |c| {
        c.tiers.free.calls_per_day = Some(3);
    })
    .await;
    let admin = app.admin_token().await;
    let platform = app.platform_token().await;
    let (status, _) = app.call(reqwest::Method::POST, "/api/v1/admin/faults/revocations", &platform, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut refused = false;
    for _ in 0..10 {
        let (status, _) = app.call(reqwest::Method::GET, "/api/v1/agents", &admin, None).await;
        refused |= status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(refused, "the quota of 3 calls a day refused none");
    // Issue 28, item 17: a lockout was counted as a tier's refusal with tier="unknown";
    // it has its own counter, by what is locked.
    let mut locked = false;
    for _ in 0..13 {
        locked |= app.token_request("aidp_ci_guessed", "aidp_sk_wrong", None).await.0 == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(locked, "13 wrong secrets for one client id locked nothing");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("agentidp_lockout_refusals_total{kind=\"client_id\"}"), "{metrics}");
    assert!(!metrics.contains("tier=\"unknown\""), "a made-up tier label: {metrics}");
    let mut exported = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        exported =
            metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).map(String::from).collect();
        if exported.contains("agentidp_actor_restarts_total") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut queried = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("agentidp_") {
                let name: String = rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                rest = &rest[at + name.len()..];
                queried.insert(name.trim_end_matches("_bucket").to_string());
            }
        }
    }
    let missing: Vec<&String> = queried.iter().filter(|m| !exported.contains(*m)).collect();
    assert!(missing.is_empty(), "the dashboard queries metrics the server does not export: {missing:?}");
    for subject in [
        "agentidp_http_requests_total",
        "agentidp_http_request_duration_seconds",
        "agentidp_tokens_issued_total",
        "agentidp_audit_events_total",
        "agentidp_actor_restarts_total",
        "agentidp_limit_rejections_total",
        "agentidp_lockout_refusals_total",
        "agentidp_keyed_actors_live",
        "agentidp_webhook_queue_depth",
        "agentidp_process_resident_memory_bytes",
    ] {
        assert!(queried.contains(subject), "no panel shows {subject}");
    }
    app.stop().await;
}

/// An `agentidp serve` process (bootstrapped first, so the test holds its credentials)
/// whose log — its stderr — goes to a file; killed when dropped.
struct LoggedServe {
    child: std::process::Child,
    base: String,
    log: std::path::PathBuf,
    boot: Value,
    _dir: tempfile::TempDir,
}

impl LoggedServe {
    async fn start(env: &[(&str, &str)]) -> LoggedServe {
        let dir = tempfile::tempdir().unwrap();
        let command = || {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_agentidp"));
            for var in ["DATABASE_URL", "REDIS_URL", "AGENTIDP_CONFIG", "AGENTIDP_LISTEN", "AGENTIDP_LOG"] {
                cmd.env_remove(var);
            }
            cmd.envs(env.iter().copied());
            cmd
        };
        let data = dir.path().join("data");
        let out = command().args(["bootstrap", "--json", "--data-dir"]).arg(&data).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let boot: Value = serde_json::from_slice(&out.stdout).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.path().join("serve.log");
        let child = command()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let server = LoggedServe { child, base: format!("http://127.0.0.1:{port}"), log, boot, _dir: dir };
        crate::support::wait_until_up(&format!("{}/ready", server.base), "agentidp serve").await;
        server
    }

    /// The log, once a line holding every one of `parts` is in it (within ~5 s).
    async fn log_with(&self, parts: &[&str]) -> (String, String) {
        for _ in 0..100 {
            let log = std::fs::read_to_string(&self.log).unwrap();
            if let Some(line) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return (line.to_string(), log);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no log line with {parts:?}: {}", std::fs::read_to_string(&self.log).unwrap());
    }
}

impl Drop for LoggedServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 28, item 17: a 404 or 405 — answered by no handler — carried no `x-request-id`
/// and left no log line, though the README says every response does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_of_no_handler_carry_a_request_id_and_a_log_line() {
    let server = LoggedServe::start(&[]).await;
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/api/v1/nothing-here", server.base))
        .header("x-request-id", "probe-404-abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["x-request-id"], "probe-404-abc", "a sane id sent is echoed");
    let resp = http.delete(format!("{}/health", server.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let made = resp.headers().get("x-request-id").expect("a 405 carries x-request-id").to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    let resp = http.get(format!("{}/api/v1/agents/", server.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.headers().contains_key("x-request-id"));
    let (line, _) = server.log_with(&["probe-404-abc", "status=404"]).await;
    assert!(line.contains("/api/v1/nothing-here") && line.contains("handled"), "{line}");
    let (line, _) = server.log_with(&[&made, "status=405"]).await;
    assert!(line.contains("DELETE") && line.contains("method-not-allowed"), "{line}");
}

/// Issue 28, item 12: a fault drill printed the standard panic text — and with
/// `RUST_BACKTRACE` set, a whole stack trace — to the log. It is one warning now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_drill_logs_a_warning_and_no_panic_backtrace() {
    let server = LoggedServe::start(&[("RUST_BACKTRACE", "full")]).await;
    let http = reqwest::Client::new();
    let token = crate::support::client_token(
        &server.base,
        server.boot["platform_client_id"].as_str().unwrap(),
        server.boot["platform_client_secret"].as_str().unwrap(),
    )
    .await;
    let resp =
        http.post(format!("{}/api/v1/admin/faults/key_manager", server.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let (line, _) = server.log_with(&["fault drill", "key manager"]).await;
    assert!(line.contains("WARN"), "{line}");
    // The supervisor's restart is logged after the panic hook ran.
    let (_, log) = server.log_with(&["restarting"]).await;
    for raw in ["panicked at", "stack backtrace", "RUST_BACKTRACE", "rust_begin_unwind", "note: "] {
        assert!(!log.contains(raw), "{raw:?} in the log: {log}");
    }
    crate::support::wait_until_up(&format!("{}/ready", server.base), "the node after the drill").await;
}
