//! Two nodes on one PostgreSQL + Redis: a change made on one node takes effect on the
//! other through the Redis coordinator, and both publish the same keys.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{backends, spawn_app, App, ProcessCluster, TestApp};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_process_is_honoured_by_another_within_100ms() {
    let Some(cluster) = ProcessCluster::new(None, None).await else {
        return; // needs PostgreSQL + Redis; CI always has them.
    };
    let (id, secret) = (cluster.client_id.as_str(), cluster.client_secret.as_str());
    let a = cluster.node("a").await;
    let b = cluster.node("b").await;
    let http = reqwest::Client::new();
    let token = cluster.admin_token(&a.base).await;
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

/// A federation partner registered on one node is trusted by the other at once, and an
/// agent's DID document cached on the other node shows a key added on the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_and_did_changes_on_one_node_reach_the_other() {
    use agentidp_engine::families::signing::keys::{SigningAlg, SigningKey};
    let Some((a, b)) = two_nodes().await else {
        return; // single-node backends have no second node; CI always runs this.
    };
    let admin = a.admin_token().await;
    let admin_b = b.token(&a.boot.client_id, &a.boot.client_secret, None).await;
    // The nodes share keys but not issuers here: node A's token at node B says so.
    let (status, problem) = b.call(Method::GET, "/api/v1/agents", &admin, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(problem["detail"].as_str().unwrap_or_default().contains("issuer"), "{problem}");
    let (status, agent) = a.call(Method::POST, "/api/v1/agents", &admin, Some(json!({"name": "shared"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let id = agent["id"].as_str().unwrap();
    let methods = |doc: serde_json::Value| doc["verificationMethod"].as_array().map_or(0, Vec::len);
    let doc_b = || async {
        b.http
            .get(b.url(&format!("/agents/{id}/did.json")))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    assert_eq!(methods(doc_b().await), 0); // rendered and cached on node B
    let (status, _) =
        a.call(Method::POST, &format!("/api/v1/agents/{id}/did/keys"), &admin, Some(json!({"generate": true}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let started = Instant::now();
    while methods(doc_b().await) != 1 {
        assert!(started.elapsed() < Duration::from_secs(2), "node B still serves the old DID document");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let (key, _) = SigningKey::generate(SigningAlg::Es256, 0, 0).unwrap();
    let body = json!({
        "issuer": "https://partner.example", "jwks": {"keys": [key.jwk()]},
        "subject_mapping": {"kind": "claim", "claim": "agent"}, "allowed_scopes": ["a"],
        "allowed_audiences": ["https://cluster.example"],
    });
    let (status, partner) = a.call(Method::POST, "/api/v1/federation/partners", &admin, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{partner}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let jwt = key
        .sign(&json!({"iss": "https://partner.example", "sub": "s", "aud": "https://cluster.example",
                      "exp": now + 60, "iat": now, "jti": "j"}))
        .unwrap();
    // Announced through Redis: milliseconds, not the change feed's second.
    let started = Instant::now();
    loop {
        let (_, verdict) =
            b.call(Method::POST, "/api/v1/federation/verify", &admin_b, Some(json!({"token": jwt.clone()}))).await;
        if verdict["valid"] == true {
            break;
        }
        assert!(started.elapsed() < Duration::from_millis(500), "node B does not know the partner: {verdict}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.stop().await;
    a.stop().await;
}
