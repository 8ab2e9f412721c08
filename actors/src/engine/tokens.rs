//! The token endpoint's engine side (client_credentials) and Bearer authentication.
//!
//! Hot path, once caches are warm: one shard lookup for the client, one HMAC compare,
//! one claims serialization and signature on the calling task, and one audit append that
//! shares its commit with every concurrent request. No store round trip of its own.

use std::sync::Arc;

use aws_lc_rs::digest;
use uuid::Uuid;

use super::{Caller, Engine};
use crate::cache::{AgentEntry, ClientEntry};
use crate::domain::claims::{self, AccessClaims, Grant};
use crate::domain::scopes;
use crate::error::{EngineError, Result};
use crate::model::{AgentStatus, CredentialStatus, Outcome, TokenResponse};

/// RFC 6749 §5.2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthError {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
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
        }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn oauth(error: OAuthError, description: impl Into<String>) -> EngineError {
    EngineError::OAuth {
        error,
        description: description.into(),
    }
}

/// A token request, however the client authenticated (HTTP Basic or form body).
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub grant_type: String,
    pub client_id: String,
    pub client_secret: String,
    /// Space-delimited; `None` grants every scope the agent is allowed.
    pub scope: Option<String>,
}

impl TokenRequest {
    pub fn client_credentials(client_id: &str, client_secret: &str, scope: Option<&str>) -> Self {
        TokenRequest {
            grant_type: "client_credentials".into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scope: scope.map(String::from),
        }
    }
}

/// Resolve a client id to its cached entries, reading the store on a miss.
async fn client_entry(
    engine: &Engine,
    client_id: &str,
) -> Result<Option<(Arc<ClientEntry>, Arc<AgentEntry>)>> {
    let caches = &engine.shared.caches;
    if let Some(hit) = caches.client(client_id) {
        return Ok(Some(hit));
    }
    let epoch = caches.epoch();
    Ok(engine
        .shared
        .store
        .client(client_id)
        .await?
        .map(|record| caches.fill(epoch, &record)))
}

impl Engine {
    /// Issue an access token (RFC 6749 §4.4 client credentials). Failures are
    /// [`EngineError::OAuth`] and are audited; a returned token's audit event is durable.
    pub async fn issue_token(
        &self,
        req: TokenRequest,
        request_id: Option<String>,
    ) -> Result<TokenResponse> {
        if req.grant_type != "client_credentials" {
            return Err(oauth(
                OAuthError::UnsupportedGrantType,
                format!("grant_type {:?} is not supported", req.grant_type),
            ));
        }
        let found = client_entry(self, &req.client_id).await?;
        let known_org = found.as_ref().map(|(_, agent)| agent.org_id);
        let authenticated = found.filter(|(client, agent)| {
            self.shared
                .hasher
                .verify(&req.client_secret, &client.secret_hash)
                && client.status == CredentialStatus::Active
                && agent.status == AgentStatus::Active
        });
        let Some((client, agent)) = authenticated else {
            return Err(self.refuse_client(&req, known_org, request_id).await);
        };
        let granted = match req.scope.as_deref() {
            None => agent.scopes.clone(),
            Some(param) => match scopes::parse_request(param) {
                Some(requested) if scopes::is_subset(&requested, &agent.scopes) => requested,
                Some(_) | None => {
                    let event = self
                        .event(
                            Some(agent.org_id),
                            client.agent_id.to_string(),
                            "token.issue",
                            Outcome::Failure,
                        )
                        .target(&req.client_id)
                        .request_id(request_id)
                        .detail(serde_json::json!({"reason": "invalid_scope", "requested": param}));
                    self.audit(event).await?;
                    return Err(oauth(
                        OAuthError::InvalidScope,
                        "the requested scope is malformed or exceeds what the client is allowed",
                    ));
                }
            },
        };
        let ring = self.ring()?;
        let now_ms = self.shared.now_ms();
        let ttl = self.shared.config.token_ttl.as_secs() as i64;
        let jti = Uuid::now_v7();
        let claims = claims::build(
            &Grant {
                agent_id: client.agent_id,
                org_id: agent.org_id,
                client_id: &req.client_id,
                scopes: &granted,
            },
            &self.shared.config.issuer,
            &self.shared.config.audience,
            now_ms / 1000,
            ttl,
            jti,
        );
        let access_token = ring.current.sign(&claims)?;
        let event = self
            .event(Some(agent.org_id), client.agent_id.to_string(), "token.issue", Outcome::Success)
            .target(&req.client_id)
            .request_id(request_id)
            .detail(serde_json::json!({"jti": jti, "scope": claims.scope, "exp": claims.exp, "kid": ring.current.kid}));
        self.audit(event).await?;
        self.shared
            .metrics
            .tokens_issued
            .with_label_values(&["client_credentials"])
            .inc();
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: ttl as u64,
            scope: claims.scope,
        })
    }

    /// Audit a failed client authentication and build the error to answer with. The
    /// error never says which part was wrong.
    async fn refuse_client(
        &self,
        req: &TokenRequest,
        org: Option<Uuid>,
        request_id: Option<String>,
    ) -> EngineError {
        self.shared.metrics.client_auth_failures.inc();
        let event = self
            .event(
                org,
                req.client_id.chars().take(128).collect(),
                "client.authenticate",
                Outcome::Failure,
            )
            .request_id(request_id)
            .detail(serde_json::json!({"grant_type": req.grant_type}));
        if let Err(e) = self.audit(event).await {
            return e;
        }
        oauth(OAuthError::InvalidClient, "client authentication failed")
    }

    /// Verify a Bearer access token and return its caller. A token seen before is not
    /// re-verified (an ES256 verify costs ~65 µs); its cached claims are used until it
    /// expires. Every call re-checks that the credential and agent are still active.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Caller>> {
        if token.len() > 8192 {
            return Err(EngineError::InvalidToken("token too large".into()));
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        let now = self.shared.now_ms() / 1000;
        let caller = match self.shared.caches.bearer(&hash) {
            Some(c) if c.expires_at > now => {
                self.shared.metrics.token_cache_hits.inc();
                c
            }
            _ => {
                let claims: AccessClaims = self.ring()?.verify(token)?;
                let agent_id = Uuid::parse_str(&claims.sub)
                    .map_err(|_| EngineError::InvalidToken("subject is not an agent".into()))?;
                let caller = Arc::new(Caller {
                    agent_id,
                    org_id: claims.org_id,
                    client_id: claims.client_id,
                    scope: claims.scope.into(),
                    token_id: claims.jti,
                    expires_at: claims.exp,
                });
                self.shared.caches.remember_bearer(hash, caller.clone());
                caller
            }
        };
        match client_entry(self, &caller.client_id).await? {
            Some((client, agent))
                if client.status == CredentialStatus::Active
                    && agent.status == AgentStatus::Active
                    && client.agent_id == caller.agent_id =>
            {
                Ok(caller)
            }
            _ => Err(EngineError::InvalidToken(
                "the token's client is no longer active".into(),
            )),
        }
    }
}
