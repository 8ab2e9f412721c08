//! Issue 28, the second outside probe: no victim lockout from another address, no
//! unbounded writes from anonymous refusals, no DPoP proof carrying a private key, no
//! partner key off its curve.

use std::net::{IpAddr, Ipv4Addr};

use agentidp_engine::Clock as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::jose::ClientKey;
use crate::support::{backends, spawn_app, App, JsonBody};

const NIL_ORG: &str = "00000000-0000-0000-0000-000000000000";

/// An HTTP client whose connections come from `127.0.0.<n>` (another address on
/// loopback, as another machine would be).
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))).build().unwrap()
}

async fn token_status(http: &reqwest::Client, app: &App, id: &str, secret: &str) -> StatusCode {
    let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)];
    http.post(app.url("/api/v1/oauth2/token")).form(&form).send().await.unwrap().status()
}

/// Item 3: an attacker who does not hold the secret locks the client out from its own
/// address only; the victim, from another address, is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secrets_from_one_address_do_not_lock_the_victim_out_elsewhere() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let (_, id, secret) = app.agent_with_credential(&admin, json!({"name": "victim"})).await;
        let (attacker, victim) = (client_from(2), client_from(3));
        let mut served = 0;
        for round in 0..40 {
            let status = token_status(&attacker, &app, &id, "aidp_sk_wrong").await;
            let expected = if round <= 10 { StatusCode::UNAUTHORIZED } else { StatusCode::TOO_MANY_REQUESTS };
            assert_eq!(status, expected, "attacker round {round}");
            for _ in 0..2 {
                if token_status(&victim, &app, &id, &secret).await == StatusCode::OK {
                    served += 1;
                }
            }
        }
        assert_eq!(served, 80, "the victim is served from its own address");
        // The attacker's address holds the right secret too: locked there, for the window.
        assert_eq!(token_status(&attacker, &app, &id, &secret).await, StatusCode::TOO_MANY_REQUESTS);
        app.storage.clock.advance(std::time::Duration::from_secs(61));
        assert_eq!(token_status(&attacker, &app, &id, &secret).await, StatusCode::OK);
        app.stop().await;
    }
}

async fn nil_org_events(app: &App, platform: &str, action: &str) -> Vec<Value> {
    let path = format!("/api/v1/audit-events?action={action}&org_id={NIL_ORG}&limit=200");
    let (status, page) = app.call(Method::GET, &path, platform, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Item 4: garbage JWT-bearer assertions and unknown client ids from one address write
/// one audit event per window, not one each; past the address's failure budget the
/// address is refused before any work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_refusals_do_not_grow_the_store_without_bound() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let platform = app.platform_token().await;
        let before = nil_org_events(&app, &platform, "token.issue").await.len();
        let flooder = client_from(4);
        let mut statuses = Vec::new();
        for i in 0..150 {
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string()),
                ("assertion", format!("eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJnYXJiYWdlIn0.{i}")),
            ];
            statuses.push(flooder.post(app.url("/api/v1/oauth2/token")).form(&form).send().await.unwrap().status());
        }
        assert!(statuses[..100].iter().all(|s| *s == StatusCode::BAD_REQUEST), "{statuses:?}");
        assert!(statuses[101..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
        let written = nil_org_events(&app, &platform, "token.issue").await.len() - before;
        assert_eq!(written, 1, "one refusal event per address and window");
        assert_eq!(nil_org_events(&app, &platform, "auth.locked").await.len(), 1, "and one lockout");

        let sprayer = client_from(5);
        for i in 0..50 {
            assert_eq!(
                token_status(&sprayer, &app, &format!("aidp_ci_unknown{i}"), "aidp_sk_x").await,
                StatusCode::UNAUTHORIZED
            );
        }
        let failures = nil_org_events(&app, &platform, "client.authenticate").await;
        assert_eq!(failures.len(), 1, "{failures:?}");
        // The next window's event says how many went unwritten.
        app.storage.clock.advance(std::time::Duration::from_secs(61));
        token_status(&sprayer, &app, "aidp_ci_unknown_again", "aidp_sk_x").await;
        let failures = nil_org_events(&app, &platform, "client.authenticate").await;
        assert_eq!(failures.len(), 2);
        assert!(failures.iter().any(|e| e["detail"]["unwritten_before"] == 49), "{failures:?}");

        let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let name = "agentidp_anonymous_refusals_total";
        assert_eq!(metric(&text, name, r#"action="token.issue",audit="sampled_out""#), 100.0, "{text}");
        assert_eq!(metric(&text, name, r#"action="client.authenticate",audit="sampled_out""#), 49.0);
        app.stop().await;
    }
}

/// Item 6: RFC 9449 §4.2 — a proof whose `jwk` holds a private key is refused at the
/// token endpoint and on the management API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_proof_carrying_a_private_key_is_refused_everywhere() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let (agent, id, secret) =
            app.agent_with_credential(&admin, json!({"name": "d", "scopes": ["agents:read"]})).await;
        let key = ClientKey::es256();
        let token_url = app.url("/api/v1/oauth2/token");
        let now = app.storage.clock.now_ms() / 1000;
        let form =
            [("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", secret.as_str())];
        let send = |proof: String| app.http.post(&token_url).header("DPoP", proof).form(&form).send();
        let resp = send(key.dpop_with_private_jwk("POST", &token_url, now, None)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
        assert!(body["error_description"].as_str().unwrap().contains("private"), "{body}");
        // The same key's public proof works, and on the API a private-key proof does not.
        let resp = send(key.dpop("POST", &token_url, now, None)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let token = resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
        let url = app.url(&format!("/api/v1/agents/{}", agent["id"].as_str().unwrap()));
        let call = |proof: String| {
            app.http.get(&url).header("authorization", format!("DPoP {token}")).header("DPoP", proof).send()
        };
        assert_eq!(
            call(key.dpop_with_private_jwk("GET", &url, now, Some(&token))).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(call(key.dpop("GET", &url, now, Some(&token))).await.unwrap().status(), StatusCode::OK);
        app.stop().await;
    }
}

/// Item 14: a static partner JWKS (or a credential's key) whose EC point is not on the
/// curve is refused at registration, naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ec_key_off_its_curve_is_refused_at_registration() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let mut jwk = ClientKey::es256().jwk;
        // y of another point: (x, y') is on no curve we know.
        jwk["y"] = ClientKey::es256().jwk["y"].clone();
        let body = json!({"issuer": "https://off-curve.example", "jwks": {"keys": [jwk.clone()]},
                          "subject_mapping": {"kind": "claim", "claim": "agent"}, "allowed_scopes": ["a"]});
        let (status, problem) = app.call(Method::POST, "/api/v1/federation/partners", &admin, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert_eq!(problem["field"], "jwks");
        assert!(problem["detail"].as_str().unwrap().contains("curve"), "{problem}");
        let agent = app.boot.agent_id;
        let (status, problem) = app
            .call(
                Method::POST,
                &format!("/api/v1/agents/{agent}/credentials"),
                &admin,
                Some(json!({"type": "private_key_jwt", "jwk": jwk})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        app.stop().await;
    }
}

/// Item 16: the contract says what the server accepts — every webhook event type the
/// server lists is in the schema's enum, and a scope is schema-valid exactly when the
/// server accepts it for an agent (checked by Python's `jsonschema` on the served
/// document, as a client generated from it would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_names_what_the_server_accepts() {
    let backend = backends().remove(0);
    let app = spawn_app(&backend).await;
    let platform = app.platform_token().await;
    let doc: Value = app.http.get(app.url("/openapi.json")).json_body().await;
    let (_, types) = app.call(Method::GET, "/api/v1/webhooks/event-types", &platform, None).await;
    let schema_types = doc["components"]["schemas"]["NewWebhook"]["properties"]["event_types"]["items"]["enum"]
        .as_array()
        .unwrap()
        .clone();
    for t in types["items"].as_array().unwrap() {
        assert!(schema_types.contains(&t["name"]), "{} is accepted but not in the contract", t["name"]);
    }
    assert!(schema_types.contains(&json!("organization.tier_changed")));

    let scopes = [
        "agents:read",
        "platform:admin",
        "search:query",
        "mail:send",
        "AGENTS:READ",
        "agents:*",
        "*",
        "agents",
        "Platform:anything",
        "agentsmith:run",
        "tokens",
        "webhooks:write:extra",
    ];
    let schema = &doc["components"]["schemas"]["NewAgent"]["properties"]["scopes"]["items"];
    let script = "import json, sys, jsonschema\n\
                  schema, values = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n\
                  v = jsonschema.Draft202012Validator(schema)\n\
                  print(json.dumps([v.is_valid(s) for s in values]))";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &schema.to_string(), &json!(scopes).to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let valid: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap();
    for (scope, schema_valid) in scopes.iter().zip(valid) {
        let body = json!({"name": format!("s-{}", uuid::Uuid::now_v7()), "scopes": [scope]});
        let (status, answer) = app.call(Method::POST, "/api/v1/agents", &platform, Some(body)).await;
        assert_eq!(
            status == StatusCode::CREATED,
            schema_valid,
            "{scope:?}: schema says {schema_valid}, server {answer}"
        );
    }
    app.stop().await;
}
