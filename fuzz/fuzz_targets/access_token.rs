//! Access tokens as the engine verifies them on every management call: any input either
//! verifies to claims that are exactly the token's, or is refused — never a panic.
#![no_main]

use std::sync::OnceLock;

use agentidp_engine::families::tokens::claims::AccessClaims;
use agentidp_engine::families::signing::keys::KeyRing;
use agentidp_fuzz::{ring, NOW_MS};
use libfuzzer_sys::fuzz_target;

static RING: OnceLock<KeyRing> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let ring = RING.get_or_init(ring);
    if let Ok(claims) = ring.verify::<AccessClaims>(token, NOW_MS) {
        // What verified must be what was signed: re-verifying gives the same claims.
        assert_eq!(ring.verify::<AccessClaims>(token, NOW_MS).ok(), Some(claims));
    }
});
