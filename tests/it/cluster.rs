//! Two nodes on one PostgreSQL + Redis: a change made on one node takes effect on the
//! other through the Redis coordinator, and both publish the same keys.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{backends, spawn_app, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_on_one_node_is_honoured_by_the_other() {
    let Some(backend) = backends().into_iter().find(|b| b.is_postgres()) else {
        return; // single-node backends have no second node; CI always runs this.
    };
    let a = spawn_app(&backend).await;
    let b = TestApp::start(&a.storage).await;
    let admin = a.admin_token().await;
    let (agent, client_id, old_secret) = a
        .agent_with_credential(&admin, json!({"name": "shared"}))
        .await;
    // warm node B's credential cache
    b.token(&client_id, &old_secret, None).await;
    let jwks_a = a
        .http
        .get(a.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jwks_b = b
        .http
        .get(b.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(jwks_a, jwks_b, "every node publishes the same keys");

    let agent_id = agent["id"].as_str().unwrap();
    let (_, creds) = a
        .call(
            Method::GET,
            &format!("/api/v1/agents/{agent_id}/credentials"),
            &admin,
            None,
        )
        .await;
    let cid = creds["items"][0]["id"].as_str().unwrap();
    let (status, _) = a
        .call(
            Method::POST,
            &format!("/api/v1/agents/{agent_id}/credentials/{cid}/rotate"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let started = Instant::now();
    loop {
        let (status, _) = b.token_request(&client_id, &old_secret, None).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "node B still accepts the rotated-out secret"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.stop().await;
    a.stop().await;
}
