//! Issue 30, item 4: resource servers (RFC 8707). A token asked for with `resource`
//! names it as `aud`, carries only the scopes it offers, lives its lifetime, is DPoP-bound
//! when it requires it; an unknown resource is `invalid_target`; such a token is
//! refused by AgentIdP's own API and understood by introspection; on both stores.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{backends, jwt_parts, spawn_app, App};

const MCP: &str = "https://mcp.example.com/mcp";

async fn token_for(app: &App, client_id: &str, secret: &str, extra: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret)];
    form.extend_from_slice(extra);
    let resp = app.http.post(app.url("/api/v1/oauth2/token")).form(&form).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_a_resource_names_it_and_carries_only_its_scopes() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let body = json!({"identifier": MCP, "name": "Mail MCP", "scopes": ["mail:send", "mail:read"], "access_token_ttl": 600});
        let (status, resource) = app.call(Method::POST, "/api/v1/resource-servers", &admin, Some(body.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{resource}");
        assert_eq!(resource["scopes"], json!(["mail:read", "mail:send"]));
        let (status, _) = app.call(Method::POST, "/api/v1/resource-servers", &admin, Some(body)).await;
        assert_eq!(status, StatusCode::CONFLICT, "one identifier per organization");
        for (bad, field) in [
            (json!({"identifier": "http://mcp.example.com/mcp", "name": "x"}), "identifier"),
            (json!({"identifier": "https://x.example.com/#f", "name": "x"}), "identifier"),
            (json!({"identifier": "https://x.example.com/", "name": "x", "scopes": ["agents:read"]}), "scopes"),
            (json!({"identifier": "https://x.example.com/", "name": "x", "scopes": ["AGENTS:READ"]}), "scopes"),
            (json!({"identifier": "https://x.example.com/", "name": "x", "access_token_ttl": 5}), "access_token_ttl"),
            (json!({"identifier": "https://x.example.com/", "name": ""}), "name"),
        ] {
            let (status, problem) = app.call(Method::POST, "/api/v1/resource-servers", &admin, Some(bad.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
            assert!(problem.to_string().contains(field), "{bad}: {problem}");
        }

        let (_, client_id, secret) =
            app.agent_with_credential(&admin, json!({"name": "mailer", "scopes": ["mail:read", "search:query"]})).await;
        // For the resource: its identifier as audience, the scopes it offers that the
        // agent holds, its lifetime.
        let (status, issued) = token_for(&app, &client_id, &secret, &[("resource", MCP)]).await;
        assert_eq!(status, StatusCode::OK, "{issued}");
        assert_eq!((issued["scope"].as_str(), issued["expires_in"].as_u64()), (Some("mail:read"), Some(600)));
        let token = issued["access_token"].as_str().unwrap().to_string();
        let (_, claims) = jwt_parts(&token);
        assert_eq!(claims["aud"], MCP);
        // A scope the agent lacks, or the resource does not offer: invalid_scope.
        for scope in ["mail:send", "search:query"] {
            let (status, error) = token_for(&app, &client_id, &secret, &[("resource", MCP), ("scope", scope)]).await;
            assert_eq!(
                (status, error["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_scope")),
                "{scope}: {error}"
            );
        }
        // A resource the organization has not registered.
        let (status, error) = token_for(&app, &client_id, &secret, &[("resource", "https://other.example.com/")]).await;
        assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_target")), "{error}");
        // Without resource: today's token, for AgentIdP's own API.
        let (_, plain) = token_for(&app, &client_id, &secret, &[]).await;
        let (_, plain_claims) = jwt_parts(plain["access_token"].as_str().unwrap());
        assert_ne!(plain_claims["aud"], MCP);

        // Token exchange: `resource` names a registered resource server as well (its
        // scopes and lifetime); an unregistered one is invalid_target.
        let plain_token = plain["access_token"].as_str().unwrap();
        let exchange = |resource: &'static str| {
            let form = vec![
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange".to_string()),
                ("client_id", client_id.clone()),
                ("client_secret", secret.clone()),
                ("subject_token", plain_token.to_string()),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token".to_string()),
                ("resource", resource.to_string()),
            ];
            let app = &app;
            async move {
                let resp = app.http.post(app.url("/api/v1/oauth2/token")).form(&form).send().await.unwrap();
                (resp.status(), resp.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let (status, exchanged) = exchange(MCP).await;
        assert_eq!(status, StatusCode::OK, "{exchanged}");
        assert_eq!(exchanged["scope"], "mail:read", "{exchanged}");
        let (_, exchanged_claims) = jwt_parts(exchanged["access_token"].as_str().unwrap());
        assert_eq!(exchanged_claims["aud"], MCP);
        let (status, error) = exchange("https://other.example.com/").await;
        assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_target")), "{error}");

        // AgentIdP's API refuses a token for another audience; introspection knows it.
        let (status, _) = app.call(Method::GET, "/api/v1/agents", &token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let resp = app
            .http
            .post(app.url("/api/v1/oauth2/introspect"))
            .basic_auth(&app.boot.client_id, Some(&app.boot.client_secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        let introspected: Value = resp.json().await.unwrap();
        assert_eq!(
            (introspected["active"].as_bool(), introspected["aud"].as_str()),
            (Some(true), Some(MCP)),
            "{introspected}"
        );

        // A resource that wants DPoP-bound tokens gets no bearer token.
        let id = resource["id"].as_str().unwrap();
        let path = format!("/api/v1/resource-servers/{id}");
        let (status, changed) = app
            .call(Method::PATCH, &path, &admin, Some(json!({"dpop_required": true, "access_token_ttl": null})))
            .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(
            (changed["dpop_required"].as_bool(), changed["access_token_ttl"].clone()),
            (Some(true), Value::Null)
        );
        let (status, error) = token_for(&app, &client_id, &secret, &[("resource", MCP)]).await;
        assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{error}");

        // Another organization sees none of it; its clients cannot name it.
        let platform = app.platform_token().await;
        let (_, other) =
            app.call(Method::POST, "/api/v1/organizations", &platform, Some(json!({"name": "other"}))).await;
        let other_id = other["id"].as_str().unwrap();
        let (status, _) = app.call(Method::GET, &format!("{path}?org_id={other_id}"), &platform, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, page) = app.call(Method::GET, "/api/v1/resource-servers", &admin, None).await;
        assert_eq!((status, page["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
        let (status, _) = app.call(Method::DELETE, &path, &admin, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, error) = token_for(&app, &client_id, &secret, &[("resource", MCP)]).await;
        assert_eq!((status, error["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_target")), "{error}");
        app.stop().await;
    }
}
