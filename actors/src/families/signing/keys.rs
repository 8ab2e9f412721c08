//! Signing keys and the key ring the KeyManager publishes. Keys are parsed once into
//! aws-lc-rs key pairs and a ready-made JWT header, so signing a token costs one
//! serialization and one signature (~22 µs for ES256) — jsonwebtoken's `encode` would
//! re-parse the key on every call. Verification goes through jsonwebtoken; time checks
//! use the engine's clock.
//!
//! Key lifetime, all derived from stored times: a key is *published* (in the JWKS) from
//! its creation, *signs* from its `activates_at` until the next key activates, and stays
//! published until every token it signed has expired (next activation + token TTL +
//! leeway). Creating a key with `activates_at` in the future is the pre-announcement.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;

use crate::kernel::error::{EngineError, Result};
use crate::kernel::jose::{b64, thumbprint};
use crate::kernel::model::Millis;
pub use crate::kernel::validity::{check_times, TimeClaims, LEEWAY_SECS, OWN_EXP_LEEWAY_SECS};

/// Signature algorithms AgentIdP signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    Es256,
    Rs256,
    EdDsa,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::Rs256 => "RS256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<SigningAlg> {
        match s {
            "ES256" => Some(SigningAlg::Es256),
            "RS256" => Some(SigningAlg::Rs256),
            "EdDSA" => Some(SigningAlg::EdDsa),
            _ => None,
        }
    }

    pub fn jwt_alg(self) -> Algorithm {
        match self {
            SigningAlg::Es256 => Algorithm::ES256,
            SigningAlg::Rs256 => Algorithm::RS256,
            SigningAlg::EdDsa => Algorithm::EdDSA,
        }
    }
}

enum Pair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One parsed signing key.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub created_at: Millis,
    /// When it starts signing.
    pub activates_at: Millis,
    pair: Pair,
    /// `base64url(header) + "."`, computed once.
    header_prefix: String,
    jwk: serde_json::Value,
    decoding: DecodingKey,
}

fn key_err(what: &str) -> EngineError {
    EngineError::internal(format!("signing key: {what}"))
}

impl SigningKey {
    /// Generate a fresh key; returns it with its PKCS#8 DER private key.
    pub fn generate(alg: SigningAlg, now: Millis, activates_at: Millis) -> Result<(SigningKey, Vec<u8>)> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            SigningAlg::Es256 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| key_err("generate"))?
                .as_ref()
                .to_vec(),
            SigningAlg::Rs256 => RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| key_err("generate"))?
                .as_der()
                .map_err(|_| key_err("encode"))?
                .as_ref()
                .to_vec(),
            SigningAlg::EdDsa => {
                Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| key_err("generate"))?.as_ref().to_vec()
            }
        };
        let key = SigningKey::from_pkcs8(alg, &pkcs8, now, activates_at)?;
        Ok((key, pkcs8))
    }

    /// Parse a private key. The kid is the RFC 7638 thumbprint of the public key, so it
    /// is derived, never trusted from storage.
    pub fn from_pkcs8(alg: SigningAlg, pkcs8: &[u8], created_at: Millis, activates_at: Millis) -> Result<SigningKey> {
        let (pair, jwk_core, decoding) = match alg {
            SigningAlg::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|_| key_err("bad EC key"))?;
                let point = pair.public_key().as_ref();
                if point.len() != 65 {
                    return Err(key_err("unexpected EC point length"));
                }
                let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
                let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|_| key_err("EC decoding key"))?;
                let core = serde_json::json!({"crv": "P-256", "kty": "EC", "x": x, "y": y});
                (Pair::Ec(pair), core, decoding)
            }
            SigningAlg::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| key_err("bad RSA key"))?;
                let public = pair.public_key();
                let n = b64(public.modulus().big_endian_without_leading_zero());
                let e = b64(public.exponent().big_endian_without_leading_zero());
                let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|_| key_err("RSA decoding key"))?;
                let core = serde_json::json!({"e": e, "kty": "RSA", "n": n});
                (Pair::Rsa(pair), core, decoding)
            }
            SigningAlg::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| key_err("bad Ed25519 key"))?;
                let x = b64(pair.public_key().as_ref());
                let decoding = DecodingKey::from_ed_components(&x).map_err(|_| key_err("Ed decoding key"))?;
                let core = serde_json::json!({"crv": "Ed25519", "kty": "OKP", "x": x});
                (Pair::Ed(pair), core, decoding)
            }
        };
        let kid = thumbprint(&jwk_core);
        let mut jwk = jwk_core;
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".into(), kid.clone().into());
            obj.insert("alg".into(), alg.as_str().into());
            obj.insert("use".into(), "sig".into());
        }
        let header = serde_json::json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": kid});
        let header_prefix = format!("{}.", b64(&serde_json::to_vec(&header).map_err(EngineError::internal)?));
        Ok(SigningKey { kid, alg, created_at, activates_at, pair, header_prefix, jwk, decoding })
    }

    /// Sign `claims` as a compact JWT access token (`typ` `at+jwt`).
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String> {
        self.sign_after(&self.header_prefix, claims)
    }

    /// Sign `claims` as a compact JWT of another type (`typ`), so it is never taken for
    /// an access token.
    pub fn sign_typed<C: Serialize>(&self, typ: &str, claims: &C) -> Result<String> {
        let header = serde_json::json!({"alg": self.alg.as_str(), "typ": typ, "kid": self.kid});
        let prefix = format!("{}.", b64(&serde_json::to_vec(&header).map_err(EngineError::internal)?));
        self.sign_after(&prefix, claims)
    }

    fn sign_after<C: Serialize>(&self, header_prefix: &str, claims: &C) -> Result<String> {
        let payload = serde_json::to_vec(claims).map_err(EngineError::internal)?;
        let mut token = String::with_capacity(header_prefix.len() + payload.len() * 4 / 3 + 350);
        token.push_str(header_prefix);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let sig = match &self.pair {
            Pair::Ec(pair) => {
                pair.sign(&SystemRandom::new(), token.as_bytes()).map_err(|_| key_err("sign"))?.as_ref().to_vec()
            }
            Pair::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), token.as_bytes(), &mut sig)
                    .map_err(|_| key_err("sign"))?;
                sig
            }
            Pair::Ed(pair) => pair.sign(token.as_bytes()).as_ref().to_vec(),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut token);
        Ok(token)
    }

    /// The public JWK (with `kid`, `alg`, `use`).
    pub fn jwk(&self) -> &serde_json::Value {
        &self.jwk
    }
}

/// The keys in force, as one immutable snapshot: the KeyManager builds a new ring and
/// swaps it in; readers never lock.
pub struct KeyRing {
    /// Ordered by activation.
    keys: Vec<Arc<SigningKey>>,
    by_kid: HashMap<String, usize>,
    validations: HashMap<SigningAlg, Validation>,
    /// Token lifetime, which decides how long a retired key stays published.
    token_ttl_ms: i64,
}

impl KeyRing {
    /// `keys` must be non-empty.
    pub fn new(mut keys: Vec<SigningKey>, issuer: &str, token_ttl_ms: i64) -> Result<KeyRing> {
        if keys.is_empty() {
            return Err(key_err("no keys"));
        }
        keys.sort_by(|a, b| (a.activates_at, &a.kid).cmp(&(b.activates_at, &b.kid)));
        let keys: Vec<Arc<SigningKey>> = keys.into_iter().map(Arc::new).collect();
        let validations = [SigningAlg::Es256, SigningAlg::Rs256, SigningAlg::EdDsa]
            .into_iter()
            .map(|alg| {
                let mut v = Validation::new(alg.jwt_alg());
                v.set_issuer(&[issuer]);
                // Any audience this issuer signed: AgentIdP's API checks that a token is
                // for it (`Engine::caller_for`); introspection and revocation take tokens
                // for resource servers too.
                v.validate_aud = false;
                v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
                // Time is checked against the engine clock in `verify`.
                v.validate_exp = false;
                v.validate_nbf = false;
                (alg, v)
            })
            .collect();
        let by_kid = keys.iter().enumerate().map(|(i, k)| (k.kid.clone(), i)).collect();
        Ok(KeyRing { keys, by_kid, validations, token_ttl_ms })
    }

    /// The key that signs at `now`: the newest activated one (or, if none has activated
    /// yet, the first).
    pub fn signing_key(&self, now: Millis) -> &Arc<SigningKey> {
        let active = self.keys.iter().rposition(|k| k.activates_at <= now).unwrap_or(0);
        &self.keys[active]
    }

    /// Whether key `i` is still needed at `now`: not yet superseded, or superseded so
    /// recently that tokens it signed may still be alive.
    fn published(&self, i: usize, now: Millis) -> bool {
        match self.keys.get(i + 1) {
            Some(next) if next.activates_at <= now => now < next.activates_at + self.token_ttl_ms + LEEWAY_SECS * 1000,
            _ => true,
        }
    }

    /// The JWKS document (RFC 7517) at `now`: every key that signs, will sign, or signed
    /// tokens that may still be alive.
    pub fn jwks(&self, now: Millis) -> String {
        let keys: Vec<&serde_json::Value> =
            (0..self.keys.len()).rev().filter(|&i| self.published(i, now)).map(|i| self.keys[i].jwk()).collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// Verify a compact JWT signed by one of this ring's published keys at `now`.
    pub fn verify<C: serde::de::DeserializeOwned + TimeClaims>(&self, token: &str, now: Millis) -> Result<C> {
        self.verify_or_fault(token, now).map_err(|fault| match fault {
            TokenFault::Invalid(e) => e,
            fault => EngineError::InvalidToken(fault.to_string()),
        })
    }

    /// [`KeyRing::verify`], telling why a token fails: what `verify-delegation` reports.
    pub fn verify_or_fault<C: serde::de::DeserializeOwned + TimeClaims>(
        &self,
        token: &str,
        now: Millis,
    ) -> std::result::Result<C, TokenFault> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenFault::Malformed)?;
        if header.typ.as_deref() != Some("at+jwt") {
            return Err(TokenFault::NotAnAccessToken);
        }
        let index = header
            .kid
            .as_deref()
            .and_then(|kid| self.by_kid.get(kid))
            .copied()
            .filter(|&i| self.published(i, now))
            .ok_or(TokenFault::UnknownKey)?;
        let key = &self.keys[index];
        if header.alg != key.alg.jwt_alg() {
            return Err(TokenFault::BadSignature);
        }
        let validation = self.validations.get(&key.alg).ok_or_else(|| TokenFault::Invalid(key_err("no validation")))?;
        let claims =
            jsonwebtoken::decode::<C>(token, &key.decoding, validation).map(|data| data.claims).map_err(|e| match e
                .kind()
            {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenFault::BadSignature,
                _ => TokenFault::Invalid(EngineError::InvalidToken(crate::kernel::jose::describe(&e))),
            })?;
        check_times(claims.exp(), claims.nbf(), now, OWN_EXP_LEEWAY_SECS).map_err(|_| {
            if claims.exp() * 1000 <= now {
                TokenFault::Expired
            } else {
                TokenFault::NotYetValid
            }
        })?;
        Ok(claims)
    }

    pub fn keys(&self) -> impl Iterator<Item = &Arc<SigningKey>> {
        self.keys.iter()
    }
}

/// Why a token does not verify.
#[derive(Debug)]
pub enum TokenFault {
    Malformed,
    NotAnAccessToken,
    /// Signed by a key this ring does not publish (another issuer, or retired).
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    /// Anything else (claims that do not parse, say).
    Invalid(EngineError),
}

impl std::fmt::Display for TokenFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenFault::Malformed => "malformed token",
            TokenFault::NotAnAccessToken => "not an access token",
            TokenFault::UnknownKey => "unknown key",
            TokenFault::BadSignature => "bad signature",
            TokenFault::Expired => "token expired",
            TokenFault::NotYetValid => "token not yet valid",
            TokenFault::Invalid(e) => return write!(f, "{e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::tokens::claims::{build, AccessClaims, Grant};
    use uuid::Uuid;

    const NOW: Millis = 1_800_000_000_000;
    const TTL: i64 = 900_000;

    fn claims(now: Millis) -> AccessClaims {
        build(
            &Grant { agent_id: Uuid::now_v7(), org_id: Uuid::now_v7(), client_id: "c", scopes: &[] },
            "iss",
            "aud",
            now / 1000,
            TTL / 1000,
            Uuid::now_v7(),
        )
    }

    fn ring(keys: Vec<SigningKey>) -> KeyRing {
        KeyRing::new(keys, "iss", TTL).unwrap()
    }

    #[test]
    fn tokens_round_trip_for_every_algorithm_and_survive_reparsing() {
        for alg in [SigningAlg::Es256, SigningAlg::Rs256, SigningAlg::EdDsa] {
            let (key, pkcs8) = SigningKey::generate(alg, 1, 1).unwrap();
            let reparsed = SigningKey::from_pkcs8(alg, &pkcs8, 1, 1).unwrap();
            assert_eq!(reparsed.kid, key.kid);
            let ring = ring(vec![reparsed]);
            let c = claims(NOW);
            let token = key.sign(&c).unwrap();
            assert_eq!(ring.verify::<AccessClaims>(&token, NOW).unwrap(), c);
            let mut tampered = token.clone();
            tampered.insert(tampered.len() / 2, 'x');
            assert!(ring.verify::<AccessClaims>(&tampered, NOW).is_err());
        }
    }

    #[test]
    fn expired_not_yet_valid_and_foreign_tokens_are_refused() {
        let (key, pkcs8) = SigningKey::generate(SigningAlg::Es256, 1, 1).unwrap();
        let (other, _) = SigningKey::generate(SigningAlg::Es256, 1, 1).unwrap();
        assert!(ring(vec![other]).verify::<AccessClaims>(&key.sign(&claims(NOW)).unwrap(), NOW).is_err());
        let ring = ring(vec![SigningKey::from_pkcs8(SigningAlg::Es256, &pkcs8, 1, 1).unwrap()]);
        let token = key.sign(&claims(NOW)).unwrap();
        assert!(ring.verify::<AccessClaims>(&token, NOW + TTL + 31_000).is_err());
        assert!(ring.verify::<AccessClaims>(&token, NOW - 60_000).is_err());
        assert!(ring.verify::<AccessClaims>(&token, NOW + TTL - 1000).is_ok());
    }

    #[test]
    fn rotation_preannounces_then_signs_then_retires_the_old_key() {
        let (old, _) = SigningKey::generate(SigningAlg::Es256, 0, 0).unwrap();
        let (new, _) = SigningKey::generate(SigningAlg::EdDsa, NOW, NOW + 120_000).unwrap();
        let (old_kid, new_kid) = (old.kid.clone(), new.kid.clone());
        let ring = ring(vec![new, old]);
        // pre-announced: published, not yet signing
        assert_eq!(ring.signing_key(NOW).kid, old_kid);
        let jwks = ring.jwks(NOW);
        assert!(jwks.contains(&old_kid) && jwks.contains(&new_kid));
        let old_token = ring.signing_key(NOW + 119_000).sign(&claims(NOW + 119_000)).unwrap();
        // activated: signs; the old key stays published while its tokens live
        let t = NOW + 120_000;
        assert_eq!(ring.signing_key(t).kid, new_kid);
        assert!(ring.jwks(t + TTL).contains(&old_kid));
        assert!(ring.verify::<AccessClaims>(&old_token, t + 60_000).is_ok());
        // and is gone once they have all expired
        let gone = t + TTL + LEEWAY_SECS * 1000;
        assert!(!ring.jwks(gone).contains(&old_kid));
        assert!(ring.jwks(gone).contains(&new_kid));
    }
}
