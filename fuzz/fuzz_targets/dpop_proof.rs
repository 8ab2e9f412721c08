//! DPoP proofs (RFC 9449) for the token endpoint and for resource requests: any input is
//! refused or verifies to a proof whose key thumbprint and jti are well-formed — never a
//! panic.
#![no_main]

use agentidp_engine::kernel::jose::{verify_dpop_proof, DpopExpectation};
use agentidp_fuzz::{NOW_MS, TOKEN_URL};
use libfuzzer_sys::fuzz_target;

/// The access token the resource-request seeds' `ath` hashes.
const ACCESS_TOKEN: &str = "fuzz-access-token";

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else { return };
    for access_token in [None, Some(ACCESS_TOKEN)] {
        let expect = DpopExpectation { htm: "POST", htu: TOKEN_URL, access_token, now: NOW_MS, skew: 30 };
        if let Ok(verified) = verify_dpop_proof(proof, &expect) {
            assert_eq!(verified.jkt.len(), 43, "a SHA-256 thumbprint, base64url");
            assert!(!verified.jti.is_empty() && verified.jti.len() <= 256);
        }
    }
});
