//! When a token or assertion is valid: the leeway every time check allows, and the
//! `exp`/`nbf` rule that access tokens, assertions and subject tokens share.

use crate::error::{EngineError, Result};
use crate::model::Millis;

/// Seconds of clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 30;

/// Claims whose validity window the engine checks.
pub trait TimeClaims {
    fn exp(&self) -> i64;
    fn nbf(&self) -> Option<i64>;
}

/// `exp` (seconds) must be in the future and `nbf` not, within the leeway.
pub fn check_times(exp: i64, nbf: Option<i64>, now: Millis) -> Result<()> {
    let now_s = now / 1000;
    if exp + LEEWAY_SECS <= now_s {
        return Err(EngineError::InvalidToken("token expired".into()));
    }
    if nbf.is_some_and(|nbf| nbf - LEEWAY_SECS > now_s) {
        return Err(EngineError::InvalidToken("token not yet valid".into()));
    }
    Ok(())
}
