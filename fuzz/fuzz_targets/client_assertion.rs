//! private_key_jwt client assertions (RFC 7523): the unverified `iss` look-up and the
//! full verification against the client's registered key never panic, and whatever
//! verifies carries a jti within bounds and the client's own iss.
#![no_main]

use std::sync::OnceLock;

use agentidp_engine::kernel::jose::{assertion_issuer, verify_client_assertion, PublicJwk};
use agentidp_fuzz::{client_jwk, CLIENT_ID, NOW_MS, TOKEN_URL};
use libfuzzer_sys::fuzz_target;

static KEY: OnceLock<PublicJwk> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(assertion) = std::str::from_utf8(data) else { return };
    let _ = assertion_issuer(assertion);
    let key = KEY.get_or_init(client_jwk);
    let audiences = [TOKEN_URL.to_string(), agentidp_fuzz::ISSUER.to_string()];
    if let Ok(verified) = verify_client_assertion(assertion, key, CLIENT_ID, &audiences, NOW_MS, 30) {
        assert!(!verified.jti.is_empty() && verified.jti.len() <= 256);
        assert_eq!(assertion_issuer(assertion).as_deref(), Ok(CLIENT_ID));
    }
});
