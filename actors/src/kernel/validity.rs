//! When a token or assertion is valid: the leeway every time check allows, and the
//! `exp`/`nbf` rule that access tokens, assertions and subject tokens share.

use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::Millis;

/// Seconds of clock difference tolerated between AgentIdP's own nodes (the `nbf` of its
/// own tokens) and allowed to verifiers of its tokens (a retired key stays published this
/// long past its last token's expiry). What others sign is judged with the configured
/// `clock_skew` instead ([`DEFAULT_CLOCK_SKEW_SECS`] unless set).
pub const LEEWAY_SECS: i64 = 30;

/// The default of `EngineConfig::clock_skew`: the leeway on `exp`, `nbf` and `iat` of what
/// others sign — client assertions, DPoP proofs, partners' JWTs.
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 30;

/// AgentIdP judges the expiry of its own tokens by its own clock: a token is dead the
/// second its `exp` is reached. (`nbf` keeps [`LEEWAY_SECS`]: another node's clock may run
/// a little ahead of this one's.)
pub const OWN_EXP_LEEWAY_SECS: i64 = 0;

/// Claims whose validity window the engine checks.
pub trait TimeClaims {
    fn exp(&self) -> i64;
    fn nbf(&self) -> Option<i64>;
}

/// `exp` (seconds) must be in the future (within `exp_leeway` seconds) and `nbf` not
/// (within [`LEEWAY_SECS`]).
pub fn check_times(exp: i64, nbf: Option<i64>, now: Millis, exp_leeway: i64) -> Result<()> {
    let now_s = now / 1000;
    if exp + exp_leeway <= now_s {
        return Err(EngineError::InvalidToken("token expired".into()));
    }
    if nbf.is_some_and(|nbf| nbf - LEEWAY_SECS > now_s) {
        return Err(EngineError::InvalidToken("token not yet valid".into()));
    }
    Ok(())
}
