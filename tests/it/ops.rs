//! Operations endpoints, discovery documents and the shape of errors for unknown routes.

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
    let openapi: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(openapi["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
    for path in ["/api/v1/oauth2/token", "/api/v1/agents", "/api/v1/audit-events/verify"] {
        assert!(openapi["paths"][path].is_object(), "{path} missing from openapi.json");
    }
});

each_backend!(discovery_documents_describe_the_server, |app| {
    let meta: Value =
        app.http.get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
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
    let jwks: Value = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
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
    let resp = app.http.delete(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
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
        "agentidp_keyed_actors_live",
        "agentidp_webhook_queue_depth",
        "agentidp_process_resident_memory_bytes",
    ] {
        assert!(queried.contains(subject), "no panel shows {subject}");
    }
    app.stop().await;
}
