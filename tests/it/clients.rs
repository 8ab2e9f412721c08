//! Issue 30, item 3: applications (OAuth clients people authorize) — public and
//! confidential, redirect URIs validated and matched exactly, an agent as a client,
//! private_key_jwt keys public only; audited and isolated per organization, both stores.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{backends, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_register_public_and_confidential_applications() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let post = |body: Value| {
            let (app, admin) = (&app, admin.clone());
            async move { app.call(Method::POST, "/api/v1/clients", &admin, Some(body)).await }
        };

        // A public client: no secret, PKCE only; the defaults are the code grant and refresh.
        let (status, public) = post(json!({
            "name": "CLI", "token_endpoint_auth_method": "none",
            "redirect_uris": ["http://127.0.0.1/callback", "com.example.cli:/cb"],
        }))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{public}");
        assert!(public["client_id"].as_str().unwrap().starts_with("aidp_app_"), "{public}");
        assert!(public.get("client_secret").is_none() && public["secret_prefix"].is_null(), "{public}");
        assert_eq!(public["grant_types"], json!(["authorization_code", "refresh_token"]));

        // A confidential one: its secret in this answer only; rotated, a new one.
        let (status, web) = post(json!({
            "name": "Web app", "redirect_uris": ["https://app.example.com/callback"], "scopes": ["agents:read"],
            "first_party": true,
        }))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{web}");
        let secret = web["client_secret"].as_str().unwrap().to_string();
        assert!(secret.starts_with("aidp_sk_") && secret.starts_with(web["secret_prefix"].as_str().unwrap()));
        let id = web["id"].as_str().unwrap().to_string();
        let path = format!("/api/v1/clients/{id}");
        let (status, read) = app.call(Method::GET, &path, &admin, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(read.get("client_secret").is_none(), "never shown again: {read}");
        let (status, rotated) = app.call(Method::POST, &format!("{path}/rotate-secret"), &admin, None).await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        assert_ne!(rotated["client_secret"].as_str(), Some(secret.as_str()));
        let public_path = format!("/api/v1/clients/{}", public["id"].as_str().unwrap());
        let (status, _) = app.call(Method::POST, &format!("{public_path}/rotate-secret"), &admin, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "a public client has no secret");

        // Bad input names its field.
        for (body, field) in [
            (json!({"name": "x", "redirect_uris": ["http://app.example.com/cb"]}), "redirect_uris"),
            (json!({"name": "x", "redirect_uris": ["https://app.example.com/cb#f"]}), "redirect_uris"),
            (json!({"name": "x", "redirect_uris": ["https://*.example.com/cb"]}), "redirect_uris"),
            (json!({"name": "x", "redirect_uris": ["javascript:alert(1)"]}), "redirect_uris"),
            (json!({"name": "x"}), "redirect_uris"),
            (
                json!({"name": "x", "redirect_uris": ["https://a.example.com/"], "grant_types": ["implicit"]}),
                "grant_types",
            ),
            (
                json!({"name": "x", "redirect_uris": ["https://a.example.com/"], "grant_types": ["password"]}),
                "grant_types",
            ),
            (
                json!({"name": "x", "redirect_uris": ["https://a.example.com/"], "token_endpoint_auth_method": "tls_client_auth"}),
                "token_endpoint_auth_method",
            ),
            (
                json!({"name": "x", "redirect_uris": ["https://a.example.com/"], "token_endpoint_auth_method": "private_key_jwt"}),
                "jwks",
            ),
            (
                json!({"name": "x", "redirect_uris": ["https://a.example.com/"], "token_endpoint_auth_method": "private_key_jwt",
                    "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "d": "secret"}]}}),
                "jwks",
            ),
            (
                json!({"name": "x", "redirect_uris": ["https://a.example.com/"], "resources": ["https://unknown.example.com/"]}),
                "resources",
            ),
            (
                json!({"name": "x", "redirect_uris": ["https://a.example.com/"], "agent_id": uuid::Uuid::now_v7()}),
                "agent_id",
            ),
            (json!({"name": "", "redirect_uris": ["https://a.example.com/"]}), "name"),
        ] {
            let (status, problem) = post(body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
            assert!(problem.to_string().contains(field), "{body}: {problem}");
        }
        // A scope the caller does not hold is not the caller's to give.
        let (status, _) =
            post(json!({"name": "x", "redirect_uris": ["https://a.example.com/"], "scopes": ["platform:admin"]})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // An agent as a client, with a resource server it may ask tokens for.
        let (status, _) = app
            .call(
                Method::POST,
                "/api/v1/resource-servers",
                &admin,
                Some(json!({"identifier": "https://mcp.example.com/mcp", "name": "MCP", "scopes": ["mail:read"]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (agent, _, _) = app.agent_with_credential(&admin, json!({"name": "assistant"})).await;
        let (status, agent_client) = post(json!({
            "name": "Assistant", "redirect_uris": ["https://assistant.example.com/cb"],
            "agent_id": agent["id"], "resources": ["https://mcp.example.com/mcp"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]},
        }))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{agent_client}");
        assert_eq!(agent_client["agent_id"], agent["id"]);

        // Changed, suspended, reactivated, listed; another organization sees nothing.
        let (status, changed) = app
            .call(
                Method::PATCH,
                &path,
                &admin,
                Some(json!({"redirect_uris": ["https://app.example.com/cb2"], "first_party": false})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(
            (changed["redirect_uris"].clone(), changed["first_party"].clone()),
            (json!(["https://app.example.com/cb2"]), json!(false))
        );
        let (status, suspended) = app.call(Method::POST, &format!("{path}/suspend"), &admin, None).await;
        assert_eq!((status, suspended["status"].as_str()), (StatusCode::OK, Some("suspended")));
        let (_, page) = app.call(Method::GET, "/api/v1/clients?limit=2", &admin, None).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 2);
        assert!(page["next_cursor"].is_string(), "{page}");
        let platform = app.platform_token().await;
        let (_, other) =
            app.call(Method::POST, "/api/v1/organizations", &platform, Some(json!({"name": "other"}))).await;
        let (status, _) =
            app.call(Method::GET, &format!("{path}?org_id={}", other["id"].as_str().unwrap()), &platform, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, events) = app.call(Method::GET, "/api/v1/audit-events?action=client.create", &admin, None).await;
        assert_eq!(events["items"].as_array().unwrap().len(), 3, "{events}");
        let (status, _) = app.call(Method::DELETE, &path, &admin, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = app.call(Method::GET, &path, &admin, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        app.stop().await;
    }
}
