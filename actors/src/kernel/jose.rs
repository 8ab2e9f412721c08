//! JOSE checks that do not depend on our own keys: parsing a client's public JWK,
//! RFC 7638 thumbprints, RFC 7523 client assertions and RFC 9449 DPoP proofs. Pure
//! functions of their inputs and `now`; errors are plain descriptions for the caller
//! to wrap.

use aws_lc_rs::{digest, signature};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::kernel::model::Millis;

/// Largest assertion or proof we parse.
pub const MAX_JWT_LEN: usize = 8192;
/// How far in the future a client assertion may expire.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 3600;
/// Accepted age of a DPoP proof's `iat` (the clock skew is allowed on top, both ways).
pub const DPOP_MAX_AGE_SECS: i64 = 60;

const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A validated public key with what it may sign with.
pub struct PublicJwk {
    pub key: DecodingKey,
    pub algs: Vec<Algorithm>,
    /// RFC 7638 thumbprint (base64url SHA-256).
    pub thumbprint: String,
    /// The key as registered, without private members (there are none).
    pub value: Value,
}

fn str_member<'a>(jwk: &'a Value, name: &str) -> Result<&'a str, String> {
    jwk.get(name).and_then(Value::as_str).ok_or_else(|| format!("JWK member {name:?} is missing"))
}

/// Parse and check a public JWK (EC P-256/P-384, RSA ≥ 2048 bits, or Ed25519).
pub fn parse_public_jwk(value: &Value) -> Result<PublicJwk, String> {
    let obj = value.as_object().ok_or("the JWK must be a JSON object")?;
    if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
        return Err(format!("the JWK holds private member {m:?}: register the public key only"));
    }
    let kty = str_member(value, "kty")?;
    let (required, algs) = match kty {
        "EC" => {
            let crv = str_member(value, "crv")?;
            let (alg, curve, size): (_, &'static dyn signature::VerificationAlgorithm, _) = match crv {
                "P-256" => (Algorithm::ES256, &signature::ECDSA_P256_SHA256_FIXED, 32),
                "P-384" => (Algorithm::ES384, &signature::ECDSA_P384_SHA384_FIXED, 48),
                other => return Err(format!("unsupported EC curve {other:?}")),
            };
            let (x, y) = (str_member(value, "x")?, str_member(value, "y")?);
            check_ec_point(curve, size, x, y).map_err(|why| format!("the JWK is not a {crv} public key: {why}"))?;
            (json!({"crv": crv, "kty": kty, "x": x, "y": y}), vec![alg])
        }
        "RSA" => {
            let n = str_member(value, "n")?;
            let bits = URL_SAFE_NO_PAD.decode(n).map_err(|_| "JWK member \"n\" is not base64url")?.len() * 8;
            if bits < 2048 {
                return Err("RSA keys must have at least 2048 bits".into());
            }
            (json!({"e": str_member(value, "e")?, "kty": kty, "n": n}), vec![Algorithm::RS256, Algorithm::PS256])
        }
        "OKP" => {
            let crv = str_member(value, "crv")?;
            if crv != "Ed25519" {
                return Err(format!("unsupported OKP curve {crv:?}"));
            }
            (json!({"crv": crv, "kty": kty, "x": str_member(value, "x")?}), vec![Algorithm::EdDSA])
        }
        other => return Err(format!("unsupported key type {other:?}")),
    };
    let algs = match value.get("alg").and_then(Value::as_str) {
        Some(alg) => {
            let wanted: Algorithm = alg.parse().map_err(|_| format!("unknown alg {alg:?}"))?;
            if !algs.contains(&wanted) {
                return Err(format!("alg {alg:?} does not fit a {kty} key"));
            }
            vec![wanted]
        }
        None => algs,
    };
    let jwk: Jwk = serde_json::from_value(value.clone()).map_err(|e| format!("malformed JWK: {e}"))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable JWK: {e}"))?;
    let thumbprint = thumbprint(&required);
    Ok(PublicJwk { key, algs, thumbprint, value: value.clone() })
}

/// An EC public key's coordinates must be of the curve's size and name a point on it
/// (an off-curve point is the classic invalid-curve attack, and never verifies anything).
fn check_ec_point(
    curve: &'static dyn signature::VerificationAlgorithm,
    size: usize,
    x: &str,
    y: &str,
) -> Result<(), &'static str> {
    let (x, y) = match (URL_SAFE_NO_PAD.decode(x), URL_SAFE_NO_PAD.decode(y)) {
        (Ok(x), Ok(y)) => (x, y),
        _ => return Err("x and y must be base64url"),
    };
    if x.len() != size || y.len() != size {
        return Err("x and y have the wrong length for the curve");
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    signature::ParsedPublicKey::new(curve, &point).map(|_| ()).map_err(|_| "the point is not on the curve")
}

/// Whether a JWT's protected header carries a `jwk` with private members. The typed
/// header drops unknown members, so this reads the header's JSON itself.
pub fn header_jwk_is_private(jwt: &str) -> bool {
    let Some(encoded) = jwt.split('.').next() else { return false };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(encoded) else { return false };
    let Ok(header) = serde_json::from_slice::<Value>(&bytes) else { return false };
    header.get("jwk").and_then(Value::as_object).is_some_and(|jwk| PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)))
}

/// base64url without padding (RFC 7515 §2), as every JOSE member is encoded.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7638 thumbprint of the required members (serde_json sorts object keys).
pub fn thumbprint(required: &Value) -> String {
    b64(digest::digest(&digest::SHA256, required.to_string().as_bytes()).as_ref())
}

/// base64url(SHA-256(token)): the DPoP `ath` of an access token.
pub fn access_token_hash(token: &str) -> String {
    b64(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

/// A JWT library error in words (never a type name such as `InvalidSignature`).
pub fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => "the signature does not verify".into(),
        K::InvalidIssuer => "the token's issuer (iss) is not the one expected".into(),
        K::InvalidAudience => "the token's audience (aud) is not accepted here".into(),
        K::InvalidSubject => "the token's subject (sub) is not the one expected".into(),
        K::ExpiredSignature => "the token is expired".into(),
        K::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        K::MissingRequiredClaim(c) => format!("the token has no {c} claim"),
        K::InvalidAlgorithm | K::InvalidAlgorithmName => "the token's algorithm does not fit its key".into(),
        K::InvalidKeyFormat | K::InvalidEcdsaKey | K::InvalidRsaKey(_) => "the key is unusable".into(),
        K::Json(_) => "the token's claims are not what they must be".into(),
        _ => "the token is malformed".into(),
    }
}

fn header_of(jwt: &str) -> Result<jsonwebtoken::Header, String> {
    if jwt.len() > MAX_JWT_LEN {
        return Err("the JWT is too large".into());
    }
    jsonwebtoken::decode_header(jwt).map_err(|_| "the JWT is malformed".to_string())
}

fn decode_with(jwt: &str, key: &PublicJwk, header: &jsonwebtoken::Header, mut v: Validation) -> Result<Value, String> {
    if !key.algs.contains(&header.alg) {
        return Err(format!("alg {:?} is not accepted for this key", header.alg));
    }
    v.algorithms = vec![header.alg];
    v.validate_exp = false;
    v.validate_nbf = false;
    jsonwebtoken::decode::<Value>(jwt, &key.key, &v)
        .map(|d| d.claims)
        .map_err(|e| format!("the JWT does not verify: {}", describe(&e)))
}

/// Verify a JWT of type `typ` (an issuer's statement, not an access token: no audience,
/// no expiry) by the key its `kid` names in `jwks` (a JWK Set); its claims.
pub fn verify_with_jwks(jwt: &str, jwks: &Value, typ: &str) -> Result<Value, String> {
    let header = header_of(jwt)?;
    if header.typ.as_deref() != Some(typ) {
        return Err(format!("not a {typ} (typ {:?})", header.typ));
    }
    let kid = header.kid.as_deref().ok_or("the JWT names no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .ok_or_else(|| format!("the JWKS has no key {kid:?}"))?;
    let key = parse_public_jwk(jwk)?;
    let mut v = Validation::new(header.alg);
    v.required_spec_claims.clear();
    v.validate_aud = false;
    decode_with(jwt, &key, &header, v)
}

/// The `iss` of an unverified assertion, to find the client that claims to sign it.
pub fn assertion_issuer(assertion: &str) -> Result<String, String> {
    header_of(assertion)?;
    let claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(assertion)
        .map_err(|_| "the client assertion is malformed".to_string())?
        .claims;
    claims.get("iss").and_then(Value::as_str).map(String::from).ok_or_else(|| "the client assertion has no iss".into())
}

/// A verified client assertion's replay key and expiry (seconds).
pub struct VerifiedAssertion {
    pub jti: String,
    pub exp: i64,
    /// When it was made (unix seconds): its `iat`, or — without one — the earliest it can
    /// have been made, `exp` less the longest lifetime allowed.
    pub iat: i64,
}

/// RFC 7523 §3: signature by the registered key; `iss` = `sub` = the client id; `aud`
/// names this server; `exp` present, not passed, and not too far ahead; `jti` present.
/// `exp`, `nbf` and `iat` are judged with `skew` seconds of leeway (the client's clock is
/// not ours).
pub fn verify_client_assertion(
    assertion: &str,
    key: &PublicJwk,
    client_id: &str,
    audiences: &[String],
    now: Millis,
    skew: i64,
) -> Result<VerifiedAssertion, String> {
    let header = header_of(assertion)?;
    let mut v = Validation::new(header.alg);
    v.set_audience(audiences);
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = decode_with(assertion, key, &header, v)?;
    let iss = claims.get("iss").and_then(Value::as_str);
    let sub = claims.get("sub").and_then(Value::as_str);
    if iss != Some(client_id) || sub != Some(client_id) {
        return Err("iss and sub must both be the client id".into());
    }
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or("exp must be a number")?;
    let nbf = claims.get("nbf").and_then(Value::as_i64);
    if exp + skew <= now / 1000 {
        return Err("the client assertion is expired".into());
    }
    if nbf.is_some_and(|nbf| nbf - skew > now / 1000) {
        return Err("the client assertion is not valid yet (nbf)".into());
    }
    // Many clients (Authlib, for one) ask for exactly an hour; allow their clock skew.
    if exp > now / 1000 + MAX_ASSERTION_LIFETIME_SECS + skew {
        return Err("the client assertion expires too far in the future".into());
    }
    let iat = claims.get("iat").and_then(Value::as_i64);
    if iat.is_some_and(|iat| iat > now / 1000 + skew) {
        return Err("the client assertion was issued in the future".into());
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or("the client assertion needs a jti")?;
    Ok(VerifiedAssertion { jti: jti.to_string(), exp, iat: iat.unwrap_or(exp - MAX_ASSERTION_LIFETIME_SECS) })
}

/// What a DPoP proof must match.
pub struct DpopExpectation<'a> {
    pub htm: &'a str,
    pub htu: &'a str,
    /// The access token the proof accompanies (resource requests), whose hash is `ath`.
    pub access_token: Option<&'a str>,
    pub now: Millis,
    /// Seconds of clock skew allowed on the proof's `iat`, both ways.
    pub skew: i64,
}

pub struct VerifiedProof {
    /// Thumbprint of the proof's key: the `cnf.jkt` a bound token carries.
    pub jkt: String,
    pub jti: String,
    /// The proof's `iat` (unix seconds).
    pub iat: i64,
}

/// Compare URIs without query and fragment (RFC 9449 §4.3).
fn strip_uri(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or(uri)
}

/// RFC 9449 §4.3 checks of a DPoP proof (replay is the caller's, with `jti`).
pub fn verify_dpop_proof(proof: &str, expect: &DpopExpectation<'_>) -> Result<VerifiedProof, String> {
    let header = header_of(proof)?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err("the DPoP proof must have typ dpop+jwt".into());
    }
    let jwk = header.jwk.as_ref().ok_or("the DPoP proof has no jwk header")?;
    // RFC 9449 §4.2: the jwk MUST NOT contain a private key.
    if header_jwk_is_private(proof) {
        return Err("the DPoP proof's jwk holds a private key: it must carry the public key only".into());
    }
    let jwk_value = serde_json::to_value(jwk).map_err(|e| e.to_string())?;
    let key = parse_public_jwk(&jwk_value)?;
    let mut v = Validation::new(header.alg);
    v.required_spec_claims.clear();
    v.validate_aud = false;
    let claims = decode_with(proof, &key, &header, v)?;
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or("the DPoP proof needs a jti")?;
    if claims.get("htm").and_then(Value::as_str) != Some(expect.htm) {
        return Err("the DPoP proof's htm does not match the request method".into());
    }
    let htu = claims.get("htu").and_then(Value::as_str).ok_or("the DPoP proof needs an htu")?;
    if strip_uri(htu) != strip_uri(expect.htu) {
        return Err("the DPoP proof's htu does not match the request URI".into());
    }
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or("the DPoP proof needs an iat")?;
    let now_s = expect.now / 1000;
    if iat > now_s + expect.skew || iat < now_s - DPOP_MAX_AGE_SECS - expect.skew {
        return Err("the DPoP proof is too old or from the future".into());
    }
    if let Some(token) = expect.access_token {
        if claims.get("ath").and_then(Value::as_str) != Some(access_token_hash(token).as_str()) {
            return Err("the DPoP proof's ath does not match the access token".into());
        }
    }
    Ok(VerifiedProof { jkt: key.thumbprint, jti: jti.to_string(), iat })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::signing::keys::{SigningAlg, SigningKey};

    fn ec_key() -> (SigningKey, Value) {
        let (k, _) = SigningKey::generate(SigningAlg::Es256, 0, 0).unwrap();
        let mut jwk = k.jwk().clone();
        for m in ["kid", "alg", "use"] {
            jwk.as_object_mut().unwrap().remove(m);
        }
        (k, jwk)
    }

    #[test]
    fn public_jwks_are_checked_and_thumbprinted() {
        let (signer, jwk) = ec_key();
        let parsed = parse_public_jwk(&jwk).unwrap();
        assert_eq!(parsed.thumbprint, signer.kid); // our kids are RFC 7638 thumbprints too
        let mut private = jwk.clone();
        private["d"] = "AAAA".into();
        assert!(parse_public_jwk(&private).is_err());
        assert!(parse_public_jwk(&json!({"kty": "oct", "k": "AAAA"})).is_err());
        assert!(parse_public_jwk(&json!({"kty": "EC", "crv": "P-256"})).is_err());
        assert!(parse_public_jwk(&json!("not an object")).is_err());
        // RFC 7638 §3.1 example
        let rfc = json!({"e": "AQAB", "kty": "RSA", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(thumbprint(&rfc), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}

/// Property tests of the parsers that face untrusted input: they never panic, never
/// accept what they were not given, and a single changed byte breaks a valid JWT.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::families::signing::keys::{KeyRing, SigningAlg, SigningKey};
    use crate::families::tokens::claims::{build, AccessClaims, Grant};
    use proptest::prelude::*;
    use uuid::Uuid;

    const NOW: Millis = 1_800_000_000_000;

    fn arbitrary_jwtish() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,300}",
            "[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,80}",
            "eyJ[A-Za-z0-9_-]{0,60}\\.eyJ[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,90}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_input_never_passes_any_parser(input in arbitrary_jwtish()) {
            let (key, _) = SigningKey::generate(SigningAlg::Es256, 0, 0).unwrap();
            let jwk = parse_public_jwk(key.jwk()).unwrap();
            prop_assert!(verify_client_assertion(&input, &jwk, "c", &["aud".into()], NOW, 30).is_err());
            let expect = DpopExpectation { htm: "POST", htu: "http://x/t", access_token: None, now: NOW, skew: 30 };
            prop_assert!(verify_dpop_proof(&input, &expect).is_err());
            let ring = KeyRing::new(vec![key], "iss", 900_000).unwrap();
            prop_assert!(ring.verify::<AccessClaims>(&input, NOW).is_err());
            let _ = assertion_issuer(&input);
            if let Ok(v) = serde_json::from_str::<Value>(&input) {
                let _ = parse_public_jwk(&v);
            }
        }

        #[test]
        fn any_single_byte_change_breaks_a_signed_token(position in 0usize..400, byte in 0u8..128) {
            let (key, pkcs8) = SigningKey::generate(SigningAlg::Es256, 0, 0).unwrap();
            let ring = KeyRing::new(
                vec![SigningKey::from_pkcs8(SigningAlg::Es256, &pkcs8, 0, 0).unwrap()], "iss", 900_000,
            )
            .unwrap();
            let grant = Grant { agent_id: Uuid::nil(), org_id: Uuid::nil(), client_id: "c", scopes: &[] };
            let token = key.sign(&build(&grant, "iss", "aud", NOW / 1000, 900, Uuid::nil())).unwrap();
            let mut bytes = token.clone().into_bytes();
            let i = position % bytes.len();
            prop_assume!(bytes[i] != byte && byte.is_ascii_graphic());
            bytes[i] = byte;
            let changed = String::from_utf8(bytes).unwrap();
            // base64url has aliases in the last character's padding bits; anything that still
            // verifies must decode to exactly the same claims.
            if let Ok(claims) = ring.verify::<AccessClaims>(&changed, NOW) {
                prop_assert_eq!(claims, ring.verify::<AccessClaims>(&token, NOW).unwrap());
            }
        }
    }
}
