//! Tenant isolation and the platform administrator.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::each_backend;

each_backend!(organizations_never_see_each_others_agents, |app| {
    let platform = app.platform_token().await;
    // The platform admin creates a second organization and its admin agent.
    let (status, org_b) =
        app.call(Method::POST, "/api/v1/organizations", &platform, Some(json!({"name": "acme", "tier": "pro"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{org_b}");
    assert_eq!(org_b["tier"], "pro");
    let org_b_id = org_b["id"].as_str().unwrap();
    let (status, dup) = app.call(Method::POST, "/api/v1/organizations", &platform, Some(json!({"name": "acme"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{dup}");
    let (_, b_id, b_secret) = app
        .agent_with_credential(
            &platform,
            json!({"name": "acme-admin", "org_id": org_b_id, "scopes": ["agents:read", "agents:write", "organizations:read"]}),
        )
        .await;
    let b_token = app.token(&b_id, &b_secret, None).await;
    let a_token = app.admin_token().await;

    let (status, b_agent) = app.call(Method::POST, "/api/v1/agents", &b_token, Some(json!({"name": "b-worker"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(b_agent["org_id"], org_b_id);
    let b_path = format!("/api/v1/agents/{}", b_agent["id"].as_str().unwrap());

    // Organization A cannot read, change, suspend or delete B's agent, by id or by naming B.
    for (method, path, body) in [
        (Method::GET, b_path.clone(), None),
        (Method::PATCH, b_path.clone(), Some(json!({"name": "pwned"}))),
        (Method::POST, format!("{b_path}/suspend"), None),
        (Method::DELETE, b_path.clone(), None),
        (Method::GET, format!("{b_path}/credentials"), None),
    ] {
        let (status, body) = app.call(method.clone(), &path, &a_token, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
    }
    for path in [format!("{b_path}?org_id={org_b_id}"), format!("/api/v1/agents?org_id={org_b_id}")] {
        let (status, _) = app.call(Method::GET, &path, &a_token, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, _) =
        app.call(Method::POST, "/api/v1/agents", &a_token, Some(json!({"name": "intruder", "org_id": org_b_id}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, a_list) = app.call(Method::GET, "/api/v1/agents", &a_token, None).await;
    assert!(!a_list.to_string().contains("b-worker"));
    let (_, b_after) = app.call(Method::GET, &b_path, &b_token, None).await;
    assert_eq!(b_after["name"], "b-worker");
    assert_eq!(b_after["status"], "active");

    // Organizations: only the platform admin manages them; an org may read itself.
    let (status, _) = app.call(Method::GET, "/api/v1/organizations", &a_token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.call(Method::POST, "/api/v1/organizations", &a_token, Some(json!({"name": "x"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, own) =
        app.call(Method::GET, &format!("/api/v1/organizations/{}", app.boot.org_id), &a_token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["name"], "default");
    let (status, _) = app.call(Method::GET, &format!("/api/v1/organizations/{org_b_id}"), &a_token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, list) = app.call(Method::GET, "/api/v1/organizations", &platform, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 3);

    // Deleting B removes its agents; B's tokens stop working.
    let (status, patched) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/organizations/{org_b_id}"),
            &platform,
            Some(json!({"tier": "enterprise"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["tier"], "enterprise");
    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/organizations/{org_b_id}"), &platform, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call(Method::GET, "/api/v1/agents", &b_token, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
});

each_backend!(no_one_grants_a_scope_it_does_not_hold, |app| {
    let admin = app.admin_token().await;
    let (status, body) = app
        .call(Method::POST, "/api/v1/agents", &admin, Some(json!({"name": "escalate", "scopes": ["platform:admin"]})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // a narrower token cannot grant what it lacks either
    let narrow = app.token(&app.boot.client_id, &app.boot.client_secret, Some("agents:write")).await;
    let (status, _) =
        app.call(Method::POST, "/api/v1/agents", &narrow, Some(json!({"name": "e2", "scopes": ["audit:read"]}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // application scopes (not management ones) are the organization's own to grant
    let (status, _) = app
        .call(Method::POST, "/api/v1/agents", &narrow, Some(json!({"name": "e3", "scopes": ["weather:read"]})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // and a token without the route's scope is refused
    let (status, _) = app.call(Method::GET, "/api/v1/agents", &narrow, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
});

// A token without the scope a call needs: 403 naming the scope, with the RFC 6750 §3.1
// challenge (issue 15, item 4 in part).
each_backend!(a_missing_scope_is_named_with_an_insufficient_scope_challenge, |app| {
    let admin = app.admin_token().await;
    let (_, id, secret) = app.agent_with_credential(&admin, json!({"name": "reader", "scopes": ["agents:read"]})).await;
    let reader = app.token(&id, &secret, None).await;
    for (method, path, needed) in [
        (Method::POST, "/api/v1/agents", "agents:write"),
        (Method::GET, "/api/v1/webhooks", "webhooks:read"),
        (Method::GET, "/api/v1/audit-events", "audit:read"),
    ] {
        let resp = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth(&reader)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{method} {path}");
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_string();
        assert_eq!(challenge, format!("Bearer error=\"insufficient_scope\", scope=\"{needed}\""));
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["type"], "urn:agentidp:problem:insufficient-scope", "{problem}");
        assert_eq!(problem["scope"], needed);
        assert!(problem["detail"].as_str().unwrap().contains(needed), "{problem}");
    }
    app.stop().await;
});
