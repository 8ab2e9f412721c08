//! Federation under the rule the rest of the API keeps (issue 28, items 1, 2 and 7): a
//! partner yields no more than its configurer holds and never `platform:admin`; an
//! assertion is bound to the organization it names, so two organizations trusting one
//! issuer never receive each other's; a federated token works wherever its scopes do.

use agentidp_engine::families::signing::keys::{SigningAlg, SigningKey};
use agentidp_engine::Clock as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{backends, spawn_app, App, Backend, TestApp};

const ISS: &str = "https://shared-partner.example";
const PARTNERS: &str = "/api/v1/federation/partners";

/// A partner's signing key and the JWKS to register it with.
fn partner_key() -> (SigningKey, Value) {
    let (key, _) = SigningKey::generate(SigningAlg::Es256, 0, 0).unwrap();
    let jwks = json!({"keys": [key.jwk()]});
    (key, jwks)
}

fn assertion(app: &App, key: &SigningKey, aud: &str, claims: Value) -> String {
    let now = app.storage.clock.now_ms() / 1000;
    let mut c = json!({"iss": ISS, "sub": "partner-sub", "aud": aud, "iat": now, "exp": now + 60,
                       "jti": uuid::Uuid::now_v7().to_string()});
    for (k, v) in claims.as_object().unwrap() {
        c[k] = v.clone();
    }
    key.sign(&c).unwrap()
}

async fn jwt_bearer(app: &App, assertion: &str) -> (StatusCode, Value) {
    let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion)];
    let resp = app.http.post(app.url("/api/v1/oauth2/token")).form(&form).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn org_audience(app: &App, org: &str) -> String {
    app.url(&format!("/api/v1/organizations/{org}"))
}

/// A partner of the admin's organization with a static JWKS, mapping `partner-sub` to
/// `agent`; panics unless it is created.
async fn table_partner(app: &App, admin: &str, jwks: Value, scopes: Value, agent: &str) -> Value {
    let body = json!({"issuer": ISS, "jwks": jwks, "allowed_scopes": scopes,
                      "subject_mapping": {"kind": "table", "table": {"partner-sub": agent}}});
    let (status, created) = app.call(Method::POST, PARTNERS, admin, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// An agent of the admin's organization holding `scopes`, and a token of it.
async fn agent_token(app: &App, admin: &str, name: &str, scopes: Value) -> (String, String) {
    let (agent, id, secret) = app.agent_with_credential(admin, json!({"name": name, "scopes": scopes})).await;
    (agent["id"].as_str().unwrap().to_string(), app.token(&id, &secret, None).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_yields_no_more_than_its_configurer_holds() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let admin_agent = app.boot.agent_id.to_string();
        let (_, weak) = agent_token(&app, &admin, "fed-only", json!(["federation:read", "federation:write"])).await;
        let (key, jwks) = partner_key();
        let partner = |scopes: Value, mapping: Value| json!({"issuer": ISS, "jwks": jwks.clone(), "subject_mapping": mapping, "allowed_scopes": scopes});
        let table = |agent: &str| json!({"kind": "table", "table": {"partner-sub": agent}});
        let claim = json!({"kind": "claim", "claim": "local_agent"});

        // The probe's escalation: every management scope, mapped to the org admin.
        let (status, body) = app
            .call(
                Method::POST,
                PARTNERS,
                &weak,
                Some(partner(json!(["agents:write", "audit:read"]), table(&admin_agent))),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        // Only plain scopes, but mapped to a stronger agent.
        let (status, body) =
            app.call(Method::POST, PARTNERS, &weak, Some(partner(json!(["search:query"]), table(&admin_agent)))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body["detail"].as_str().unwrap_or_default().contains("at least as strong"), "{body}");
        // A claim mapping is accepted, and bounded when used: naming the admin is refused.
        let (status, created) =
            app.call(Method::POST, PARTNERS, &weak, Some(partner(json!(["search:query"]), claim.clone()))).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["configured_with"], json!(["federation:read", "federation:write"]), "{created}");
        let aud = created["assertion_audience"].as_str().unwrap().to_string();
        assert_eq!(aud, org_audience(&app, &app.boot.org_id.to_string()));
        let (status, body) = jwt_bearer(&app, &assertion(&app, &key, &aud, json!({"local_agent": admin_agent}))).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
        // A plain agent it may reach gets its plain scope.
        let (plain, _) = agent_token(&app, &admin, "plain", json!(["search:query", "agents:read"])).await;
        let (status, body) = jwt_bearer(&app, &assertion(&app, &key, &aud, json!({"local_agent": plain}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "agents:read is stronger than the configurer: {body}");
        let (plain, _) = agent_token(&app, &admin, "plainer", json!(["search:query"])).await;
        let (status, body) = jwt_bearer(&app, &assertion(&app, &key, &aud, json!({"local_agent": plain}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["scope"], "search:query");

        // Changing a partner re-checks: the weak agent cannot keep a partner the admin
        // gave a management scope, and the admin cannot give it to one made by the weak.
        let id = created["id"].as_str().unwrap();
        let (status, _) = app
            .call(Method::PATCH, &format!("{PARTNERS}/{id}"), &admin, Some(json!({"allowed_scopes": ["agents:read"]})))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) =
            app.call(Method::PATCH, &format!("{PARTNERS}/{id}"), &weak, Some(json!({"enabled": true}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

        // The platform organization: platform:admin is never federated.
        let platform = app.platform_token().await;
        let platform_org = app.boot.platform_org_id.to_string();
        let mut body = partner(json!(["platform:admin"]), claim.clone());
        body["org_id"] = json!(platform_org);
        body["issuer"] = json!("https://platform-partner.example");
        let (status, refused) = app.call(Method::POST, PARTNERS, &platform, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(refused["field"], "allowed_scopes");
        let platform_agent = crate::support::jwt_parts(&platform).1["sub"].as_str().unwrap().to_string();
        body["allowed_scopes"] = json!(["organizations:read"]);
        body["subject_mapping"] = table(&platform_agent);
        let (status, refused) = app.call(Method::POST, PARTNERS, &platform, Some(body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
        app.stop().await;
    }
}

/// A partner stored before the bound existed (its rules without `configured_with`) is
/// reported by the compliance report and yields no management scope until saved again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_from_before_the_bound_is_reported_not_honoured() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let (key, jwks) = partner_key();
        let (agent, _) = agent_token(&app, &admin, "reader", json!(["agents:read", "search:query"])).await;
        let created = table_partner(&app, &admin, jwks, json!(["agents:read", "search:query"]), &agent).await;
        let aud = created["assertion_audience"].as_str().unwrap().to_string();
        let (status, body) = jwt_bearer(&app, &assertion(&app, &key, &aud, json!({}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["scope"], "agents:read search:query");

        // Make it a partner from before: drop the bound from its stored rules, restart.
        let id = created["id"].as_str().unwrap();
        match &backend {
            Backend::Sqlite => {
                let sql = format!(
                    "UPDATE federation_partners SET rules = json_remove(rules, '$.configured_with') WHERE id = '{id}'"
                );
                let conn = rusqlite::Connection::open(app.storage.data_dir.join("agentidp.db")).unwrap();
                assert_eq!(conn.execute(&sql, []).unwrap(), 1);
            }
            Backend::Postgres { .. } => {
                let sql = format!(
                    "UPDATE federation_partners SET rules = (rules::jsonb - 'configured_with')::text WHERE id = '{id}'"
                );
                let (client, conn) =
                    tokio_postgres::connect(app.storage.database_url.as_deref().unwrap(), tokio_postgres::NoTls)
                        .await
                        .unwrap();
                tokio::spawn(conn);
                assert_eq!(client.execute(&sql, &[]).await.unwrap(), 1);
            }
        }
        let App { app: server, boot, storage } = app;
        server.stop().await;
        let app = App { app: TestApp::start(&storage).await, boot, storage };
        let admin = app.admin_token().await;
        let aud = org_audience(&app, &app.boot.org_id.to_string()); // the issuer's port is new
        let (_, report) = app.call(Method::GET, "/api/v1/compliance/report", &admin, None).await;
        let finding = report["findings"].as_array().unwrap().iter().find(|f| f["id"] == "federation-partner-bound");
        let finding = finding.unwrap_or_else(|| panic!("no finding: {report}"));
        assert!(finding["resources"][0].as_str().unwrap().starts_with(id), "{finding}");
        // The agent it maps to holds a management scope: refused until saved again.
        let (status, body) = jwt_bearer(&app, &assertion(&app, &key, &aud, json!({}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, saved) = app.call(Method::PATCH, &format!("{PARTNERS}/{id}"), &admin, Some(json!({}))).await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        let (status, body) = jwt_bearer(&app, &assertion(&app, &key, &aud, json!({}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, report) = app.call(Method::GET, "/api/v1/compliance/report", &admin, None).await;
        assert!(report["findings"].as_array().unwrap().iter().all(|f| f["id"] != "federation-partner-bound"));
        app.stop().await;
    }
}

/// Two organizations trust the same issuer (org B squatting on org A's partner): an
/// assertion names its organization in `aud` and is accepted only there; one naming
/// only our issuer or token endpoint is accepted by neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_organizations_trusting_one_issuer_never_receive_each_others_assertions() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let platform = app.platform_token().await;
        let (status, org_b) =
            app.call(Method::POST, "/api/v1/organizations", &platform, Some(json!({"name": "b"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{org_b}");
        let org_b = org_b["id"].as_str().unwrap().to_string();
        let org_a = app.boot.org_id.to_string();
        let (key, jwks) = partner_key();
        let mut mapped = std::collections::HashMap::new();
        for org in [&org_a, &org_b] {
            let (status, agent) = app
                .call(
                    Method::POST,
                    "/api/v1/agents",
                    &platform,
                    Some(json!({"name": "mapped", "scopes": ["search:query"], "org_id": org})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{agent}");
            let agent = agent["id"].as_str().unwrap().to_string();
            let body = json!({"org_id": org, "issuer": ISS, "jwks": jwks.clone(), "allowed_scopes": ["search:query"],
                              "subject_mapping": {"kind": "table", "table": {"partner-sub": agent}}});
            let (status, created) = app.call(Method::POST, PARTNERS, &platform, Some(body)).await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            assert_eq!(created["assertion_audience"], org_audience(&app, org));
            mapped.insert(org.clone(), agent);
        }
        for org in [&org_a, &org_b] {
            let (status, body) = jwt_bearer(&app, &assertion(&app, &key, &org_audience(&app, org), json!({}))).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let claims = crate::support::jwt_parts(body["access_token"].as_str().unwrap()).1;
            assert_eq!(
                (claims["org_id"].as_str(), claims["sub"].as_str()),
                (Some(org.as_str()), Some(mapped[org].as_str()))
            );
        }
        for generic in [app.url(""), app.url("/api/v1/oauth2/token")] {
            let (status, body) = jwt_bearer(&app, &assertion(&app, &key, &generic, json!({}))).await;
            assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
        }
        app.stop().await;
    }
}

/// A token of the JWT-bearer grant is usable where its scopes allow: the management API
/// and introspection accept it while its partner is trusted, and not once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_token_is_usable_where_its_scopes_allow() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let (key, jwks) = partner_key();
        let (agent, _) = agent_token(&app, &admin, "reader", json!(["agents:read"])).await;
        let created = table_partner(&app, &admin, jwks, json!(["agents:read"]), &agent).await;
        let aud = created["assertion_audience"].as_str().unwrap().to_string();
        let (status, body) = jwt_bearer(&app, &assertion(&app, &key, &aud, json!({}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["access_token"].as_str().unwrap().to_string();
        let (status, read) = app.call(Method::GET, &format!("/api/v1/agents/{agent}"), &token, None).await;
        assert_eq!(status, StatusCode::OK, "{read}");
        let resp = app
            .http
            .post(app.url("/api/v1/oauth2/introspect"))
            .bearer_auth(&admin)
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        let introspected: Value = resp.json().await.unwrap();
        assert_eq!(introspected["active"], true, "{introspected}");
        assert_eq!(introspected["sub"], agent.as_str());
        // Its partner deleted: the token no longer stands.
        let id = created["id"].as_str().unwrap();
        let (status, _) = app.call(Method::DELETE, &format!("{PARTNERS}/{id}"), &admin, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, body) = app.call(Method::GET, &format!("/api/v1/agents/{agent}"), &token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        app.stop().await;
    }
}
