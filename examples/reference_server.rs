//! The reference endpoint of the load harness: the least work a client_credentials token
//! endpoint on this stack can do — parse the form, check a SHA-256 secret, sign an ES256
//! JWT with a key parsed once. No store, no audit, no policy: the bound AgentIdP's full
//! pipeline is measured against.
//!
//! `reference_server <listen> <client_id> <client_secret>`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use aws_lc_rs::{constant_time, digest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use warp::http::StatusCode;
use warp::Filter;

// The same allocator as the agentidp binary, so the ratio compares pipelines, not allocators.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Reference {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    header: String,
    client_id: String,
    secret_hash: Vec<u8>,
}

impl Reference {
    fn token(&self, form: &HashMap<String, String>) -> Option<String> {
        if form.get("grant_type")? != "client_credentials" || form.get("client_id")? != &self.client_id {
            return None;
        }
        let presented = digest::digest(&digest::SHA256, form.get("client_secret")?.as_bytes());
        #[allow(deprecated)]
        constant_time::verify_slices_are_equal(presented.as_ref(), &self.secret_hash).ok()?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        let claims = serde_json::json!({
            "iss": "http://reference", "sub": self.client_id, "aud": "http://reference",
            "iat": now, "nbf": now, "exp": now + 900, "jti": uuid::Uuid::now_v7(),
            "client_id": self.client_id, "scope": "",
        });
        let mut jwt = self.header.clone();
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(&claims).ok()?, &mut jwt);
        let sig = self.key.sign(&self.rng, jwt.as_bytes()).ok()?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut jwt);
        Some(serde_json::json!({"access_token": jwt, "token_type": "Bearer", "expires_in": 900}).to_string())
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, client_id, secret] = args.as_slice() else {
        eprintln!("usage: reference_server <listen> <client_id> <client_secret>");
        std::process::exit(2);
    };
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let header = format!("{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"at+jwt","kid":"reference"}"#));
    let reference = Arc::new(Reference {
        key,
        rng,
        header,
        client_id: client_id.clone(),
        secret_hash: digest::digest(&digest::SHA256, secret.as_bytes()).as_ref().to_vec(),
    });
    let route = warp::post()
        .and(warp::path!("token"))
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::form::<HashMap<String, String>>())
        .map(move |form: HashMap<String, String>| match reference.token(&form) {
            Some(body) => warp::reply::with_status(body, StatusCode::OK),
            None => warp::reply::with_status(r#"{"error":"invalid_client"}"#.to_string(), StatusCode::UNAUTHORIZED),
        });
    let listener = tokio::net::TcpListener::bind(listen.as_str()).await.unwrap();
    warp::serve(route).incoming(listener).run().await;
}
