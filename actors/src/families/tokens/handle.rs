//! The OAuth 2.0 token endpoint (client_credentials, RFC 8693 token exchange, RFC 9449
//! DPoP binding; the JWT-bearer grant's own checks are in `federation.rs`) and the types
//! every OAuth endpoint shares. Client authentication is in `client_auth.rs`; what
//! happens to a token once issued — introspection, revocation, authentication on the
//! management API — in `bearer.rs`.
//!
//! Hot path of client_credentials, once caches are warm: one shard lookup for the
//! client, one HMAC compare, one claims serialization and signature on the calling task,
//! and one audit append that shares its commit with every concurrent request.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::engine::{Call, Engine, Origin};
use crate::families::analytics::rules::Metric;
use crate::families::tokens::claims::{self, AccessClaims, Confirmation, Grant};
use crate::kernel::error::{EngineError, Result};
use crate::kernel::jose;
use crate::kernel::model::TOKEN_PATH;
use crate::kernel::model::{AgentStatus, Outcome, TokenResponse};
use crate::kernel::policy::Target;
use crate::kernel::scopes;
use crate::runtime::coord::Claim;

pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 7523 §2.1: a federation partner's JWT as the authorization grant.
pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const ASSERTION_TYPE_JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub use crate::kernel::error::OAuthError;

pub(crate) fn oauth(error: OAuthError, description: impl Into<String>) -> EngineError {
    EngineError::OAuth { error, description: description.into() }
}

/// How a client proves who it is at an OAuth endpoint.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// client_secret_basic or client_secret_post.
    Secret { client_id: String, client_secret: String },
    /// private_key_jwt (RFC 7523): a JWT signed with the client's registered key.
    Assertion { client_id: Option<String>, assertion: String },
    /// No client authentication: refused everywhere but the JWT-bearer grant, whose
    /// assertion is the proof (RFC 7523 §3.1 makes client authentication optional).
    None,
}

impl ClientAuth {
    pub(crate) fn claimed_id(&self) -> String {
        match self {
            ClientAuth::Secret { client_id, .. } => client_id.clone(),
            ClientAuth::Assertion { client_id: Some(id), .. } => id.clone(),
            ClientAuth::Assertion { assertion, .. } => jose::assertion_issuer(assertion).unwrap_or_default(),
            ClientAuth::None => String::new(),
        }
    }
}

/// A token request.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub grant_type: String,
    pub client: ClientAuth,
    /// Space-delimited; `None` grants every scope the agent (or subject token) holds.
    pub scope: Option<String>,
    /// Token exchange: the token acted for, and its type.
    pub subject_token: Option<String>,
    pub subject_token_type: Option<String>,
    /// Token exchange (RFC 8693 §2.1): the acting party's own token, and its type; both
    /// or neither.
    pub actor_token: Option<String>,
    pub actor_token_type: Option<String>,
    /// Client credentials: the one agent that may act for this token's agent (RFC 8693
    /// §4.4 `may_act`), by id.
    pub may_act: Option<String>,
    /// Token exchange (RFC 8693): the `aud` of the new token, any name or URI.
    pub audience: Option<String>,
    /// RFC 8707: a resource server of the client's organization the token is for
    /// (client credentials and token exchange); `invalid_target` if it has none.
    pub resource: Option<String>,
    /// A DPoP proof (RFC 9449) for the token endpoint: the token is bound to its key.
    pub dpop: Option<String>,
    /// JWT-bearer grant (RFC 7523 §2.1): the partner's JWT.
    pub assertion: Option<String>,
}

impl TokenRequest {
    pub fn client_credentials(client_id: &str, client_secret: &str, scope: Option<&str>) -> Self {
        TokenRequest {
            grant_type: GRANT_CLIENT_CREDENTIALS.into(),
            client: ClientAuth::Secret { client_id: client_id.into(), client_secret: client_secret.into() },
            scope: scope.map(String::from),
            subject_token: None,
            subject_token_type: None,
            actor_token: None,
            actor_token_type: None,
            may_act: None,
            audience: None,
            resource: None,
            dpop: None,
            assertion: None,
        }
    }
}

/// A client that proved its identity.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client_id: String,
    pub agent_id: Uuid,
    pub org_id: Uuid,
    pub scopes: Vec<String>,
}

/// Who asks an introspection: a client (RFC 7662 §2.1) or a management caller.
pub enum Introspector {
    Client(ClientAuth),
    Caller(Call),
}

/// A DPoP proof presented with a request to the management API.
pub struct DpopPresentation<'a> {
    pub proof: &'a str,
    pub htm: &'a str,
    pub htu: &'a str,
}

/// The detail of a `token.issue` event. Written straight from the claims: it is on every
/// token's path.
#[derive(Serialize)]
struct IssueDetail<'a> {
    aud: &'a str,
    dpop: bool,
    exp: i64,
    /// A JWT-bearer grant's partner and the subject it asserted.
    #[serde(skip_serializing_if = "Option::is_none")]
    federation: Option<serde_json::Value>,
    grant_type: &'a str,
    jti: &'a str,
    kid: &'a str,
    scope: &'a str,
    sub: &'a str,
}

/// What kind of issuance a token is, for its audit event and metrics.
pub(crate) struct Issued {
    pub grant_type: &'static str,
    /// The `tokens_issued_total` label.
    pub label: &'static str,
    pub exchange: bool,
    pub detail: Option<serde_json::Value>,
}

pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    hash
}

impl Engine {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shared.config.issuer)
    }

    /// The token endpoint. Failures are [`EngineError::OAuth`] and are audited; a
    /// returned token's audit event is durable.
    pub async fn issue_token(&self, req: TokenRequest, origin: &Origin) -> Result<TokenResponse> {
        let exchange = match req.grant_type.as_str() {
            GRANT_CLIENT_CREDENTIALS => false,
            GRANT_TOKEN_EXCHANGE => true,
            GRANT_JWT_BEARER => return self.issue_jwt_bearer(req, origin).await,
            other => {
                return Err(oauth(OAuthError::UnsupportedGrantType, format!("grant_type {other:?} is not supported")))
            }
        };
        let client = self.authenticate_client(&req.client, origin).await?;
        let (org_id, agent_id) = (client.org_id, client.agent_id);
        let outcome = self.issue_for(req, client, exchange, origin).await;
        self.count_outcome(org_id, agent_id, &outcome);
        outcome
    }

    /// Count a token request's outcome in its organization's analytics.
    pub(crate) fn count_outcome(&self, org_id: Uuid, agent_id: Uuid, outcome: &Result<TokenResponse>) {
        let count = |metric| self.count(org_id, agent_id, metric);
        match outcome {
            Ok(_) => count(Metric::TokensIssued),
            Err(e) => {
                count(Metric::TokenRequestsRefused);
                match e {
                    EngineError::QuotaExceeded { .. } => count(Metric::QuotaRejections),
                    // After authentication, the only lockout is the client's token rate.
                    EngineError::LockedOut { .. } => count(Metric::RateLimitRejections),
                    _ => {}
                }
            }
        }
    }

    /// Within the client's token rate (its tier's, once this node knows the tier), then
    /// counted against its organization's day.
    pub(crate) async fn admit(&self, org_id: Uuid, client_id: &str) -> Result<crate::QuotaState> {
        let known_tier = self.shared.quota.tier(org_id);
        let rate = |tier: crate::kernel::model::Tier| {
            self.shared.client_rates.check(tier, client_id).inspect_err(|_| self.rejected(tier.as_str(), "token_rate"))
        };
        if let Some(tier) = known_tier {
            rate(tier)?;
        }
        let quota = self.shared.quota.take(org_id).await.map_err(|e| self.quota_refusal(e))?;
        if known_tier.is_none() {
            rate(quota.tier)?;
        }
        Ok(quota)
    }

    /// The thumbprint of the request's DPoP proof for the token endpoint, if it has one.
    pub(crate) async fn token_endpoint_proof(&self, req: &TokenRequest) -> Result<Option<String>> {
        match &req.dpop {
            Some(proof) => Ok(Some(
                self.verify_proof(proof, "POST", &self.url(TOKEN_PATH), None)
                    .await?
                    .map_err(|e| oauth(OAuthError::InvalidDpopProof, e))?,
            )),
            None => Ok(None),
        }
    }

    /// The token endpoint, once the client is authenticated.
    async fn issue_for(
        &self,
        req: TokenRequest,
        mut client: AuthenticatedClient,
        exchange: bool,
        origin: &Origin,
    ) -> Result<TokenResponse> {
        let request_id = origin.request_id.clone();
        let quota = self.admit(client.org_id, &client.client_id).await?;
        let now = self.shared.now_ms();
        let jkt = self.token_endpoint_proof(&req).await?;
        let ttl = self.shared.config.token_ttl.as_secs() as i64;
        let mut claims = if exchange {
            self.exchange_claims(&req, &client, jkt.as_deref(), now).await?
        } else {
            // RFC 8707: a token for a registered resource server names it.
            let resource = match req.resource.as_deref() {
                Some(identifier) => Some(self.resource_for_token(&client, identifier, jkt.is_some()).await?),
                None => None,
            };
            let mut granted = match req.scope.as_deref() {
                None => std::mem::take(&mut client.scopes),
                Some(param) => self.narrow_scope(param, &client.scopes, &client, request_id.clone()).await?,
            };
            let c = &self.shared.config;
            let (mut audience, mut ttl) = (c.audience.as_str(), ttl);
            if let Some(r) = &resource {
                let requested = req.scope.is_some().then_some(granted.as_slice());
                granted = crate::families::resources::rules::scopes_for(requested, &granted, &r.scopes)
                    .map_err(|e| oauth(OAuthError::InvalidScope, e))?;
                audience = &r.identifier;
                ttl = r.access_token_ttl.map_or(ttl, |t| t as i64);
            }
            let grant = Grant {
                agent_id: client.agent_id,
                org_id: client.org_id,
                client_id: &client.client_id,
                scopes: &granted,
            };
            let mut claims = claims::build(&grant, &c.issuer, audience, now / 1000, ttl, Uuid::now_v7());
            claims.may_act = self.may_act(req.may_act.as_deref(), &client).await?;
            claims
        };
        claims.cnf = jkt.map(|jkt| Confirmation { jkt });
        let (grant_type, label) = if exchange {
            (GRANT_TOKEN_EXCHANGE, "token_exchange")
        } else {
            (GRANT_CLIENT_CREDENTIALS, GRANT_CLIENT_CREDENTIALS)
        };
        let issued = Issued { grant_type, label, exchange, detail: None };
        self.sign_and_record(claims, &client.client_id, issued, request_id, quota, now).await
    }

    /// The resource server a token request names (RFC 8707), registered in the client's
    /// organization (`invalid_target` otherwise), and one whose tokens must be DPoP-bound
    /// only with a proof.
    async fn resource_for_token(
        &self,
        client: &AuthenticatedClient,
        identifier: &str,
        bound: bool,
    ) -> Result<crate::families::resources::ResourceServer> {
        let resource = self.resource_named(client.org_id, identifier).await?.ok_or_else(|| {
            oauth(OAuthError::InvalidTarget, "the organization has no resource server with this identifier")
        })?;
        if resource.dpop_required && !bound {
            return Err(oauth(
                OAuthError::InvalidRequest,
                "this resource server takes only DPoP-bound tokens: send a DPoP proof (RFC 9449)",
            ));
        }
        Ok(resource)
    }

    /// Sign `claims`, make the `token.issue` event durable, and answer the token.
    pub(crate) async fn sign_and_record(
        &self,
        claims: AccessClaims,
        client_id: &str,
        issued: Issued,
        request_id: Option<String>,
        quota: crate::QuotaState,
        now: i64,
    ) -> Result<TokenResponse> {
        let ring = self.ring()?;
        let key = ring.signing_key(now);
        let access_token = key.sign(&claims)?;
        let event = self
            .event(Some(claims.org_id), claims.sub.clone(), "token.issue", Outcome::Success)
            .target(client_id)
            .request_id(request_id)
            .detail(&IssueDetail {
                aud: &claims.aud,
                dpop: claims.cnf.is_some(),
                exp: claims.exp,
                federation: issued.detail,
                grant_type: issued.grant_type,
                jti: &claims.jti,
                kid: &key.kid,
                scope: &claims.scope,
                sub: &claims.sub,
            });
        self.audit(event).await?;
        self.shared.metrics.tokens_issued.with_label_values(&[issued.label]).inc();
        Ok(TokenResponse {
            access_token,
            token_type: if claims.cnf.is_some() { "DPoP" } else { "Bearer" },
            expires_in: (claims.exp - now / 1000).max(0) as u64,
            scope: claims.scope,
            issued_token_type: issued.exchange.then_some(TOKEN_TYPE_ACCESS_TOKEN),
            quota: Some(quota),
        })
    }

    /// The `may_act` claim a client-credentials request asks for: another agent of the
    /// organization, active.
    async fn may_act(&self, param: Option<&str>, client: &AuthenticatedClient) -> Result<Option<serde_json::Value>> {
        let Some(param) = param else { return Ok(None) };
        let bad = || oauth(OAuthError::InvalidRequest, "may_act names no other active agent of the organization");
        let agent = Uuid::parse_str(param).map_err(|_| bad())?;
        if agent == client.agent_id {
            return Err(bad());
        }
        match self.agent_status(client.org_id, agent).await? {
            Some(AgentStatus::Active) => Ok(Some(json!({"sub": agent.to_string()}))),
            _ => Err(bad()),
        }
    }

    /// Parse a requested scope and check it against what may be granted.
    async fn narrow_scope(
        &self,
        param: &str,
        allowed: &[String],
        client: &AuthenticatedClient,
        request_id: Option<String>,
    ) -> Result<Vec<String>> {
        let parsed = scopes::parse_request(param);
        match &parsed {
            Some(requested) if scopes::is_subset(requested, allowed) => Ok(requested.clone()),
            _ => {
                let event = self
                    .event(Some(client.org_id), client.agent_id.to_string(), "token.issue", Outcome::Failure)
                    .target(&client.client_id)
                    .request_id(request_id)
                    .detail(&json!({"reason": "invalid_scope", "requested": param}));
                self.audit(event).await?;
                Err(oauth(
                    OAuthError::InvalidScope,
                    match parsed.as_ref().and_then(|r| r.iter().find(|s| !allowed.contains(s))) {
                        Some(refused) => format!("scope {refused:?} may not be granted to this client"),
                        None => "the scope parameter is malformed (space-separated scope tokens)".to_string(),
                    },
                ))
            }
        }
    }

    /// RFC 8693: a token for the subject token's agent, at most as broad and as long-lived
    /// as the subject token, naming the requesting agent as actor when it is another.
    /// Who may exchange whose token is the policy's decision (`tokens.exchange`). A
    /// DPoP-bound subject token is exchanged only with a proof of its key (`jkt`, the
    /// thumbprint of the request's verified proof), and the new token is bound to it too:
    /// a sender-constrained token stays useless without its key.
    async fn exchange_claims(
        &self,
        req: &TokenRequest,
        client: &AuthenticatedClient,
        jkt: Option<&str>,
        now: i64,
    ) -> Result<AccessClaims> {
        let subject_token = req
            .subject_token
            .as_deref()
            .ok_or_else(|| oauth(OAuthError::InvalidRequest, "subject_token is required"))?;
        match req.subject_token_type.as_deref() {
            Some(TOKEN_TYPE_ACCESS_TOKEN) | Some(TOKEN_TYPE_JWT) => {}
            Some(other) => {
                return Err(oauth(
                    OAuthError::UnsupportedTokenType,
                    format!("subject_token_type {other:?} is not supported"),
                ))
            }
            None => return Err(oauth(OAuthError::InvalidRequest, "subject_token_type is required")),
        }
        let inactive = || oauth(OAuthError::InvalidGrant, "the subject token is not active");
        let subject = match self.active_claims(subject_token).await {
            Ok(c) => c,
            Err(EngineError::InvalidToken(_)) => return Err(inactive()),
            Err(e) => return Err(e),
        };
        // The acting party: the requesting client's agent, proven by its own actor token
        // when one is sent (keycloak #52691 accepted anyone's).
        let actor_exp = match (req.actor_token.as_deref(), req.actor_token_type.as_deref()) {
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(oauth(OAuthError::InvalidRequest, "actor_token and actor_token_type go together"))
            }
            (Some(actor_token), Some(kind)) => {
                if kind != TOKEN_TYPE_ACCESS_TOKEN && kind != TOKEN_TYPE_JWT {
                    return Err(oauth(
                        OAuthError::UnsupportedTokenType,
                        format!("actor_token_type {kind:?} is not supported"),
                    ));
                }
                let actor = match self.active_claims(actor_token).await {
                    Ok(c) => c,
                    Err(EngineError::InvalidToken(_)) => {
                        return Err(oauth(OAuthError::InvalidGrant, "the actor token is not active"))
                    }
                    Err(e) => return Err(e),
                };
                if actor.org_id != client.org_id || actor.sub != client.agent_id.to_string() {
                    return Err(oauth(OAuthError::InvalidGrant, "the actor token is not the requesting client's own"));
                }
                Some(actor.exp)
            }
        };
        // A subject token that names who may act for it admits that agent alone.
        let consented = match subject.may_act.as_ref().and_then(|m| m.get("sub")).and_then(|s| s.as_str()) {
            Some(allowed) if allowed == client.agent_id.to_string() && subject.org_id == client.org_id => true,
            Some(_) => {
                return Err(oauth(OAuthError::InvalidGrant, "the subject token's may_act does not name this actor"))
            }
            None => false,
        };
        let target = Target {
            same_org: subject.org_id == client.org_id,
            same_agent: subject.org_id == client.org_id && subject.sub == client.agent_id.to_string(),
        };
        let held: Arc<str> = client.scopes.join(" ").into();
        if !consented && self.shared.policy.authorize_target("tokens.exchange", &held, target).is_err() {
            // Another organization's token is reported as inactive, revealing nothing.
            return Err(if target.same_org {
                oauth(
                    OAuthError::UnauthorizedClient,
                    "exchanging another agent's token needs the tokens:exchange scope",
                )
            } else {
                inactive()
            });
        }
        if let Some(bound) = &subject.cnf {
            match jkt {
                Some(jkt) if jkt == bound.jkt => {}
                Some(_) => {
                    return Err(oauth(
                        OAuthError::InvalidDpopProof,
                        "the DPoP proof is not from the subject token's key",
                    ))
                }
                None => {
                    return Err(oauth(
                        OAuthError::InvalidDpopProof,
                        "the subject token is DPoP-bound: send a DPoP proof of its key",
                    ))
                }
            }
        }
        let subject_scopes: Vec<String> =
            subject.scope.split(' ').filter(|s| !s.is_empty()).map(String::from).collect();
        let mut scopes = match req.scope.as_deref() {
            None => subject_scopes,
            Some(param) => self.narrow_scope(param, &subject_scopes, client, None).await?,
        };
        let mut ttl = self.shared.config.token_ttl.as_secs() as i64;
        let audience = match (req.audience.as_deref(), req.resource.as_deref()) {
            (_, Some(identifier)) => {
                // The subject's organization's resource server: its scopes, its lifetime.
                let bound = jkt.is_some() || subject.cnf.is_some();
                let holder = AuthenticatedClient { org_id: subject.org_id, ..client.clone() };
                let r = self.resource_for_token(&holder, identifier, bound).await?;
                let requested = req.scope.is_some().then_some(scopes.as_slice());
                scopes = crate::families::resources::rules::scopes_for(requested, &scopes, &r.scopes)
                    .map_err(|e| oauth(OAuthError::InvalidScope, e))?;
                ttl = r.access_token_ttl.map_or(ttl, |t| t as i64);
                r.identifier
            }
            (None, None) => subject.aud.clone(),
            (Some(a), None) if !a.is_empty() && a.len() <= 512 && !a.contains(' ') => a.to_string(),
            (Some(_), None) => return Err(oauth(OAuthError::InvalidTarget, "audience must be one URI or name")),
        };
        let agent_id = Uuid::parse_str(&subject.sub).map_err(|_| oauth(OAuthError::InvalidGrant, "bad subject"))?;
        let grant = Grant { agent_id, org_id: subject.org_id, client_id: &client.client_id, scopes: &scopes };
        let mut claims = claims::build(&grant, &self.shared.config.issuer, &audience, now / 1000, ttl, Uuid::now_v7());
        claims.exp = claims.exp.min(subject.exp).min(actor_exp.unwrap_or(i64::MAX));
        // A token that names an actor is never exchanged into one that does not, and a
        // delegation token's exchange stays in its chain (it dies with it).
        claims.act = subject.act;
        claims.chain_id = subject.chain_id;
        claims.delegation_id = subject.delegation_id;
        if client.agent_id != agent_id {
            let mut act = json!({"sub": client.agent_id.to_string(), "client_id": client.client_id});
            if let Some(prior) = claims.act.take() {
                act["act"] = prior;
            }
            claims.act = Some(act);
        }
        Ok(claims)
    }

    /// Verify a DPoP proof and claim its jti; returns the key thumbprint. The inner
    /// error is the proof's fault, the outer one the engine's (e.g. the replay memory
    /// is unreachable).
    pub(crate) async fn verify_proof(
        &self,
        proof: &str,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
    ) -> Result<Result<String, String>> {
        let now = self.shared.now_ms();
        let verified = match jose::verify_dpop_proof(
            proof,
            &jose::DpopExpectation { htm, htu, access_token, now, skew: self.clock_skew() },
        ) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        // Remembered for as long as a proof of that iat can be accepted, and a little more.
        let window = Duration::from_secs((jose::DPOP_MAX_AGE_SECS + 2 * self.clock_skew()) as u64 + 10);
        let key = format!("dpop:{}:{}", verified.jkt, verified.jti);
        Ok(match self.shared.coord.claim_once(&key, window, verified.iat, now).await? {
            Claim::First => Ok(verified.jkt),
            Claim::Replayed => Err("the DPoP proof was already used".into()),
            Claim::PredatesMemory => Err("the DPoP proof was made before the replay memory began".into()),
        })
    }
}
