//! The token endpoint's request parsing: the form body with the Authorization and DPoP
//! headers beside it. Input: the Authorization header, a newline, the form. Any input is
//! a token request or an OAuth error of the RFC 6749 kind — never a panic, never another
//! kind of error (which the endpoint would answer as something else than RFC 6749).
#![no_main]

use agentidp::http::token_request;
use agentidp_engine::EngineError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, form) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };
    match token_request(form, header, None) {
        Ok(_) | Err(EngineError::OAuth { .. }) => {}
        Err(other) => panic!("the token form answered a non-OAuth error: {other:?}"),
    }
});
