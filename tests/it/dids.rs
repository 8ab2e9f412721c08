//! W3C DIDs (issue 13, items 5–9): every agent's did:web document, its keys (generated,
//! or registered public keys), resolution results and their errors, pydid validating
//! every document served, Authlib signing in with private_key_jwt as the agent's DID,
//! and a deactivated DID refused.

use agentidp_engine::families::signing::keys::{SigningAlg, SigningKey};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{backends, jwt_parts, spawn_app, App, JsonBody};

fn encoded(did: &str) -> String {
    percent_encoding::utf8_percent_encode(did, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn resolve(app: &App, did: &str, accept: Option<&str>) -> (StatusCode, Value) {
    let mut req = app.http.get(app.url(&format!("/api/v1/dids/{}", encoded(did))));
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A client assertion as the DID, signed by `key` under the DID URL `kid`.
fn did_assertion(app: &App, did: &str, kid: &str, pkcs8: &[u8]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_string());
    let claims = json!({
        "iss": did, "sub": did, "aud": app.url("/api/v1/oauth2/token"),
        "exp": now + 120, "iat": now, "jti": uuid::Uuid::now_v7().to_string(),
    });
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(pkcs8)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_have_did_web_documents_and_sign_in_with_their_did_keys() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let admin = app.admin_token().await;
        let (status, agent) = app
            .call(
                Method::POST,
                "/api/v1/agents",
                &admin,
                Some(json!({"name": "did-agent", "scopes": ["search:query"]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{agent}");
        let id = agent["id"].as_str().unwrap().to_string();
        let host = app.base.trim_start_matches("http://").replace(':', "%3A");
        let idp_did = format!("did:web:{host}");
        let did = format!("{idp_did}:agents:{id}");

        let (status, view) = app.call(Method::GET, &format!("/api/v1/agents/{id}/did"), &admin, None).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["did"], did.as_str());
        assert_eq!(view["didDocument"]["verificationMethod"], json!([]));

        // A generated key (its private half shown once) and a registered public key.
        let keys = format!("/api/v1/agents/{id}/did/keys");
        let (status, generated) = app.call(Method::POST, &keys, &admin, Some(json!({"generate": true}))).await;
        assert_eq!(status, StatusCode::CREATED, "{generated}");
        assert_eq!(generated["id"], format!("{did}#key-1"));
        assert_eq!(generated["private_jwk"]["kid"], format!("{did}#key-1"));
        assert!(generated["public_jwk"].get("d").is_none());
        let (own, pkcs8) = SigningKey::generate(SigningAlg::Es256, 0, 0).unwrap();
        let (status, registered) = app.call(Method::POST, &keys, &admin, Some(json!({"public_jwk": own.jwk()}))).await;
        assert_eq!(status, StatusCode::CREATED, "{registered}");
        assert_eq!(registered["key_id"], "key-2");
        assert!(registered.get("private_jwk").is_none());

        // Bad keys are 400s naming the field.
        let mut private = own.jwk().clone();
        private["d"] = json!("AAAA");
        let mut off_curve = own.jwk().clone();
        off_curve["y"] = off_curve["x"].clone();
        let (rsa, _) = SigningKey::generate(SigningAlg::Rs256, 0, 0).unwrap();
        for (what, body) in [
            ("a private key", json!({"public_jwk": private})),
            ("a point off the curve", json!({"public_jwk": off_curve})),
            ("an RSA key", json!({"public_jwk": rsa.jwk()})),
            ("both", json!({"public_jwk": own.jwk(), "generate": true})),
            ("neither", json!({})),
            ("an unknown member", json!({"generate": true, "extra": 1})),
        ] {
            let (status, problem) = app.call(Method::POST, &keys, &admin, Some(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {problem}");
        }

        // The documents, as served, satisfy pydid; Authlib signs in with the DID key.
        let doc_url = app.url(&format!("/agents/{id}/did.json"));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/did_documents.py");
        let out = tokio::task::spawn_blocking({
            let args = vec![
                script.to_string(),
                app.base.clone(),
                did.clone(),
                generated["private_jwk"].to_string(),
                format!("{did}={doc_url}"),
                format!("{idp_did}={}", app.url("/.well-known/did.json")),
            ];
            move || std::process::Command::new("python3").args(args).output().unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value =
            serde_json::from_slice(out.stdout.split(|b| *b == b'\n').find(|l| !l.is_empty()).unwrap()).unwrap();
        assert_eq!(report["documents"][0]["methods"], 2, "{report}");
        assert!(report["documents"][1]["methods"].as_u64().unwrap() >= 1, "{report}");
        let (_, claims) = jwt_parts(report["access_token"].as_str().unwrap());
        assert_eq!((claims["sub"].as_str(), claims["client_id"].as_str()), (Some(id.as_str()), Some(did.as_str())));

        // The registered key signs in too; a kid that is not the DID's, or a replay, not.
        let assertion = did_assertion(&app, &did, &format!("{did}#key-2"), &pkcs8);
        assert_eq!(app.assertion_token_request(&assertion).await.0, StatusCode::OK);
        assert_eq!(app.assertion_token_request(&assertion).await.0, StatusCode::UNAUTHORIZED, "a replay");
        let wrong_kid = did_assertion(&app, &did, &format!("{did}#key-1"), &pkcs8);
        assert_eq!(app.assertion_token_request(&wrong_kid).await.0, StatusCode::UNAUTHORIZED);

        // Resolution: the result, and each error.
        let (status, result) = resolve(&app, &did, None).await;
        assert_eq!(status, StatusCode::OK, "{result}");
        assert_eq!(result["didResolutionMetadata"]["contentType"], "application/did+json");
        assert_eq!(result["didDocument"]["id"], did.as_str());
        assert!(result["didDocumentMetadata"]["created"].is_string(), "{result}");
        assert!(result["didDocumentMetadata"].get("deactivated").is_none(), "{result}");
        for (bad, status, error) in [
            ("did:web:", StatusCode::BAD_REQUEST, "invalidDid"),
            ("not a did", StatusCode::BAD_REQUEST, "invalidDid"),
            ("did:web:a%zz", StatusCode::BAD_REQUEST, "invalidDid"),
            ("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", StatusCode::BAD_REQUEST, "methodNotSupported"),
            ("did:web:example.com", StatusCode::NOT_FOUND, "notFound"),
            (&format!("{idp_did}:agents:{}", uuid::Uuid::now_v7()), StatusCode::NOT_FOUND, "notFound"),
        ] {
            let (got, result) = resolve(&app, bad, None).await;
            assert_eq!(
                (got, result["didResolutionMetadata"]["error"].as_str()),
                (status, Some(error)),
                "{bad}: {result}"
            );
        }
        let (got, result) = resolve(&app, &did, Some("text/html")).await;
        assert_eq!(got, StatusCode::NOT_ACCEPTABLE, "{result}");
        assert_eq!(result["didResolutionMetadata"]["error"], "representationNotSupported");

        // Rotation: key-1 removed, key-2 stays listed — at once, on this node's cache too.
        let (status, _) = app.call(Method::DELETE, &format!("{keys}/key-1"), &admin, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(app.call(Method::DELETE, &format!("{keys}/key-1"), &admin, None).await.0, StatusCode::NOT_FOUND);
        let doc: Value = app.http.get(&doc_url).json_body().await;
        let methods: Vec<&str> =
            doc["verificationMethod"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(methods, vec![format!("{did}#key-2")]);

        // A suspended agent's DID is deactivated and lists no usable key (issue 28, item
        // 8: it has several), and its DID key signs in no more.
        for _ in 0..2 {
            let (status, added) = app.call(Method::POST, &keys, &admin, Some(json!({"generate": true}))).await;
            assert_eq!(status, StatusCode::CREATED, "{added}");
        }
        let doc: Value = app.http.get(&doc_url).json_body().await;
        assert_eq!(doc["verificationMethod"].as_array().unwrap().len(), 3, "{doc}");
        let (status, _) = app.call(Method::POST, &format!("/api/v1/agents/{id}/suspend"), &admin, None).await;
        assert_eq!(status, StatusCode::OK);
        let (_, result) = resolve(&app, &did, None).await;
        assert_eq!(result["didDocumentMetadata"]["deactivated"], true, "{result}");
        let doc: Value = app.http.get(&doc_url).json_body().await;
        for document in [&result["didDocument"], &doc] {
            for relation in ["verificationMethod", "authentication", "assertionMethod"] {
                let listed = document[relation].as_array().map_or(0, Vec::len);
                assert_eq!(listed, 0, "a deactivated DID lists {relation}: {document}");
            }
        }
        let assertion = did_assertion(&app, &did, &format!("{did}#key-2"), &pkcs8);
        assert_eq!(app.assertion_token_request(&assertion).await.0, StatusCode::UNAUTHORIZED);
        // … and a deleted one's too.
        let (status, _) = app.call(Method::DELETE, &format!("/api/v1/agents/{id}"), &admin, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, result) = resolve(&app, &did, None).await;
        assert_eq!(status, StatusCode::OK, "{result}");
        assert_eq!(result["didDocumentMetadata"]["deactivated"], true, "{result}");
        // An agent deleted without ever having had a DID key: deactivated too, not unknown.
        let (_, other) = app.call(Method::POST, "/api/v1/agents", &admin, Some(json!({"name": "brief"}))).await;
        let other_id = other["id"].as_str().unwrap();
        let (status, _) = app.call(Method::DELETE, &format!("/api/v1/agents/{other_id}"), &admin, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, result) = resolve(&app, &format!("{idp_did}:agents:{other_id}"), None).await;
        assert_eq!((status, &result["didDocumentMetadata"]["deactivated"]), (StatusCode::OK, &json!(true)), "{result}");
        assert_eq!(
            app.http.get(app.url("/agents/not-a-uuid/did.json")).send().await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );
        app.stop().await;
    }
}
