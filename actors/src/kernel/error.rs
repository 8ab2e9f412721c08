//! The one error type of the engine. Variants are what a caller can act on; driver errors
//! are converted once, in the adapter that meets them, and never leak their types here.

use std::time::Duration;

/// Everything an engine operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The input is malformed or violates a rule; `field` names the offending part when known.
    #[error("invalid input: {message}")]
    Invalid { field: Option<&'static str>, message: String },
    /// The thing does not exist, or the caller may not know that it exists.
    #[error("{kind} not found")]
    NotFound { kind: &'static str },
    /// A feature this deployment has not configured (e.g. `billing`): nothing to find.
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    /// The caller is authenticated but the policy denies the operation.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The caller's token lacks the scope the call needs (RFC 6750 §3.1).
    #[error("this call needs the scope {scope}, which the token does not hold")]
    InsufficientScope { scope: String },
    /// A Bearer token or client credential was missing, malformed, expired or wrong.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The request conflicts with current state (duplicate name, wrong status).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The organization's tier allows no more of `what` (e.g. agents): `limit` of them.
    #[error("the {} tier allows at most {limit} {what}", .tier.as_str())]
    TierLimit { tier: crate::kernel::model::Tier, what: &'static str, limit: u64 },
    /// The organization's daily call quota (`limit`, on `tier`) is used up until the next
    /// UTC midnight (`resets_at`, unix milliseconds), `retry_after` from now.
    #[error("the {} tier allows {limit} calls a day", .tier.as_str())]
    QuotaExceeded { tier: crate::kernel::model::Tier, limit: u64, retry_after: Duration, resets_at: i64 },
    /// Too many failed authentications: refused, even with the right credentials, for
    /// `retry_after`.
    #[error("locked out: {reason}")]
    LockedOut { reason: String, retry_after: Duration },
    /// A dependency (store, coordinator, actor) is unavailable; retrying may help.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// An OAuth 2.0 protocol error (RFC 6749 §5.2), answered in that form by OAuth endpoints.
    #[error("{error}: {description}")]
    OAuth { error: OAuthError, description: String },
    /// A bug or an unexpected state; logged with detail, shown to clients without it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        EngineError::Invalid { field: Some(field), message: message.into() }
    }

    pub fn not_found(kind: &'static str) -> Self {
        EngineError::NotFound { kind }
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        EngineError::Internal(message.to_string())
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// RFC 6749 §5.2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthError {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    InvalidDpopProof,
    UnsupportedTokenType,
}

impl OAuthError {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthError::InvalidRequest => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidGrant => "invalid_grant",
            OAuthError::UnauthorizedClient => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope => "invalid_scope",
            OAuthError::InvalidTarget => "invalid_target",
            OAuthError::InvalidDpopProof => "invalid_dpop_proof",
            OAuthError::UnsupportedTokenType => "unsupported_token_type",
        }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
