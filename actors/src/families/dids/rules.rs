//! W3C DIDs (DID Core 1.0) by the did:web method: every agent's DID is
//! `did:web:<issuer host>[%3A<port>][:<issuer path>]:agents:<id>`, resolvable at
//! `<issuer>/agents/<id>/did.json`; the IdP's own is the issuer's, at
//! `/.well-known/did.json`. DID syntax, the did:web mapping to an https URL, and the
//! shape of documents and resolution results. Pure: no I/O.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::kernel::model::{rfc3339, Millis};

/// The media type of a DID document in its JSON representation.
pub const DID_JSON: &str = "application/did+json";
/// A DID longer than this is refused as invalid.
pub const MAX_DID_LEN: usize = 512;

/// Why a DID did not resolve (DID Resolution, §"Errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolutionError {
    InvalidDid,
    NotFound,
    MethodNotSupported,
    RepresentationNotSupported,
}

impl ResolutionError {
    pub fn as_str(self) -> &'static str {
        match self {
            ResolutionError::InvalidDid => "invalidDid",
            ResolutionError::NotFound => "notFound",
            ResolutionError::MethodNotSupported => "methodNotSupported",
            ResolutionError::RepresentationNotSupported => "representationNotSupported",
        }
    }
}

/// A DID's parts: `did:<method>:<method-specific id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Did<'a> {
    pub method: &'a str,
    pub id: &'a str,
}

fn is_idchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// Parse a DID by DID Core §3.1's ABNF: `did:` method-name `:` method-specific-id, where
/// the id is idchars (ALPHA, DIGIT, `.`, `-`, `_`, pct-encoded) and colons, not ending
/// in a colon. A DID URL (path, query, fragment) is not a DID.
pub fn parse(text: &str) -> Result<Did<'_>, ResolutionError> {
    let invalid = ResolutionError::InvalidDid;
    if text.len() > MAX_DID_LEN {
        return Err(invalid);
    }
    let rest = text.strip_prefix("did:").ok_or(invalid)?;
    let (method, id) = rest.split_once(':').ok_or(invalid)?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(invalid);
    }
    if id.is_empty() || id.ends_with(':') {
        return Err(invalid);
    }
    let bytes = id.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(invalid)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(invalid);
                }
                i += 3;
            }
            b':' => i += 1,
            b if is_idchar(b) => i += 1,
            _ => return Err(invalid),
        }
    }
    Ok(Did { method, id })
}

/// The did:web DID of an https (or, in development, http) URL without query or
/// fragment: its host, the port percent-encoded, then each path segment.
pub fn did_web_of(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not an absolute URL ({e})"))?;
    let host = parsed.host_str().ok_or("the URL has no host")?;
    let mut did = format!("did:web:{host}");
    if let Some(port) = parsed.port() {
        did.push_str(&format!("%3A{port}"));
    }
    for segment in parsed.path().split('/').filter(|s| !s.is_empty()) {
        did.push(':');
        did.push_str(segment);
    }
    Ok(did)
}

/// did:web's mapping of a DID to where its document is: `:` becomes `/`, `%3A` in the
/// host a port, and the path `/.well-known/did.json` without segments, `/did.json` with.
pub fn web_document_url(did: &str) -> Result<String, ResolutionError> {
    let parsed = parse(did)?;
    if parsed.method != "web" {
        return Err(ResolutionError::MethodNotSupported);
    }
    let mut parts = parsed.id.split(':');
    let host = parts.next().filter(|h| !h.is_empty()).ok_or(ResolutionError::InvalidDid)?;
    let host = host.replace("%3A", ":").replace("%3a", ":");
    if host.contains('%') {
        return Err(ResolutionError::InvalidDid);
    }
    let path: Vec<&str> = parts.collect();
    if path.is_empty() {
        Ok(format!("https://{host}/.well-known/did.json"))
    } else {
        Ok(format!("https://{host}/{}/did.json", path.join("/")))
    }
}

/// The DID of agent `id` under the IdP's DID.
pub fn agent_did(idp_did: &str, id: Uuid) -> String {
    format!("{idp_did}:agents:{id}")
}

/// The agent a DID of this IdP names, if it names one.
pub fn agent_of(idp_did: &str, did: &str) -> Option<Uuid> {
    did.strip_prefix(idp_did)?.strip_prefix(":agents:").and_then(|id| Uuid::parse_str(id).ok())
}

/// One verification method: `<did>#<fragment>`, a public JWK.
pub struct Method<'a> {
    pub fragment: &'a str,
    pub jwk: &'a Value,
}

/// A DID Core 1.0 document: `verificationMethod` (JsonWebKey2020 with `publicKeyJwk`),
/// each for `authentication` and `assertionMethod`, and a service entry for the token
/// endpoint.
pub fn document(did: &str, controller: Option<&str>, methods: &[Method<'_>], token_endpoint: &str) -> Value {
    let ids: Vec<String> = methods.iter().map(|m| format!("{did}#{}", m.fragment)).collect();
    let verification: Vec<Value> = methods
        .iter()
        .zip(&ids)
        .map(|(m, id)| {
            json!({"id": id, "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": public_members(m.jwk)})
        })
        .collect();
    let mut doc = json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/suites/jws-2020/v1"],
        "id": did,
        "verificationMethod": verification,
        "authentication": ids,
        "assertionMethod": ids,
        "service": [{"id": format!("{did}#oauth2-token"), "type": "OAuth2TokenEndpoint", "serviceEndpoint": token_endpoint}],
    });
    if let Some(controller) = controller {
        doc["controller"] = json!(controller);
    }
    doc
}

/// A JWK's public members only (never `d`, whatever was passed), without `kid`/`use`.
fn public_members(jwk: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for name in ["kty", "crv", "x", "y", "n", "e", "alg"] {
        if let Some(v) = jwk.get(name) {
            out.insert(name.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// What is known of a document beside it.
#[derive(Debug, Clone, Copy, Default)]
pub struct DocumentMetadata {
    pub created: Option<Millis>,
    pub updated: Option<Millis>,
    pub deactivated: bool,
}

impl DocumentMetadata {
    pub fn to_json(self) -> Value {
        let mut m = serde_json::Map::new();
        if let Some(c) = self.created {
            m.insert("created".into(), json!(rfc3339::format(c)));
        }
        if let Some(u) = self.updated {
            m.insert("updated".into(), json!(rfc3339::format(u)));
        }
        if self.deactivated {
            m.insert("deactivated".into(), json!(true));
        }
        Value::Object(m)
    }
}

/// A DID resolution result: the document and its metadata, or the error.
pub fn resolution(outcome: Result<(&Value, DocumentMetadata), ResolutionError>) -> Value {
    match outcome {
        Ok((doc, meta)) => json!({
            "@context": "https://w3id.org/did-resolution/v1",
            "didDocument": doc,
            "didResolutionMetadata": {"contentType": DID_JSON},
            "didDocumentMetadata": meta.to_json(),
        }),
        Err(e) => json!({
            "@context": "https://w3id.org/did-resolution/v1",
            "didDocument": null,
            "didResolutionMetadata": {"error": e.as_str()},
            "didDocumentMetadata": {},
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_web_maps_as_the_method_spec_shows() {
        // did:web method specification, §3.2 (Read) examples.
        for (did, url) in [
            ("did:web:w3c-ccg.github.io", "https://w3c-ccg.github.io/.well-known/did.json"),
            ("did:web:w3c-ccg.github.io:user:alice", "https://w3c-ccg.github.io/user/alice/did.json"),
            ("did:web:example.com%3A3000:user:alice", "https://example.com:3000/user/alice/did.json"),
        ] {
            assert_eq!(web_document_url(did).unwrap(), url, "{did}");
        }
        assert_eq!(did_web_of("https://example.com:3000/user/alice").unwrap(), "did:web:example.com%3A3000:user:alice");
        assert_eq!(did_web_of("https://idp.example").unwrap(), "did:web:idp.example");
        assert_eq!(did_web_of("http://127.0.0.1:8080").unwrap(), "did:web:127.0.0.1%3A8080");
        let agent = Uuid::now_v7();
        let did = agent_did("did:web:idp.example%3A8443", agent);
        assert_eq!(web_document_url(&did).unwrap(), format!("https://idp.example:8443/agents/{agent}/did.json"));
        assert_eq!(agent_of("did:web:idp.example%3A8443", &did), Some(agent));
        assert_eq!(agent_of("did:web:idp.example", &did), None);
    }

    #[test]
    fn malformed_dids_and_other_methods_are_named() {
        for bad in [
            "",
            "did:",
            "did:web",
            "did:web:",
            "did:Web:x",
            "did:web:x:",
            "did:web:x#k",
            "did:web:x?q",
            "did:web:a%zz",
            "web:x",
            "did:web:a b",
        ] {
            assert_eq!(parse(bad), Err(ResolutionError::InvalidDid), "{bad:?}");
        }
        assert_eq!(parse(&format!("did:web:{}", "a".repeat(MAX_DID_LEN))), Err(ResolutionError::InvalidDid));
        assert_eq!(web_document_url("did:key:z6Mk"), Err(ResolutionError::MethodNotSupported));
        assert!(parse("did:example:123456789abcdefghi").is_ok());
    }

    #[test]
    fn documents_hold_public_members_only() {
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "d": "secret", "kid": "k"});
        let doc = document("did:web:a", Some("did:web:b"), &[Method { fragment: "key-1", jwk: &jwk }], "https://a/t");
        assert_eq!(doc["verificationMethod"][0]["id"], "did:web:a#key-1");
        assert!(doc["verificationMethod"][0]["publicKeyJwk"].get("d").is_none());
        assert_eq!(doc["authentication"], json!(["did:web:a#key-1"]));
        assert_eq!(doc["controller"], "did:web:b");
        let failed = resolution(Err(ResolutionError::NotFound));
        assert_eq!(failed["didResolutionMetadata"]["error"], "notFound");
    }
}
