//! A federation partner's keys: its JWKS document parsed into the keys we verify with,
//! and how long a fetched document stays fresh. Pure: the fetching is the JwksCache
//! actors' (`actor/federation.rs`).

use std::time::Duration;

use serde_json::Value;

use crate::kernel::jose::{self, PublicJwk};

/// A JWKS holds at most this many keys; one with more is refused whole.
pub const MAX_KEYS: usize = 64;
/// A partner's JWKS is refreshed after its `Cache-Control: max-age`, bounded to this.
pub const MIN_MAX_AGE: Duration = Duration::from_secs(300);
pub const MAX_MAX_AGE: Duration = Duration::from_secs(86_400);
/// The refresh interval of a JWKS served without `max-age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);

/// One key of a partner's JWKS.
#[derive(Clone)]
pub struct PartnerKey {
    pub kid: Option<String>,
    pub jwk: std::sync::Arc<PublicJwk>,
}

impl std::fmt::Debug for PartnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartnerKey").field("kid", &self.kid).field("thumbprint", &self.jwk.thumbprint).finish()
    }
}

impl PartnerKey {
    /// What the partner record shows of the key.
    pub fn summary(&self) -> Value {
        let v = &self.jwk.value;
        serde_json::json!({
            "kid": self.kid,
            "kty": v.get("kty"),
            "alg": v.get("alg"),
            "crv": v.get("crv"),
            "thumbprint": self.jwk.thumbprint,
        })
    }
}

/// Parse a JWKS document (RFC 7517 §5): its signing keys. Keys meant for encryption or
/// of a kind we do not verify with are skipped; a key with private members, a document
/// that is not a JWKS, or one with more than [`MAX_KEYS`] keys is refused whole.
pub fn parse_jwks(doc: &Value) -> Result<Vec<PartnerKey>, String> {
    let keys = doc.get("keys").and_then(Value::as_array).ok_or("the JWKS has no \"keys\" array")?;
    if keys.len() > MAX_KEYS {
        return Err(format!("the JWKS has {} keys; at most {MAX_KEYS} are accepted", keys.len()));
    }
    let mut out = Vec::new();
    for key in keys {
        if key.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
            continue;
        }
        let kid = match key.get("kid") {
            None => None,
            Some(Value::String(k)) if k.len() <= 256 => Some(k.clone()),
            Some(_) => return Err("a key's kid must be a string of at most 256 characters".into()),
        };
        match jose::parse_public_jwk(key) {
            Ok(jwk) => out.push(PartnerKey { kid, jwk: std::sync::Arc::new(jwk) }),
            // A private key, or a point off its curve (an invalid-curve attack or a
            // corrupt document): the whole JWKS is refused.
            Err(e) if e.contains("private member") || e.contains("not on the curve") => return Err(e),
            // An RSA key under 2048 bits, an unknown curve: not usable, not fatal.
            Err(_) => continue,
        }
    }
    if out.is_empty() {
        return Err("the JWKS holds no usable signing key".into());
    }
    Ok(out)
}

/// How long a fetched JWKS stays fresh: its `Cache-Control` max-age (`s-maxage` is for
/// shared caches; `no-cache`/`no-store` mean the shortest), within [5 min, 24 h].
pub fn max_age(cache_control: Option<&str>) -> Duration {
    let mut age = None;
    for directive in cache_control.unwrap_or_default().split(',') {
        let d = directive.trim().to_ascii_lowercase();
        if d == "no-cache" || d == "no-store" {
            age = Some(Duration::ZERO);
        } else if let Some(secs) = d.strip_prefix("max-age=") {
            if let Ok(secs) = secs.trim_matches('"').parse::<u64>() {
                age = Some(age.map_or(Duration::from_secs(secs), |a: Duration| a.min(Duration::from_secs(secs))));
            }
        }
    }
    age.unwrap_or(DEFAULT_MAX_AGE).clamp(MIN_MAX_AGE, MAX_MAX_AGE)
}
