//! Issue 30, item 1: the people of an organization — created, listed, read, changed,
//! suspended, reactivated and deleted by its administrators; email normalized and unique
//! per organization; passwords by NIST SP 800-63B-4, hashed with argon2id; sign-in with
//! the lockout; everything audited, isolated per organization, on both stores.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{backends, spawn_app_with, App};

const GOOD: &str = "velvet quarry lantern mosaic";

async fn create(app: &App, token: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, "/api/v1/users", token, Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_manage_the_people_of_their_organization() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |_| {}).await;
        let admin = app.admin_token().await;
        let (status, ada) =
            create(&app, &admin, json!({"email": "  Ada@Example.COM ", "name": "Ada Lovelace", "password": GOOD}))
                .await;
        assert_eq!(status, StatusCode::CREATED, "{ada}");
        assert_eq!(ada["email"], "ada@example.com");
        assert_eq!((ada["status"].as_str(), ada["has_password"].as_bool()), (Some("active"), Some(true)));
        assert!(ada.get("password").is_none() && ada.get("password_hash").is_none(), "{ada}");
        let id = ada["id"].as_str().unwrap().to_string();

        // One address per organization, whatever its case.
        let (status, problem) = create(&app, &admin, json!({"email": "ADA@example.com", "name": "Other"})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        // Bad input names its field; nothing is created.
        for (body, field) in [
            (json!({"email": "not-an-address", "name": "x"}), "email"),
            (json!({"email": "b@example.com", "name": ""}), "name"),
            (json!({"email": "b@example.com", "name": "B", "password": "short"}), "password"),
            (json!({"email": "b@example.com", "name": "B", "password": "passwordpassword"}), "password"),
            (json!({"email": "b@example.com", "name": "B", "password": "b@example.comb@example.com"}), "password"),
            (json!({"email": "b@example.com", "name": "B", "scopes": ["platform:admin"]}), "scopes"),
            (json!({"email": "b@example.com", "name": "B", "role": "admin"}), ""),
        ] {
            let (status, problem) = create(&app, &admin, body.clone()).await;
            assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::FORBIDDEN, "{body}: {status} {problem}");
            if !field.is_empty() && status == StatusCode::BAD_REQUEST {
                assert!(problem.to_string().contains(field), "{body}: {problem}");
            }
        }
        let (status, page) = app.call(Method::GET, "/api/v1/users?email=EXAMPLE", &admin, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");

        // Sign-in: right, wrong, unknown — the last two alike.
        let org = app.boot.org_id;
        let origin = agentidp_engine::Origin::default();
        let user = app.engine.sign_in(org, "ada@EXAMPLE.com", GOOD, &origin).await.expect("signs in");
        assert_eq!(user.id.to_string(), id);
        let wrong = app.engine.sign_in(org, "ada@example.com", "velvet quarry lantern mosaics", &origin).await;
        let unknown = app.engine.sign_in(org, "nobody@example.com", GOOD, &origin).await;
        assert_eq!(wrong.unwrap_err().to_string(), unknown.unwrap_err().to_string());

        // Changed, suspended (no sign-in), reactivated, given a new password.
        let path = format!("/api/v1/users/{id}");
        let (status, changed) =
            app.call(Method::PATCH, &path, &admin, Some(json!({"name": "Ada King", "scopes": ["agents:read"]}))).await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!((changed["name"].as_str(), changed["scopes"].clone()), (Some("Ada King"), json!(["agents:read"])));
        let (status, suspended) = app.call(Method::POST, &format!("{path}/suspend"), &admin, None).await;
        assert_eq!((status, suspended["status"].as_str()), (StatusCode::OK, Some("suspended")));
        assert!(app.engine.sign_in(org, "ada@example.com", GOOD, &origin).await.is_err(), "suspended");
        app.call(Method::POST, &format!("{path}/reactivate"), &admin, None).await;
        let (status, problem) = app
            .call(Method::PUT, &format!("{path}/password"), &admin, Some(json!({"password": "123456789012345"})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        let fresh = "orbit tundra saffron whistle";
        let (status, _) =
            app.call(Method::PUT, &format!("{path}/password"), &admin, Some(json!({"password": fresh}))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(app.engine.sign_in(org, "ada@example.com", GOOD, &origin).await.is_err(), "the old one is gone");
        let signed_in = app.engine.sign_in(org, "ada@example.com", fresh, &origin).await.expect("the new one");
        assert!(signed_in.last_login_at.is_some());

        // Every step is in the audit trail.
        let (_, events) = app.call(Method::GET, "/api/v1/audit-events?limit=200", &admin, None).await;
        let actions: Vec<&str> =
            events["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        for action in
            ["user.create", "user.update", "user.suspend", "user.reactivate", "user.password.set", "user.login"]
        {
            assert!(actions.contains(&action), "{action} in {actions:?}");
        }
        let failed = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "user.login" && e["outcome"] == "failure")
            .count();
        assert!(failed >= 3, "failed sign-ins are audited: {failed}");

        // Another organization sees none of it.
        let platform = app.platform_token().await;
        let (_, other) =
            app.call(Method::POST, "/api/v1/organizations", &platform, Some(json!({"name": "other"}))).await;
        let other_id = other["id"].as_str().unwrap();
        let (status, _) = app.call(Method::GET, &format!("{path}?org_id={other_id}"), &platform, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let theirs: uuid::Uuid = other_id.parse().unwrap();
        assert!(app.engine.sign_in(theirs, "ada@example.com", fresh, &origin).await.is_err());

        let (status, _) = app.call(Method::DELETE, &path, &admin, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = app.call(Method::GET, &path, &admin, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_lock_the_email_out_at_that_address() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |c| c.lockout_failures = 3).await;
        let admin = app.admin_token().await;
        create(&app, &admin, json!({"email": "bo@example.com", "name": "Bo", "password": GOOD})).await;
        let org = app.boot.org_id;
        let here = agentidp_engine::Origin { request_id: None, addr: Some("10.0.0.1".parse().unwrap()) };
        let there = agentidp_engine::Origin { request_id: None, addr: Some("10.0.0.2".parse().unwrap()) };
        for _ in 0..4 {
            let _ = app.engine.sign_in(org, "bo@example.com", "wrong wrong wrong wrong", &here).await;
        }
        let locked = app.engine.sign_in(org, "bo@example.com", GOOD, &here).await.unwrap_err();
        assert!(matches!(locked, agentidp_engine::EngineError::LockedOut { .. }), "{locked:?}");
        // From elsewhere the right password still works.
        app.engine.sign_in(org, "bo@example.com", GOOD, &there).await.expect("another address");
        // The lockout's start is audited once, as a client's is.
        let (_, events) = app.call(Method::GET, "/api/v1/audit-events?action=auth.locked", &admin, None).await;
        let locked = events["items"].as_array().unwrap();
        assert_eq!(locked.len(), 1, "{events}");
        assert_eq!(
            (locked[0]["target"].as_str(), locked[0]["detail"]["kind"].as_str()),
            (Some("bo@example.com"), Some("email"))
        );
        // Counted in analytics: the user created, the sign-in, the failures.
        let (_, summary) = app.call(Method::GET, "/api/v1/analytics/summary", &admin, None).await;
        let totals = &summary["totals"];
        assert_eq!((totals["users_created"].as_u64(), totals["sign_ins"].as_u64()), (Some(1), Some(1)), "{summary}");
        assert_eq!(totals["sign_ins_failed"].as_u64(), Some(4), "{summary}");
        app.stop().await;
    }
}

/// The bootstrap makes the first organization's administrator a person too, with a
/// generated password that signs in, and keeps its admin agent; a webhook subscriber
/// hears of people (a failed sign-in as well).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_admin_signs_in_and_subscribers_hear_of_people() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |c| c.webhooks.destinations.allow_loopback_http = true).await;
        let boot = &app.boot;
        assert_eq!(boot.admin_email, "admin@localhost");
        assert!(boot.admin_password.len() >= 20, "{}", boot.admin_password);
        let origin = agentidp_engine::Origin::default();
        let admin_user =
            app.engine.sign_in(boot.org_id, "admin@localhost", &boot.admin_password, &origin).await.unwrap();
        assert_eq!(admin_user.id, boot.admin_user_id);
        assert!(admin_user.scopes.iter().any(|s| s == "users:write"), "{:?}", admin_user.scopes);

        let admin = app.admin_token().await;
        let types = json!(["user.created", "user.login.failed", "user.login.succeeded"]);
        let (status, hook) = app
            .call(
                Method::POST,
                "/api/v1/webhooks",
                &admin,
                Some(json!({"url": "http://127.0.0.1:9/hook", "event_types": types})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{hook}");
        create(&app, &admin, json!({"email": "cy@example.com", "name": "Cy", "password": GOOD})).await;
        let _ = app.engine.sign_in(boot.org_id, "cy@example.com", "not the password at all", &origin).await;
        app.engine.sign_in(boot.org_id, "cy@example.com", GOOD, &origin).await.unwrap();
        let path = format!("/api/v1/webhooks/{}/deliveries", hook["id"].as_str().unwrap());
        let start = std::time::Instant::now();
        loop {
            let (_, page) = app.call(Method::GET, &path, &admin, None).await;
            let mut kinds: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|d| d["event_type"].as_str().map(String::from))
                .collect();
            kinds.sort();
            if kinds == ["user.created", "user.login.failed", "user.login.succeeded"] {
                break;
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(15), "deliveries: {kinds:?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        app.stop().await;
    }
}
