//! Agents' W3C DIDs (did:web): their documents — rendered once per change and cached on
//! every node —, their keys (registered or generated P-256 keys, `agent_did_keys`),
//! resolution of this IdP's DIDs, and the IdP's own document. Signing in with a DID key
//! (private_key_jwt whose `kid` is a DID URL) is in `client_auth.rs`, reading what is here.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::cache::RenderedDid;
use crate::engine::{Call, Engine};
use crate::families::dids::rules::{self, DocumentMetadata, Method, ResolutionError};
use crate::families::dids::DidChange;
use crate::families::dids::DidKeyRecord;
use crate::families::directory::events::AgentChanged;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::jose;
use crate::kernel::model::TOKEN_PATH;
use crate::kernel::model::{rfc3339, AgentStatus, Millis};
use crate::runtime::events::ClusterEvent;
use crate::store::SealedSecret;

/// An agent has at most this many DID keys at once.
pub const MAX_DID_KEYS: usize = 16;

/// `POST /agents/{id}/did/keys`: register a public key the agent holds (recommended: the
/// private key never leaves it), or ask for one to be generated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDidKey {
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub public_jwk: Option<Value>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub generate: Option<bool>,
}

/// A DID key as added: its DID URL (the `kid` to sign with) and, if generated, the
/// private key — shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct AddedDidKey {
    pub id: String,
    pub key_id: String,
    pub public_jwk: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_jwk: Option<Value>,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
}

/// An agent's DID with its document and metadata (`GET /agents/{id}/did`).
#[derive(Debug, Clone, Serialize)]
pub struct AgentDid {
    pub did: String,
    #[serde(rename = "didDocument")]
    pub document: Value,
    #[serde(rename = "didDocumentMetadata")]
    pub metadata: Value,
}

/// A DID resolution's outcome: the HTTP status it is served with, and the result.
pub struct Resolution {
    pub status: u16,
    pub result: Value,
}

/// Check a registered public key: a P-256 point (the p256 crate checks it is on the
/// curve), public members only. Returns its canonical JWK.
fn check_public_key(jwk: &Value) -> Result<Value> {
    let bad = |m: &str| EngineError::invalid("public_jwk", m.to_string());
    let obj = jwk.as_object().ok_or_else(|| bad("a JWK object"))?;
    if obj.contains_key("d") {
        return Err(bad("the JWK holds a private key: register the public key only"));
    }
    if obj.get("kty").and_then(Value::as_str) != Some("EC") || obj.get("crv").and_then(Value::as_str) != Some("P-256") {
        return Err(bad("DID keys are P-256 (kty EC, crv P-256)"));
    }
    let text = json!({"kty": "EC", "crv": "P-256", "x": obj.get("x"), "y": obj.get("y")}).to_string();
    let key = p256::PublicKey::from_jwk_str(&text)
        .map_err(|_| bad("not a P-256 public key (x, y must be a point on the curve)"))?;
    serde_json::to_value(key.to_jwk()).map_err(EngineError::internal)
}

/// A fresh P-256 key: (public JWK, private JWK, PKCS#8-free secret scalar bytes).
fn generate_key() -> Result<(Value, Value, Vec<u8>)> {
    use aws_lc_rs::rand::SecureRandom;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    loop {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes).map_err(|_| EngineError::internal("random"))?;
        // A scalar of zero or past the group order (chance ~2^-128) is drawn again.
        if let Ok(secret) = p256::SecretKey::from_bytes(&bytes.into()) {
            let public = serde_json::to_value(secret.public_key().to_jwk()).map_err(EngineError::internal)?;
            let private: Value = serde_json::from_str(&secret.to_jwk_string()).map_err(EngineError::internal)?;
            return Ok((public, private, bytes.to_vec()));
        }
    }
}

impl Engine {
    /// The IdP's own DID: did:web of the issuer.
    pub fn idp_did(&self) -> Result<String> {
        rules::did_web_of(&self.shared.config.issuer).map_err(|e| EngineError::internal(format!("issuer: {e}")))
    }

    fn token_endpoint(&self) -> String {
        format!("{}{TOKEN_PATH}", self.shared.config.issuer)
    }

    /// Render an agent's document (or find it rendered): `NotFound` if the DID names no
    /// agent, now or before (a deleted agent's DID resolves, deactivated and without keys).
    pub(crate) async fn rendered_did(&self, agent_id: Uuid) -> Result<Arc<RenderedDid>> {
        let documents = &self.shared.did_documents;
        if let Some(hit) = documents.get(&agent_id) {
            return Ok(hit);
        }
        let epoch = documents.epoch();
        let agent = self.shared.store.did_agent(agent_id).await?;
        if agent.is_none() && !self.shared.store.agent_deleted(agent_id).await? {
            return Err(EngineError::not_found("DID"));
        }
        let keys = self.shared.store.did_keys(agent_id).await?;
        let idp = self.idp_did()?;
        let did = rules::agent_did(&idp, agent_id);
        let active = agent.as_ref().is_some_and(|a| a.status == AgentStatus::Active);
        // A deactivated DID lists no usable keys: a suspended agent's stay stored (for its
        // reactivation) but are not published.
        let live: &[DidKeyRecord] = if active { &keys } else { &[] };
        let methods: Vec<Method<'_>> =
            live.iter().map(|k| Method { fragment: &k.key_id, jwk: &k.public_jwk }).collect();
        let document = rules::document(&did, Some(&idp), &methods, &self.token_endpoint());
        let last_key = keys.iter().map(|k| k.created_at).max();
        let metadata = DocumentMetadata {
            created: agent.as_ref().map(|a| a.created_at),
            updated: agent.as_ref().map(|a| a.updated_at.max(last_key.unwrap_or(0))),
            deactivated: !active,
        };
        let parsed = if active {
            live.iter()
                .filter_map(|k| jose::parse_public_jwk(&k.public_jwk).ok().map(|j| (k.key_id.clone(), Arc::new(j))))
                .collect()
        } else {
            Vec::new()
        };
        let rendered = RenderedDid {
            body: document.to_string(),
            metadata,
            keys: parsed,
            agent: agent.filter(|_| active).map(Arc::new),
        };
        Ok(documents.fill(epoch, agent_id, Arc::new(rendered)))
    }

    /// `GET /agents/{id}/did.json` (public): the document's JSON text and its metadata.
    pub async fn did_document(&self, agent_id: Uuid) -> Result<(String, DocumentMetadata)> {
        let rendered = self.rendered_did(agent_id).await?;
        Ok((rendered.body.clone(), rendered.metadata))
    }

    /// `GET /api/v1/agents/{id}/did`: the agent's DID, document and metadata.
    pub async fn agent_did(&self, call: &Call, org: Option<Uuid>, agent_id: Uuid) -> Result<AgentDid> {
        let agent = self.get_agent(call, org, agent_id).await?;
        let rendered = self.rendered_did(agent.id).await?;
        Ok(AgentDid {
            did: rules::agent_did(&self.idp_did()?, agent.id),
            document: serde_json::from_str(&rendered.body).map_err(EngineError::internal)?,
            metadata: rendered.metadata.to_json(),
        })
    }

    /// Add a verification method to the agent's DID (who may credential the agent may).
    pub async fn add_did_key(
        &self,
        call: &Call,
        org: Option<Uuid>,
        agent_id: Uuid,
        new: NewDidKey,
    ) -> Result<AddedDidKey> {
        let agent = self.credential_agent(call, org, agent_id, "credentials.create").await?;
        let (public_jwk, private) = match (new.public_jwk, new.generate) {
            (Some(jwk), None | Some(false)) => (check_public_key(&jwk)?, None),
            (None, Some(true)) => {
                let (public, private, secret) = generate_key()?;
                (public, Some((private, secret)))
            }
            (Some(_), Some(true)) => {
                return Err(EngineError::invalid("generate", "give public_jwk or generate: true, not both"))
            }
            (None, _) => {
                return Err(EngineError::invalid(
                    "public_jwk",
                    "give the public_jwk the agent holds, or generate: true",
                ))
            }
        };
        let existing = self.shared.store.did_keys(agent.id).await?;
        if existing.len() >= MAX_DID_KEYS {
            return Err(EngineError::invalid(
                "public_jwk",
                format!("an agent has at most {MAX_DID_KEYS} DID keys: remove one first"),
            ));
        }
        let next =
            existing.iter().filter_map(|k| k.key_id.strip_prefix("key-")?.parse::<u32>().ok()).max().unwrap_or(0) + 1;
        let key_id = format!("key-{next}");
        let sealed = match &private {
            Some((_, secret)) => {
                let kid = format!("did-{}-{key_id}-{}", agent.id, Uuid::now_v7().simple());
                let s = self.shared.keystore.seal(&kid, secret).await?;
                Some(SealedSecret { kid, sealed: s.private_key, key_ref: s.key_ref })
            }
            None => None,
        };
        let now = self.shared.now_ms();
        let record = DidKeyRecord {
            agent_id: agent.id,
            org_id: agent.org_id,
            key_id: key_id.clone(),
            public_jwk: public_jwk.clone(),
            sealed,
            created_at: now,
        };
        let did_url = format!("{}#{key_id}", rules::agent_did(&self.idp_did()?, agent.id));
        let detail = json!({"key_id": key_id, "generated": private.is_some()});
        let event = self.call_event(call, agent.org_id, "did.key.add", agent.id, detail);
        let announce = ClusterEvent::of(&AgentChanged { agent_id: agent.id });
        self.commit(event, vec![DidChange::InsertDidKey(Box::new(record)).into()], Some(announce)).await?;
        let private_jwk = private.map(|(mut jwk, _)| {
            jwk["kid"] = json!(did_url);
            jwk
        });
        Ok(AddedDidKey { id: did_url, key_id, public_jwk, private_jwk, created_at: now })
    }

    /// Remove a verification method; the document stops listing it on every node.
    pub async fn remove_did_key(&self, call: &Call, org: Option<Uuid>, agent_id: Uuid, key_id: &str) -> Result<()> {
        let agent = self.credential_agent(call, org, agent_id, "credentials.revoke").await?;
        let event = self.call_event(call, agent.org_id, "did.key.remove", agent.id, json!({"key_id": key_id}));
        let announce = ClusterEvent::of(&AgentChanged { agent_id: agent.id });
        let change = DidChange::RemoveDidKey { agent_id: agent.id, key_id: key_id.to_string() }.into();
        self.commit(event, vec![change], Some(announce)).await
    }

    /// The IdP's own DID document: its token-signing keys (the JWKS) as verification
    /// methods, by kid.
    pub fn idp_did_document(&self) -> Result<String> {
        let jwks: Value = serde_json::from_str(&self.jwks()?).map_err(EngineError::internal)?;
        let keys = jwks["keys"].as_array().cloned().unwrap_or_default();
        let kids: Vec<String> = keys.iter().map(|k| k["kid"].as_str().unwrap_or_default().to_string()).collect();
        let methods: Vec<Method<'_>> =
            keys.iter().zip(&kids).map(|(k, kid)| Method { fragment: kid, jwk: k }).collect();
        Ok(rules::document(&self.idp_did()?, None, &methods, &self.token_endpoint()).to_string())
    }

    /// `GET /api/v1/dids/{did}`: resolve one of this IdP's DIDs. External did:web DIDs
    /// are not fetched (resolution answers `notFound`); other methods
    /// `methodNotSupported`.
    pub async fn resolve_did(&self, text: &str, accept_json: bool) -> Result<Resolution> {
        let fail = |status: u16, e: ResolutionError| Resolution { status, result: rules::resolution(Err(e)) };
        let parsed = match rules::parse(text) {
            Ok(p) => p,
            Err(e) => return Ok(fail(400, e)),
        };
        if parsed.method != "web" {
            return Ok(fail(400, ResolutionError::MethodNotSupported));
        }
        if !accept_json {
            return Ok(fail(406, ResolutionError::RepresentationNotSupported));
        }
        let idp = self.idp_did()?;
        if text == idp {
            let doc: Value = serde_json::from_str(&self.idp_did_document()?).map_err(EngineError::internal)?;
            return Ok(Resolution { status: 200, result: rules::resolution(Ok((&doc, DocumentMetadata::default()))) });
        }
        let Some(agent_id) = rules::agent_of(&idp, text) else {
            return Ok(fail(404, ResolutionError::NotFound));
        };
        match self.rendered_did(agent_id).await {
            Ok(rendered) => {
                let doc: Value = serde_json::from_str(&rendered.body).map_err(EngineError::internal)?;
                Ok(Resolution { status: 200, result: rules::resolution(Ok((&doc, rendered.metadata))) })
            }
            Err(EngineError::NotFound { .. }) => Ok(fail(404, ResolutionError::NotFound)),
            Err(e) => Err(e),
        }
    }
}
