//! A partner's JWT checked against its rules: peeked at before any key is read, the
//! candidate keys chosen by `kid` and `alg`, then verified. Pure functions of the JWT,
//! the partner, its keys and `now`.

use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use crate::families::federation::rules::{Partner, PartnerKey, PartnerRules};
use crate::kernel::jose;
use crate::kernel::model::Millis;

/// What can be read of a JWT before any key is looked at. A JWT that fails here never
/// causes a JWKS fetch.
#[derive(Debug)]
pub struct Peeked {
    pub header: jsonwebtoken::Header,
    pub iss: String,
}

pub fn peek(jwt: &str) -> Result<Peeked, String> {
    if jwt.len() > jose::MAX_JWT_LEN {
        return Err("the JWT is too large".into());
    }
    if jwt.split('.').count() != 3 {
        return Err("the JWT is malformed (a signed JWT has three parts)".into());
    }
    // Decoding the header refuses alg "none" and any algorithm jsonwebtoken does not know.
    let header = jsonwebtoken::decode_header(jwt)
        .map_err(|_| "the JWT header is malformed or its alg unsupported".to_string())?;
    let claims: Value =
        jsonwebtoken::dangerous::insecure_decode::<Value>(jwt).map_err(|_| "the JWT is malformed".to_string())?.claims;
    let iss = claims.get("iss").and_then(Value::as_str).ok_or("the JWT has no iss")?;
    Ok(Peeked { header, iss: iss.to_string() })
}

/// Whether the partner allows the JWT's algorithm (checked before any key is sought).
pub fn alg_allowed(rules: &PartnerRules, alg: Algorithm) -> bool {
    let name = format!("{alg:?}");
    rules.allowed_algs.contains(&name)
}

/// The keys a JWT may be verified with: the one its `kid` names, or — without a kid —
/// every key that signs with its alg.
pub fn candidates<'a>(keys: &'a [PartnerKey], header: &jsonwebtoken::Header) -> Vec<&'a PartnerKey> {
    keys.iter()
        .filter(|k| match &header.kid {
            Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
            None => true,
        })
        .filter(|k| k.jwk.algs.contains(&header.alg))
        .collect()
}

/// A partner JWT that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedJwt {
    pub claims: Value,
    pub sub: String,
    /// `None` when replay protection is off and the JWT has none.
    pub jti: Option<String>,
    pub exp: i64,
    pub iat: i64,
}

/// Check a partner JWT with one of its keys: the signature, `iss` exact, `aud` one of
/// `audiences`, `exp` present, not passed and at most the partner's lifetime ahead,
/// `nbf`/`iat` not ahead — each with `skew` seconds of leeway (RFC 7523 §3 leaves it to
/// us) — `sub` allowed, and a `jti` when replay protection is on. (Spending the `jti` is
/// the caller's, cluster-wide.)
pub fn verify(
    jwt: &str,
    header: &jsonwebtoken::Header,
    partner: &Partner,
    key: &PartnerKey,
    audiences: &[String],
    now: Millis,
    skew: i64,
) -> Result<VerifiedJwt, String> {
    let mut v = Validation::new(header.alg);
    v.algorithms = vec![header.alg];
    v.set_audience(audiences);
    v.set_issuer(&[partner.issuer.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    v.validate_exp = false;
    v.validate_nbf = false;
    let claims = jsonwebtoken::decode::<Value>(jwt, &key.jwk.key, &v)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAudience => "the JWT's aud is not accepted here".to_string(),
            jsonwebtoken::errors::ErrorKind::InvalidSignature => "the JWT's signature does not verify".to_string(),
            jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(c) => format!("the JWT has no {c}"),
            _ => format!("the JWT does not verify: {}", jose::describe(&e)),
        })?
        .claims;
    let now_s = now / 1000;
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or("exp must be a number")?;
    if exp + skew <= now_s {
        return Err("the JWT is expired".into());
    }
    if exp > now_s + partner.rules.max_assertion_lifetime as i64 + skew {
        return Err(format!(
            "the JWT expires too far ahead: this partner's JWTs live at most {} s",
            partner.rules.max_assertion_lifetime
        ));
    }
    let time = |name| claims.get(name).map(|v| v.as_i64().ok_or(format!("{name} must be a number"))).transpose();
    if time("nbf")?.is_some_and(|nbf| nbf > now_s + skew) {
        return Err("the JWT is not valid yet (nbf)".into());
    }
    let iat = time("iat")?;
    if iat.is_some_and(|iat| iat > now_s + skew) {
        return Err("the JWT was issued in the future (iat)".into());
    }
    let sub = claims.get("sub").and_then(Value::as_str).ok_or("sub must be a string")?.to_string();
    if !partner.rules.allowed_subjects.allows(&sub) {
        return Err("the JWT's subject is not allowed for this partner".into());
    }
    let jti = claims.get("jti").and_then(Value::as_str).filter(|j| !j.is_empty() && j.len() <= 256);
    if partner.rules.replay_protection && jti.is_none() {
        return Err("the JWT needs a jti (this partner's JWTs are single-use)".into());
    }
    let iat = iat.unwrap_or(exp - partner.rules.max_assertion_lifetime as i64);
    Ok(VerifiedJwt { jti: jti.map(String::from), sub, exp, iat, claims })
}
