//! The one place engine errors become HTTP: RFC 9457 problem documents for the
//! management API, and the RFC 6749 §5.2 error form for OAuth endpoints.

use agentidp_engine::{EngineError, QuotaState};
use serde_json::json;
use warp::http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

/// An RFC 9457 problem: `type` is a stable URN that clients may match on.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Extension members (e.g. the offending `field`).
    pub extra: serde_json::Map<String, serde_json::Value>,
    headers: Vec<(warp::http::HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Problem { status, kind, title, detail: detail.into(), extra: Default::default(), headers: Vec::new() }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request", detail)
    }

    pub fn invalid_field(field: &str, detail: impl Into<String>) -> Self {
        let mut p = Problem::new(StatusCode::BAD_REQUEST, "validation-error", "Invalid input", detail);
        p.extra.insert("field".into(), field.into());
        p
    }

    pub fn with_header(mut self, name: warp::http::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    pub fn with_header_value(mut self, name: warp::http::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The problem document (`application/problem+json`).
    pub fn body(&self) -> String {
        let mut body = json!({
            "type": format!("urn:agentidp:problem:{}", self.kind),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(obj) = body.as_object_mut() {
            obj.extend(self.extra.clone());
        }
        body.to_string()
    }

    pub fn into_response(self) -> Response {
        let mut resp = warp::reply::with_status(self.body(), self.status).into_response();
        resp.extensions_mut().insert(Refusal(format!("{}: {}", self.kind, self.detail)));
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid { field: Some(field), message } => Problem::invalid_field(field, message),
            EngineError::Invalid { field: None, message } => Problem::bad_request(message),
            EngineError::NotFound { kind } => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("{kind} not found"))
            }
            e @ EngineError::NotConfigured(_) => {
                Problem::new(StatusCode::NOT_FOUND, "not-configured", "Not configured", e.to_string())
            }
            EngineError::Forbidden(detail) => Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail),
            EngineError::InsufficientScope { scope } => {
                let detail = EngineError::InsufficientScope { scope: scope.clone() }.to_string();
                let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
                let mut p = Problem::new(StatusCode::FORBIDDEN, "insufficient-scope", "Insufficient scope", detail);
                p.extra.insert("scope".into(), scope.into());
                match HeaderValue::from_str(&challenge) {
                    Ok(v) => p.with_header_value(WWW_AUTHENTICATE, v),
                    Err(_) => p,
                }
            }
            EngineError::InvalidToken(detail) => {
                Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail)
                    .with_header(WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")
            }
            EngineError::Conflict(detail) => Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail),
            EngineError::TierLimit { tier, what, limit } => {
                let detail = format!("the {} tier allows at most {limit} {what}", tier.as_str());
                let mut p = Problem::new(StatusCode::FORBIDDEN, "tier-limit", "Tier limit reached", detail);
                p.extra.insert("tier".into(), tier.as_str().into());
                p.extra.insert("limit".into(), limit.into());
                p
            }
            EngineError::QuotaExceeded { tier, limit, retry_after, resets_at } => {
                let resets = agentidp_engine::kernel::model::rfc3339::format(resets_at);
                let detail = quota_detail(tier, limit, &resets);
                let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "quota-exceeded", "Quota exceeded", detail);
                p.extra.insert("tier".into(), tier.as_str().into());
                p.extra.insert("limit".into(), limit.into());
                p.extra.insert("resets_at".into(), resets.into());
                for (name, value) in quota_exceeded_headers(limit, retry_after.as_secs()) {
                    p.headers.push((name, value));
                }
                p
            }
            EngineError::LockedOut { reason, retry_after } => {
                let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "locked-out", "Locked out", reason);
                p.headers.push((RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1))));
                p
            }
            EngineError::Unavailable(detail) => {
                tracing::warn!(%detail, "service unavailable");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable", "try again shortly")
                    .with_header(RETRY_AFTER, "1")
            }
            EngineError::OAuth { error, description } => {
                let mut p = Problem::bad_request(description);
                p.extra.insert("error".into(), error.as_str().into());
                p
            }
            EngineError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "an internal error occurred",
                )
            }
        }
    }
}

/// The `RateLimit-Policy` and `RateLimit` headers (IETF httpapi ratelimit-headers) of
/// a counted response; none for an unlimited tier.
pub fn ratelimit_headers(quota: &QuotaState) -> Vec<(HeaderName, HeaderValue)> {
    match (quota.limit, quota.remaining) {
        (Some(limit), Some(remaining)) => rate_headers(limit, remaining, quota.reset_secs),
        _ => Vec::new(),
    }
}

fn rate_headers(limit: u64, remaining: u64, reset_secs: u64) -> Vec<(HeaderName, HeaderValue)> {
    let policy = format!("\"daily\";q={limit};w=86400");
    let state = format!("\"daily\";r={remaining};t={reset_secs}");
    [(RATELIMIT_POLICY, policy), (RATELIMIT, state)]
        .into_iter()
        .filter_map(|(name, v)| Some((HeaderName::from_static(name), HeaderValue::from_str(&v).ok()?)))
        .collect()
}

/// A refused call's headers: nothing left, and `Retry-After` at the reset (never earlier
/// than `RateLimit`'s `t`).
fn quota_exceeded_headers(limit: u64, retry_after: u64) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = rate_headers(limit, 0, retry_after);
    headers.push((RETRY_AFTER, HeaderValue::from(retry_after)));
    headers
}

const RATELIMIT_POLICY: &str = "ratelimit-policy";
const RATELIMIT: &str = "ratelimit";

/// An RFC 6749 §5.2 error response.
pub fn oauth_error(e: EngineError) -> Response {
    use agentidp_engine::OAuthError;
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let (status, body) = match e {
        EngineError::OAuth { error, description } => {
            let status =
                if error == OAuthError::InvalidClient { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
            if status == StatusCode::UNAUTHORIZED {
                headers.push((WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"agentidp\"")));
            }
            (status, oauth_body(error.as_str(), description))
        }
        EngineError::Invalid { message, .. } => (StatusCode::BAD_REQUEST, oauth_body("invalid_request", message)),
        EngineError::InvalidToken(detail) => {
            headers.push((WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\"")));
            (StatusCode::UNAUTHORIZED, oauth_body("invalid_token", detail))
        }
        EngineError::Forbidden(detail) => (StatusCode::FORBIDDEN, oauth_body("insufficient_scope", detail)),
        e @ EngineError::InsufficientScope { .. } => {
            (StatusCode::FORBIDDEN, oauth_body("insufficient_scope", e.to_string()))
        }
        e @ EngineError::TierLimit { .. } => (StatusCode::FORBIDDEN, oauth_body("access_denied", e.to_string())),
        EngineError::QuotaExceeded { tier, limit, retry_after, resets_at } => {
            let resets = agentidp_engine::kernel::model::rfc3339::format(resets_at);
            let mut body = oauth_body("quota_exceeded", quota_detail(tier, limit, &resets));
            body["tier"] = tier.as_str().into();
            body["limit"] = limit.into();
            body["resets_at"] = resets.into();
            headers.extend(quota_exceeded_headers(limit, retry_after.as_secs()));
            (StatusCode::TOO_MANY_REQUESTS, body)
        }
        EngineError::LockedOut { reason, retry_after } => {
            headers.push((RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1))));
            (StatusCode::TOO_MANY_REQUESTS, oauth_body("slow_down", reason))
        }
        EngineError::Unavailable(detail) => {
            tracing::warn!(%detail, "token endpoint unavailable");
            headers.push((RETRY_AFTER, HeaderValue::from_static("1")));
            (StatusCode::SERVICE_UNAVAILABLE, oauth_body("temporarily_unavailable", "try again shortly".into()))
        }
        other => {
            tracing::error!(error = %other, "token endpoint failed");
            (StatusCode::INTERNAL_SERVER_ERROR, oauth_body("server_error", "an internal error occurred".into()))
        }
    };
    let mut resp = warp::reply::with_status(body.to_string(), status).into_response();
    let reason = format!(
        "{}: {}",
        body["error"].as_str().unwrap_or_default(),
        body["error_description"].as_str().unwrap_or_default()
    );
    resp.extensions_mut().insert(Refusal(reason));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in headers {
        h.insert(name, value);
    }
    resp
}

/// Why a request was refused, in the words its answer gives (never a secret): the access
/// log's `reason`, carried from the answer to the log line in the response's extensions.
#[derive(Clone)]
pub struct Refusal(pub String);

fn oauth_body(error: &str, description: String) -> serde_json::Value {
    json!({"error": error, "error_description": description})
}

/// What a refusal by the daily quota says, in either answer form.
fn quota_detail(tier: agentidp_engine::Tier, limit: u64, resets: &str) -> String {
    format!("the {} tier allows {limit} calls a day; the quota resets at {resets}", tier.as_str())
}

pub fn oauth_invalid_request(description: impl Into<String>) -> EngineError {
    EngineError::OAuth { error: agentidp_engine::OAuthError::InvalidRequest, description: description.into() }
}
