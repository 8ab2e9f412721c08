//! Agent-to-agent delegation (issue 12): chains of hops that only narrow, nested `act`,
//! verification with its reasons, revocation with cascade (on one node and across two),
//! tenant isolation, and bad input.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{backends, jwt_parts, spawn_app, App, TestApp};

const SCOPES: [&str; 4] = ["agents:read", "files:read", "search:query", "tokens:introspect"];

/// An agent holding `scopes`, and a token of it holding all of them.
async fn agent(app: &App, admin: &str, name: &str, scopes: &[&str]) -> (String, String) {
    let (agent, id, secret) = app.agent_with_credential(admin, json!({"name": name, "scopes": scopes})).await;
    (agent["id"].as_str().unwrap().to_string(), app.token(&id, &secret, None).await)
}

async fn delegate(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, "/api/v1/oauth2/token/delegate", token, Some(body)).await
}

async fn verify(app: &TestApp, service: &str, token: &str) -> Value {
    let (status, body) =
        app.call(Method::POST, "/api/v1/oauth2/token/verify-delegation", service, Some(json!({"token": token}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn token_of(body: &Value) -> String {
    body["token"].as_str().unwrap_or_else(|| panic!("no token: {body}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_hop_chain_narrows_nests_act_and_cascades_on_revocation() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let (a, a_token) = agent(&app, &admin, "a", &SCOPES).await;
        let (b, _) = agent(&app, &admin, "b", &SCOPES).await;
        let (c, _) = agent(&app, &admin, "c", &SCOPES[..3]).await;
        let (d, _) = agent(&app, &admin, "d", &["search:query"]).await;
        let (e, _) = agent(&app, &admin, "e", &["search:query"]).await;

        // Hop 1: A → B, three of A's four scopes, for ten minutes.
        let (status, one) = delegate(
            &app,
            &a_token,
            json!({"delegatee_id": b, "scope": "agents:read files:read search:query", "expires_in": 600}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{one}");
        assert_eq!(
            (one["depth"].as_u64(), one["scope"].as_str()),
            (Some(1), Some("agents:read files:read search:query"))
        );
        assert_eq!(one["chain_id"], one["delegation_id"], "the root's id is the chain's");
        let b_token = token_of(&one);
        let (_, claims) = jwt_parts(&b_token);
        assert_eq!((claims["sub"].as_str(), claims["act"].clone()), (Some(b.as_str()), json!({"sub": a})));

        // Hop 2: B → C. Asking for a scope B's token lacks is refused, not dropped.
        let (status, widened) =
            delegate(&app, &b_token, json!({"delegatee_id": c, "scope": "agents:read tokens:introspect"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{widened}");
        assert_eq!(widened["field"], "scope", "{widened}");
        // A longer life than B's is clamped to B's; all of B's scope that C may hold.
        let (status, two) = delegate(&app, &b_token, json!({"delegatee_id": c, "expires_in": 3000})).await;
        assert_eq!(status, StatusCode::CREATED, "{two}");
        assert_eq!(two["scope"], "agents:read files:read search:query");
        assert_eq!(two["expires_at"], one["expires_at"], "expiry never extends");
        assert_eq!(two["chain_id"], one["chain_id"]);
        let c_token = token_of(&two);
        let (_, claims) = jwt_parts(&c_token);
        assert_eq!(claims["act"], json!({"sub": b, "act": {"sub": a}}), "the outermost act is the latest actor");
        assert_eq!(claims["chain_id"], one["chain_id"]);

        // A cycle back to A is refused.
        let (status, cycle) = delegate(&app, &c_token, json!({"delegatee_id": a})).await;
        assert_eq!((status, cycle["field"].as_str()), (StatusCode::BAD_REQUEST, Some("delegatee_id")), "{cycle}");
        // Hop 3: C → D (only what D may hold), then the depth cap (3) stops D → E.
        let (status, three) = delegate(&app, &c_token, json!({"delegatee_id": d})).await;
        assert_eq!(status, StatusCode::CREATED, "{three}");
        assert_eq!((three["scope"].as_str(), three["depth"].as_u64()), (Some("search:query"), Some(3)));
        let d_token = token_of(&three);
        let (status, deep) = delegate(&app, &d_token, json!({"delegatee_id": e})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{deep}");
        assert!(deep["detail"].as_str().unwrap().contains("depth cap of 3"), "{deep}");

        // Verified by a service of the organization, with the whole chain.
        let service = a_token.clone();
        let v = verify(&app, &service, &d_token).await;
        assert_eq!(v["valid"], true, "{v}");
        assert_eq!((v["delegator_id"].as_str(), v["delegatee_id"].as_str()), (Some(c.as_str()), Some(d.as_str())));
        let hops: Vec<(&str, &str)> = v["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["delegator_id"].as_str().unwrap(), h["delegatee_id"].as_str().unwrap()))
            .collect();
        assert_eq!(hops, vec![(a.as_str(), b.as_str()), (b.as_str(), c.as_str()), (c.as_str(), d.as_str())]);
        // Introspection keeps act and the chain (keycloak #53029 dropped act).
        let form = [("token", c_token.as_str())];
        let resp = app.http.post(app.url("/api/v1/oauth2/introspect")).bearer_auth(&admin).form(&form).send();
        let intro: Value = resp.await.unwrap().json().await.unwrap();
        assert_eq!(
            (intro["active"].as_bool(), intro["act"].clone()),
            (Some(true), json!({"sub": b, "act": {"sub": a}}))
        );
        assert_eq!(intro["delegation_id"], two["delegation_id"], "{intro}");
        // C's token works on the management API within its scope.
        assert_eq!(app.call(Method::GET, "/api/v1/agents", &c_token, None).await.0, StatusCode::OK);

        // The listing and one link with its hops.
        let (_, page) = app.call(Method::GET, &format!("/api/v1/delegations?delegator_id={b}"), &admin, None).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
        let (status, view) = app
            .call(
                Method::GET,
                &format!("/api/v1/delegations/{}", three["delegation_id"].as_str().unwrap()),
                &admin,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["hops"].as_array().unwrap().len(), 3, "{view}");

        // A revokes its link: B's, C's and D's tokens all stop, at once.
        let root = one["delegation_id"].as_str().unwrap();
        let (status, revoked) = app.call(Method::DELETE, &format!("/api/v1/delegations/{root}"), &a_token, None).await;
        assert_eq!(status, StatusCode::OK, "{revoked}");
        assert_eq!(revoked["revoked"].as_array().unwrap().len(), 3, "{revoked}");
        for token in [&b_token, &c_token, &d_token] {
            assert_eq!(verify(&app, &service, token).await, json!({"valid": false, "reason": "revoked"}));
        }
        assert_eq!(app.call(Method::GET, "/api/v1/agents", &c_token, None).await.0, StatusCode::UNAUTHORIZED);
        let (_, page) = app.call(Method::GET, "/api/v1/delegations?status=revoked", &admin, None).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 3, "{page}");
        // Revoking again revokes nothing more; the refusals were audited.
        let (_, again) = app.call(Method::DELETE, &format!("/api/v1/delegations/{root}"), &a_token, None).await;
        assert_eq!(again, json!({"revoked": []}));
        let (_, events) =
            app.call(Method::GET, "/api/v1/audit-events?action=delegation.verify&outcome=failure", &admin, None).await;
        assert_eq!(events["items"].as_array().unwrap().len(), 3, "{events}");
        let (_, summary) = app.call(Method::GET, "/api/v1/analytics/summary", &admin, None).await;
        let t = &summary["totals"];
        assert_eq!(
            (t["delegations_created"].as_u64(), t["delegations_revoked"].as_u64()),
            (Some(3), Some(3)),
            "{summary}"
        );
        assert_eq!(t["delegations_verified"], 1, "{summary}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_stands_only_while_its_agents_are_active_and_in_its_organization() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let (a, a_token) = agent(&app, &admin, "a", &SCOPES).await;
        let (b, b_client, b_secret) = app.agent_with_credential(&admin, json!({"name": "b", "scopes": SCOPES})).await;
        let b = b["id"].as_str().unwrap().to_string();
        let (_, one) = delegate(&app, &a_token, json!({"delegatee_id": b, "scope": "agents:read"})).await;
        let b_token = token_of(&one);
        let service = a_token.clone();
        assert_eq!(verify(&app, &service, &b_token).await["valid"], true);

        // Suspending the delegatee invalidates the chain while it lasts.
        let (status, _) = app.call(Method::POST, &format!("/api/v1/agents/{b}/suspend"), &admin, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(verify(&app, &service, &b_token).await, json!({"valid": false, "reason": "agent_suspended"}));
        app.call(Method::POST, &format!("/api/v1/agents/{b}/reactivate"), &admin, None).await;
        assert_eq!(verify(&app, &service, &b_token).await["valid"], true);
        // Its holder exchanging it (RFC 8693) keeps the actor and the chain: a token that
        // names an actor never becomes one that does not.
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("client_id", b_client.as_str()),
            ("client_secret", b_secret.as_str()),
            ("subject_token", b_token.as_str()),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
        ];
        let resp = app.http.post(app.url("/api/v1/oauth2/token")).form(&form).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let exchanged: Value = resp.json().await.unwrap();
        let exchanged = exchanged["access_token"].as_str().unwrap().to_string();
        let (_, claims) = jwt_parts(&exchanged);
        assert_eq!((claims["act"].clone(), claims["chain_id"].clone()), (json!({"sub": a}), one["chain_id"].clone()));
        assert_eq!(verify(&app, &service, &exchanged).await["valid"], true);

        // Not a delegation, garbage, another organization's view.
        let plain = app.admin_token().await;
        assert_eq!(verify(&app, &service, &plain).await, json!({"valid": false, "reason": "not_a_delegation"}));
        assert_eq!(verify(&app, &service, "not.a.jwt").await, json!({"valid": false, "reason": "malformed"}));
        // One character of the signature changed (inside it, so it still decodes).
        let mut forged: Vec<char> = b_token.chars().collect();
        let at = forged.len() - 10;
        forged[at] = if forged[at] == 'A' { 'B' } else { 'A' };
        let forged: String = forged.into_iter().collect();
        assert_eq!(verify(&app, &service, &forged).await["reason"], "bad_signature");

        let platform = app.platform_token().await;
        let (_, org) = app.call(Method::POST, "/api/v1/organizations", &platform, Some(json!({"name": "other"}))).await;
        let other = org["id"].as_str().unwrap();
        let body = json!({"name": "outsider", "org_id": other, "scopes": ["agents:read", "tokens:introspect"]});
        let (outsider, o_id, o_secret) = app.agent_with_credential(&platform, body).await;
        let outsider_token = app.token(&o_id, &o_secret, None).await;
        // No delegating to another organization's agent.
        let (status, body) =
            delegate(&app, &a_token, json!({"delegatee_id": outsider["id"], "scope": "agents:read"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["detail"], "delegatee (an agent of the organization) not found");
        // The other organization learns nothing of this chain, and lists none of it.
        assert_eq!(verify(&app, &outsider_token, &b_token).await, json!({"valid": false, "reason": "unknown_chain"}));
        let (_, page) = app.call(Method::GET, "/api/v1/delegations", &outsider_token, None).await;
        assert_eq!(page["items"], json!([]), "{page}");
        let org_id = app.boot.org_id;
        let (status, _) =
            app.call(Method::GET, &format!("/api/v1/delegations?org_id={org_id}"), &outsider_token, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let link = one["delegation_id"].as_str().unwrap();
        let (status, _) = app.call(Method::DELETE, &format!("/api/v1/delegations/{link}"), &outsider_token, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "not its delegator, and no agents:write");
        assert_eq!(verify(&app, &service, &b_token).await["valid"], true, "the link stands");

        // Deleting the delegatee ends the chain for good.
        let (status, _) = app.call(Method::DELETE, &format!("/api/v1/agents/{b}"), &admin, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(verify(&app, &service, &b_token).await, json!({"valid": false, "reason": "agent_deleted"}));
        assert_eq!(verify(&app, &service, &exchanged).await["reason"], "agent_deleted", "the exchange died with it");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_marks_scopes_non_delegable_and_lowers_the_depth_cap() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let org = format!("/api/v1/organizations/{}", app.boot.org_id);
        let settings_of = format!("{org}/delegation");
        let (_, a_token) = agent(&app, &admin, "a", &SCOPES).await;
        let (b, _) = agent(&app, &admin, "b", &SCOPES).await;
        let (c, _) = agent(&app, &admin, "c", &SCOPES).await;

        // The organization keeps files:read to itself and allows one hop.
        let settings = json!({"non_delegable_scopes": ["files:read", "files:read"], "max_depth": 1});
        let (status, body) = app.call(Method::PUT, &settings_of, &admin, Some(settings)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["delegation"], json!({"non_delegable_scopes": ["files:read"], "max_depth": 1}));
        let (_, read) = app.call(Method::GET, &org, &admin, None).await;
        assert_eq!(read["delegation"], body["delegation"], "stored as answered");

        let (status, refused) = delegate(&app, &a_token, json!({"delegatee_id": b, "scope": "files:read"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
        assert!(refused["detail"].as_str().unwrap().contains("org_non_delegable"), "{refused}");
        let (status, one) = delegate(&app, &a_token, json!({"delegatee_id": b, "scope": "search:query"})).await;
        assert_eq!(status, StatusCode::CREATED, "{one}");
        let (status, deep) = delegate(&app, &token_of(&one), json!({"delegatee_id": c})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{deep}");
        assert!(deep["detail"].as_str().unwrap().contains("org_max_depth"), "{deep}");

        // Lifting the settings (an empty object) lets the second hop through; the
        // memoized refusal was for the old settings only.
        let (status, body) = app.call(Method::PUT, &settings_of, &admin, Some(json!({}))).await;
        assert_eq!((status, body["delegation"].clone()), (StatusCode::OK, json!({"non_delegable_scopes": []})));
        let (status, two) = delegate(&app, &token_of(&one), json!({"delegatee_id": c})).await;
        assert_eq!(status, StatusCode::CREATED, "{two}");
        // max_depth 0 turns delegation off.
        app.call(Method::PUT, &settings_of, &admin, Some(json!({"max_depth": 0}))).await;
        let (status, off) = delegate(&app, &a_token, json!({"delegatee_id": c, "scope": "agents:read"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{off}");

        // Bad settings are a 400 naming the field, and change nothing.
        for bad in [
            json!({"non_delegable_scopes": ["two words"]}),
            json!({"max_depth": -1}),
            json!({"max_depth": 1.5}),
            json!({"max_depth": null}),
            json!({"other": true}),
            json!(null),
        ] {
            let (status, body) = app.call(Method::PUT, &settings_of, &admin, Some(bad.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
        }
        // Not another organization's to set, and a tier change beside it keeps them.
        let platform = app.platform_token().await;
        let (_, other) =
            app.call(Method::POST, "/api/v1/organizations", &platform, Some(json!({"name": "other"}))).await;
        let other_settings = format!("/api/v1/organizations/{}/delegation", other["id"].as_str().unwrap());
        let (status, _) = app.call(Method::PUT, &other_settings, &admin, Some(json!({"max_depth": 1}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = app.call(Method::PATCH, &org, &platform, Some(json!({"tier": "pro"}))).await;
        assert_eq!(status, StatusCode::OK);
        let (_, read) = app.call(Method::GET, &org, &admin, None).await;
        assert_eq!(read["delegation"], json!({"non_delegable_scopes": [], "max_depth": 0}));
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_delegation_requests_get_a_clear_4xx() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let (a, a_token) = agent(&app, &admin, "a", &SCOPES).await;
        let (b, _) = agent(&app, &admin, "b", &SCOPES).await;
        for (body, status, field) in [
            (json!({"delegatee_id": a}), StatusCode::BAD_REQUEST, Some("delegatee_id")),
            (json!({"delegatee_id": uuid::Uuid::now_v7()}), StatusCode::NOT_FOUND, None),
            (json!({"delegatee_id": b, "scope": "bad\"scope"}), StatusCode::BAD_REQUEST, Some("scope")),
            (json!({"delegatee_id": b, "scope": "   "}), StatusCode::BAD_REQUEST, Some("scope")),
            (json!({"delegatee_id": b, "expires_in": 0}), StatusCode::BAD_REQUEST, Some("expires_in")),
            (json!({"delegatee_id": b, "audience": "two words"}), StatusCode::BAD_REQUEST, Some("audience")),
            (json!({"delegatee_id": b, "max_depth": 0}), StatusCode::FORBIDDEN, None),
            (json!({"delegatee_id": "nope"}), StatusCode::BAD_REQUEST, None),
            (json!({"delegatee_id": b, "colour": "red"}), StatusCode::BAD_REQUEST, None),
            (json!({}), StatusCode::BAD_REQUEST, None),
        ] {
            let (got, answer) = delegate(&app, &a_token, body.clone()).await;
            assert_eq!(got, status, "{body}: {answer}");
            assert_eq!(answer["field"].as_str(), field, "{body}: {answer}");
            assert!(answer["type"].as_str().unwrap().starts_with("urn:agentidp:problem:"), "{answer}");
        }
        // A delegation ends at its expiry (the engine's clock), in both forms.
        let (_, short) = delegate(&app, &a_token, json!({"delegatee_id": b, "expires_in": 60})).await;
        let (_, short_biscuit) =
            delegate(&app, &a_token, json!({"delegatee_id": b, "expires_in": 60, "token_format": "biscuit"})).await;
        assert_eq!(verify(&app, &a_token, &token_of(&short)).await["valid"], true);
        app.storage.clock.advance(Duration::from_secs(120));
        assert_eq!(verify(&app, &a_token, &token_of(&short)).await, json!({"valid": false, "reason": "expired"}));
        let biscuit = token_of(&short_biscuit);
        assert_eq!(verify(&app, &a_token, &biscuit).await, json!({"valid": false, "reason": "expired"}));
        let (status, _) = app.call(Method::GET, "/api/v1/agents", &token_of(&short), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "an expired delegation token is refused on the API");
        // The platform's power is never delegable (policies/delegation.datalog).
        let platform = app.platform_token().await;
        let (_, platform_agent) = app
            .call(
                Method::POST,
                "/api/v1/agents",
                &platform,
                Some(json!({"name": "helper", "scopes": ["platform:admin"]})),
            )
            .await;
        let (status, refused) =
            delegate(&app, &platform, json!({"delegatee_id": platform_agent["id"], "scope": "platform:admin"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
        // Without a token, or with a foreign one.
        let resp = app.http.post(app.url("/api/v1/oauth2/token/delegate")).json(&json!({"delegatee_id": b})).send();
        assert_eq!(resp.await.unwrap().status(), StatusCode::UNAUTHORIZED);
        let (status, _) = app.call(Method::GET, "/api/v1/delegations?status=lost", &admin, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = app.call(Method::GET, "/api/v1/delegations/not-an-id", &admin, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) =
            app.call(Method::GET, &format!("/api/v1/delegations/{}", uuid::Uuid::now_v7()), &admin, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        app.stop().await;
    }
}

/// Two nodes on one PostgreSQL + Redis: a revocation on one makes the downstream token
/// refused on the other within 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_node_is_refused_on_the_other_within_100_ms() {
    let Some(backend) = backends().into_iter().find(|b| b.is_postgres()) else {
        return; // single-node backends have no second node; CI always runs this.
    };
    let a = spawn_app(&backend).await;
    // One deployment behind one name: both nodes are the same issuer.
    let (issuer, audience) = (a.engine.config().issuer.clone(), a.engine.config().audience.clone());
    let b = TestApp::start_with(&a.storage, |c| {
        c.issuer = issuer;
        c.audience = audience;
    })
    .await;
    let admin = a.admin_token().await;
    let (_, x_token) = agent(&a, &admin, "x", &SCOPES).await;
    let (y, _) = agent(&a, &admin, "y", &SCOPES).await;
    let (z, _) = agent(&a, &admin, "z", &SCOPES).await;
    let (_, one) = delegate(&a, &x_token, json!({"delegatee_id": y})).await;
    let (status, two) = delegate(&b, &token_of(&one), json!({"delegatee_id": z})).await;
    assert_eq!(status, StatusCode::CREATED, "a hop made on the other node: {two}");
    let z_token = token_of(&two);
    // Node B knows the chain (its index is loaded and verified tokens are cached).
    assert_eq!(verify(&b, &x_token, &z_token).await["valid"], true);
    assert_eq!(b.call(Method::GET, "/api/v1/agents", &z_token, None).await.0, StatusCode::OK);

    let root = one["delegation_id"].as_str().unwrap();
    let (status, _) = a.call(Method::DELETE, &format!("/api/v1/delegations/{root}"), &x_token, None).await;
    assert_eq!(status, StatusCode::OK);
    let revoked_at = Instant::now();
    loop {
        if b.call(Method::GET, "/api/v1/agents", &z_token, None).await.0 == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(revoked_at.elapsed() < Duration::from_millis(100), "node B still accepts the revoked chain's token");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = revoked_at.elapsed();
    assert_eq!(verify(&b, &x_token, &z_token).await["reason"], "revoked");
    eprintln!("revocation seen on the other node after {took:?}");
    b.stop().await;
    a.stop().await;
}

/// RFC 8693 with an actor: the actor proves itself with its own token; a subject token's
/// `may_act` admits that agent alone; keycloak #52691 (an actor token not checked against
/// the requesting client) as a regression case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_with_an_actor_token_honours_may_act() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let mut agents = Vec::new();
        for name in ["subject", "actor", "intruder"] {
            let (agent, id, secret) = app.agent_with_credential(&admin, json!({"name": name, "scopes": SCOPES})).await;
            agents.push((agent["id"].as_str().unwrap().to_string(), id, secret));
        }
        let [(subject, s_id, s_secret), (actor, a_id, a_secret), (_, i_id, i_secret)] = &agents[..] else { panic!() };
        let form =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let post = |pairs: Vec<(String, String)>| {
            let app = &app;
            async move {
                let resp = app.http.post(app.url("/api/v1/oauth2/token")).form(&pairs).send().await.unwrap();
                (resp.status(), resp.json::<Value>().await.unwrap())
            }
        };
        // The subject's token names the one agent that may act for it.
        let (status, issued) = post(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", s_id),
            ("client_secret", s_secret),
            ("may_act", actor),
        ]))
        .await;
        assert_eq!(status, StatusCode::OK, "{issued}");
        let subject_token = issued["access_token"].as_str().unwrap().to_string();
        assert_eq!(jwt_parts(&subject_token).1["may_act"], json!({"sub": actor}));
        let actor_token = app.token(a_id, a_secret, None).await;
        let intruder_token = app.token(i_id, i_secret, None).await;
        let exchange = |id: &str, secret: &str, actor_token: Option<&str>, actor_type: Option<&str>| {
            let mut pairs = form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                ("client_id", id),
                ("client_secret", secret),
                ("subject_token", &subject_token),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
                ("scope", "search:query"),
            ]);
            if let Some(t) = actor_token {
                pairs.push(("actor_token".into(), t.into()));
            }
            if let Some(t) = actor_type {
                pairs.push(("actor_token_type".into(), t.into()));
            }
            post(pairs)
        };
        let at = Some("urn:ietf:params:oauth:token-type:access_token");
        // The named actor, proving itself: sub is the subject, act the actor.
        let (status, out) = exchange(a_id, a_secret, Some(&actor_token), at).await;
        assert_eq!(status, StatusCode::OK, "{out}");
        assert_eq!(out["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
        let (_, claims) = jwt_parts(out["access_token"].as_str().unwrap());
        assert_eq!(
            (claims["sub"].as_str(), claims["act"]["sub"].as_str()),
            (Some(subject.as_str()), Some(actor.as_str()))
        );
        assert_eq!(claims["scope"], "search:query");
        assert!(claims.get("may_act").is_none(), "{claims}");
        // Anyone else is refused, whatever it presents.
        let (status, out) = exchange(i_id, i_secret, Some(&intruder_token), at).await;
        assert_eq!((status, out["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{out}");
        // keycloak #52691: the intruder's client with the actor's token.
        let (status, out) = exchange(i_id, i_secret, Some(&actor_token), at).await;
        assert_eq!((status, out["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{out}");
        let (status, out) = exchange(a_id, a_secret, Some("not-a-token"), at).await;
        assert_eq!((status, out["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{out}");
        // actor_token and actor_token_type go together.
        let (status, out) = exchange(a_id, a_secret, Some(&actor_token), None).await;
        assert_eq!((status, out["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{out}");
        let (status, out) = exchange(a_id, a_secret, None, at).await;
        assert_eq!((status, out["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{out}");
        let (status, out) = exchange(a_id, a_secret, Some(&actor_token), Some("urn:x:saml")).await;
        assert_eq!((status, out["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_token_type")));
        // may_act must name another active agent of the organization.
        let (status, out) = post(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", s_id),
            ("client_secret", s_secret),
            ("may_act", "someone"),
        ]))
        .await;
        assert_eq!((status, out["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{out}");
        app.stop().await;
    }
}
