//! Dependency outages (issue 9, defects 5 to 8): two nodes on one PostgreSQL and a Redis
//! of the test's own, which the test kills and restarts; and a PostgreSQL of the test's
//! own, which it shuts down (never the shared ones). A change the API confirms is durable
//! and audited whatever Redis does, reaches the other node within the change-feed bound,
//! replay protection fails closed, and a store going away is a 503 that did nothing.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::jose::ClientKey;
use crate::support::{backends, App, Backend, OwnPostgres, OwnRedis, Storage, TestApp};

/// How long a change may take to reach the other node without Redis: the feed poll
/// (1 s) plus the time to read it, with slack for a loaded machine.
const FEED_BOUND: Duration = Duration::from_millis(2500);
const ISSUER: &str = "http://agentidp.outage.test";

/// Node A (bootstrapped) and node B over one PostgreSQL schema and `redis`.
async fn two_nodes(redis: &OwnRedis) -> Option<(App, TestApp)> {
    let backend = backends().into_iter().find(Backend::is_postgres)?;
    let storage = Storage::new(&backend).await;
    let url = redis.url();
    // One deployment: both nodes issue (and accept) tokens under one issuer.
    let node = |c: &mut agentidp_engine::EngineConfig| {
        c.redis_url = Some(url.clone());
        c.issuer = ISSUER.into();
        c.audience = ISSUER.into();
    };
    let a = TestApp::start_with(&storage, node).await;
    let b = TestApp::start_with(&storage, node).await;
    let boot = a.engine.bootstrap().await.unwrap();
    Some((App { app: a, boot, storage }, b))
}

/// Wait until node `b` refuses `token`, at most `bound`.
async fn refused_within(b: &TestApp, token: &str, bound: Duration, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (status, _) = b.call(Method::GET, "/api/v1/agents", token, None).await;
        if status == StatusCode::UNAUTHORIZED {
            return started.elapsed();
        }
        assert!(started.elapsed() < bound, "node B still accepts the token {what} after {bound:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_confirmed_change_is_audited_and_reaches_the_other_node() {
    let mut redis = OwnRedis::start().await;
    let Some((a, b)) = two_nodes(&redis).await else {
        return; // needs PostgreSQL; CI always has it.
    };
    let admin = a.admin_token().await;
    let (agent, id, secret) =
        a.agent_with_credential(&admin, json!({"name": "worker", "scopes": ["agents:read"]})).await;
    let agent_id = agent["id"].as_str().unwrap();
    let worker = a.token(&id, &secret, None).await;
    let to_revoke = a.token(&id, &secret, None).await;
    assert_eq!(b.call(Method::GET, "/api/v1/agents", &worker, None).await.0, StatusCode::OK, "B warms its caches");
    assert_eq!(b.call(Method::GET, "/api/v1/agents", &to_revoke, None).await.0, StatusCode::OK);

    redis.kill();
    // A mutation is done (and says so) without Redis: its answer is the truth.
    let started = Instant::now();
    let (status, body) =
        a.call(Method::PATCH, &format!("/api/v1/agents/{agent_id}"), &admin, Some(json!({"name": "renamed"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    let revoke = a
        .http
        .post(a.url("/api/v1/oauth2/revoke"))
        .form(&[("client_id", id.as_str()), ("client_secret", secret.as_str()), ("token", to_revoke.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::OK);
    let took = refused_within(&b, &to_revoke, FEED_BOUND, "revoked while Redis was down").await;
    eprintln!("revocation reached node B through the change feed in {took:?}");
    let (status, _) = a.call(Method::POST, &format!("/api/v1/agents/{agent_id}/suspend"), &admin, None).await;
    assert_eq!(status, StatusCode::OK);
    refused_within(&b, &worker, FEED_BOUND, "of an agent suspended while Redis was down").await;

    // Every confirmed change has its audit event, and the chain is intact.
    let (_, events) = a.call(Method::GET, "/api/v1/audit-events?limit=20", &admin, None).await;
    let actions: Vec<&str> =
        events["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["agent.update", "token.revoke", "agent.suspend"] {
        assert!(actions.contains(&action), "{action} not audited: {actions:?}");
    }
    let (_, report) = a.call(Method::GET, "/api/v1/audit-events/verify", &admin, None).await;
    assert_eq!(report["intact"], true, "{report}");

    // /ready says what is down, quickly, in an operator's words.
    let started = Instant::now();
    let resp = a.http.get(a.url("/ready")).send().await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(1500), "/ready took {:?}", started.elapsed());
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["detail"], "Redis (REDIS_URL) is not answering", "{body}");
    assert_eq!(body["checks"]["store"]["up"], true);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_right_after_a_redis_restart_reach_the_other_node() {
    let mut redis = OwnRedis::start().await;
    let Some((a, b)) = two_nodes(&redis).await else {
        return; // needs PostgreSQL; CI always has it.
    };
    let admin = a.admin_token().await;
    let (_, id, secret) = a.agent_with_credential(&admin, json!({"name": "w", "scopes": ["agents:read"]})).await;
    let tokens: Vec<String> = futures_util::future::join_all((0..5).map(|_| a.token(&id, &secret, None))).await;
    for t in &tokens {
        assert_eq!(b.call(Method::GET, "/api/v1/agents", t, None).await.0, StatusCode::OK);
    }
    redis.kill();
    redis.restart().await;
    // In the first moments after the restart, while the nodes' subscriptions reconnect.
    for t in &tokens {
        let resp = a
            .http
            .post(a.url("/api/v1/oauth2/revoke"))
            .form(&[("client_id", id.as_str()), ("client_secret", secret.as_str()), ("token", t.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    for t in &tokens {
        refused_within(&b, t, FEED_BOUND, "revoked right after the Redis restart").await;
    }
    b.stop().await;
    a.stop().await;
}

/// Defect 8: a private_key_jwt assertion used before a (non-persistent) Redis restart
/// was accepted again after it; and with Redis down the call answered 401 after 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_protection_survives_a_redis_restart_and_an_outage_is_a_503() {
    let mut redis = OwnRedis::start().await;
    let Some((a, b)) = two_nodes(&redis).await else {
        return; // needs PostgreSQL; CI always has it.
    };
    let admin = a.admin_token().await;
    let (agent, _, _) = a.agent_with_credential(&admin, json!({"name": "pkj"})).await;
    let key = ClientKey::es256();
    let path = format!("/api/v1/agents/{}/credentials", agent["id"].as_str().unwrap());
    let (status, cred) =
        a.call(Method::POST, &path, &admin, Some(json!({"type": "private_key_jwt", "jwk": key.jwk}))).await;
    assert_eq!(status, StatusCode::CREATED, "{cred}");
    let client_id = cred["client_id"].as_str().unwrap().to_string();
    let aud = ISSUER;
    let now_s = || agentidp_engine::Clock::now_ms(a.storage.clock.as_ref()) / 1000;
    let send = |assertion: String| {
        let a = &a;
        async move { a.assertion_token_request(&assertion).await }
    };
    let used = key.assertion(&client_id, aud, now_s());
    assert_eq!(send(used.clone()).await.0, StatusCode::OK);

    redis.kill();
    let started = Instant::now();
    let (status, body) = send(key.assertion(&client_id, aud, now_s())).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("temporarily_unavailable")));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());

    redis.restart().await;
    a.storage.clock.advance(Duration::from_secs(2));
    let (status, body) = send(used).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "replayed");
    // A fresh assertion works, once.
    let fresh = key.assertion(&client_id, aud, now_s());
    assert_eq!(send(fresh.clone()).await.0, StatusCode::OK);
    assert_eq!(send(fresh).await.0, StatusCode::UNAUTHORIZED);
    b.stop().await;
    a.stop().await;
}

/// Defect 7: "the database system is shutting down" answered 500. While PostgreSQL shuts
/// down, and after it is gone, every call that needs it is a 503 with `Retry-After` (the
/// token endpoint's `temporarily_unavailable`), and none of them did anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgresql_shuts_down_every_answer_is_a_503_that_did_nothing() {
    let Some(Backend::Postgres { redis_url, .. }) = backends().into_iter().find(Backend::is_postgres) else {
        return; // needs Redis beside PostgreSQL; CI always has both.
    };
    let mut pg = OwnPostgres::start().await;
    let backend = Backend::Postgres { database_url: pg.url(), redis_url };
    let storage = Storage::new(&backend).await;
    let app = TestApp::start(&storage).await;
    let boot = app.engine.bootstrap().await.unwrap();
    let a = App { app, boot, storage };
    let admin = a.admin_token().await;
    let (agent, id, secret) = a.agent_with_credential(&admin, json!({"name": "steady"})).await;
    let agent_path = format!("/api/v1/agents/{}", agent["id"].as_str().unwrap());

    // A smart shutdown held open by one session of the test's, and the server's own
    // sessions ended: every new session is refused with 57P03, as in the probe.
    let (holder, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.unwrap();
    let holder_conn = tokio::spawn(conn);
    pg.begin_shutdown();
    holder
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
            &[],
        )
        .await
        .unwrap();
    let refused = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.err().expect("refused");
    let why = refused.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert!(why.contains("shutting down"), "{refused:?}");

    let expect_503s = |phase: &'static str| {
        let (a, admin, agent_path, id, secret) = (&a, &admin, &agent_path, &id, &secret);
        async move {
            for _ in 0..3 {
                let resp = a
                    .http
                    .patch(a.url(agent_path))
                    .bearer_auth(admin)
                    .json(&json!({"name": "renamed"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "PATCH {phase}");
                assert!(resp.headers().contains_key("retry-after"), "PATCH {phase}: no Retry-After");
                assert_eq!(resp.headers()["content-type"], "application/problem+json", "PATCH {phase}");
                let (status, _) = a.call(Method::GET, "/api/v1/agents", admin, None).await;
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "list {phase}");
                let resp = a
                    .http
                    .post(a.url("/api/v1/oauth2/token"))
                    .form(&[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "token {phase}");
                assert!(resp.headers().contains_key("retry-after"), "token {phase}: no Retry-After");
                let body: serde_json::Value = resp.json().await.unwrap();
                assert_eq!(body["error"], "temporarily_unavailable", "token {phase}");
            }
            let started = Instant::now();
            let resp = a.http.get(a.url("/ready")).send().await.unwrap();
            assert!(started.elapsed() < Duration::from_millis(1500), "/ready took {:?}", started.elapsed());
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "/ready {phase}");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["checks"]["store"]["up"], false, "{body}");
        }
    };
    expect_503s("while PostgreSQL shuts down").await;

    // The last session ends, the server exits: connections are refused outright.
    drop(holder);
    let _ = holder_conn.await;
    pg.wait_stopped().await;
    expect_503s("while PostgreSQL is gone").await;

    // It comes back: the server serves again without a restart, and the refused rename
    // never happened — a 503 meant "not done".
    pg.restart().await;
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..100 {
        status = a.call(Method::GET, "/api/v1/agents", &admin, None).await.0;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, StatusCode::OK, "serves again once PostgreSQL is back");
    let (_, now) = a.call(Method::GET, &agent_path, &admin, None).await;
    assert_eq!(now["name"], "steady", "{now}");
    let (_, report) = a.call(Method::GET, "/api/v1/audit-events/verify", &admin, None).await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(a.token_request(&id, &secret, None).await.0, StatusCode::OK);
    a.stop().await;
}
