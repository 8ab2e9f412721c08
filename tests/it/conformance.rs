//! Conformance with mainstream client libraries, used as their users would: Python
//! Authlib (client_secret_basic, client_secret_post, private_key_jwt), PyJWT across a key
//! rotation, and node openid-client (discovery, client_credentials, introspection,
//! revocation, and RFC 8414 discovery of an issuer with a path, also checked by Authlib's
//! strict metadata validator). `scripts/test` installs them; a missing one fails the test.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::jose::ClientKey;
use crate::support::{backends, jwt_parts, spawn_app, spawn_app_with, JsonBody};

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// Run a client program; its last stdout line is JSON.
async fn run(program: &str, args: Vec<String>) -> Value {
    let program = program.to_string();
    let out = tokio::task::spawn_blocking(move || Command::new(&program).args(&args).output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run a conformance client: {e}"));
    assert!(
        out.status.success(),
        "conformance client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_authenticates_with_every_method() {
    let app = spawn_app(&backends()[0]).await;
    let admin = app.admin_token().await;
    let (agent, id, secret) = app.agent_with_credential(&admin, json!({"name": "authlib"})).await;
    let script = conformance_dir().join("authlib_client.py").display().to_string();
    for method in ["client_secret_basic", "client_secret_post"] {
        let out =
            run("python3", vec![script.clone(), app.base.clone(), method.into(), id.clone(), secret.clone()]).await;
        assert_eq!(out["client_id"], id, "{method}");
        assert_eq!(out["token_type"], "Bearer");
    }
    let key = ClientKey::es256();
    let creds = format!("/api/v1/agents/{}/credentials", agent["id"].as_str().unwrap());
    let (_, cred) =
        app.call(Method::POST, &creds, &admin, Some(json!({"type": "private_key_jwt", "jwk": key.jwk}))).await;
    let key_client = cred["client_id"].as_str().unwrap().to_string();
    let pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pem.path(), key.pem()).unwrap();
    let out = run(
        "python3",
        vec![script, app.base.clone(), "private_key_jwt".into(), key_client.clone(), pem.path().display().to_string()],
    )
    .await;
    assert_eq!(out["client_id"], key_client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_tokens_from_before_and_after_a_rotation() {
    // Activation is immediate here so PyJWT (on the real clock) sees no future iat;
    // the pre-announcement itself is tested in lifecycle.rs.
    let app = spawn_app_with(&backends()[0], |c| c.key_preannounce = Duration::ZERO).await;
    let before = app.admin_token().await;
    // The test clock is frozen; a rotation at the very same millisecond would tie.
    app.storage.clock.advance(Duration::from_millis(1));
    app.engine.rotate_keys(None).await.unwrap();
    let after = app.admin_token().await;
    assert_ne!(jwt_parts(&before).0["kid"], jwt_parts(&after).0["kid"]);
    let script = conformance_dir().join("pyjwt_rotation.py").display().to_string();
    let out = run("python3", vec![script, app.base.clone(), before, after]).await;
    assert_eq!(out["verified"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_openid_client_discovers_issues_introspects_and_revokes() {
    let app = spawn_app(&backends()[0]).await;
    let admin = app.admin_token().await;
    let (_, id, secret) = app.agent_with_credential(&admin, json!({"name": "node", "scopes": ["agents:read"]})).await;
    let script = conformance_dir().join("node/openid_client.mjs").display().to_string();
    let out = run("node", vec![script, app.base.clone(), id.clone(), secret]).await;
    assert_eq!(out["issuer"], app.base);
    assert_eq!(out["scope"], "agents:read");
    assert_eq!(out["active"], true);
    assert_eq!(out["introspected_client_id"], id);
    assert_eq!(out["active_after_revocation"], false);
}

/// Both strict readers of RFC 8414 accept the metadata of an https issuer with a path,
/// found where §3 puts it: Authlib's validator, and node openid-client's discovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_validators_accept_the_metadata_of_an_issuer_with_a_path() {
    let issuer = "https://idp.example/tenant";
    let app = spawn_app_with(&backends()[0], |c| c.issuer = issuer.into()).await;
    let script = conformance_dir().join("discovery_strict.py").display().to_string();
    let out = run("python3", vec![script, app.base.clone(), issuer.into()]).await;
    assert_eq!(out["well_known_path"], "/.well-known/oauth-authorization-server/tenant");
    assert_eq!(out["issuer"], issuer);
    assert_eq!(out["response_types_supported"], json!(["none"]));

    let admin = app.admin_token().await;
    let (_, id, secret) = app.agent_with_credential(&admin, json!({"name": "node", "scopes": ["agents:read"]})).await;
    let script = conformance_dir().join("node/discovery_path.mjs").display().to_string();
    let out = run("node", vec![script, app.base.clone(), issuer.into(), id, secret]).await;
    assert_eq!(out["issuer"], issuer);
    assert_eq!(out["discovery_path"], "/.well-known/oauth-authorization-server/tenant");
    assert_eq!((out["token_type"].as_str(), out["active"].as_bool()), (Some("bearer"), Some(true)), "{out}");
    // The document is also served without the path, for a proxy that strips it.
    let meta: Value = app.http.get(app.url("/.well-known/oauth-authorization-server")).json_body().await;
    assert_eq!(meta["token_endpoint"], format!("{issuer}/api/v1/oauth2/token"));
    let other = app.http.get(app.url("/.well-known/oauth-authorization-server/other")).send().await.unwrap();
    assert_eq!(other.status(), reqwest::StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sfv_parses_the_ratelimit_headers_until_the_quota_refuses() {
    let app = spawn_app_with(&backends()[0], |c| c.tiers.free.calls_per_day = Some(6)).await;
    let script = conformance_dir().join("ratelimit_sfv.py").display().to_string();
    let out =
        run("python3", vec![script, app.base.clone(), app.boot.client_id.clone(), app.boot.client_secret.clone()])
            .await;
    // The token took one call of six; five calls were admitted, counting down to zero.
    assert_eq!(out["quota"], 6, "{out}");
    assert_eq!(out["remaining_seen"], json!([5, 4, 3, 2, 1, 0]), "{out}");
    assert_eq!(
        (out["problem"].as_str(), out["oauth_error"].as_str()),
        (Some("urn:agentidp:problem:quota-exceeded"), Some("quota_exceeded"))
    );
    assert!(out["retry_after"].as_u64().unwrap() >= out["reset"].as_u64().unwrap(), "{out}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_a_delegation_token_and_reads_its_nested_act() {
    let app = spawn_app(&backends()[0]).await;
    let admin = app.admin_token().await;
    let mut agents = Vec::new();
    for name in ["a", "b", "c"] {
        let (agent, id, secret) =
            app.agent_with_credential(&admin, json!({"name": name, "scopes": ["search:query"]})).await;
        agents.push((agent["id"].as_str().unwrap().to_string(), app.token(&id, &secret, None).await));
    }
    let delegate = |token: String, to: String| {
        let app = &app;
        async move {
            let body = json!({"delegatee_id": to});
            let (status, out) = app.call(Method::POST, "/api/v1/oauth2/token/delegate", &token, Some(body)).await;
            assert_eq!(status, reqwest::StatusCode::CREATED, "{out}");
            out
        }
    };
    let one = delegate(agents[0].1.clone(), agents[1].0.clone()).await;
    let two = delegate(one["token"].as_str().unwrap().to_string(), agents[2].0.clone()).await;
    let script = conformance_dir().join("pyjwt_delegation.py").display().to_string();
    let out = run("python3", vec![script, app.base.clone(), two["token"].as_str().unwrap().to_string()]).await;
    assert_eq!(out["sub"], agents[2].0.as_str());
    assert_eq!(out["actors"], json!([agents[1].0, agents[0].0]), "the latest actor first, then the one before");
    assert_eq!(
        (out["chain_id"].clone(), out["delegation_id"].clone()),
        (one["chain_id"].clone(), two["delegation_id"].clone())
    );
    assert_eq!(out["scope"], "search:query");
    app.stop().await;
}

/// A biscuit delegation in biscuit-python's hands: verified offline with the published
/// key, attenuated offline, and the attenuated token accepted by verify-delegation with
/// the narrower scope — then refused once the chain is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn biscuit_python_attenuates_a_delegation_offline_and_revocation_reaches_it() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let scopes = ["agents:read", "search:query", "tokens:introspect"];
        let (a, a_id, a_secret) = app.agent_with_credential(&admin, json!({"name": "a", "scopes": scopes})).await;
        let (b, _, _) = app.agent_with_credential(&admin, json!({"name": "b", "scopes": scopes})).await;
        let _ = a;
        let a_token = app.token(&a_id, &a_secret, None).await;
        let body = json!({"delegatee_id": b["id"], "scope": "agents:read search:query", "token_format": "biscuit"});
        let (status, issued) = app.call(Method::POST, "/api/v1/oauth2/token/delegate", &a_token, Some(body)).await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{issued}");
        assert_eq!(
            (issued["token_type"].as_str(), issued["token_format"].as_str()),
            (Some("Biscuit"), Some("biscuit"))
        );
        let token = issued["token"].as_str().unwrap().to_string();

        let script = conformance_dir().join("biscuit_attenuate.py").display().to_string();
        let out = run("python3", vec![script, app.base.clone(), token.clone(), "search:query".into()]).await;
        assert_eq!(out["scopes"], json!(["agents:read", "search:query"]), "{out}");
        assert_eq!(out["offline"], json!({"agents:read": true, "search:query": true}), "{out}");
        assert_eq!(out["attenuated_offline"], json!({"agents:read": false, "search:query": true}), "{out}");
        assert_eq!((out["blocks"].as_u64(), out["same_revocation_root"].as_bool()), (Some(2), Some(true)));
        let attenuated = out["token"].as_str().unwrap().to_string();

        let verify = |token: String| {
            let (app, a_token) = (&app, &a_token);
            async move {
                let body = json!({"token": token});
                let (status, v) =
                    app.call(Method::POST, "/api/v1/oauth2/token/verify-delegation", a_token, Some(body)).await;
                assert_eq!(status, reqwest::StatusCode::OK, "{v}");
                v
            }
        };
        let whole = verify(token.clone()).await;
        assert_eq!((whole["valid"].as_bool(), whole["scope"].as_str()), (Some(true), Some("agents:read search:query")));
        assert_eq!(whole["token_format"], "biscuit");
        let narrowed = verify(attenuated.clone()).await;
        assert_eq!(
            (narrowed["valid"].as_bool(), narrowed["scope"].as_str()),
            (Some(true), Some("search:query")),
            "{narrowed}"
        );
        assert_eq!(narrowed["delegation_id"], issued["delegation_id"]);
        // A tampered biscuit is refused.
        let mut tampered: Vec<char> = attenuated.chars().collect();
        let at = tampered.len() / 2;
        tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
        let tampered: String = tampered.into_iter().collect();
        assert_eq!(verify(tampered).await["valid"], false);

        let revocations = || async {
            let url = app.url("/.well-known/biscuit-revocations");
            app.http.get(url).send().await.unwrap().json::<Value>().await.unwrap()["revocation_ids"].clone()
        };
        assert_eq!(revocations().await, json!([]));
        let link = issued["delegation_id"].as_str().unwrap();
        let (status, _) = app.call(Method::DELETE, &format!("/api/v1/delegations/{link}"), &a_token, None).await;
        assert_eq!(status, reqwest::StatusCode::OK);
        // Offline verifiers learn it too: the authority block's id, which the attenuated
        // token carries first.
        assert_eq!(revocations().await, json!([out["revocation_ids"][0]]), "{out}");
        assert_eq!(verify(token).await, json!({"valid": false, "reason": "revoked"}));
        assert_eq!(
            verify(attenuated).await,
            json!({"valid": false, "reason": "revoked"}),
            "every attenuated descendant"
        );
        app.stop().await;
    }
}
