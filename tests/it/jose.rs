//! Client-side JOSE for the tests: keys that sign client assertions and DPoP proofs, as
//! an agent's own code would.

use agentidp_engine::families::signing::keys::{SigningAlg, SigningKey};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use uuid::Uuid;

pub struct ClientKey {
    pkcs8: Vec<u8>,
    /// The public JWK, as an agent registers it.
    pub jwk: Value,
}

impl ClientKey {
    pub fn es256() -> ClientKey {
        let (key, pkcs8) = SigningKey::generate(SigningAlg::Es256, 0, 0).unwrap();
        let mut jwk = key.jwk().clone();
        jwk.as_object_mut().unwrap().remove("use");
        ClientKey { pkcs8, jwk }
    }

    /// The private key as PEM (PKCS#8), as client libraries load it.
    pub fn pem(&self) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.pkcs8);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
    }

    pub fn sign(&self, mut header: Header, claims: &Value) -> String {
        header.alg = Algorithm::ES256;
        encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }

    /// An RFC 7523 client assertion for `client_id`, addressed to `aud`.
    pub fn assertion(&self, client_id: &str, aud: &str, now_s: i64) -> String {
        let claims = json!({
            "iss": client_id, "sub": client_id, "aud": aud,
            "iat": now_s, "exp": now_s + 120, "jti": Uuid::now_v7().to_string(),
        });
        self.sign(Header::new(Algorithm::ES256), &claims)
    }

    /// An RFC 9449 DPoP proof for `htm htu`, bound to `access_token` when given.
    pub fn dpop(&self, htm: &str, htu: &str, now_s: i64, access_token: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(serde_json::from_value(self.jwk.clone()).unwrap());
        let mut claims = json!({"jti": Uuid::now_v7().to_string(), "htm": htm, "htu": htu, "iat": now_s});
        if let Some(token) = access_token {
            claims["ath"] = agentidp_engine::kernel::jose::access_token_hash(token).into();
        }
        self.sign(header, &claims)
    }

    /// A DPoP proof whose `jwk` header also carries a private member (`d`), which RFC
    /// 9449 §4.2 forbids; otherwise a good proof of this key.
    pub fn dpop_with_private_jwk(&self, htm: &str, htu: &str, now_s: i64, access_token: Option<&str>) -> String {
        use base64::Engine as _;
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let mut jwk = self.jwk.clone();
        jwk["d"] = b64(&[7u8; 32]).into();
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let mut claims = json!({"jti": Uuid::now_v7().to_string(), "htm": htm, "htu": htu, "iat": now_s});
        if let Some(token) = access_token {
            claims["ath"] = agentidp_engine::kernel::jose::access_token_hash(token).into();
        }
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_ec_der(&self.pkcs8), Algorithm::ES256)
                .unwrap();
        format!("{input}.{signature}")
    }
}
