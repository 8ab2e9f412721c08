//! Agents over HTTP: CRUD, cursor pagination, suspend/reactivate, and bad input.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::each_backend;

each_backend!(agents_crud_with_defaults, |app| {
    let token = app.admin_token().await;
    let (status, agent) = app.call(Method::POST, "/api/v1/agents", &token, Some(json!({"name": "planner"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    assert_eq!(agent["status"], "active");
    assert_eq!(agent["scopes"], json!([]));
    assert_eq!(agent["metadata"], json!({}));
    assert_eq!(agent["org_id"], app.boot.org_id.to_string());
    let path = format!("/api/v1/agents/{}", agent["id"].as_str().unwrap());

    let (status, got) = app.call(Method::GET, &path, &token, None).await;
    assert_eq!((status, &got), (StatusCode::OK, &agent));

    let patch = json!({"description": "plans", "scopes": ["tasks:read"], "metadata": {"team": "a"}});
    let (status, updated) = app.call(Method::PATCH, &path, &token, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["description"], "plans");
    assert_eq!(updated["scopes"], json!(["tasks:read"]));
    assert_eq!(updated["metadata"]["team"], "a");
    assert_eq!(updated["name"], "planner");

    let (status, dup) = app.call(Method::POST, "/api/v1/agents", &token, Some(json!({"name": "planner"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{dup}");

    let (status, _) = app.call(Method::DELETE, &path, &token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.call(Method::GET, &path, &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["type"], "urn:agentidp:problem:not-found");
    let (status, _) = app.call(Method::DELETE, &path, &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
});

each_backend!(agent_listing_pages_with_a_cursor, |app| {
    let token = app.admin_token().await;
    for i in 0..7 {
        let (status, _) =
            app.call(Method::POST, "/api/v1/agents", &token, Some(json!({"name": format!("a{i}")}))).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    // 7 created + the bootstrap admin
    let mut seen = Vec::new();
    let mut path = "/api/v1/agents?limit=3".to_string();
    loop {
        let (status, page) = app.call(Method::GET, &path, &token, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|a| a["name"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/agents?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 8);

    let (status, body) = app.call(Method::GET, "/api/v1/agents?cursor=nonsense", &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "cursor");
    let (status, _) = app.call(Method::GET, "/api/v1/agents?limit=0", &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.call(Method::GET, "/api/v1/agents?bogus=1", &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
});

each_backend!(suspension_stops_tokens_and_management_calls_at_once, |app| {
    let admin = app.admin_token().await;
    let (agent, id, secret) =
        app.agent_with_credential(&admin, json!({"name": "worker", "scopes": ["agents:read"]})).await;
    let worker_token = app.token(&id, &secret, None).await;
    let (status, _) = app.call(Method::GET, "/api/v1/agents", &worker_token, None).await;
    assert_eq!(status, StatusCode::OK);

    let path = format!("/api/v1/agents/{}", agent["id"].as_str().unwrap());
    let (status, suspended) = app.call(Method::POST, &format!("{path}/suspend"), &admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(suspended["status"], "suspended");
    let (status, body) = app.token_request(&id, &secret, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    let (status, _) = app.call(Method::GET, "/api/v1/agents", &worker_token, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, active) = app.call(Method::POST, &format!("{path}/reactivate"), &admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(active["status"], "active");
    app.token(&id, &secret, None).await;
});

each_backend!(bad_agent_input_is_a_clear_4xx, |app| {
    let token = app.admin_token().await;
    let url = app.url("/api/v1/agents");
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, Option<&str>)> = vec![
        (
            app.http.post(&url).bearer_auth(&token).header("content-type", "application/json").body("{\"name\":"),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (app.http.post(&url).bearer_auth(&token).body("name=x"), StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
        (
            app.http.post(&url).bearer_auth(&token).json(&json!({"name": "x", "colour": "red"})),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (app.http.post(&url).bearer_auth(&token).json(&json!({"name": "  "})), StatusCode::BAD_REQUEST, Some("name")),
        (
            app.http.post(&url).bearer_auth(&token).json(&json!({"name": "x", "scopes": ["has space"]})),
            StatusCode::BAD_REQUEST,
            Some("scopes"),
        ),
        (
            app.http.post(&url).bearer_auth(&token).json(&json!({"name": "x", "metadata": [1]})),
            StatusCode::BAD_REQUEST,
            Some("metadata"),
        ),
        (app.http.post(&url).bearer_auth(&token).json(&json!({"name": 5})), StatusCode::BAD_REQUEST, None),
        (app.http.get(app.url("/api/v1/agents/not-a-uuid")).bearer_auth(&token), StatusCode::BAD_REQUEST, Some("id")),
        (
            app.http.get(app.url("/api/v1/agents/01900000-0000-7000-8000-000000000000")).bearer_auth(&token),
            StatusCode::NOT_FOUND,
            None,
        ),
        (app.http.put(&url).bearer_auth(&token).json(&json!({})), StatusCode::METHOD_NOT_ALLOWED, None),
    ];
    for (i, (req, status, field)) in cases.into_iter().enumerate() {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), status, "case {i}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json", "case {i}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], status.as_u16(), "case {i}: {body}");
        assert!(body["type"].as_str().unwrap().starts_with("urn:agentidp:problem:"));
        assert!(body["title"].is_string() && body["detail"].is_string());
        if let Some(field) = field {
            assert_eq!(body["field"], field, "case {i}: {body}");
        }
    }
    // An oversized body is refused from its declared length, before it is read. (Sent
    // by hand: a client still writing the body may see the connection close first.)
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /api/v1/agents HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");

    // nothing was created by any of that
    let (_, page) = app.call(Method::GET, "/api/v1/agents", &token, None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
});
