//! Client authentication at the OAuth endpoints: client_secret_basic/post, private_key_jwt
//! with a credential's registered key or with an agent's DID key, the per-client and
//! per-address lockout, and the audit of every failure. The token endpoint itself is in
//! `tokens.rs`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::cache::{ClientEntry, ClientKey};
use crate::engine::{Engine, Origin};
use crate::families::directory::cache::AgentEntry;
use crate::families::tokens::handle::{oauth, AuthenticatedClient, ClientAuth, OAuthError};
use crate::kernel::error::{EngineError, Result};
use crate::kernel::jose;
use crate::kernel::model::{AgentStatus, CredentialStatus, Outcome};
use crate::kernel::model::{INTROSPECT_PATH, REVOKE_PATH, TOKEN_PATH};
use crate::runtime::coord::Claim;

/// Resolve a client id to its cached entries, reading the store on a miss.
pub(crate) async fn client_entry(
    engine: &Engine,
    client_id: &str,
) -> Result<Option<(Arc<ClientEntry>, Arc<AgentEntry>)>> {
    let caches = &engine.shared.token_caches;
    if let Some(hit) = caches.client(client_id) {
        return Ok(Some(hit));
    }
    let epoch = caches.epoch();
    Ok(engine.shared.store.client(client_id).await?.map(|record| caches.fill(epoch, &record)))
}

/// A failed authentication, as the lockouts count it: what was claimed (a client id, an
/// email), its lockout key (the claim at an address), and what kind of claim it is.
pub(crate) struct Failed<'a> {
    pub org: Option<Uuid>,
    pub claimed: &'a str,
    pub key: &'a str,
    pub kind: &'static str,
}

impl Engine {
    /// Refuse (`LockedOut`) a claim locked out at this address, or an address locked out:
    /// the brute-force protection every credential check shares. `what` names the failures
    /// in the answer ("authentications of this client", "sign-ins to this email").
    pub(crate) fn refuse_if_locked(
        &self,
        key: &str,
        address: Option<&str>,
        kind: &'static str,
        what: &str,
    ) -> Result<()> {
        let locked = match self.shared.lockout.locked_for(key) {
            Some(wait) => Some((wait, kind, format!("too many failed {what} from this address"))),
            None => address
                .and_then(|a| self.shared.address_lockout.locked_for(a))
                .map(|wait| (wait, "address", "too many failed authentications from this address".to_string())),
        };
        match locked {
            Some((wait, kind, reason)) => {
                self.shared.metrics.lockout_refusals.with_label_values(&[kind]).inc();
                Err(EngineError::LockedOut { reason, retry_after: crate::families::tokens::limits::whole_secs(wait) })
            }
            None => Ok(()),
        }
    }

    /// Count a failed authentication against its claim and its address; a lockout it
    /// starts is audited (`auth.locked`), once.
    pub(crate) async fn count_failure(&self, failed: Failed<'_>, address: Option<&str>, origin: &Origin) -> Result<()> {
        let window = self.shared.config.lockout_window.as_secs();
        let claim_locked = !failed.claimed.is_empty() && self.shared.lockout.failed(failed.key);
        let address_locked = address.is_some_and(|a| self.shared.address_lockout.failed(a));
        let config = &self.shared.config;
        let actor: String = failed.claimed.chars().take(128).collect();
        for (locked, kind, target, failures) in [
            (claim_locked, failed.kind, failed.claimed, config.lockout_failures),
            (address_locked, "address", address.unwrap_or(""), config.lockout_address_failures),
        ] {
            if locked {
                let detail = json!({"kind": kind, "failures": failures, "window_secs": window, "address": address});
                let event = self
                    .event(failed.org, actor.clone(), "auth.locked", Outcome::Failure)
                    .target(target.chars().take(128).collect::<String>())
                    .request_id(origin.request_id.clone())
                    .detail(&detail);
                self.audit(event).await?;
            }
        }
        Ok(())
    }

    /// Authenticate a client at an OAuth endpoint. A failure is audited and answered as
    /// `invalid_client`, never saying which part was wrong. Too many failures for the
    /// claimed client_id, or from the request's address, lock it out for a window.
    pub async fn authenticate_client(&self, auth: &ClientAuth, origin: &Origin) -> Result<AuthenticatedClient> {
        if matches!(auth, ClientAuth::None) {
            return Err(oauth(OAuthError::InvalidClient, "client authentication is required"));
        }
        let claimed = auth.claimed_id();
        let address = origin.addr.map(|a| a.to_string());
        let client_key = crate::families::tokens::limits::client_lockout_key(&claimed, address.as_deref());
        self.refuse_if_locked(&client_key, address.as_deref(), "client_id", "authentications of this client")?;
        let (verdict, known_org) = match self.did_assertion(auth, &claimed).await? {
            Some(outcome) => outcome,
            None => self.credential_verdict(auth, &claimed).await?,
        };
        match verdict {
            Ok(client) => Ok(client),
            Err(reason) => {
                self.shared.metrics.client_auth_failures.inc();
                let method = match auth {
                    ClientAuth::Secret { .. } | ClientAuth::None => "client_secret",
                    ClientAuth::Assertion { .. } => "private_key_jwt",
                };
                let event = self
                    .event(known_org, claimed.chars().take(128).collect(), "client.authenticate", Outcome::Failure)
                    .request_id(origin.request_id.clone())
                    .detail(&json!({"method": method, "reason": reason, "address": address}));
                self.audit_refusal(event, address.as_deref()).await?;
                let failed = Failed { org: known_org, claimed: &claimed, key: &client_key, kind: "client_id" };
                self.count_failure(failed, address.as_deref(), origin).await?;
                Err(oauth(OAuthError::InvalidClient, "client authentication failed"))
            }
        }
    }

    /// A credential's verdict on `auth`, and the organization it is known in. The inner
    /// error is the client's (a failed authentication), the outer one the engine's.
    async fn credential_verdict(
        &self,
        auth: &ClientAuth,
        claimed: &str,
    ) -> Result<(std::result::Result<AuthenticatedClient, String>, Option<Uuid>)> {
        let found = if claimed.is_empty() { None } else { client_entry(self, claimed).await? };
        let known_org = found.as_ref().map(|(_, agent)| agent.org_id);
        let verdict = match &found {
            Some((client, agent))
                if client.status == CredentialStatus::Active && agent.status == AgentStatus::Active =>
            {
                // An infrastructure failure (the replay memory unreachable) is a 503,
                // never a failed authentication.
                self.check_client_proof(auth, claimed, client).await?.map(|()| AuthenticatedClient {
                    client_id: claimed.to_string(),
                    agent_id: client.agent_id,
                    org_id: agent.org_id,
                    scopes: agent.scopes.clone(),
                })
            }
            Some(_) => Err("the credential or its agent is not active".to_string()),
            None => Err("unknown client".to_string()),
        };
        Ok((verdict, known_org))
    }

    /// An agent signing in with its DID key: private_key_jwt whose client id (`iss`,
    /// `sub`) is the agent's DID and whose `kid` is one of its verification methods
    /// (`<did>#key-1`). `None` when the claimed client is not one of our agents' DIDs.
    async fn did_assertion(
        &self,
        auth: &ClientAuth,
        claimed: &str,
    ) -> Result<Option<(std::result::Result<AuthenticatedClient, String>, Option<Uuid>)>> {
        let ClientAuth::Assertion { client_id: body_id, assertion } = auth else { return Ok(None) };
        let Some(agent_id) = crate::families::dids::rules::agent_of(&self.idp_did()?, claimed) else { return Ok(None) };
        let rendered = match self.rendered_did(agent_id).await {
            Ok(r) => r,
            Err(EngineError::NotFound { .. }) => return Ok(Some((Err("unknown DID".into()), None))),
            Err(e) => return Err(e),
        };
        let Some(agent) = rendered.agent.clone() else {
            return Ok(Some((Err("the DID is deactivated".into()), None)));
        };
        let org = Some(agent.org_id);
        if body_id.as_deref().is_some_and(|id| id != claimed) {
            return Ok(Some((Err("client_id does not match the assertion".into()), org)));
        }
        let kid = jsonwebtoken::decode_header(assertion).ok().and_then(|h| h.kid);
        let key = kid
            .as_deref()
            .and_then(|kid| kid.strip_prefix(claimed)?.strip_prefix('#'))
            .and_then(|fragment| rendered.keys.iter().find(|(f, _)| f == fragment));
        let Some((_, key)) = key else {
            return Ok(Some((Err("the assertion's kid is not a verification method of the DID".into()), org)));
        };
        let verdict = self.check_assertion(assertion, key, claimed).await?.map(|()| AuthenticatedClient {
            client_id: claimed.to_string(),
            agent_id: agent.id,
            org_id: agent.org_id,
            scopes: agent.scopes.clone(),
        });
        Ok(Some((verdict, org)))
    }

    /// The secret or assertion matches the credential (and an assertion is fresh). The
    /// inner error is the client's (a failed authentication), the outer one the engine's.
    async fn check_client_proof(
        &self,
        auth: &ClientAuth,
        client_id: &str,
        client: &ClientEntry,
    ) -> Result<Result<(), String>> {
        Ok(match (auth, &client.key) {
            (ClientAuth::Secret { client_secret, .. }, ClientKey::Secret(hash)) => {
                if self.shared.hasher.verify(client_secret, hash) {
                    Ok(())
                } else {
                    Err("wrong secret".into())
                }
            }
            (ClientAuth::Assertion { client_id: body_id, assertion }, ClientKey::PublicKey(jwk)) => {
                if body_id.as_deref().is_some_and(|id| id != client_id) {
                    return Ok(Err("client_id does not match the assertion".into()));
                }
                self.check_assertion(assertion, jwk, client_id).await?
            }
            _ => Err("the authentication method does not fit the credential".into()),
        })
    }

    /// A private_key_jwt assertion of `client_id`, signed by `key`: fresh, for us, and
    /// its `jti` spent cluster-wide.
    async fn check_assertion(
        &self,
        assertion: &str,
        key: &jose::PublicJwk,
        client_id: &str,
    ) -> Result<std::result::Result<(), String>> {
        let audiences = vec![
            self.shared.config.issuer.clone(),
            self.url(TOKEN_PATH),
            self.url(INTROSPECT_PATH),
            self.url(REVOKE_PATH),
        ];
        let now = self.shared.now_ms();
        let verified =
            match jose::verify_client_assertion(assertion, key, client_id, &audiences, now, self.clock_skew()) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
        let ttl = Duration::from_secs((verified.exp - now / 1000 + 60).max(60) as u64);
        let key = format!("assertion:{client_id}:{}", verified.jti);
        Ok(match self.shared.coord.claim_once(&key, ttl, verified.iat, now).await? {
            Claim::First => Ok(()),
            Claim::Replayed => Err("the assertion's jti was already used".into()),
            Claim::PredatesMemory => {
                Err("the assertion was made before the replay memory began: make a new one".into())
            }
        })
    }
}
