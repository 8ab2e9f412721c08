//! Tokens once issued: introspection (RFC 7662), revocation (RFC 7009), and the
//! authentication of access tokens (Bearer, or DPoP-bound with their proof) presented to
//! the management API — each checking that the token verifies, is not revoked, and that
//! its client and agent are still active.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use serde_json::{json, Value};
use uuid::Uuid;

use super::cache::Verified;
use crate::engine::{Caller, ClientAuth, DpopPresentation, Engine, Introspector, OAuthError, Origin};
use crate::families::federation::handle::FEDERATION_CLIENT;
use crate::families::revocation::Revocation;
use crate::families::revocation::RevocationChange;
use crate::families::tokens::claims::AccessClaims;
use crate::families::tokens::client_auth::client_entry;
use crate::families::tokens::handle::{oauth, token_hash};
use crate::kernel::error::{EngineError, Result};
use crate::kernel::jose;
use crate::kernel::model::{AgentStatus, CredentialStatus, Outcome};
use crate::kernel::validity::{check_times, OWN_EXP_LEEWAY_SECS};
use crate::runtime::events::ClusterEvent;

/// What another family requires of a token on every use, beyond its signature, times,
/// revocation and client: a delegation token stands only while its chain does. The
/// families register theirs at start (composition); the check runs them in order, so
/// the tokens family needs to know none of them.
pub(crate) type TokenCondition = for<'a> fn(&'a Engine, &'a AccessClaims) -> BoxFuture<'a, Result<()>>;

impl Engine {
    /// The token's client must still be active, and an agent of the token's lineage.
    pub(crate) async fn check_token_client(&self, client_id: &str, sub: &str, org_id: Uuid) -> Result<()> {
        if let Some(partner) = client_id.strip_prefix(FEDERATION_CLIENT) {
            return self.check_partner_client(partner, sub, org_id).await;
        }
        match client_entry(self, client_id).await? {
            Some((client, agent))
                if client.status == CredentialStatus::Active && agent.status == AgentStatus::Active =>
            {
                // An exchanged token names its subject in `sub`; that agent must be active too.
                if client.agent_id.to_string() != sub {
                    let subject = Uuid::parse_str(sub)
                        .map_err(|_| EngineError::InvalidToken("subject is not an agent".into()))?;
                    if !self.agent_active(org_id, subject).await? {
                        return Err(EngineError::InvalidToken("the token's subject is no longer active".into()));
                    }
                }
                Ok(())
            }
            _ => Err(EngineError::InvalidToken("the token's client is no longer active".into())),
        }
    }

    /// A token of the JWT-bearer grant names its partner as client: the partner must
    /// still be in force in the token's organization, and the mapped agent active.
    async fn check_partner_client(&self, partner: &str, sub: &str, org_id: Uuid) -> Result<()> {
        let partner = Uuid::parse_str(partner).ok().and_then(|id| self.shared.federation.partner(id));
        if !partner.is_some_and(|p| p.org_id == org_id && p.in_force(self.shared.now_ms())) {
            return Err(EngineError::InvalidToken("the token's federation partner is no longer trusted".into()));
        }
        let subject = Uuid::parse_str(sub).map_err(|_| EngineError::InvalidToken("subject is not an agent".into()))?;
        if !self.agent_active(org_id, subject).await? {
            return Err(EngineError::InvalidToken("the token's subject is no longer active".into()));
        }
        Ok(())
    }

    async fn agent_active(&self, org_id: Uuid, agent_id: Uuid) -> Result<bool> {
        Ok(self.agent_status(org_id, agent_id).await? == Some(AgentStatus::Active))
    }

    /// RFC 7662 introspection. Anything not active — expired, revoked, malformed, signed
    /// by someone else, or another organization's — is just `{"active": false}`.
    pub async fn introspect(&self, who: Introspector, token: &str, origin: &Origin) -> Result<Value> {
        let (org, platform) = match who {
            Introspector::Client(auth) => {
                let client = self.authenticate_client(&auth, origin).await?;
                (client.org_id, false)
            }
            Introspector::Caller(call) => {
                self.authorize(&call, "tokens.introspect", call.caller.org_id)?;
                (call.caller.org_id, call.caller.is_platform_admin())
            }
        };
        let inactive = json!({"active": false});
        if token.len() > jose::MAX_JWT_LEN {
            return Ok(inactive);
        }
        let claims = match self.active_claims(token).await {
            Ok(c) if platform || c.org_id == org => c,
            Ok(_) | Err(EngineError::InvalidToken(_)) => return Ok(inactive),
            Err(e) => return Err(e),
        };
        let mut out = serde_json::to_value(&claims).map_err(EngineError::internal)?;
        if let Some(obj) = out.as_object_mut() {
            obj.insert("active".into(), true.into());
            obj.insert("token_type".into(), if claims.cnf.is_some() { "DPoP" } else { "Bearer" }.into());
        }
        Ok(out)
    }

    /// RFC 7009 revocation by a client: a token of the same agent is revoked at once and
    /// everywhere; anything else that is not active is ignored, as the RFC asks.
    pub async fn revoke_token(&self, auth: ClientAuth, token: &str, origin: &Origin) -> Result<()> {
        let client = self.authenticate_client(&auth, origin).await?;
        if token.len() > jose::MAX_JWT_LEN {
            return Ok(());
        }
        let claims: AccessClaims = match self.ring()?.verify(token, self.shared.now_ms()) {
            Ok(c) => c,
            Err(_) => return Ok(()),
        };
        let holder = client_entry(self, &claims.client_id).await?.map(|(c, _)| c.agent_id);
        let own = claims.org_id == client.org_id
            && (holder == Some(client.agent_id) || claims.sub == client.agent_id.to_string());
        if !own {
            return Err(oauth(OAuthError::UnauthorizedClient, "the token was not issued to this client"));
        }
        let revocation = Revocation { jti: claims.jti.clone(), org_id: claims.org_id, expires_at: claims.exp };
        let announce =
            ClusterEvent::of(&Revocation { jti: claims.jti.clone(), org_id: claims.org_id, expires_at: claims.exp });
        let event = self
            .event(Some(client.org_id), client.agent_id.to_string(), "token.revoke", Outcome::Success)
            .target(&claims.jti)
            .request_id(origin.request_id.clone())
            .detail(&json!({"client_id": claims.client_id, "exp": claims.exp}));
        let change = RevocationChange::RevokeToken { revocation, now: self.shared.now_ms() }.into();
        self.commit(event, vec![change], Some(announce)).await?;
        self.shared.token_caches.forget_bearer(&token_hash(token));
        Ok(())
    }

    /// Authenticate a `Bearer` access token for the management API. A sender-constrained
    /// (DPoP) token is refused here: it needs [`Engine::authenticate_dpop`].
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Caller>> {
        let caller = self.caller_for(token).await?;
        if caller.jkt.is_some() {
            return Err(EngineError::InvalidToken("this token is DPoP-bound: use the DPoP scheme with a proof".into()));
        }
        Ok(caller)
    }

    /// Authenticate a DPoP-bound access token with its proof (RFC 9449 §7).
    pub async fn authenticate_dpop(&self, token: &str, proof: DpopPresentation<'_>) -> Result<Arc<Caller>> {
        let caller = self.caller_for(token).await?;
        let jkt = self
            .verify_proof(proof.proof, proof.htm, proof.htu, Some(token))
            .await?
            .map_err(EngineError::InvalidToken)?;
        if caller.jkt.as_deref() != Some(jkt.as_str()) {
            return Err(EngineError::InvalidToken("the DPoP proof is not from the token's key".into()));
        }
        Ok(caller)
    }

    /// Verify (or find in the cache) a token and check it is still good. A token seen
    /// before is not re-verified (an ES256 verify costs ~65 µs); revocation and the
    /// client's status are checked on every call.
    async fn caller_for(&self, token: &str) -> Result<Arc<Caller>> {
        let verified = self.verified(token)?;
        if verified.claims.aud != self.shared.config.audience {
            return Err(EngineError::InvalidToken(
                "the token's audience (aud) is a resource server, not this API".into(),
            ));
        }
        self.check_still_good(&verified).await?;
        Ok(verified.caller.clone())
    }

    /// Claims of a token that is valid now: our signature, in its time window, not
    /// revoked, and its client and agent still active.
    pub(crate) async fn active_claims(&self, token: &str) -> Result<AccessClaims> {
        let verified = self.verified(token)?;
        self.check_still_good(&verified).await?;
        Ok(verified.claims.clone())
    }

    /// Verify a token's signature and claims, or find it verified in the cache: an
    /// ES256 verify costs ~65 µs, a repeated token should not pay it again.
    pub(crate) fn verified(&self, token: &str) -> Result<Arc<Verified>> {
        if token.len() > jose::MAX_JWT_LEN {
            return Err(EngineError::InvalidToken("token too large".into()));
        }
        let hash = token_hash(token);
        let now = self.shared.now_ms();
        if let Some(hit) = self.shared.token_caches.bearer(&hash) {
            if check_times(hit.claims.exp, Some(hit.claims.nbf), now, OWN_EXP_LEEWAY_SECS).is_ok() {
                self.shared.metrics.token_cache_hits.inc();
                return Ok(hit);
            }
        }
        let claims: AccessClaims = self.ring()?.verify(token, now)?;
        let agent_id =
            Uuid::parse_str(&claims.sub).map_err(|_| EngineError::InvalidToken("subject is not an agent".into()))?;
        let caller = Arc::new(Caller {
            agent_id,
            org_id: claims.org_id,
            client_id: claims.client_id.clone(),
            scope: claims.scope.as_str().into(),
            token_id: claims.jti.clone(),
            expires_at: claims.exp,
            jkt: claims.cnf.as_ref().map(|c| c.jkt.clone()),
            delegation_id: claims.delegation_id,
        });
        let verified = Arc::new(Verified { claims, caller });
        self.shared.token_caches.remember_bearer(hash, verified.clone());
        Ok(verified)
    }

    /// What is checked on every use of a verified token: not revoked, its client (and
    /// subject) still active, and what other families registered as a
    /// [`TokenCondition`].
    async fn check_still_good(&self, verified: &Verified) -> Result<()> {
        let claims = &verified.claims;
        if self.shared.revocations.is_revoked(&claims.jti) {
            return Err(EngineError::InvalidToken("the token was revoked".into()));
        }
        self.check_token_client(&claims.client_id, &claims.sub, claims.org_id).await?;
        for condition in &self.shared.token_conditions {
            condition(self, claims).await?;
        }
        Ok(())
    }
}
