//! `POST /api/v1/oauth2/token`: client_credentials with both client authentication
//! methods, scopes, and the RFC 6749 error form.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::each_backend;
use crate::support::jwt_parts;

each_backend!(client_secret_basic_and_post_both_issue_rfc9068_tokens, |app| {
    // client_secret_post
    let token = app.admin_token().await;
    let (header, claims) = jwt_parts(&token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].as_str().is_some_and(|k| !k.is_empty()));
    for claim in ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "org_id"] {
        assert!(!claims[claim].is_null(), "claim {claim} missing in {claims}");
    }
    assert_eq!(claims["iss"], app.base);
    assert_eq!(claims["client_id"], app.boot.client_id);
    assert_eq!(claims["org_id"], app.boot.org_id.to_string());
    assert_eq!(claims["sub"], app.boot.agent_id.to_string());
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    // client_secret_basic
    let resp = app
        .http
        .post(app.url("/api/v1/oauth2/token"))
        .basic_auth(&app.boot.client_id, Some(&app.boot.client_secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "agents:read")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "agents:read");
    assert_eq!(body["expires_in"], 900);
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "agents:read");
    // two tokens never share an id
    let again = app.admin_token().await;
    assert_ne!(jwt_parts(&again).1["jti"], jwt_parts(&token).1["jti"]);
});

each_backend!(scopes_must_be_a_subset_of_the_agents_scopes, |app| {
    let admin = app.admin_token().await;
    let (_, id, secret) =
        app.agent_with_credential(&admin, json!({"name": "reader", "scopes": ["data:read", "data:write"]})).await;
    let (status, body) = app.token_request(&id, &secret, Some("data:read")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "data:read");
    let (status, body) = app.token_request(&id, &secret, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["scope"], "data:read data:write");
    let (status, body) = app.token_request(&id, &secret, Some("data:read admin")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope");
    let (status, body) = app.token_request(&id, &secret, Some("bad\"scope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope");
});

each_backend!(wrong_or_unknown_clients_get_invalid_client_with_401, |app| {
    for (id, secret) in [
        (app.boot.client_id.as_str(), "aidp_sk_wrong"),
        ("aidp_ci_unknown", "whatever"),
        (app.boot.client_id.as_str(), ""),
    ] {
        let resp = app
            .http
            .post(app.url("/api/v1/oauth2/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().contains_key("www-authenticate"));
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        assert!(body["error_description"].is_string());
    }
    // no client authentication at all
    let resp = app
        .http
        .post(app.url("/api/v1/oauth2/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // malformed Basic header
    let resp = app
        .http
        .post(app.url("/api/v1/oauth2/token"))
        .header("authorization", "Basic %%%")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
});

each_backend!(malformed_token_requests_get_rfc6749_errors, |app| {
    let url = app.url("/api/v1/oauth2/token");
    let id = app.boot.client_id.as_str();
    let secret = app.boot.client_secret.as_str();
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            app.http.post(&url).form(&[("grant_type", "password"), ("client_id", id), ("client_secret", secret)]),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            app.http.post(&url).form(&[("client_id", id), ("client_secret", secret)]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            app.http.post(&url).json(&json!({"grant_type": "client_credentials"})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            app.http
                .post(&url)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials"), ("client_secret", secret)]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            app.http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials&grant_type=client_credentials"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (req, status, error) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), status);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], error, "{body}");
    }
});

each_backend!(issued_tokens_authorize_the_management_api_and_garbage_does_not, |app| {
    let token = app.admin_token().await;
    let (status, _) = app.call(Method::GET, "/api/v1/agents", &token, None).await;
    assert_eq!(status, StatusCode::OK);
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    for bad in ["garbage", "a.b.c", tampered.as_str(), ""] {
        let (status, body) = app.call(Method::GET, "/api/v1/agents", bad, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}: {body}");
        assert_eq!(body["type"], "urn:agentidp:problem:unauthorized");
    }
    let resp = app.http.get(app.url("/api/v1/agents")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
});
