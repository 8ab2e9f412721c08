//! Issue 9, the outside probe's defects: no power taken from a stronger agent, no
//! self-lockout and a way back in, and no committed change without its audit event.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::each_backend;
use crate::support::App;

/// The ids of the org admin's own credentials.
async fn credential_ids(app: &App, token: &str, agent: &str) -> Vec<String> {
    let (status, body) = app.call(Method::GET, &format!("/api/v1/agents/{agent}/credentials"), token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

// Defect 2: an agent holding only agents:write could empty the org admin's scopes,
// suspend it or delete it — and one with credentials:write could take its credential.
each_backend!(a_weaker_agent_cannot_change_a_stronger_one, |app| {
    let admin = app.admin_token().await;
    let admin_id = app.boot.agent_id.to_string();
    let (_, id, secret) = app
        .agent_with_credential(
            &admin,
            json!({"name": "writer", "scopes": ["agents:write", "agents:read", "credentials:write"]}),
        )
        .await;
    let writer = app.token(&id, &secret, None).await;
    let cred = credential_ids(&app, &admin, &admin_id).await.remove(0);
    let agent = format!("/api/v1/agents/{admin_id}");
    for (method, path, body) in [
        (Method::PATCH, agent.clone(), Some(json!({"scopes": []}))),
        (Method::PATCH, agent.clone(), Some(json!({"name": "renamed"}))),
        (Method::POST, format!("{agent}/suspend"), None),
        (Method::DELETE, agent.clone(), None),
        (Method::POST, format!("{agent}/credentials"), None),
        (Method::POST, format!("{agent}/credentials/{cred}/rotate"), None),
        (Method::DELETE, format!("{agent}/credentials/{cred}"), None),
    ] {
        let (status, problem) = app.call(method.clone(), &path, &writer, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {problem}");
        assert_eq!(problem["type"], "urn:agentidp:problem:forbidden");
    }
    // Nothing changed: the admin still works with its own scopes.
    let (status, body) = app.call(Method::GET, &agent, &admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "active");
    assert!(body["scopes"].as_array().unwrap().len() > 3, "{body}");
    app.admin_token().await;
    // An agent no stronger than the caller (organization scopes do not count) is fine.
    let (weak, _, _) =
        app.agent_with_credential(&admin, json!({"name": "weak", "scopes": ["agents:read", "search:query"]})).await;
    let weak = format!("/api/v1/agents/{}", weak["id"].as_str().unwrap());
    assert_eq!(app.call(Method::POST, &format!("{weak}/suspend"), &writer, None).await.0, StatusCode::OK);
    assert_eq!(app.call(Method::POST, &format!("{weak}/credentials"), &writer, None).await.0, StatusCode::CREATED);
});

// Defect 3: the platform admin could suspend itself, with no way back.
each_backend!(no_agent_disables_itself, |app| {
    let platform = app.platform_token().await;
    let (_, me) = app.call(Method::GET, "/api/v1/agents?limit=1", &platform, None).await;
    let me = me["items"][0]["id"].as_str().unwrap().to_string();
    for (token, id) in [(platform.clone(), me.clone()), (app.admin_token().await, app.boot.agent_id.to_string())] {
        let agent = format!("/api/v1/agents/{id}");
        for (method, path, body) in [
            (Method::POST, format!("{agent}/suspend"), None),
            (Method::DELETE, agent.clone(), None),
            (Method::PATCH, agent.clone(), Some(json!({"scopes": ["agents:read"]}))),
        ] {
            let (status, problem) = app.call(method.clone(), &path, &token, body).await;
            assert_eq!(status, StatusCode::CONFLICT, "{method} {path}: {problem}");
        }
        // Renaming itself is harmless and allowed.
        assert_eq!(app.call(Method::PATCH, &agent, &token, Some(json!({"name": "me"}))).await.0, StatusCode::OK);
    }
    assert_eq!(app.call(Method::GET, "/api/v1/organizations", &platform, None).await.0, StatusCode::OK);
});

// Defect 12: look-alikes of management scopes could be granted by anyone.
each_backend!(management_scope_lookalikes_are_refused, |app| {
    let admin = app.admin_token().await;
    for bad in ["PLATFORM:ADMIN", "agents:*", "*", "Agents:Write", "credentials:root"] {
        let (status, problem) =
            app.call(Method::POST, "/api/v1/agents", &admin, Some(json!({"name": "x", "scopes": [bad]}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
        assert_eq!(problem["field"], "scopes");
    }
    let (status, agent) = app
        .call(
            Method::POST,
            "/api/v1/agents",
            &admin,
            Some(json!({"name": "ok", "scopes": ["files:*", "search:query"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let path = format!("/api/v1/agents/{}", agent["id"].as_str().unwrap());
    let (status, _) = app.call(Method::PATCH, &path, &admin, Some(json!({"scopes": ["AUDIT:READ"]}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
});

// Defect 8, single node: the in-process replay memory is lost with the process, so an
// assertion made before the process started is refused after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assertion_used_before_a_restart_is_refused_after_it() {
    let app = crate::support::spawn_app(&crate::support::Backend::Sqlite).await;
    let admin = app.admin_token().await;
    let (agent, _, _) = app.agent_with_credential(&admin, json!({"name": "pkj"})).await;
    let key = crate::jose::ClientKey::es256();
    let path = format!("/api/v1/agents/{}/credentials", agent["id"].as_str().unwrap());
    let (_, cred) =
        app.call(Method::POST, &path, &admin, Some(json!({"type": "private_key_jwt", "jwk": key.jwk}))).await;
    let client_id = cred["client_id"].as_str().unwrap().to_string();
    let now_s = |clock: &agentidp_engine::ManualClock| agentidp_engine::Clock::now_ms(clock) / 1000;
    let issuer = app.engine.config().issuer.clone();
    let used = key.assertion(&client_id, &issuer, now_s(&app.storage.clock));
    assert_eq!(app.assertion_token_request(&used).await.0, StatusCode::OK);
    let App { app: server, storage, .. } = app;
    server.stop().await;
    storage.clock.advance(std::time::Duration::from_secs(2));
    let restarted = crate::support::TestApp::start_with(&storage, |c| c.issuer = issuer.clone()).await;
    assert_eq!(restarted.assertion_token_request(&used).await.0, StatusCode::UNAUTHORIZED, "replayed after a restart");
    let fresh = key.assertion(&client_id, &issuer, now_s(&storage.clock));
    assert_eq!(restarted.assertion_token_request(&fresh).await.0, StatusCode::OK);
    restarted.stop().await;
}

// Issue 15, item 4: errors name what is at fault, in words.
crate::each_backend!(refusals_name_the_scope_and_the_parameter_in_words, |app| {
    let (status, body) =
        app.token_request(&app.boot.client_id, &app.boot.client_secret, Some("agents:read nope:x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_scope");
    assert!(body["error_description"].as_str().unwrap().contains("\"nope:x\""), "{body}");
    let token = app.admin_token().await;
    for (query, field) in
        [("limit=abc", "limit"), ("org_id=not-a-uuid", "org_id"), ("limit=5&cursor=&limit=x", "limit")]
    {
        let (status, problem) = app.call(Method::GET, &format!("/api/v1/agents?{query}"), &token, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {problem}");
        assert_eq!(problem["field"], field, "{query}: {problem}");
    }
    // A forged signature is described, not named by a library type.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let resp = app.http.get(app.url("/api/v1/agents")).bearer_auth(&forged).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("InvalidSignature") && !text.contains("Invalid"), "{text}");
    app.stop().await;
});
