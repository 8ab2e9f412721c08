//! Signing keys and the key ring the KeyManager publishes. Keys are parsed once into
//! aws-lc-rs key pairs and a ready-made JWT header, so signing a token costs one
//! serialization and one signature (~22 µs for ES256) — jsonwebtoken's `encode` would
//! re-parse the key on every call. Verification goes through jsonwebtoken, whose claim
//! validation is well tested.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;

use crate::error::{EngineError, Result};
use crate::model::Millis;
use crate::store::KeyRecord;

/// Signature algorithms AgentIdP signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    Es256,
    EdDsa,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<SigningAlg> {
        match s {
            "ES256" => Some(SigningAlg::Es256),
            "EdDSA" => Some(SigningAlg::EdDsa),
            _ => None,
        }
    }

    fn jwt_alg(self) -> Algorithm {
        match self {
            SigningAlg::Es256 => Algorithm::ES256,
            SigningAlg::EdDsa => Algorithm::EdDSA,
        }
    }
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One parsed signing key.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub created_at: Millis,
    pair: Pair,
    /// `base64url(header) + "."`, computed once.
    header_prefix: String,
    jwk: serde_json::Value,
    decoding: DecodingKey,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key_err(what: &str) -> EngineError {
    EngineError::internal(format!("signing key: {what}"))
}

impl SigningKey {
    /// Generate a fresh key; returns it with its storable record.
    pub fn generate(alg: SigningAlg, now: Millis) -> Result<(SigningKey, KeyRecord)> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            SigningAlg::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| key_err("generate"))?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| key_err("generate"))?
                .as_ref()
                .to_vec(),
        };
        let key = SigningKey::from_pkcs8(alg, &pkcs8, now)?;
        let record = KeyRecord {
            kid: key.kid.clone(),
            alg: alg.as_str().to_string(),
            private_key: pkcs8,
            created_at: now,
        };
        Ok((key, record))
    }

    /// Parse a stored key. The kid is the RFC 7638 thumbprint of the public key, so it
    /// is derived, never trusted from storage.
    pub fn from_record(record: &KeyRecord) -> Result<SigningKey> {
        let alg = SigningAlg::parse(&record.alg).ok_or_else(|| key_err("unknown algorithm"))?;
        let key = SigningKey::from_pkcs8(alg, &record.private_key, record.created_at)?;
        if key.kid != record.kid {
            return Err(key_err("stored kid does not match the key"));
        }
        Ok(key)
    }

    fn from_pkcs8(alg: SigningAlg, pkcs8: &[u8], created_at: Millis) -> Result<SigningKey> {
        let (pair, jwk_core, decoding) = match alg {
            SigningAlg::Es256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                        .map_err(|_| key_err("bad EC key"))?;
                let point = pair.public_key().as_ref();
                if point.len() != 65 {
                    return Err(key_err("unexpected EC point length"));
                }
                let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
                let decoding = DecodingKey::from_ec_components(&x, &y)
                    .map_err(|_| key_err("EC decoding key"))?;
                // Members in lexicographic order: this is also the RFC 7638 input.
                let core = serde_json::json!({"crv": "P-256", "kty": "EC", "x": x, "y": y});
                (Pair::Ec(pair), core, decoding)
            }
            SigningAlg::EdDsa => {
                let pair =
                    Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| key_err("bad Ed25519 key"))?;
                let x = b64(pair.public_key().as_ref());
                let decoding =
                    DecodingKey::from_ed_components(&x).map_err(|_| key_err("Ed decoding key"))?;
                let core = serde_json::json!({"crv": "Ed25519", "kty": "OKP", "x": x});
                (Pair::Ed(pair), core, decoding)
            }
        };
        let thumbprint_input = serde_json::to_vec(&jwk_core).map_err(EngineError::internal)?;
        let kid = b64(digest::digest(&digest::SHA256, &thumbprint_input).as_ref());
        let mut jwk = jwk_core;
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".into(), kid.clone().into());
            obj.insert("alg".into(), alg.as_str().into());
            obj.insert("use".into(), "sig".into());
        }
        let header = serde_json::json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": kid});
        let header_prefix = format!(
            "{}.",
            b64(&serde_json::to_vec(&header).map_err(EngineError::internal)?)
        );
        Ok(SigningKey {
            kid,
            alg,
            created_at,
            pair,
            header_prefix,
            jwk,
            decoding,
        })
    }

    /// Sign `claims` as a compact JWT.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String> {
        let payload = serde_json::to_vec(claims).map_err(EngineError::internal)?;
        let mut token =
            String::with_capacity(self.header_prefix.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let sig = match &self.pair {
            Pair::Ec(pair) => pair
                .sign(&SystemRandom::new(), token.as_bytes())
                .map_err(|_| key_err("sign"))?
                .as_ref()
                .to_vec(),
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
    pub current: Arc<SigningKey>,
    by_kid: HashMap<String, Arc<SigningKey>>,
    /// The JWKS document, serialized once per ring.
    pub jwks_json: Arc<str>,
    validations: HashMap<&'static str, Validation>,
}

impl KeyRing {
    /// `keys` must be non-empty; the newest becomes the current signing key.
    pub fn new(mut keys: Vec<SigningKey>, issuer: &str, audience: &str) -> Result<KeyRing> {
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        let keys: Vec<Arc<SigningKey>> = keys.into_iter().map(Arc::new).collect();
        let current = keys.last().cloned().ok_or_else(|| key_err("no keys"))?;
        let jwks = serde_json::json!({
            "keys": keys.iter().rev().map(|k| k.jwk.clone()).collect::<Vec<_>>()
        });
        let jwks_json: Arc<str> = serde_json::to_string(&jwks)
            .map_err(EngineError::internal)?
            .into();
        let validations = [SigningAlg::Es256, SigningAlg::EdDsa]
            .into_iter()
            .map(|alg| {
                let mut v = Validation::new(alg.jwt_alg());
                v.set_issuer(&[issuer]);
                v.set_audience(&[audience]);
                v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
                v.validate_nbf = true;
                v.leeway = 30;
                (alg.as_str(), v)
            })
            .collect();
        let by_kid = keys.iter().map(|k| (k.kid.clone(), k.clone())).collect();
        Ok(KeyRing {
            current,
            by_kid,
            jwks_json,
            validations,
        })
    }

    /// Verify a compact JWT signed by one of this ring's keys; returns its claims.
    pub fn verify<C: serde::de::DeserializeOwned>(&self, token: &str) -> Result<C> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| EngineError::InvalidToken("malformed token".into()))?;
        if header.typ.as_deref() != Some("at+jwt") {
            return Err(EngineError::InvalidToken("not an access token".into()));
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.by_kid.get(kid))
            .ok_or_else(|| EngineError::InvalidToken("unknown key".into()))?;
        if header.alg != key.alg.jwt_alg() {
            return Err(EngineError::InvalidToken("algorithm mismatch".into()));
        }
        let validation = self
            .validations
            .get(key.alg.as_str())
            .ok_or_else(|| key_err("no validation"))?;
        jsonwebtoken::decode::<C>(token, &key.decoding, validation)
            .map(|data| data.claims)
            .map_err(|e| EngineError::InvalidToken(format!("{e}")))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Arc<SigningKey>> {
        self.by_kid.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::claims::{build, AccessClaims, Grant};
    use uuid::Uuid;

    fn claims(now: i64) -> AccessClaims {
        build(
            &Grant {
                agent_id: Uuid::now_v7(),
                org_id: Uuid::now_v7(),
                client_id: "c",
                scopes: &[],
            },
            "iss",
            "aud",
            now,
            60,
            Uuid::now_v7(),
        )
    }

    #[test]
    fn tokens_round_trip_for_every_algorithm_and_survive_reparsing() {
        let now = time_now();
        for alg in [SigningAlg::Es256, SigningAlg::EdDsa] {
            let (key, record) = SigningKey::generate(alg, 1).unwrap();
            let reparsed = SigningKey::from_record(&record).unwrap();
            assert_eq!(reparsed.kid, key.kid);
            let ring = KeyRing::new(vec![reparsed], "iss", "aud").unwrap();
            let c = claims(now);
            let token = key.sign(&c).unwrap();
            assert_eq!(ring.verify::<AccessClaims>(&token).unwrap(), c);
            let mut tampered = token.clone();
            tampered.insert(tampered.len() / 2, 'x');
            assert!(ring.verify::<AccessClaims>(&tampered).is_err());
        }
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let (key, _) = SigningKey::generate(SigningAlg::Es256, 1).unwrap();
        let (other, _) = SigningKey::generate(SigningAlg::Es256, 1).unwrap();
        let ring = KeyRing::new(vec![other], "iss", "aud").unwrap();
        let token = key.sign(&claims(time_now())).unwrap();
        assert!(ring.verify::<AccessClaims>(&token).is_err());
        let ring = KeyRing::new(
            vec![
                SigningKey::from_record(&SigningKey::generate(SigningAlg::Es256, 1).unwrap().1)
                    .unwrap(),
            ],
            "iss",
            "aud",
        )
        .unwrap();
        let old = ring.current.sign(&claims(time_now() - 3600)).unwrap();
        assert!(ring.verify::<AccessClaims>(&old).is_err());
    }

    fn time_now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}
