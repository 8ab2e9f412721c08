//! The OAuth token lifecycle: introspection, revocation, signing-key rotation,
//! private_key_jwt, DPoP and token exchange — over HTTP, on every store.

use std::time::Duration;

use agentidp_engine::Clock;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::each_backend;
use crate::jose::ClientKey;
use crate::support::{jwt_parts, App, JsonBody};

async fn form(app: &App, path: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = app.http.post(app.url(path)).form(params).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn now_s(app: &App) -> i64 {
    app.storage.clock.now_ms() / 1000
}

each_backend!(introspection_reports_active_tokens_and_nothing_else, |app| {
    let admin = app.admin_token().await;
    let (_, id, secret) = app.agent_with_credential(&admin, json!({"name": "rs", "scopes": ["data:read"]})).await;
    let token = app.token(&id, &secret, None).await;
    let auth = [("client_id", id.as_str()), ("client_secret", secret.as_str())];

    let (status, body) = form(&app, "/api/v1/oauth2/introspect", &[auth[0], auth[1], ("token", &token)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["scope"], "data:read");
    assert_eq!(body["client_id"], id);
    assert_eq!(body["token_type"], "Bearer");
    for claim in ["sub", "exp", "iat", "iss", "aud", "jti", "org_id"] {
        assert!(!body[claim].is_null(), "{claim} missing");
    }
    // a management caller with tokens:introspect may ask too
    let resp = app
        .http
        .post(app.url("/api/v1/oauth2/introspect"))
        .bearer_auth(&admin)
        .form(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["active"], true);

    // garbage, foreign and expired tokens are just inactive
    let platform_token = app.platform_token().await;
    for t in ["garbage", "a.b.c", platform_token.as_str(), &"x".repeat(20_000)] {
        let (status, body) = form(&app, "/api/v1/oauth2/introspect", &[auth[0], auth[1], ("token", t)]).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"active": false})));
    }
    // Our own tokens are judged by our own clock, with no leeway: alive one second
    // before `exp`, dead at it — to introspection and to the API alike.
    app.storage.clock.advance(Duration::from_secs(899));
    let (_, body) = form(&app, "/api/v1/oauth2/introspect", &[auth[0], auth[1], ("token", &token)]).await;
    assert_eq!(body["active"], true, "{body}");
    app.storage.clock.advance(Duration::from_secs(1));
    let (_, body) = form(&app, "/api/v1/oauth2/introspect", &[auth[0], auth[1], ("token", &token)]).await;
    assert_eq!(body, json!({"active": false}));
    let resp = app.http.get(app.url("/api/v1/agents")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "the API refuses it at exp too");

    // an unauthenticated introspection is refused
    let (status, body) = form(&app, "/api/v1/oauth2/introspect", &[("token", &token)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
});

each_backend!(revoked_tokens_stop_working_everywhere_at_once, |app| {
    let admin = app.admin_token().await;
    let (agent, id, secret) = app.agent_with_credential(&admin, json!({"name": "w", "scopes": ["agents:read"]})).await;
    let token = app.token(&id, &secret, None).await;
    let other = app.token(&id, &secret, None).await;
    let path = format!("/api/v1/agents/{}", agent["id"].as_str().unwrap());
    assert_eq!(app.call(Method::GET, &path, &token, None).await.0, StatusCode::OK);

    let resp = app
        .http
        .post(app.url("/api/v1/oauth2/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str()), ("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(app.call(Method::GET, &path, &token, None).await.0, StatusCode::UNAUTHORIZED);
    let auth = [("client_id", id.as_str()), ("client_secret", secret.as_str())];
    let (_, body) = form(&app, "/api/v1/oauth2/introspect", &[auth[0], auth[1], ("token", &token)]).await;
    assert_eq!(body, json!({"active": false}));
    // only that token: the agent's other token still works
    assert_eq!(app.call(Method::GET, &path, &other, None).await.0, StatusCode::OK);
    // unknown tokens are "revoked" without complaint (RFC 7009 §2.2)
    let (status, _) = form(&app, "/api/v1/oauth2/revoke", &[auth[0], auth[1], ("token", "garbage")]).await;
    assert_eq!(status, StatusCode::OK);
    // but nobody revokes another agent's token
    let (status, body) = form(&app, "/api/v1/oauth2/revoke", &[auth[0], auth[1], ("token", &admin)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(app.call(Method::GET, "/api/v1/agents", &admin, None).await.0, StatusCode::OK);
    // revocation is audited
    let (_, events) = app.call(Method::GET, "/api/v1/audit-events?action=token.revoke", &admin, None).await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);

    // suspending the agent makes every outstanding token inactive
    app.call(Method::POST, &format!("{path}/suspend"), &admin, None).await;
    let (_, body) = form(
        &app,
        "/api/v1/oauth2/introspect",
        &[
            ("client_id", app.boot.client_id.as_str()),
            ("client_secret", app.boot.client_secret.as_str()),
            ("token", &other),
        ],
    )
    .await;
    assert_eq!(body, json!({"active": false}));
});

each_backend!(rotation_preannounces_signs_and_retires_keys, |app| {
    let platform = app.platform_token().await;
    let admin = app.admin_token().await;
    let jwks = |app: &App| {
        let (http, url) = (app.http.clone(), app.url("/.well-known/jwks.json"));
        async move { http.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let before = jwks(&app).await;
    let old_kid = before["keys"][0]["kid"].as_str().unwrap().to_string();
    assert_eq!(before["keys"].as_array().unwrap().len(), 1);

    assert_eq!(app.call(Method::POST, "/api/v1/keys/rotate", &admin, None).await.0, StatusCode::FORBIDDEN);
    let (status, key) = app.call(Method::POST, "/api/v1/keys/rotate", &platform, None).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let new_kid = key["kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid);

    // pre-announced: published at once, but the old key still signs
    let kids = |j: &Value| {
        j["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(kids(&jwks(&app).await).len(), 2);
    let token_before = app.admin_token().await;
    assert_eq!(jwt_parts(&token_before).0["kid"], old_kid);

    // once active the new key signs; tokens of the old one still verify
    app.storage.clock.advance(Duration::from_secs(121));
    let token_after = app.admin_token().await;
    assert_eq!(jwt_parts(&token_after).0["kid"], new_kid);
    assert_eq!(app.call(Method::GET, "/api/v1/agents", &token_before, None).await.0, StatusCode::OK);
    assert!(kids(&jwks(&app).await).contains(&old_kid));

    // after every old token has expired the old key leaves the JWKS
    app.storage.clock.advance(Duration::from_secs(900 + 31));
    assert_eq!(kids(&jwks(&app).await), vec![new_kid.clone()]);
    assert_eq!(app.call(Method::GET, "/api/v1/agents", &token_after, None).await.0, StatusCode::UNAUTHORIZED);
    let fresh = app.admin_token().await;
    assert_eq!(app.call(Method::GET, "/api/v1/agents", &fresh, None).await.0, StatusCode::OK);
    let platform = app.platform_token().await; // the first one has expired by now
    let (_, events) = app.call(Method::GET, "/api/v1/audit-events?action=keys.rotate", &platform, None).await;
    assert_eq!(events["items"][0]["target"], new_kid);
});

each_backend!(private_key_jwt_authenticates_and_refuses_replays_and_forgeries, |app| {
    let admin = app.admin_token().await;
    let (status, agent) =
        app.call(Method::POST, "/api/v1/agents", &admin, Some(json!({"name": "signer", "scopes": ["x:y"]}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let creds = format!("/api/v1/agents/{}/credentials", agent["id"].as_str().unwrap());
    let key = ClientKey::es256();
    let (status, cred) =
        app.call(Method::POST, &creds, &admin, Some(json!({"type": "private_key_jwt", "jwk": key.jwk}))).await;
    assert_eq!(status, StatusCode::CREATED, "{cred}");
    assert!(cred.get("client_secret").is_none());
    assert_eq!(cred["type"], "private_key_jwt");
    let client_id = cred["client_id"].as_str().unwrap();
    let token_url = app.url("/api/v1/oauth2/token");
    let assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let request = |assertion: String| {
        let app_http = app.http.clone();
        let url = token_url.clone();
        async move {
            let resp = app_http
                .post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", assertion_type),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };
    let assertion = key.assertion(client_id, &token_url, now_s(&app));
    let (status, body) = request(assertion.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(jwt_parts(body["access_token"].as_str().unwrap()).1["client_id"], client_id);
    // the same assertion twice: refused
    let (status, body) = request(assertion).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    // wrong audience, expired, signed by another key, alg none, HS256 with the public key
    let n = now_s(&app);
    let other = ClientKey::es256();
    let forged_hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": client_id, "sub": client_id, "aud": token_url, "exp": n + 60, "jti": "hs"}),
        &jsonwebtoken::EncodingKey::from_secret(key.jwk.to_string().as_bytes()).unwrap(),
    )
    .unwrap();
    let none = format!(
        "{}.{}.",
        base64_url(&json!({"alg": "none", "typ": "JWT"})),
        base64_url(&json!({"iss": client_id, "sub": client_id, "aud": token_url, "exp": n + 60, "jti": "none"}))
    );
    let not_yet_valid = key.sign(
        jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &json!({"iss": client_id, "sub": client_id, "aud": token_url, "nbf": n + 600, "exp": n + 900, "jti": "early"}),
    );
    for bad in [
        not_yet_valid,
        key.assertion(client_id, "https://elsewhere.example/token", n),
        key.assertion(client_id, &token_url, n - 600),
        other.assertion(client_id, &token_url, n),
        forged_hs,
        none,
        "not-a-jwt".to_string(),
    ] {
        let (status, body) = request(bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "invalid_client");
    }
    // each failure was audited
    let (_, events) =
        app.call(Method::GET, "/api/v1/audit-events?action=client.authenticate&outcome=failure", &admin, None).await;
    assert!(events["items"].as_array().unwrap().len() >= 5, "{events}");
    // a private key is never accepted for registration
    let mut private = key.jwk.clone();
    private["d"] = "c2VjcmV0".into();
    let (status, body) =
        app.call(Method::POST, &creds, &admin, Some(json!({"type": "private_key_jwt", "jwk": private}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "jwk");
    let (status, _) = app.call(Method::POST, &creds, &admin, Some(json!({"type": "magic"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
});

fn base64_url(v: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A client-credentials token bound to `key` by a DPoP proof; panics unless 200.
async fn dpop_token(app: &App, key: &ClientKey, id: &str, secret: &str) -> Value {
    let token_url = app.url("/api/v1/oauth2/token");
    let resp = app
        .http
        .post(&token_url)
        .header("DPoP", key.dpop("POST", &token_url, now_s(app), None))
        .form(&[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

each_backend!(dpop_binds_tokens_to_a_key, |app| {
    let admin = app.admin_token().await;
    let (agent, id, secret) = app.agent_with_credential(&admin, json!({"name": "d", "scopes": ["agents:read"]})).await;
    let key = ClientKey::es256();
    let token_url = app.url("/api/v1/oauth2/token");
    let body = dpop_token(&app, &key, &id, &secret).await;
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap().to_string();
    let jkt = jwt_parts(&token).1["cnf"]["jkt"].as_str().unwrap().to_string();
    assert_eq!(jkt, agentidp_engine::kernel::jose::parse_public_jwk(&key.jwk).unwrap().thumbprint);

    let path = format!("/api/v1/agents/{}", agent["id"].as_str().unwrap());
    let url = app.url(&path);
    // as a plain Bearer token it is refused
    assert_eq!(app.call(Method::GET, &path, &token, None).await.0, StatusCode::UNAUTHORIZED);
    // with a proof for this request it works, once
    let proof = key.dpop("GET", &url, now_s(&app), Some(&token));
    let send = |proof: String| {
        let (http, url, token) = (app.http.clone(), url.clone(), token.clone());
        async move {
            http.get(url)
                .header("authorization", format!("DPoP {token}"))
                .header("DPoP", proof)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(send(proof.clone()).await, StatusCode::OK);
    assert_eq!(send(proof).await, StatusCode::UNAUTHORIZED, "a replayed proof must be refused");
    // a proof for another URI, method or key, or without ath, is refused
    let n = now_s(&app);
    for bad in [
        key.dpop("GET", &app.url("/api/v1/agents"), n, Some(&token)),
        key.dpop("POST", &url, n, Some(&token)),
        ClientKey::es256().dpop("GET", &url, n, Some(&token)),
        key.dpop("GET", &url, n, None),
        key.dpop("GET", &url, n - 600, Some(&token)),
    ] {
        assert_eq!(send(bad).await, StatusCode::UNAUTHORIZED);
    }
    // a malformed proof at the token endpoint
    let resp = app
        .http
        .post(&token_url)
        .header("DPoP", "garbage")
        .form(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_dpop_proof");
});

each_backend!(token_exchange_narrows_and_names_the_actor, |app| {
    let admin = app.admin_token().await;
    let (worker, id, secret) =
        app.agent_with_credential(&admin, json!({"name": "worker", "scopes": ["tokens:exchange"]})).await;
    let exchange = |subject: String, extra: Vec<(&'static str, &'static str)>| {
        let (http, url, id, secret) = (app.http.clone(), app.url("/api/v1/oauth2/token"), id.clone(), secret.clone());
        async move {
            let mut params = vec![
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange".to_string()),
                ("client_id", id),
                ("client_secret", secret),
                ("subject_token", subject),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token".to_string()),
            ];
            params.extend(extra.into_iter().map(|(k, v)| (k, v.to_string())));
            let resp = http.post(url).form(&params).send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) =
        exchange(admin.clone(), vec![("scope", "agents:read"), ("audience", "https://tools.example")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
    assert_eq!(body["scope"], "agents:read");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], app.boot.agent_id.to_string());
    assert_eq!(claims["aud"], "https://tools.example");
    assert_eq!(claims["act"]["sub"], worker["id"]);
    assert!(claims["exp"].as_i64().unwrap() <= jwt_parts(&admin).1["exp"].as_i64().unwrap());

    // same audience: usable on the management API, and only within the narrowed scope
    let (_, body) = exchange(admin.clone(), vec![("scope", "agents:read")]).await;
    let narrowed = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(app.call(Method::GET, "/api/v1/agents", &narrowed, None).await.0, StatusCode::OK);
    assert_eq!(
        app.call(Method::POST, "/api/v1/agents", &narrowed, Some(json!({"name": "no"}))).await.0,
        StatusCode::FORBIDDEN
    );
    // never broader than the subject token, never from garbage or another org
    let (status, body) = exchange(admin.clone(), vec![("scope", "platform:admin")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));
    let (_, body) = exchange("garbage".into(), vec![]).await;
    assert_eq!(body["error"], "invalid_grant");
    let (_, body) = exchange(app.platform_token().await, vec![]).await;
    assert_eq!(body["error"], "invalid_grant");
    let (_, body) = exchange(admin.clone(), vec![("subject_token_type", "urn:x")]).await;
    assert_eq!(body["error"], "invalid_request", "repeated parameter");
});

each_backend!(forged_management_tokens_are_refused, |app| {
    let token = app.admin_token().await;
    let (header, claims) = jwt_parts(&token);
    let enc = |v: &Value| base64_url(v);
    let none = format!("{}.{}.", enc(&json!({"alg": "none", "typ": "at+jwt", "kid": header["kid"]})), enc(&claims));
    let jwks: Value = app.http.get(app.url("/.well-known/jwks.json")).json_body().await;
    let hs = jsonwebtoken::encode(
        &{
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            h.typ = Some("at+jwt".into());
            h.kid = header["kid"].as_str().map(String::from);
            h
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(jwks["keys"][0].to_string().as_bytes()).unwrap(),
    )
    .unwrap();
    let mut wrong_kid = header.clone();
    wrong_kid["kid"] = "nope".into();
    let parts: Vec<&str> = token.split('.').collect();
    let with_wrong_kid = format!("{}.{}.{}", enc(&wrong_kid), parts[1], parts[2]);
    for bad in [none, hs, with_wrong_kid, "x".repeat(10_000)] {
        let (status, body) = app.call(Method::GET, "/api/v1/agents", &bad, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
});

/// The token exchange request of `id`/`secret` for `subject`, with an optional DPoP proof.
async fn exchange_as(app: &App, id: &str, secret: &str, subject: &str, proof: Option<String>) -> (StatusCode, Value) {
    let mut req = app.http.post(app.url("/api/v1/oauth2/token")).form(&[
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("client_id", id),
        ("client_secret", secret),
        ("subject_token", subject),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
    ]);
    if let Some(proof) = proof {
        req = req.header("DPoP", proof);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

// Issue 9, defect 1: another agent of the organization exchanged a stolen DPoP-bound
// token without a proof and got a plain Bearer token with its full scope.
each_backend!(a_dpop_bound_token_stays_bound_through_token_exchange, |app| {
    let admin = app.admin_token().await;
    let (_, nobody_id, nobody_secret) = app.agent_with_credential(&admin, json!({"name": "nobody"})).await;
    let (_, ex_id, ex_secret) =
        app.agent_with_credential(&admin, json!({"name": "exchanger", "scopes": ["tokens:exchange"]})).await;
    // The org admin's token, bound to its key.
    let key = ClientKey::es256();
    let token_url = app.url("/api/v1/oauth2/token");
    let bound = dpop_token(&app, &key, &app.boot.client_id, &app.boot.client_secret).await;
    let bound = bound["access_token"].as_str().unwrap().to_string();

    // An agent without tokens:exchange may not exchange another agent's token at all.
    let (status, body) = exchange_as(&app, &nobody_id, &nobody_secret, &bound, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")), "{body}");
    // One that may: not without a proof of the subject token's key, nor with another key's.
    let (status, body) = exchange_as(&app, &ex_id, &ex_secret, &bound, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");
    let other = ClientKey::es256().dpop("POST", &token_url, now_s(&app), None);
    let (status, body) = exchange_as(&app, &ex_id, &ex_secret, &bound, Some(other)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");
    // With the key's proof it works, and the new token is bound to the same key.
    let proof = key.dpop("POST", &token_url, now_s(&app), None);
    let (status, body) = exchange_as(&app, &ex_id, &ex_secret, &bound, Some(proof)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let exchanged = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_parts(exchanged).1["cnf"], jwt_parts(&bound).1["cnf"]);
    let create = app.call(Method::POST, "/api/v1/agents", exchanged, Some(json!({"name": "by-thief"}))).await;
    assert_eq!(create.0, StatusCode::UNAUTHORIZED, "the exchanged token is useless as a Bearer token");
    // An agent may always exchange its own token (to narrow it), without extra scope.
    let own = app.token(&nobody_id, &nobody_secret, None).await;
    let (status, body) = exchange_as(&app, &nobody_id, &nobody_secret, &own, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
});

/// Leeway is for what others sign, and it is the operator's to set: a client assertion
/// that expired 20 s ago passes with the default 30 s of skew and fails with 10 s; a DPoP
/// proof 15 s ahead likewise. (AgentIdP's own tokens get none: see the expiry test above.)
#[tokio::test]
async fn the_clock_skew_on_what_clients_sign_is_configurable() {
    let backend = crate::support::Backend::Sqlite;
    for (skew, accepted) in [(None, true), (Some(10), false)] {
        let app = crate::support::spawn_app_with(&backend, |config| {
            if let Some(secs) = skew {
                config.clock_skew = Duration::from_secs(secs);
            }
        })
        .await;
        let admin = app.admin_token().await;
        let (_, agent) =
            app.call(Method::POST, "/api/v1/agents", &admin, Some(json!({"name": "skewed", "scopes": ["x:y"]}))).await;
        let key = ClientKey::es256();
        let path = format!("/api/v1/agents/{}/credentials", agent["id"].as_str().unwrap());
        let (_, cred) =
            app.call(Method::POST, &path, &admin, Some(json!({"type": "private_key_jwt", "jwk": key.jwk}))).await;
        let client_id = cred["client_id"].as_str().unwrap();
        let token_url = app.url("/api/v1/oauth2/token");
        let n = now_s(&app);
        let late = key.sign(
            jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &json!({"iss": client_id, "sub": client_id, "aud": token_url, "iat": n, "exp": n + 10, "jti": "late"}),
        );
        // It reaches us 30 s later: 20 s past its exp.
        app.storage.clock.advance(Duration::from_secs(30));
        let n = now_s(&app);
        let (status, body) = form(
            &app,
            "/api/v1/oauth2/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", late.as_str()),
            ],
        )
        .await;
        assert_eq!(status.is_success(), accepted, "skew {skew:?}: {body}");
        // A DPoP proof from a client whose clock runs 15 s ahead.
        let (id, secret) = (app.boot.client_id.clone(), app.boot.client_secret.clone());
        let proof = key.dpop("POST", &token_url, n + 15, None);
        let resp = app
            .http
            .post(&token_url)
            .header("DPoP", proof)
            .form(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().is_success(), accepted, "skew {skew:?}: {}", resp.text().await.unwrap());
        app.stop().await;
    }
}
