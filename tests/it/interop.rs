//! Tokens verified by an independent JWT library (Python PyJWT) against the published
//! JWKS: proof that we speak the standard, not just agree with ourselves.

use std::process::Command;

use crate::support::{backends, spawn_app};

const VERIFY: &str = r#"
import json, sys, urllib.request
import jwt
base, token = sys.argv[1], sys.argv[2]
jwks = jwt.PyJWKClient(base + "/.well-known/jwks.json")
key = jwks.get_signing_key_from_jwt(token)
header = jwt.get_unverified_header(token)
assert header["typ"] == "at+jwt", header
claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=base, issuer=base,
                    options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]})
print(json.dumps(claims))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_issued_tokens_against_the_jwks() {
    let backend = &backends()[0];
    let app = spawn_app(backend).await;
    let token = app.admin_token().await;
    let base = app.base.clone();
    let out = tokio::task::spawn_blocking(move || Command::new("python3").args(["-c", VERIFY, &base, &token]).output())
        .await
        .unwrap()
        .expect("python3 must be installed (scripts/test installs PyJWT)");
    assert!(out.status.success(), "PyJWT refused the token:\n{}", String::from_utf8_lossy(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["client_id"], app.boot.client_id);
    assert_eq!(claims["org_id"], app.boot.org_id.to_string());

    // And PyJWT refuses a token whose payload was altered.
    let token = app.admin_token().await;
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    parts[1] = parts[1].chars().rev().collect();
    let forged = parts.join(".");
    let base = app.base.clone();
    let out =
        tokio::task::spawn_blocking(move || Command::new("python3").args(["-c", VERIFY, &base, &forged]).output())
            .await
            .unwrap()
            .unwrap();
    assert!(!out.status.success(), "PyJWT accepted a forged token");
}
