//! Two nodes on one PostgreSQL + Redis: a change made on one node takes effect on the
//! other through the Redis coordinator, and both publish the same keys.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{backends, spawn_app, App, ServeProcess, TestApp};

/// Two nodes on one PostgreSQL + Redis, or `None` where no such backend is configured.
async fn two_nodes() -> Option<(App, TestApp)> {
    let backend = backends().into_iter().find(|b| b.is_postgres())?;
    let a = spawn_app(&backend).await;
    let b = TestApp::start(&a.storage).await;
    Some((a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_on_one_node_is_honoured_by_the_other() {
    let Some((a, b)) = two_nodes().await else {
        return; // single-node backends have no second node; CI always runs this.
    };
    let admin = a.admin_token().await;
    let (agent, client_id, old_secret) = a.agent_with_credential(&admin, json!({"name": "shared"})).await;
    // warm node B's credential cache
    b.token(&client_id, &old_secret, None).await;
    let jwks_a = a.http.get(a.url("/.well-known/jwks.json")).send().await.unwrap().text().await.unwrap();
    let jwks_b = b.http.get(b.url("/.well-known/jwks.json")).send().await.unwrap().text().await.unwrap();
    assert_eq!(jwks_a, jwks_b, "every node publishes the same keys");

    let agent_id = agent["id"].as_str().unwrap();
    let (_, creds) = a.call(Method::GET, &format!("/api/v1/agents/{agent_id}/credentials"), &admin, None).await;
    let cid = creds["items"][0]["id"].as_str().unwrap();
    let (status, _) =
        a.call(Method::POST, &format!("/api/v1/agents/{agent_id}/credentials/{cid}/rotate"), &admin, None).await;
    assert_eq!(status, StatusCode::OK);

    let started = Instant::now();
    loop {
        let (status, _) = b.token_request(&client_id, &old_secret, None).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "node B still accepts the rotated-out secret");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.stop().await;
    a.stop().await;
}

/// Both nodes' AuditWriters append to one organization's chain at once: the chain head
/// is locked per batch, so the chain stays one unbroken sequence holding every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_writing_one_audit_chain_keep_it_intact() {
    let Some((a, b)) = two_nodes().await else {
        return; // single-node backends have no second node; CI always runs this.
    };
    let (id, secret) = (a.boot.client_id.as_str(), a.boot.client_secret.as_str());
    let tokens = futures_util::future::join_all((0..120).map(|i| {
        let node: &TestApp = if i % 2 == 0 { &a } else { &b };
        node.token(id, secret, None)
    }))
    .await;
    let admin = a.admin_token().await;
    let (status, report) = a.call(Method::GET, "/api/v1/audit-events/verify", &admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["intact"], true, "{report}");
    let (_, page) = a.call(Method::GET, "/api/v1/audit-events?action=token.issue&limit=200", &admin, None).await;
    let audited: std::collections::HashSet<&str> =
        page["items"].as_array().unwrap().iter().filter_map(|e| e["detail"]["jti"].as_str()).collect();
    for token in &tokens {
        let jti = crate::support::jwt_parts(token).1["jti"].as_str().unwrap().to_string();
        assert!(audited.contains(jti.as_str()), "token {jti} has no audit event");
    }
    b.stop().await;
    a.stop().await;
}

fn node_env(
    cmd: &mut std::process::Command,
    storage: &crate::support::Storage,
    redis_url: &str,
    data: &std::path::Path,
) {
    use base64::Engine as _;
    for var in ["AGENTIDP_CONFIG", "AGENTIDP_LISTEN", "VAULT_ADDR"] {
        cmd.env_remove(var);
    }
    cmd.env("DATABASE_URL", storage.database_url.as_deref().unwrap())
        .env("REDIS_URL", redis_url)
        .env("AGENTIDP_REDIS_NAMESPACE", &storage.namespace)
        .env("AGENTIDP_MASTER_KEY", base64::engine::general_purpose::STANDARD.encode([9u8; 32]))
        .env("AGENTIDP_ISSUER", "http://agentidp.cluster.test")
        .env("AGENTIDP_DATA_DIR", data)
        .env("AGENTIDP_LOG", "warn");
}

/// One of several `agentidp serve` processes on one PostgreSQL + Redis.
async fn start_node(storage: &crate::support::Storage, redis_url: &str, data: &std::path::Path) -> ServeProcess {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_agentidp"));
    node_env(&mut cmd, storage, redis_url, data);
    cmd.arg("serve");
    ServeProcess::start(cmd).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_process_is_honoured_by_another_within_100ms() {
    let Some(backend) = backends().into_iter().find(|b| b.is_postgres()) else {
        return; // needs PostgreSQL + Redis; CI always has them.
    };
    let crate::support::Backend::Postgres { redis_url, .. } = &backend else { unreachable!() };
    let storage = crate::support::Storage::new(&backend).await;
    let dir = tempfile::tempdir().unwrap();
    let mut boot = std::process::Command::new(env!("CARGO_BIN_EXE_agentidp"));
    node_env(&mut boot, &storage, redis_url, &dir.path().join("boot"));
    let out = boot.args(["bootstrap", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let creds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (id, secret) = (creds["client_id"].as_str().unwrap(), creds["client_secret"].as_str().unwrap());

    let a = start_node(&storage, redis_url, &dir.path().join("a")).await;
    let b = start_node(&storage, redis_url, &dir.path().join("b")).await;
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{}/api/v1/oauth2/token", a.base))
        .form(&[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let on_b = || http.get(format!("{}/api/v1/agents", b.base)).bearer_auth(&token).send();
    assert_eq!(on_b().await.unwrap().status(), StatusCode::OK, "node B accepts node A's token");

    let resp = http
        .post(format!("{}/api/v1/oauth2/revoke", a.base))
        .basic_auth(id, Some(secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let revoked_at = Instant::now();
    loop {
        if on_b().await.unwrap().status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(revoked_at.elapsed() < Duration::from_millis(100), "node B still accepts a revoked token after 100 ms");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!("revocation reached node B in {:?}", revoked_at.elapsed());
}
