//! Federation (issue 13, items 1–4): partners, the JwksCache actors' rules, the RFC 7523
//! JWT-bearer grant and `/federation/verify` — against a partner made of PyJWT and a
//! small HTTP server (`tests/conformance/federation_partner.py`), and against a second
//! `agentidp serve` process as the partner IdP.

use std::io::BufRead;
use std::time::Duration;

use agentidp_engine::Clock as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{backends, jwt_parts, spawn_app_with, wait_until_up, App, JsonBody, ServeProcess};

const PARTNER_ISS: &str = "https://partner.example";

/// The PyJWT partner process, killed when dropped.
struct PyPartner {
    child: std::process::Child,
    base: String,
    http: reqwest::Client,
}

impl PyPartner {
    fn start() -> PyPartner {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/federation_partner.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the partner");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("the partner printed {line:?}"));
        PyPartner { child, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.http.post(format!("{}{path}", self.base)).json(&body).json_body().await
    }

    async fn sign(&self, claims: Value, extra: Value) -> String {
        let mut req = json!({"claims": claims});
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        self.post("/sign", req).await["jwt"].as_str().unwrap().to_string()
    }

    async fn fetches(&self) -> u64 {
        let body: Value = self.http.get(format!("{}/count", self.base)).json_body().await;
        body["fetches"].as_u64().unwrap()
    }

    async fn mode(&self, mode: &str) {
        self.post("/mode", json!({"mode": mode})).await;
    }
}

impl Drop for PyPartner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dev(config: &mut agentidp_engine::EngineConfig) {
    config.federation.destinations.allow_loopback_http = true;
}

async fn jwt_bearer(app: &App, assertion: &str, scope: Option<&str>) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let resp = app.http.post(app.url("/api/v1/oauth2/token")).form(&form).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The audience a partner's assertion for the first organization names: the
/// organization under our issuer (assertions are bound to one organization).
fn org_audience(app: &App) -> String {
    app.url(&format!("/api/v1/organizations/{}", app.boot.org_id))
}

/// Claims a good assertion carries, on the app's (injected) clock.
fn claims(app: &App, sub: &str) -> Value {
    let now = app.storage.clock.now_ms() / 1000;
    json!({
        "iss": PARTNER_ISS, "sub": sub, "aud": org_audience(app),
        "iat": now, "exp": now + 120, "jti": uuid::Uuid::now_v7().to_string(),
    })
}

async fn new_agent(app: &App, token: &str, scopes: Value) -> String {
    let body = json!({"name": "federated", "scopes": scopes});
    let (status, agent) = app.call(Method::POST, "/api/v1/agents", token, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    agent["id"].as_str().unwrap().to_string()
}

fn assert_invalid_grant(what: &str, (status, body): (StatusCode, Value)) -> String {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert_eq!(body["error"], "invalid_grant", "{what}: {body}");
    body["error_description"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pyjwt_partner_is_trusted_by_its_rules_and_its_jwks_is_fetched_sparingly() {
    for backend in backends() {
        let app = spawn_app_with(&backend, dev).await;
        let partner = PyPartner::start();
        let admin = app.admin_token().await;
        let agent = new_agent(&app, &admin, json!(["search:query", "files:read"])).await;
        let body = json!({
            "issuer": PARTNER_ISS,
            "jwks_uri": format!("{}/jwks.json", partner.base),
            "allowed_algs": ["ES256"],
            "allowed_subjects": {"kind": "prefix", "values": ["partner-agent-"]},
            "subject_mapping": {"kind": "table", "table": {"partner-agent-1": agent}},
            "allowed_scopes": ["search:query", "mail:send"],
            "max_assertion_lifetime": 300,
        });
        let (status, created) = app.call(Method::POST, "/api/v1/federation/partners", &admin, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["replay_protection"], true, "{created}");
        assert_eq!(created["jwks_status"]["source"], "not_fetched", "{created}");
        let id = created["id"].as_str().unwrap().to_string();

        // The exchange: scope = requested ∩ partner-allowed ∩ the agent's.
        let good = partner.sign(claims(&app, "partner-agent-1"), json!({})).await;
        let (status, token) = jwt_bearer(&app, &good, Some("search:query files:read mail:send")).await;
        assert_eq!(status, StatusCode::OK, "{token}");
        assert_eq!(token["scope"], "search:query", "{token}");
        let (_, payload) = jwt_parts(token["access_token"].as_str().unwrap());
        assert_eq!(payload["sub"], agent.as_str());
        assert_eq!(payload["client_id"], format!("federation:{id}"));
        assert_eq!(partner.fetches().await, 1);
        // Single-use jti, cluster-wide.
        assert!(assert_invalid_grant("replay", jwt_bearer(&app, &good, None).await).contains("jti"));

        // Refusals that fail the cheap checks never fetch.
        let now = app.storage.clock.now_ms() / 1000;
        let forged = [
            ("alg none", partner.sign(claims(&app, "partner-agent-1"), json!({"alg": "none"})).await),
            (
                "HS256 keyed with the public key",
                partner.sign(claims(&app, "partner-agent-1"), json!({"alg": "HS256-pubkey"})).await,
            ),
            (
                "unknown iss",
                partner.sign(json!({"iss": "https://other.example", "sub": "partner-agent-1"}), json!({})).await,
            ),
            ("malformed", "not.a.jwt".to_string()),
        ];
        for (what, jwt) in &forged {
            assert_invalid_grant(what, jwt_bearer(&app, jwt, None).await);
        }
        // Refusals after the signature: with a known kid, no fetch either.
        let mut expired = claims(&app, "partner-agent-1");
        expired["exp"] = json!(now - 40); // past the default 30 s of clock skew
        let mut wrong_aud = claims(&app, "partner-agent-1");
        wrong_aud["aud"] = json!("https://elsewhere.example");
        let mut too_long = claims(&app, "partner-agent-1");
        too_long["exp"] = json!(now + 3600);
        let mut stranger = claims(&app, "intruder");
        stranger["sub"] = json!("intruder");
        let mut unmapped = claims(&app, "partner-agent-2");
        unmapped["sub"] = json!("partner-agent-2");
        for (what, c, says) in [
            ("expired", expired, "expired"),
            ("wrong aud", wrong_aud, "aud"),
            ("beyond the partner's lifetime", too_long, "too far"),
            ("subject not allowed", stranger, "subject"),
            ("subject mapped to no agent", unmapped, "maps to no agent"),
        ] {
            let jwt = partner.sign(c, json!({})).await;
            let why = assert_invalid_grant(what, jwt_bearer(&app, &jwt, None).await);
            assert!(why.contains(says), "{what}: {why}");
        }
        assert_eq!(partner.fetches().await, 1, "cheap refusals caused a fetch");

        // A flood of unknown kids: within the cooldown, no fetch at all (the first fetch
        // began it); after it, exactly one.
        for _ in 0..20 {
            let jwt =
                partner.sign(claims(&app, "partner-agent-1"), json!({"kid": uuid::Uuid::now_v7().to_string()})).await;
            assert_invalid_grant("unknown kid", jwt_bearer(&app, &jwt, None).await);
        }
        assert_eq!(partner.fetches().await, 1, "a kid flood within the cooldown fetched");
        app.storage.clock.advance(Duration::from_secs(11));
        for _ in 0..20 {
            let jwt =
                partner.sign(claims(&app, "partner-agent-1"), json!({"kid": uuid::Uuid::now_v7().to_string()})).await;
            assert_invalid_grant("unknown kid", jwt_bearer(&app, &jwt, None).await);
        }
        assert_eq!(partner.fetches().await, 2, "a kid flood after the cooldown fetched more than once");

        // The partner rotates: its new kid is accepted after one refetch (past the cooldown).
        partner.post("/rotate", json!({})).await;
        app.storage.clock.advance(Duration::from_secs(11));
        let rotated = partner.sign(claims(&app, "partner-agent-1"), json!({})).await;
        let (status, body) = jwt_bearer(&app, &rotated, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(partner.fetches().await, 3);

        // The JWKS endpoint fails: the old keys go on working (stale-if-error), and the
        // record says what went wrong.
        partner.mode("fail").await;
        app.storage.clock.advance(Duration::from_secs(601));
        let admin = app.admin_token().await;
        for _ in 0..2 {
            let jwt = partner.sign(claims(&app, "partner-agent-1"), json!({})).await;
            let (status, body) = jwt_bearer(&app, &jwt, None).await;
            assert_eq!(status, StatusCode::OK, "stale keys refused: {body}");
        }
        let path = format!("/api/v1/federation/partners/{id}");
        let mut record = Value::Null;
        for _ in 0..200 {
            record = app.call(Method::GET, &path, &admin, None).await.1;
            if record["jwks_status"]["last_error"].is_string() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(record["jwks_status"]["last_error"].as_str().unwrap().contains("500"), "{record}");
        assert_eq!(record["jwks_status"]["keys"].as_array().unwrap().len(), 2, "{record}");

        // Hostile answers are errors of the partner, never of ours.
        for (mode, says) in [("huge", ""), ("redirect", "redirect")] {
            partner.mode(mode).await;
            let (status, refreshed) = app.call(Method::POST, &format!("{path}/refresh"), &admin, None).await;
            assert_eq!(status, StatusCode::OK, "{refreshed}");
            let error = refreshed["jwks_status"]["last_error"].as_str().unwrap_or_default();
            assert!(!error.is_empty() && error.contains(says), "{mode}: {refreshed}");
            assert_eq!(refreshed["jwks_status"]["keys"].as_array().unwrap().len(), 2, "{refreshed}");
        }
        partner.mode("ok").await;
        let (_, refreshed) = app.call(Method::POST, &format!("{path}/refresh"), &admin, None).await;
        assert!(refreshed["jwks_status"]["last_error"].is_null(), "{refreshed}");

        // /federation/verify: the claims and the partner, or why not.
        let jwt = partner.sign(claims(&app, "partner-agent-1"), json!({})).await;
        let (status, verdict) =
            app.call(Method::POST, "/api/v1/federation/verify", &admin, Some(json!({"token": jwt}))).await;
        assert_eq!(status, StatusCode::OK, "{verdict}");
        assert_eq!((verdict["valid"].as_bool(), verdict["partner_id"].as_str()), (Some(true), Some(id.as_str())));
        assert_eq!(verdict["agent_id"], agent.as_str());
        let (_, verdict) =
            app.call(Method::POST, "/api/v1/federation/verify", &admin, Some(json!({"token": forged[0].1}))).await;
        assert_eq!(verdict["valid"], false, "{verdict}");
        assert!(verdict["reason"].is_string(), "{verdict}");

        // A disabled partner is no partner.
        let (status, _) = app.call(Method::PATCH, &path, &admin, Some(json!({"enabled": false}))).await;
        assert_eq!(status, StatusCode::OK);
        let jwt = partner.sign(claims(&app, "partner-agent-1"), json!({})).await;
        assert!(
            assert_invalid_grant("disabled", jwt_bearer(&app, &jwt, None).await).contains("not a federation partner")
        );
        let (status, _) = app.call(Method::DELETE, &path, &admin, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(app.call(Method::GET, &path, &admin, None).await.0, StatusCode::NOT_FOUND);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_partner_definitions_are_4xx_that_name_the_field() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |_| {}).await;
        let admin = app.admin_token().await;
        let agent = uuid::Uuid::now_v7().to_string();
        let base = json!({
            "issuer": PARTNER_ISS,
            "jwks_uri": "https://8.8.8.8/jwks.json",
            "subject_mapping": {"kind": "claim", "claim": "agent"},
            "allowed_scopes": ["a"],
        });
        let (private, _) = agentidp_engine::families::signing::keys::SigningKey::generate(
            agentidp_engine::families::signing::keys::SigningAlg::Es256,
            0,
            0,
        )
        .unwrap();
        let mut private_jwk = private.jwk().clone();
        private_jwk["d"] = json!("AAAA");
        for (what, patch, field) in [
            (
                "plain http elsewhere than loopback in development",
                json!({"jwks_uri": "http://example.com/jwks"}),
                "jwks_uri",
            ),
            (
                "plain http to loopback without the development setting",
                json!({"jwks_uri": "http://127.0.0.1:9/jwks"}),
                "jwks_uri",
            ),
            ("a private address", json!({"jwks_uri": "https://10.0.0.1/jwks"}), "jwks_uri"),
            ("no key source", json!({"jwks_uri": null}), "jwks_uri"),
            ("two key sources", json!({"jwks": {"keys": [private.jwk()]}}), "jwks"),
            ("HMAC allowed", json!({"allowed_algs": ["HS256"]}), "allowed_algs"),
            ("none allowed", json!({"allowed_algs": ["none"]}), "allowed_algs"),
            ("an empty subject list", json!({"allowed_subjects": {"kind": "exact", "values": []}}), "allowed_subjects"),
            ("a lifetime of a week", json!({"max_assertion_lifetime": 604800}), "max_assertion_lifetime"),
            ("a bad scope", json!({"allowed_scopes": ["a b"]}), "allowed_scopes"),
            ("a bad expiry", json!({"expires_at": "tomorrow"}), "expires_at"),
            ("an empty issuer", json!({"issuer": ""}), "issuer"),
            ("an empty mapping table", json!({"subject_mapping": {"kind": "table", "table": {}}}), "subject_mapping"),
        ] {
            let mut body = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    body.as_object_mut().unwrap().remove(k);
                } else {
                    body[k] = v.clone();
                }
            }
            let (status, problem) = app.call(Method::POST, "/api/v1/federation/partners", &admin, Some(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {problem}");
            assert_eq!(problem["field"], field, "{what}: {problem}");
        }
        // A static JWKS holding a private key, an unknown member, a mapping of a bad kind.
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove("jwks_uri");
        body["jwks"] = json!({"keys": [private_jwk]});
        let (status, problem) = app.call(Method::POST, "/api/v1/federation/partners", &admin, Some(body)).await;
        assert_eq!((status, problem["field"].as_str()), (StatusCode::BAD_REQUEST, Some("jwks")), "{problem}");
        for bad in [json!({"surprise": 1}), json!({"subject_mapping": {"kind": "guess"}})] {
            let mut body = base.clone();
            for (k, v) in bad.as_object().unwrap() {
                body[k] = v.clone();
            }
            let (status, problem) = app.call(Method::POST, "/api/v1/federation/partners", &admin, Some(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        }
        // A static JWKS partner: created, and a second one with its issuer conflicts.
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove("jwks_uri");
        body["jwks"] = json!({"keys": [private.jwk()]});
        body["subject_mapping"] = json!({"kind": "table", "table": {"s": agent}});
        let (status, created) = app.call(Method::POST, "/api/v1/federation/partners", &admin, Some(body.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["jwks_status"]["source"], "static");
        assert_eq!(created["jwks_status"]["keys"].as_array().unwrap().len(), 1, "{created}");
        let (status, problem) = app.call(Method::POST, "/api/v1/federation/partners", &admin, Some(body)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        // Unknown ids, malformed ids, a bad verify body.
        let path = format!("/api/v1/federation/partners/{}", uuid::Uuid::now_v7());
        assert_eq!(app.call(Method::GET, &path, &admin, None).await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            app.call(Method::GET, "/api/v1/federation/partners/nope", &admin, None).await.0,
            StatusCode::BAD_REQUEST
        );
        let (status, _) = app.call(Method::POST, "/api/v1/federation/verify", &admin, Some(json!({"jwt": "x"}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // The grant without an assertion is a request error.
        let resp = app
            .http
            .post(app.url("/api/v1/oauth2/token"))
            .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{body}");
        // Discovery lists the grant.
        let meta: Value = app.http.get(app.url("/.well-known/oauth-authorization-server")).json_body().await;
        assert!(meta["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("urn:ietf:params:oauth:grant-type:jwt-bearer")));
        app.stop().await;
    }
}

/// A second `agentidp serve` is the partner IdP: its agent's token, exchanged there
/// (RFC 8693) for one whose audience is us, is exchanged here for one of ours; the
/// partner rotates its key and its new kid is accepted after one refetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_agentidp_is_a_partner_idp_and_its_key_rotation_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let command = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_agentidp"));
        for var in ["AGENTIDP_CONFIG", "AGENTIDP_LISTEN", "VAULT_ADDR", "DATABASE_URL", "REDIS_URL"] {
            cmd.env_remove(var);
        }
        cmd.env("AGENTIDP_DATA_DIR", dir.path())
            .env("AGENTIDP_LOG", "warn")
            .env("AGENTIDP_ISSUER", "http://partner-idp.test");
        cmd.args(args);
        cmd
    };
    let out = command(&["bootstrap", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let boot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let idp = ServeProcess::start(command(&["serve", "--key-preannounce", "0"])).await;
    wait_until_up(&format!("{}/.well-known/jwks.json", idp.base), "partner jwks").await;
    let http = reqwest::Client::new();
    let token_at = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{}/api/v1/oauth2/token", idp.base);
        async move {
            let resp = http.post(url).form(&form).send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            body["access_token"].as_str().unwrap().to_string()
        }
    };
    let credentials = |id: &str, secret: &str| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", id.to_string()),
            ("client_secret", secret.to_string()),
        ]
    };
    let idp_admin =
        token_at(credentials(boot["client_id"].as_str().unwrap(), boot["client_secret"].as_str().unwrap())).await;
    let idp_platform = token_at(credentials(
        boot["platform_client_id"].as_str().unwrap(),
        boot["platform_client_secret"].as_str().unwrap(),
    ))
    .await;
    let idp_agent = boot["agent_id"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| jwt_parts(&idp_admin).1["sub"].as_str().unwrap().to_string());

    for backend in backends() {
        let app = spawn_app_with(&backend, dev).await;
        let admin = app.admin_token().await;
        let agent = new_agent(&app, &admin, json!(["search:query"])).await;
        let body = json!({
            "issuer": "http://partner-idp.test",
            "jwks_uri": format!("{}/.well-known/jwks.json", idp.base),
            "subject_mapping": {"kind": "table", "table": {idp_agent.clone(): agent}},
            "allowed_scopes": ["search:query"],
            "max_assertion_lifetime": 900,
        });
        let (status, created) = app.call(Method::POST, "/api/v1/federation/partners", &admin, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        // At the partner: its own token exchanged for one addressed to us.
        let for_us = |subject: String| {
            token_at(vec![
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange".to_string()),
                ("client_id", boot["client_id"].as_str().unwrap().to_string()),
                ("client_secret", boot["client_secret"].as_str().unwrap().to_string()),
                ("subject_token", subject),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token".to_string()),
                ("audience", org_audience(&app)),
            ])
        };
        let assertion = for_us(idp_admin.clone()).await;
        let (status, token) = jwt_bearer(&app, &assertion, None).await;
        assert_eq!(status, StatusCode::OK, "{token}");
        assert_eq!(jwt_parts(token["access_token"].as_str().unwrap()).1["sub"], agent.as_str());
        assert_eq!(token["scope"], "search:query");
        let first_kid = jwt_parts(&assertion).0["kid"].clone();

        // The partner rotates; within the cooldown its new kid is refused, after it the
        // one refetch picks it up.
        let resp =
            http.post(format!("{}/api/v1/keys/rotate", idp.base)).bearer_auth(&idp_platform).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        let mut rotated = String::new();
        for _ in 0..100 {
            let subject =
                token_at(credentials(boot["client_id"].as_str().unwrap(), boot["client_secret"].as_str().unwrap()))
                    .await;
            rotated = for_us(subject).await;
            if jwt_parts(&rotated).0["kid"] != first_kid {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_ne!(jwt_parts(&rotated).0["kid"], first_kid, "the partner never signed with its new key");
        assert_invalid_grant("new kid within the cooldown", jwt_bearer(&app, &rotated, None).await);
        app.storage.clock.advance(Duration::from_secs(11));
        let (status, body) = jwt_bearer(&app, &rotated, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, record) =
            app.call(Method::GET, &format!("/api/v1/federation/partners/{id}"), &app.admin_token().await, None).await;
        assert!(record["jwks_status"]["keys"].as_array().unwrap().len() >= 2, "{record}");
        app.stop().await;
    }
}
