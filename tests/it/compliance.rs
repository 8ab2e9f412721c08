//! The compliance report (issue 16, item 6): findings as the records change and time
//! passes, the per-agent view, CSV, and the cache — dropped by a relevant change, kept
//! through an irrelevant one, and shared by the nodes of a cluster through Redis.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{backends, spawn_app, TestApp};

fn ids(report: &Value, finding: &str) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == finding)
        .map(|f| f["agents"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_report_follows_the_records_and_its_cache_follows_the_changes() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let clock = app.storage.clock.clone();
        let mut admin = app.admin_token().await;
        let (status, report) = app.call(Method::GET, "/api/v1/compliance/report", &admin, None).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["checks"].as_array().unwrap().len(), 13, "{report}");
        let admin_id = app.boot.agent_id.to_string();
        assert!(ids(&report, "management-scopes").contains(&admin_id), "{report}");
        assert!(ids(&report, "did-key").contains(&admin_id));
        assert!(report["score"].as_u64().unwrap() <= 100);

        // An agent with a secret; nothing is stale yet.
        let (agent, client_id, secret) =
            app.agent_with_credential(&admin, json!({"name": "worker", "scopes": ["search:query"]})).await;
        let worker = agent["id"].as_str().unwrap().to_string();
        let (_, report) = app.call(Method::GET, "/api/v1/compliance/report", &admin, None).await;
        assert_eq!(report["agents_checked"], 2, "the new agent dropped the cached report");
        assert!(ids(&report, "credential-rotation").is_empty());

        // An irrelevant act (a token) keeps the cached report; a relevant one drops it.
        clock.advance(Duration::from_secs(1));
        app.token(&client_id, &secret, None).await;
        let (_, again) = app.call(Method::GET, "/api/v1/compliance/report", &admin, None).await;
        assert_eq!(again["generated_at"], report["generated_at"], "served from the cache");

        // 91 days on: the secret is past the rotation policy, the worker got no token for
        // 30 days, and the signing key is old (the admin's own secret likewise).
        clock.advance(Duration::from_secs(91 * 86_400));
        admin = app.admin_token().await;
        let (status, _) = app.call(Method::POST, "/api/v1/agents", &admin, Some(json!({"name": "newcomer"}))).await;
        assert_eq!(status, StatusCode::CREATED);
        let (_, report) = app.call(Method::GET, "/api/v1/compliance/report", &admin, None).await;
        assert_ne!(report["generated_at"], again["generated_at"]);
        assert!(ids(&report, "credential-rotation").contains(&worker), "{report}");
        assert!(ids(&report, "credential-unused").contains(&worker), "{report}");
        assert!(!ids(&report, "credential-unused").contains(&admin_id), "the admin just got a token");
        let key_age = report["findings"].as_array().unwrap().iter().find(|f| f["id"] == "signing-key-age");
        assert!(key_age.is_some_and(|f| f["severity"] == "medium"), "{report}");
        let score = report["score"].as_u64().unwrap();
        assert!((100 - 5 - 2 - 5 - 2..100).contains(&score), "{report}");

        // The worker's own view, then its secret rotated: that finding is gone for it.
        let path = format!("/api/v1/compliance/agents/{worker}");
        let (status, mine) = app.call(Method::GET, &path, &admin, None).await;
        assert_eq!(status, StatusCode::OK, "{mine}");
        let found: Vec<&str> = mine["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
        assert!(found.contains(&"credential-rotation") && found.contains(&"did-key"), "{mine}");
        let (_, creds) = app.call(Method::GET, &format!("/api/v1/agents/{worker}/credentials"), &admin, None).await;
        let cid = creds["items"][0]["id"].as_str().unwrap();
        let rotate = format!("/api/v1/agents/{worker}/credentials/{cid}/rotate");
        assert_eq!(app.call(Method::POST, &rotate, &admin, None).await.0, StatusCode::OK);
        let (_, mine) = app.call(Method::GET, &path, &admin, None).await;
        assert!(mine["findings"].as_array().unwrap().iter().all(|f| f["id"] != "credential-rotation"), "{mine}");

        // CSV: a header, then a row per finding and agent, quoted where needed.
        let resp =
            app.http.get(app.url("/api/v1/compliance/report?format=csv")).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        assert!(resp.headers().contains_key("x-compliance-score"));
        let csv = resp.text().await.unwrap();
        let mut lines = csv.split("\r\n");
        assert_eq!(lines.next(), Some("finding,severity,title,agent_id,resources,remediation"));
        assert!(csv.contains("did-key,info,") && csv.contains(&worker), "{csv}");

        // Errors: a bad format, an unknown agent, a caller without the scope.
        let (status, problem) = app.call(Method::GET, "/api/v1/compliance/report?format=xml", &admin, None).await;
        assert_eq!((status, problem["field"].as_str()), (StatusCode::BAD_REQUEST, Some("format")));
        let missing = format!("/api/v1/compliance/agents/{}", uuid::Uuid::now_v7());
        assert_eq!(app.call(Method::GET, &missing, &admin, None).await.0, StatusCode::NOT_FOUND);
        let worker_token = app.token(&client_id, creds_secret(&app, &admin, &worker).await.as_str(), None).await;
        let (status, problem) = app.call(Method::GET, "/api/v1/compliance/report", &worker_token, None).await;
        assert_eq!((status, problem["scope"].as_str()), (StatusCode::FORBIDDEN, Some("compliance:read")));

        // An admin of an older deployment, without compliance:read, is given it by the
        // platform admin (the README's upgrade path).
        let platform = app.platform_token().await;
        let (_, me) = app.call(Method::GET, &format!("/api/v1/agents/{admin_id}"), &admin, None).await;
        let mut scopes: Vec<Value> = me["scopes"].as_array().unwrap().clone();
        scopes.retain(|s| s != "compliance:read");
        let org = app.boot.org_id;
        let patch = format!("/api/v1/agents/{admin_id}?org_id={org}");
        let (status, _) = app.call(Method::PATCH, &patch, &platform, Some(json!({"scopes": scopes}))).await;
        assert_eq!(status, StatusCode::OK);
        let old = app.admin_token().await;
        assert_eq!(app.call(Method::GET, "/api/v1/compliance/report", &old, None).await.0, StatusCode::FORBIDDEN);
        scopes.push(json!("compliance:read"));
        let (status, _) = app.call(Method::PATCH, &patch, &platform, Some(json!({"scopes": scopes}))).await;
        assert_eq!(status, StatusCode::OK);
        admin = app.admin_token().await;
        assert_eq!(app.call(Method::GET, "/api/v1/compliance/report", &admin, None).await.0, StatusCode::OK);

        // With Redis, a second node serves the report the first one computed.
        if backend.is_postgres() {
            let second = TestApp::start(&app.storage).await;
            let (_, first) = app.call(Method::GET, "/api/v1/compliance/report", &admin, None).await;
            clock.advance(Duration::from_secs(1));
            // Each test node is its own issuer: a token of the second node's.
            let there = second.token(&app.boot.client_id, &app.boot.client_secret, None).await;
            let (_, other) = second.call(Method::GET, "/api/v1/compliance/report", &there, None).await;
            assert_eq!(other["generated_at"], first["generated_at"], "one report for the cluster: {other}");
            second.stop().await;
        }
        app.stop().await;
    }
}

/// A fresh secret for the worker (its first one was rotated).
async fn creds_secret(app: &crate::support::App, admin: &str, worker: &str) -> String {
    let (_, creds) = app.call(Method::GET, &format!("/api/v1/agents/{worker}/credentials"), admin, None).await;
    let cid = creds["items"][0]["id"].as_str().unwrap();
    let (_, rotated) =
        app.call(Method::POST, &format!("/api/v1/agents/{worker}/credentials/{cid}/rotate"), admin, None).await;
    rotated["client_secret"].as_str().unwrap().to_string()
}
