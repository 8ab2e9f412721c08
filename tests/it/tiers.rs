//! Tiers (issue 11, first part): the limits are listed, and an organization cannot have
//! more agents than its tier allows — checked in the commit, so concurrent creations
//! never pass it, and a tier change counts at once. Downgrading keeps what exists.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{backends, spawn_app_with, App};

/// A free tier of 3 agents (the default is 10), to keep the tests short.
async fn app_with_small_free_tier(backend: &crate::support::Backend) -> App {
    spawn_app_with(backend, |c| c.tiers.free.max_agents = Some(3)).await
}

/// A client_credentials request, answered whole (for its headers).
async fn token_response(app: &App, id: &str, secret: &str) -> reqwest::Response {
    let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)];
    app.http.post(app.url("/api/v1/oauth2/token")).form(&form).send().await.unwrap()
}

async fn create(app: &App, token: &str, org: &str, name: &str) -> (StatusCode, Value) {
    app.call(Method::POST, "/api/v1/agents", token, Some(json!({"name": name, "org_id": org}))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tiers_are_listed_with_their_limits() {
    for backend in backends() {
        let app = app_with_small_free_tier(&backend).await;
        let (status, body) = app.call(Method::GET, "/api/v1/tiers", &app.admin_token().await, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["items"],
            json!([
                {"name": "free", "max_agents": 3, "calls_per_day": 1000, "max_webhooks": 1,
                 "token_rate": 50, "token_burst": 100, "audit_retention_secs": 90 * 86400},
                {"name": "pro", "max_agents": 1000, "calls_per_day": 50000, "max_webhooks": 20,
                 "token_rate": 50, "token_burst": 100, "audit_retention_secs": 365 * 86400},
                {"name": "enterprise", "max_agents": null, "calls_per_day": null, "max_webhooks": null,
                 "token_rate": 500, "token_burst": 1000, "audit_retention_secs": 7 * 365 * 86400},
            ])
        );
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_beyond_the_tier_are_refused_and_a_tier_change_counts_at_once() {
    for backend in backends() {
        let app = app_with_small_free_tier(&backend).await;
        let platform = app.platform_token().await;
        let (_, org) = app.call(Method::POST, "/api/v1/organizations", &platform, Some(json!({"name": "small"}))).await;
        let (org_path, org_id) = (format!("/api/v1/organizations/{}", org["id"].as_str().unwrap()), org["id"].clone());
        let org_id = org_id.as_str().unwrap();
        assert_eq!(org["tier"], "free");

        // Concurrent creations on a free organization: exactly three get in.
        let attempts = (0..8).map(|i| {
            let (app, platform) = (&app, &platform);
            async move { create(app, platform, org_id, &format!("a{i}")).await }
        });
        let results = futures_util::future::join_all(attempts).await;
        let created = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
        assert_eq!(created, 3, "{results:?}");
        let (status, refused) = results.into_iter().find(|(s, _)| *s != StatusCode::CREATED).unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(refused["type"], "urn:agentidp:problem:tier-limit", "{refused}");
        assert_eq!((refused["tier"].as_str(), refused["limit"].as_u64()), (Some("free"), Some(3)));
        assert_eq!(refused["detail"], "the free tier allows at most 3 agents");

        // Upgraded: room at once.
        let (status, _) = app.call(Method::PATCH, &org_path, &platform, Some(json!({"tier": "pro"}))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(create(&app, &platform, org_id, "fourth").await.0, StatusCode::CREATED);

        // Downgraded: the four stay, a fifth is refused.
        let (status, _) = app.call(Method::PATCH, &org_path, &platform, Some(json!({"tier": "free"}))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(create(&app, &platform, org_id, "fifth").await.0, StatusCode::FORBIDDEN);
        let (_, page) = app.call(Method::GET, &format!("/api/v1/agents?org_id={org_id}"), &platform, None).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 4, "{page}");
        // Deleting one leaves three: still at the limit, so still no room.
        let first = page["items"][0]["id"].as_str().unwrap().to_string();
        let (status, _) =
            app.call(Method::DELETE, &format!("/api/v1/agents/{first}?org_id={org_id}"), &platform, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(create(&app, &platform, org_id, "still four").await.0, StatusCode::FORBIDDEN);
        app.stop().await;
    }
}

/// Parse an IETF Structured Field list item like `"daily";q=5;w=86400` into its
/// parameters (the conformance suite parses them with Python's http-sfv too).
fn sf_params(value: &str) -> std::collections::HashMap<String, u64> {
    let (name, params) = value.split_once(';').unwrap();
    assert_eq!(name, "\"daily\"", "{value}");
    params
        .split(';')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// The daily call quota (issue 11): token requests and management calls count; past the
/// limit both are refused with 429 and Retry-After to the next UTC midnight, which resets
/// it (the injected clock, no sleeping); counted responses carry RateLimit headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_quota_counts_calls_refuses_past_the_limit_and_resets_at_midnight() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |c| c.tiers.free.calls_per_day = Some(5)).await;
        // Mid-day (UTC), so the reset is hours away.
        let now = agentidp_engine::Clock::now_ms(app.storage.clock.as_ref());
        let noon = (now.div_euclid(86_400_000) + 1) * 86_400_000 + 43_200_000;
        app.storage.clock.advance(std::time::Duration::from_millis((noon - now) as u64));
        let (id, secret) = (app.boot.client_id.clone(), app.boot.client_secret.clone());

        // 1: a token request; 2-5: management calls.
        let (status, token) = app.token_request(&id, &secret, None).await;
        assert_eq!(status, StatusCode::OK, "{token}");
        let token = token["access_token"].as_str().unwrap().to_string();
        let mut last = None;
        for _ in 0..4 {
            let resp = app.http.get(app.url("/api/v1/agents")).bearer_auth(&token).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let policy = sf_params(resp.headers()["ratelimit-policy"].to_str().unwrap());
            assert_eq!((policy["q"], policy["w"]), (5, 86_400));
            last = Some(sf_params(resp.headers()["ratelimit"].to_str().unwrap()));
        }
        let last = last.unwrap();
        assert_eq!((last["r"], last["t"]), (0, 43_200), "{last:?}");

        // The sixth: refused on the API and on the token endpoint.
        let resp = app.http.get(app.url("/api/v1/agents")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "43200");
        assert_eq!(sf_params(resp.headers()["ratelimit"].to_str().unwrap())["r"], 0);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["type"], "urn:agentidp:problem:quota-exceeded", "{body}");
        assert_eq!((body["tier"].as_str(), body["limit"].as_u64()), (Some("free"), Some(5)));
        assert!(body["resets_at"].as_str().unwrap().ends_with("T00:00:00Z"), "{body}");
        let (status, body) = app.token_request(&id, &secret, None).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("quota_exceeded")));
        let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(
            metrics.contains("agentidp_limit_rejections_total{reason=\"daily_quota\",tier=\"free\"} 2"),
            "{metrics}"
        );
        assert!(metrics.lines().any(|l| l.starts_with("agentidp_quota_lease_refills_total ")), "{metrics}");
        // Not counted: discovery, health, a failed client authentication.
        assert_eq!(app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().status(), StatusCode::OK);
        assert_eq!(app.token_request(&id, "wrong", None).await.0, StatusCode::UNAUTHORIZED);

        // The platform organization (enterprise) is not limited; upgrading lifts it at once.
        let platform = app.platform_token().await;
        let org = format!("/api/v1/organizations/{}", app.boot.org_id);
        let (status, _) = app.call(Method::PATCH, &org, &platform, Some(json!({"tier": "pro"}))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(app.call(Method::GET, "/api/v1/agents", &token, None).await.0, StatusCode::OK);
        app.call(Method::PATCH, &org, &platform, Some(json!({"tier": "free"}))).await;

        // Midnight: a new day, a new quota.
        app.storage.clock.advance(std::time::Duration::from_secs(43_200));
        let (status, _) = app.token_request(&id, &secret, None).await;
        assert_eq!(status, StatusCode::OK, "after midnight");
        app.stop().await;
    }
}

/// Usage: today's calls, agents and webhooks against the tier, for the organization
/// itself or the platform admin, and no one else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_shows_todays_calls_and_agents_against_the_tier() {
    for backend in backends() {
        let app = app_with_small_free_tier(&backend).await;
        let admin = app.admin_token().await; // call 1
        let path = format!("/api/v1/organizations/{}/usage", app.boot.org_id);
        app.call(Method::GET, "/api/v1/agents", &admin, None).await; // call 2
        let (status, usage) = app.call(Method::GET, &path, &admin, None).await; // call 3
        assert_eq!(status, StatusCode::OK, "{usage}");
        assert_eq!(usage["tier"], "free");
        assert_eq!(usage["calls"], json!({"used": 3, "limit": 1000}));
        assert_eq!(usage["agents"], json!({"used": 1, "limit": 3}));
        assert_eq!(usage["webhooks"], json!({"used": 0, "limit": 1}));
        assert!(usage["resets_at"].as_str().unwrap().ends_with("T00:00:00Z"), "{usage}");
        // The platform admin may read it; another organization may not.
        let platform = app.platform_token().await;
        assert_eq!(app.call(Method::GET, &path, &platform, None).await.0, StatusCode::OK);
        let (_, other) =
            app.call(Method::POST, "/api/v1/organizations", &platform, Some(json!({"name": "other"}))).await;
        let theirs = format!("/api/v1/organizations/{}/usage", other["id"].as_str().unwrap());
        assert_eq!(app.call(Method::GET, &theirs, &admin, None).await.0, StatusCode::FORBIDDEN);
        let bad = app.call(Method::GET, "/api/v1/organizations/not-a-uuid/usage", &admin, None).await;
        assert_eq!(bad.0, StatusCode::BAD_REQUEST);
        app.stop().await;
    }
}

/// Brute force (issue 11, item 5): twenty wrong secrets lock the client out; the right
/// secret is refused (429, Retry-After) until the window passes (the injected clock);
/// one auth.locked audit event records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_wrong_secrets_lock_a_client_out_until_the_window_passes() {
    for backend in backends() {
        let app = crate::support::spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let (_, id, secret) = app.agent_with_credential(&admin, json!({"name": "target"})).await;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(app.token_request(&id, "aidp_sk_wrong", None).await.0);
        }
        assert!(statuses[..10].iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
        assert!(statuses[11..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
        let resp = token_response(&app, &id, &secret).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "the right secret too");
        let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "slow_down", "{body}");
        // Other clients are not affected.
        assert_eq!(app.token_request(&app.boot.client_id, &app.boot.client_secret, None).await.0, StatusCode::OK);

        let (_, events) = app.call(Method::GET, "/api/v1/audit-events?action=auth.locked", &admin, None).await;
        assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
        app.storage.clock.advance(std::time::Duration::from_secs(61));
        assert_eq!(app.token_request(&id, &secret, None).await.0, StatusCode::OK, "after the window");
        app.stop().await;
    }
}

/// Brute force from one address (issue 11, item 5): failures naming ever new client ids
/// lock the peer address out (here past 15; 100 by default), so even a valid client
/// from it is refused until the window passes; one auth.locked event names the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spray_of_client_ids_from_one_address_locks_the_address_out() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |c| c.lockout_address_failures = 15).await;
        // Unknown client ids name no organization: the events are on the unattributed
        // chain (the nil id), which the platform administrator reads.
        let platform = app.platform_token().await;
        let mut statuses = Vec::new();
        for i in 0..20 {
            statuses.push(app.token_request(&format!("aidp_ci_spray{i}"), "aidp_sk_wrong", None).await.0);
        }
        assert!(statuses[..15].iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
        assert!(statuses[16..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
        let resp = token_response(&app, &app.boot.client_id, &app.boot.client_secret).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "a valid client from the address too");
        assert!(resp.headers().contains_key("retry-after"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "slow_down", "{body}");

        let path = "/api/v1/audit-events?action=auth.locked&org_id=00000000-0000-0000-0000-000000000000";
        let (_, events) = app.call(Method::GET, path, &platform, None).await;
        let events = events["items"].as_array().unwrap().clone();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            (events[0]["target"].as_str(), events[0]["detail"]["kind"].as_str()),
            (Some("127.0.0.1"), Some("address"))
        );
        app.storage.clock.advance(std::time::Duration::from_secs(61));
        assert_eq!(app.token_request(&app.boot.client_id, &app.boot.client_secret, None).await.0, StatusCode::OK);
        app.stop().await;
    }
}

/// The per-client token rate (issue 11, item 5): a free client with a rate of 1 a second
/// in bursts of 2 gets two tokens at once, the third is 429 slow_down with Retry-After,
/// and a second later (the injected clock) it is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_tiers_token_rate_is_told_to_slow_down() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |c| {
            c.tiers.free.token_rate = 1;
            c.tiers.free.token_burst = 2;
        })
        .await;
        let (id, secret) = (app.boot.client_id.clone(), app.boot.client_secret.clone());
        assert_eq!(app.token_request(&id, &secret, None).await.0, StatusCode::OK);
        assert_eq!(app.token_request(&id, &secret, None).await.0, StatusCode::OK);
        let resp = token_response(&app, &id, &secret).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "1");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "slow_down", "{body}");
        app.storage.clock.advance(std::time::Duration::from_secs(1));
        assert_eq!(app.token_request(&id, &secret, None).await.0, StatusCode::OK);
        app.stop().await;
    }
}
