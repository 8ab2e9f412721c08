//! Usage analytics (issue 11, item 7): what is counted per agent and day, read back as
//! totals, daily series and per agent; survives a restart (the shutdown drain); isolated
//! per organization; bad ranges and metrics refused naming the field.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{backends, spawn_app_with, App, TestApp};

const DAY: Duration = Duration::from_secs(86_400);

fn today(app: &App) -> String {
    day_string(agentidp_engine::Clock::now_ms(app.storage.clock.as_ref()))
}

fn day_string(ms: i64) -> String {
    agentidp_engine::kernel::model::rfc3339::format(ms.div_euclid(86_400_000) * 86_400_000)[..10].to_string()
}

async fn get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    app.call(Method::GET, path, token, None).await
}

/// The `totals` of an answer, without the metrics that are zero.
fn nonzero(body: &Value) -> Value {
    let totals = body["totals"].as_object().unwrap_or_else(|| panic!("no totals: {body}"));
    Value::Object(totals.iter().filter(|(_, v)| v.as_u64() != Some(0)).map(|(k, v)| (k.clone(), v.clone())).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_day_is_counted_read_back_and_survives_a_restart() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |c| c.analytics_flush = Duration::from_millis(100)).await;
        let admin = app.admin_token().await;
        let (agent, client_id, secret) = app.agent_with_credential(&admin, json!({"name": "worker"})).await;
        let agent_id = agent["id"].as_str().unwrap().to_string();
        app.token(&client_id, &secret, None).await;
        app.token(&client_id, &secret, None).await;
        // Authenticated but refused (a scope it does not hold): counted as refused.
        let (status, _) = app.token_request(&client_id, &secret, Some("audit:read")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // A wrong secret authenticates no one: not counted for the agent.
        assert_eq!(app.token_request(&client_id, "wrong", None).await.0, StatusCode::UNAUTHORIZED);
        let creds = format!("/api/v1/agents/{agent_id}/credentials");
        let (_, list) = get(&app, &admin, &creds).await;
        let cred_id = list["items"][0]["id"].as_str().unwrap().to_string();
        let (status, _) = app.call(Method::POST, &format!("{creds}/{cred_id}/rotate"), &admin, None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app.call(Method::DELETE, &format!("{creds}/{cred_id}"), &admin, None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app.call(Method::DELETE, &format!("/api/v1/agents/{agent_id}"), &admin, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        // Read at once, before any flush is due: this node adds what it has not written.
        let expected = json!({
            "tokens_issued": 2, "token_requests_refused": 1, "agents_created": 1, "agents_deleted": 1,
            "credentials_created": 1, "credentials_rotated": 1, "credentials_revoked": 1,
        });
        let path = format!("/api/v1/analytics/agents/{agent_id}");
        let (status, body) = get(&app, &admin, &path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(nonzero(&body), expected, "{body}");
        assert_eq!((body["agent_id"].as_str(), body["to"].as_str()), (Some(agent_id.as_str()), Some(&*today(&app))));
        assert_eq!(body["totals"].as_object().unwrap().len(), 16, "every metric is listed: {body}");

        // The organization's summary counts the admin too: its token, its calls.
        let (status, summary) = get(&app, &admin, "/api/v1/analytics/summary").await;
        assert_eq!(status, StatusCode::OK, "{summary}");
        assert_eq!(summary["totals"]["tokens_issued"], 3, "{summary}");
        // Every management call so far: create, credential, list, rotate, revoke, delete,
        // the agent read, and this one.
        assert_eq!(summary["totals"]["api_calls"], 8, "{summary}");

        // The flush is written to the store (its metrics say so) …
        let metrics = || async {
            let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
            text.lines()
                .find(|l| l.starts_with("agentidp_analytics_flush_rows_count"))
                .and_then(|l| l.split(' ').nth(1)?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        for _ in 0..100 {
            if metrics().await > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(metrics().await > 0, "a flush was written");

        // … and a restart reads the same (the shutdown drain wrote the rest).
        let App { app: server, boot, storage } = app;
        server.stop().await;
        let server = TestApp::start(&storage).await;
        let app = App { app: server, boot, storage };
        let admin = app.admin_token().await;
        let (_, body) = get(&app, &admin, &path).await;
        assert_eq!(nonzero(&body), expected, "after a restart: {body}");

        // Tomorrow's counts land on tomorrow; the series has every day, zero-filled.
        let first = today(&app);
        app.storage.clock.advance(DAY);
        let admin = app.admin_token().await;
        let second = today(&app);
        let (status, series) =
            get(&app, &admin, &format!("/api/v1/analytics/timeseries?metric=tokens_issued&to={second}")).await;
        assert_eq!(status, StatusCode::OK, "{series}");
        let points = series["points"].as_array().unwrap();
        assert_eq!(points.len(), 30, "{series}");
        assert_eq!(points[29], json!({"day": second, "count": 1}), "{series}");
        assert_eq!(points[28], json!({"day": first, "count": 4}), "{series}");
        assert!(points[..28].iter().all(|p| p["count"] == 0), "{series}");
        let (_, one_day) = get(&app, &admin, &format!("/api/v1/analytics/summary?from={second}&to={second}")).await;
        assert_eq!(one_day["totals"]["tokens_issued"], 1, "{one_day}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_refusals_are_counted_and_organizations_see_only_their_own() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |c| c.tiers.free.calls_per_day = Some(6)).await;
        let platform = app.platform_token().await;
        let (_, org) = app.call(Method::POST, "/api/v1/organizations", &platform, Some(json!({"name": "other"}))).await;
        let other = org["id"].as_str().unwrap().to_string();
        let body = json!({"name": "boss", "org_id": other, "scopes": ["organizations:read", "agents:read"]});
        let (boss, boss_id, boss_secret) = app.agent_with_credential(&platform, body).await;
        let boss_token = app.token(&boss_id, &boss_secret, None).await;

        // The other organization's calls: its token (1), this summary (2); then four
        // more admitted, and the rest refused by the quota of 6.
        let (status, mine) = get(&app, &boss_token, "/api/v1/analytics/summary").await;
        assert_eq!(status, StatusCode::OK, "{mine}");
        // The boss's creation counts in its organization (the agent it is about).
        let made = json!({"agents_created": 1, "credentials_created": 1, "tokens_issued": 1, "api_calls": 1});
        assert_eq!(nonzero(&mine), made, "{mine}");
        assert_eq!(mine["org_id"], other);
        for _ in 0..6 {
            get(&app, &boss_token, "/api/v1/agents").await;
        }
        assert_eq!(app.token_request(&boss_id, &boss_secret, None).await.0, StatusCode::TOO_MANY_REQUESTS);

        // Its counts, read by the platform administrator: four more calls admitted, two
        // calls and a token refused by the quota.
        let (status, seen) =
            get(&app, &platform, &format!("/api/v1/analytics/agents/{}?org_id={other}", boss["id"].as_str().unwrap()))
                .await;
        assert_eq!(status, StatusCode::OK, "{seen}");
        assert_eq!(
            nonzero(&seen),
            json!({"agents_created": 1, "credentials_created": 1, "tokens_issued": 1, "api_calls": 5,
                   "quota_rejections": 3, "token_requests_refused": 1}),
            "{seen}"
        );

        // The first organization sees none of it, and cannot ask for it.
        let admin = app.admin_token().await;
        let (_, first) = get(&app, &admin, "/api/v1/analytics/summary").await;
        assert_eq!(first["totals"]["quota_rejections"], 0, "{first}");
        assert_eq!(first["totals"]["tokens_issued"], 1, "{first}");
        let boss_path = format!("/api/v1/analytics/agents/{}", boss["id"].as_str().unwrap());
        assert_eq!(get(&app, &admin, &boss_path).await.0, StatusCode::NOT_FOUND);
        let (status, _) = get(&app, &admin, &format!("/api/v1/analytics/summary?org_id={other}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ranges_and_metrics_are_refused_naming_the_field() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |_| {}).await;
        let admin = app.admin_token().await;
        for (query, field) in [
            ("/api/v1/analytics/timeseries?metric=tokens", "metric"),
            ("/api/v1/analytics/timeseries", "metric"),
            ("/api/v1/analytics/summary?from=2026-12-03&to=2026-12-02", "from"),
            ("/api/v1/analytics/summary?from=2025-01-01&to=2026-01-02", "to"),
            ("/api/v1/analytics/summary?from=2026-02-30", "from"),
            ("/api/v1/analytics/summary?to=yesterday", "to"),
            ("/api/v1/analytics/agents/not-an-id", "id"),
        ] {
            let (status, body) = get(&app, &admin, query).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
            assert_eq!(
                (body["type"].as_str(), body["field"].as_str()),
                (Some("urn:agentidp:problem:validation-error"), Some(field)),
                "{query}: {body}"
            );
        }
        let (status, body) = get(&app, &admin, "/api/v1/analytics/summary?bucket=week").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        // 366 days is the most.
        let (status, body) = get(&app, &admin, "/api/v1/analytics/summary?from=2025-01-01&to=2026-01-01").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        app.stop().await;
    }
}

/// Issue 37, item 5: per-agent counts older than the detail period are rolled into the
/// organization's totals by the janitor: the organization's figures of those days stay
/// exact, the agents' read zero, and the rows that held them are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_per_agent_counts_are_rolled_into_the_organizations_totals() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |c| {
            c.analytics_detail = 2 * DAY;
            c.analytics_flush = Duration::from_millis(100);
        })
        .await;
        let admin = app.admin_token().await;
        let (a, a_id, a_secret) = app.agent_with_credential(&admin, json!({"name": "a"})).await;
        let (_, b_id, b_secret) = app.agent_with_credential(&admin, json!({"name": "b"})).await;
        for _ in 0..3 {
            app.token(&a_id, &a_secret, None).await;
        }
        app.token(&b_id, &b_secret, None).await;
        let first = today(&app);
        let org_day = format!("/api/v1/analytics/summary?from={first}&to={first}");
        let a_day = format!("/api/v1/analytics/agents/{}?from={first}&to={first}", a["id"].as_str().unwrap());
        let (_, before) = get(&app, &admin, &org_day).await;
        assert_eq!(before["totals"]["tokens_issued"], 5, "{before}");
        // Within the detail period nothing moves.
        app.storage.clock.advance(DAY);
        let rolled = |report: &[(&str, u64)]| report.iter().find(|(w, _)| *w == "analytics_detail").map(|r| r.1);
        assert_eq!(rolled(&app.engine.sweep().await), Some(0));
        // Past it, every per-agent row of the first day is rolled up (as the aggregator
        // writes them: it flushes every 100 ms).
        app.storage.clock.advance(2 * DAY);
        let admin = app.admin_token().await;
        let mut total = 0;
        let start = std::time::Instant::now();
        loop {
            total += rolled(&app.engine.sweep().await).expect("the analytics sweep runs");
            let (_, agent) = get(&app, &admin, &a_day).await;
            if nonzero(&agent) == json!({}) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "a's detail of that day stays: {agent}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(total >= 3, "the admin's, a's and b's rows at least: {total}");
        assert_eq!(rolled(&app.engine.sweep().await), Some(0), "nothing is rolled up twice");
        let (status, after) = get(&app, &admin, &org_day).await;
        assert_eq!(status, StatusCode::OK, "{after}");
        assert_eq!(after["totals"], before["totals"], "the organization's day is unchanged");
        app.stop().await;
    }
}
