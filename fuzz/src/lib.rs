//! What the fuzz targets share: one fixed ES256 key (`keys/es256.pem`, a test key that
//! signs nothing real), the issuer and the instant they verify at. The seed corpora
//! (`scripts/fuzz-parsers` makes them) are signed with the same key, so the fuzzer starts
//! from inputs that get past the signature and explores the claim checks behind it.

use agentidp_engine::kernel::jose::{parse_public_jwk, PublicJwk};
use agentidp_engine::families::signing::keys::{KeyRing, SigningAlg, SigningKey};
use base64::Engine as _;

pub const ISSUER: &str = "https://issuer.fuzz.test";
pub const CLIENT_ID: &str = "aidp_fuzz_client";
pub const TOKEN_URL: &str = "https://issuer.fuzz.test/api/v1/oauth2/token";
/// 2026-01-01T00:00:00Z: the seeds are made valid at this instant.
pub const NOW_MS: i64 = 1_767_225_600_000;

const PEM: &str = include_str!("../keys/es256.pem");

fn pkcs8() -> Vec<u8> {
    let body: String = PEM.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap_or_default()
}

/// The fixed key as the engine holds a signing key.
pub fn signing_key() -> SigningKey {
    match SigningKey::from_pkcs8(SigningAlg::Es256, &pkcs8(), 0, 0) {
        Ok(key) => key,
        Err(e) => panic!("keys/es256.pem is not a P-256 PKCS#8 key: {e}"),
    }
}

/// A key ring that publishes the fixed key, as the engine verifies access tokens.
pub fn ring() -> KeyRing {
    match KeyRing::new(vec![signing_key()], ISSUER, 900_000) {
        Ok(ring) => ring,
        Err(e) => panic!("key ring: {e}"),
    }
}

/// The fixed key as a client's registered public key (private_key_jwt).
pub fn client_jwk() -> PublicJwk {
    let mut jwk = signing_key().jwk().clone();
    if let Some(o) = jwk.as_object_mut() {
        o.remove("kid");
        o.remove("use");
    }
    match parse_public_jwk(&jwk) {
        Ok(key) => key,
        Err(e) => panic!("client jwk: {e}"),
    }
}
