//! The RFC 7523 JWT-bearer grant: a federation partner's JWT exchanged for an access
//! token of the agent its subject maps to. The partner's JWT is checked by the federation
//! family (`verify_partner_jwt`); what it earns, and the token, are decided here.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::engine::{Engine, Origin};
use crate::families::federation::handle::FEDERATION_CLIENT;
use crate::families::federation::rules::{self as rules, Partner, VerifiedJwt};
use crate::families::tokens::claims::{self, AccessClaims, Confirmation, Grant};
use crate::families::tokens::handle::{oauth, ClientAuth, Issued, OAuthError, TokenRequest, GRANT_JWT_BEARER};
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{AgentStatus, TokenResponse};
use crate::kernel::scopes;
use crate::runtime::coord::Claim;

impl Engine {
    /// RFC 7523 §2.1: a partner's JWT for a token of the agent it maps to. A client that
    /// authenticates too must be that agent's.
    pub(crate) async fn issue_jwt_bearer(&self, req: TokenRequest, origin: &Origin) -> Result<TokenResponse> {
        // Anyone may send an assertion: an address past its failure budget is refused
        // before any work or write.
        if let Some(wait) = origin.addr.and_then(|a| self.shared.address_lockout.locked_for(&a.to_string())) {
            self.shared.metrics.lockout_refusals.with_label_values(&["address"]).inc();
            return Err(EngineError::LockedOut {
                reason: "too many refused requests from this address".into(),
                retry_after: crate::families::tokens::limits::whole_secs(wait),
            });
        }
        let client = match &req.client {
            ClientAuth::None => None,
            auth => Some(self.authenticate_client(auth, origin).await?),
        };
        let grant = self.jwt_bearer_claims(&req, origin).await?;
        if client.as_ref().is_some_and(|c| c.agent_id != grant.agent_id || c.org_id != grant.org_id) {
            return Err(oauth(
                OAuthError::InvalidGrant,
                "the assertion's subject is not the authenticated client's agent",
            ));
        }
        let outcome = self.issue_for_partner(&req, &grant, origin).await;
        self.count_outcome(grant.org_id, grant.agent_id, &outcome);
        outcome
    }

    async fn issue_for_partner(
        &self,
        req: &TokenRequest,
        grant: &BearerGrant,
        origin: &Origin,
    ) -> Result<TokenResponse> {
        let quota = self.admit(grant.org_id, &grant.client_id).await?;
        let now = self.shared.now_ms();
        let jkt = self.token_endpoint_proof(req).await?;
        let c = &self.shared.config;
        let mut claims = grant.claims(&c.issuer, &c.audience, now / 1000, c.token_ttl.as_secs() as i64);
        claims.cnf = jkt.map(|jkt| Confirmation { jkt });
        let detail = json!({"partner_id": grant.partner_id, "partner_sub": grant.partner_sub});
        let issued =
            Issued { grant_type: GRANT_JWT_BEARER, label: "jwt_bearer", exchange: false, detail: Some(detail) };
        self.sign_and_record(claims, &grant.client_id, issued, origin.request_id.clone(), quota, now).await
    }

    /// RFC 7523 §2.1: a partner's JWT exchanged for an access token of the agent its
    /// subject maps to. Every refusal is `invalid_grant`, audited with its reason.
    async fn jwt_bearer_claims(&self, req: &TokenRequest, origin: &Origin) -> Result<BearerGrant> {
        let assertion =
            req.assertion.as_deref().ok_or_else(|| oauth(OAuthError::InvalidRequest, "assertion is required"))?;
        let metric = |outcome| self.shared.federation.metrics().assertions.with_label_values(&["grant", outcome]).inc();
        let outcome = match self.verify_partner_jwt(assertion, None, |p| self.grant_audiences(p)).await? {
            Ok((partner, verified)) => self.grant_for(req, &partner, &verified).await?.map(|g| (partner, g)),
            Err(reason) => Err((None, reason)),
        };
        match outcome {
            Ok((_, grant)) => {
                metric("accepted");
                Ok(grant)
            }
            Err((org, reason)) => {
                metric("refused");
                let address = origin.addr.map(|a| a.to_string());
                let event = self
                    .event(org, "federation".into(), "token.issue", crate::kernel::model::Outcome::Failure)
                    .request_id(origin.request_id.clone())
                    .detail(&json!({"grant_type": GRANT_JWT_BEARER, "reason": reason}));
                self.audit_refusal(event, address.as_deref()).await?;
                if let Some(address) = address.filter(|a| self.shared.address_lockout.failed(a)) {
                    let window = self.shared.config.lockout_window.as_secs();
                    let failures = self.shared.config.lockout_address_failures;
                    let event = self
                        .event(org, "federation".into(), "auth.locked", crate::kernel::model::Outcome::Failure)
                        .target(&address)
                        .request_id(origin.request_id.clone())
                        .detail(&json!({"kind": "address", "failures": failures, "window_secs": window}));
                    self.audit_refusal(event, Some(&address)).await?;
                }
                Err(oauth(OAuthError::InvalidGrant, reason))
            }
        }
    }

    /// The grant a verified partner JWT earns: its agent (mapped, in the partner's
    /// organization, active), its scope, and its `jti` spent cluster-wide.
    async fn grant_for(
        &self,
        req: &TokenRequest,
        partner: &Partner,
        verified: &VerifiedJwt,
    ) -> Result<std::result::Result<BearerGrant, (Option<Uuid>, String)>> {
        let refuse = |reason: &str| Ok(Err((Some(partner.org_id), reason.to_string())));
        let Some(agent_id) = partner.rules.subject_mapping.agent(&verified.claims) else {
            return refuse("the JWT's subject maps to no agent");
        };
        let agent = match self.shared.store.get_agent(partner.org_id, agent_id).await? {
            Some(a) if a.status == AgentStatus::Active => a,
            _ => return refuse("the JWT's subject maps to no active agent of the partner's organization"),
        };
        if let Some(why) = rules::too_strong(&partner.rules, &agent.scopes, &self.shared.policy) {
            return refuse(&why);
        }
        let requested = match req.scope.as_deref() {
            None => None,
            Some(param) => match scopes::parse_request(param) {
                Some(r) => Some(r),
                None => return Err(oauth(OAuthError::InvalidScope, "the scope parameter is malformed")),
            },
        };
        let granted = rules::grant_scope(requested.as_deref(), &partner.rules, &agent.scopes, &self.shared.policy);
        if granted.is_empty() && requested.as_ref().is_some_and(|r| !r.is_empty()) {
            return Err(oauth(
                OAuthError::InvalidScope,
                "none of the requested scopes is both allowed for the partner and held by the agent",
            ));
        }
        if let Some(jti) = &verified.jti {
            let now = self.shared.now_ms();
            let ttl = Duration::from_secs((verified.exp - now / 1000 + 2 * self.clock_skew()).max(60) as u64);
            let key = format!("federation:{}:{jti}", partner.id);
            match self.shared.coord.claim_once(&key, ttl, verified.iat, now).await? {
                Claim::First => {}
                Claim::Replayed => return refuse("the JWT's jti was already used"),
                Claim::PredatesMemory => {
                    return refuse("the JWT was made before the replay memory began: make a new one")
                }
            }
        }
        Ok(Ok(BearerGrant {
            partner_id: partner.id,
            org_id: partner.org_id,
            agent_id,
            client_id: format!("{FEDERATION_CLIENT}{}", partner.id),
            scopes: granted,
            partner_sub: verified.sub.clone(),
        }))
    }
}

/// What a JWT-bearer grant earned.
pub(crate) struct BearerGrant {
    pub partner_id: Uuid,
    pub org_id: Uuid,
    pub agent_id: Uuid,
    /// The token's `client_id`: the partner (no client of ours asked).
    pub client_id: String,
    pub scopes: Vec<String>,
    pub partner_sub: String,
}

impl BearerGrant {
    pub fn claims(&self, issuer: &str, audience: &str, now_s: i64, ttl: i64) -> AccessClaims {
        let grant =
            Grant { agent_id: self.agent_id, org_id: self.org_id, client_id: &self.client_id, scopes: &self.scopes };
        claims::build(&grant, issuer, audience, now_s, ttl, Uuid::now_v7())
    }
}
