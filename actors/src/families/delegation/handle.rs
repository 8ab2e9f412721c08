//! Agent-to-agent delegation: making a hop (`delegate`), verifying a delegation token,
//! listing, reading and revoking links (with their cascade). The chains themselves are
//! owned by each organization's DelegationActor (`actor/delegations.rs`); the rules of a
//! hop are `domain/delegation.rs`'s; who may delegate what is `policies/delegation.datalog`.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use serde_json::json;
use uuid::Uuid;

use crate::engine::{Call, Engine};
use crate::families::analytics::rules::Metric;
use crate::families::audit::Commit;
use crate::families::delegation::actor::DelegationsChanged;
use crate::families::delegation::biscuit::BiscuitFault;
use crate::families::delegation::rules::{
    act_claim, plan_hop, DelegateRequest, Delegation, DelegationIssued, DelegationStatus, DelegationView, Hop,
    HopRefused, HopRequest, Invalid, TokenFormat, Verification,
};
use crate::families::delegation::DelegationChange;
use crate::families::delegation::DelegationFilter;
use crate::families::signing::keys::TokenFault;
use crate::families::tokens::claims::{self, AccessClaims, Grant};
use crate::kernel::error::{EngineError, Result};
use crate::kernel::jose;
use crate::kernel::model::{AgentStatus, Millis, Outcome, Page, PageRequest};
use crate::kernel::paging::{decode_cursor, next_cursor, page_limit};
use crate::kernel::policy::Target;
use crate::kernel::scopes;
use crate::runtime::events::ClusterEvent;

/// `GET /delegations`' filters.
#[derive(Debug, Clone, Default)]
pub struct DelegationQuery {
    pub delegator_id: Option<Uuid>,
    pub delegatee_id: Option<Uuid>,
    pub status: Option<DelegationStatus>,
    pub page: PageRequest,
}

/// A delegation token that stands: the scope it carries now, its expiry, its chain.
struct Standing {
    scope: String,
    expires_at: Millis,
    /// Root first; the last is the token's own link.
    hops: Vec<Arc<Delegation>>,
}

/// A token's standing, or why it does not stand.
type Checked = std::result::Result<Standing, Invalid>;

fn refused(r: HopRefused) -> EngineError {
    match r {
        HopRefused::ToSelf => EngineError::invalid("delegatee_id", "an agent cannot delegate to itself"),
        HopRefused::Cycle => EngineError::invalid("delegatee_id", "the delegatee is already in this chain"),
        HopRefused::Widening(s) => {
            EngineError::invalid("scope", format!("{s:?} is not in the delegating token's scope: a hop only narrows"))
        }
        HopRefused::NoScope => {
            EngineError::invalid("scope", "nothing to delegate: the delegatee may hold none of the scope asked for")
        }
        HopRefused::TooDeep { cap } => EngineError::Forbidden(format!("the chain is at its depth cap of {cap}")),
        HopRefused::BadLifetime => EngineError::invalid("expires_in", "a positive number of seconds"),
        HopRefused::ParentExpired => EngineError::InvalidToken("the delegating token has expired".into()),
    }
}

impl Engine {
    /// The biscuit root public key delegations in biscuit form are signed with, as
    /// biscuit tools print it (`ed25519/<hex>`).
    pub fn biscuit_public_key(&self) -> String {
        self.shared.biscuit.public_key()
    }

    /// The revocation ids of revoked biscuit delegations that have not expired: what a
    /// service verifying biscuits offline must refuse (any token whose block carries one).
    pub async fn revoked_biscuits(&self) -> Result<Vec<String>> {
        self.shared.store.revoked_biscuits(self.shared.now_ms()).await
    }

    /// The hops (root first) of the link `id` of `org_id` if the chain stands: every hop
    /// unrevoked and every agent in it active. Reads the published index; a link it does
    /// not know (made a moment ago elsewhere) makes it re-read the store once.
    pub(crate) async fn check_chain(
        &self,
        org_id: Uuid,
        id: Uuid,
    ) -> Result<std::result::Result<Vec<Arc<Delegation>>, Invalid>> {
        let delegations = &self.shared.delegations;
        let hops = match delegations.index(org_id).await?.hops(id) {
            Some(hops) => hops,
            None => match delegations.reload(org_id).await?.hops(id) {
                Some(hops) => hops,
                None => return Ok(Err(Invalid::UnknownChain)),
            },
        };
        if hops.iter().any(|h| h.status != DelegationStatus::Active) {
            return Ok(Err(Invalid::Revoked));
        }
        let agents = hops.first().map(|root| root.delegator_id).into_iter().chain(hops.iter().map(|h| h.delegatee_id));
        for agent in agents {
            match self.agent_status(org_id, agent).await? {
                Some(AgentStatus::Active) => {}
                Some(AgentStatus::Suspended) => return Ok(Err(Invalid::AgentSuspended)),
                None => return Ok(Err(Invalid::AgentDeleted)),
            }
        }
        Ok(Ok(hops))
    }

    /// Hand part of the caller's authority to another agent of its organization: a new
    /// root link, or — when the caller's token is itself a delegation — the next hop of
    /// its chain. Answers the delegatee's token once the link and its audit event are
    /// durable.
    pub async fn delegate(&self, call: &Call, req: DelegateRequest) -> Result<DelegationIssued> {
        let caller = &call.caller;
        let org_id = caller.org_id;
        let now = self.shared.now_ms();
        let hops = match caller.delegation_id {
            Some(id) => self
                .check_chain(org_id, id)
                .await?
                .map_err(|r| EngineError::InvalidToken(format!("the delegating token's chain is {}", r.as_str())))?,
            None => Vec::new(),
        };
        let parent = hops.last().map(|h| h.as_ref());
        let mut chain_agents: Vec<Uuid> = hops.iter().map(|h| h.delegator_id).collect();
        chain_agents.push(caller.agent_id);
        let delegatee = self
            .shared
            .store
            .get_agent(org_id, req.delegatee_id)
            .await?
            // Another organization's agent is as unknown here as one that never was.
            .ok_or(EngineError::not_found("delegatee (an agent of the organization)"))?;
        if delegatee.status != AgentStatus::Active {
            return Err(EngineError::invalid("delegatee_id", "the delegatee is suspended"));
        }
        let requested = req
            .scope
            .as_deref()
            .map(|param| match scopes::parse_request(param) {
                Some(list) if !list.is_empty() => Ok(list),
                _ => Err(EngineError::invalid("scope", "a space-delimited list of scope tokens")),
            })
            .transpose()?;
        let format = match req.token_format.as_deref() {
            None => TokenFormat::Jwt,
            Some(f) => TokenFormat::parse(f).ok_or_else(|| EngineError::invalid("token_format", "jwt or biscuit"))?,
        };
        let audience = match req.audience {
            None => self.shared.config.audience.clone(),
            Some(a) if !a.is_empty() && a.len() <= 512 && !a.contains(char::is_whitespace) => a,
            Some(_) => return Err(EngineError::invalid("audience", "one URI or name, at most 512 characters")),
        };
        let parent_scopes = caller.scopes();
        let config = &self.shared.config;
        let plan = plan_hop(&HopRequest {
            delegator: caller.agent_id,
            delegatee: delegatee.id,
            parent_scopes: &parent_scopes,
            parent_expires_at: caller.expires_at * 1000,
            parent,
            chain_agents: &chain_agents,
            requested: requested.as_deref(),
            delegatee_allowed: &delegatee.scopes,
            expires_in_secs: req.expires_in,
            max_depth: req.max_depth,
            now,
            max_ttl_secs: config.delegation_max_ttl.as_secs() as i64,
            depth_cap: config.delegation_max_depth,
        })
        .map_err(refused)?;
        let org = self.shared.store.get_org(org_id).await?.ok_or(EngineError::not_found("organization"))?;
        self.shared.policy.authorize_delegation(&plan.scopes, true, plan.depth, &org.delegation)?;

        let id = Uuid::now_v7();
        let jti = Uuid::now_v7();
        let exp = plan.expires_at / 1000;
        let mut link = Delegation {
            id,
            org_id,
            chain_id: parent.map(|p| p.chain_id).unwrap_or(id),
            parent_id: parent.map(|p| p.id),
            delegator_id: caller.agent_id,
            delegatee_id: delegatee.id,
            scope: plan.scopes.join(" "),
            audience: audience.clone(),
            depth: plan.depth,
            max_depth: plan.max_depth,
            token_format: format,
            token_id: jti.to_string(),
            created_at: now,
            expires_at: exp * 1000,
            status: DelegationStatus::Active,
            revoked_at: None,
        };
        let token = match format {
            TokenFormat::Jwt => {
                let grant =
                    Grant { agent_id: delegatee.id, org_id, client_id: &caller.client_id, scopes: &plan.scopes };
                let mut claims = claims::build(&grant, &config.issuer, &audience, now / 1000, 0, jti);
                claims.exp = exp;
                let mut chain: Vec<Delegation> = hops.iter().map(|h| (**h).clone()).collect();
                chain.push(link.clone());
                claims.act = act_claim(&chain);
                claims.chain_id = Some(link.chain_id);
                claims.delegation_id = Some(id);
                self.ring()?.signing_key(now).sign(&claims)?
            }
            TokenFormat::Biscuit => {
                let (token, revocation_id) = self.shared.biscuit.issue(&link)?;
                link.token_id = revocation_id;
                token
            }
        };

        let detail = json!({
            "chain_id": link.chain_id, "parent_id": link.parent_id, "delegatee_id": link.delegatee_id,
            "scope": link.scope, "depth": link.depth, "exp": exp, "token_format": format.as_str(),
            "token_id": link.token_id,
        });
        let event = self.call_event(call, org_id, "delegation.create", id, detail);
        let announce = ClusterEvent::of(&DelegationsChanged { org_id, origin: self.shared.delegations.node() });
        let commit = Commit {
            event: event.seal(),
            changes: vec![DelegationChange::InsertDelegation(link.clone()).into()],
            announce: Some(announce.clone()),
        };
        self.shared.delegations.create(org_id, link.clone(), commit).await?;
        self.announce(announce);
        self.count(org_id, caller.agent_id, Metric::DelegationsCreated);
        Ok(DelegationIssued {
            token,
            token_type: match format {
                TokenFormat::Jwt => "Bearer",
                TokenFormat::Biscuit => "Biscuit",
            },
            token_format: format,
            delegation_id: id,
            chain_id: link.chain_id,
            scope: link.scope,
            expires_at: link.expires_at,
            depth: link.depth,
        })
    }

    /// Whether `token` is a delegation token that stands now, for a service of the
    /// caller's organization: its chain, or why not. A refusal is audited.
    pub async fn verify_delegation(&self, call: &Call, token: &str, audience: Option<&str>) -> Result<Verification> {
        self.authorize(call, "delegations.verify", call.caller.org_id)?;
        // A JWT has dots; a biscuit (URL-safe base64) has none.
        let outcome = if token.contains('.') {
            self.check_delegation_token(call, token).await?
        } else {
            self.check_biscuit(call, token, audience).await?
        };
        match &outcome {
            Ok(standing) => {
                if let Some(link) = standing.hops.last() {
                    self.count(link.org_id, link.delegatee_id, Metric::DelegationsVerified);
                }
            }
            Err(reason) => {
                let event = self
                    .event(
                        Some(call.caller.org_id),
                        call.caller.agent_id.to_string(),
                        "delegation.verify",
                        Outcome::Failure,
                    )
                    .request_id(call.request_id.clone())
                    .detail(&json!({"reason": reason.as_str()}));
                self.audit(event).await?;
            }
        }
        Ok(match outcome {
            Ok(Standing { scope, expires_at, hops }) => {
                let last = hops.last().ok_or_else(|| EngineError::internal("a chain without hops"))?;
                Verification::Valid {
                    valid: true,
                    delegator_id: last.delegator_id,
                    delegatee_id: last.delegatee_id,
                    scope,
                    expires_at,
                    chain_id: last.chain_id,
                    delegation_id: last.id,
                    token_format: last.token_format,
                    chain: hops.iter().map(|h| Hop::from(h.as_ref())).collect(),
                }
            }
            Err(reason) => Verification::Invalid { valid: false, reason },
        })
    }

    async fn check_delegation_token(&self, call: &Call, token: &str) -> Result<Checked> {
        if token.len() > jose::MAX_JWT_LEN {
            return Ok(Err(Invalid::Malformed));
        }
        // A token verified before comes from the cache (as at introspection); only a
        // failure is verified again, to say why.
        let verified = match self.verified(token) {
            Ok(verified) => Ok(verified.claims.clone()),
            Err(EngineError::InvalidToken(_)) => self.ring()?.verify_or_fault(token, self.shared.now_ms()),
            Err(e) => return Err(e),
        };
        let claims: AccessClaims = match verified {
            Ok(claims) => claims,
            Err(fault) => {
                return Ok(Err(match fault {
                    TokenFault::Malformed | TokenFault::NotAnAccessToken | TokenFault::Invalid(_) => Invalid::Malformed,
                    TokenFault::UnknownKey | TokenFault::BadSignature => Invalid::BadSignature,
                    TokenFault::Expired => Invalid::Expired,
                    TokenFault::NotYetValid => Invalid::NotYetValid,
                }))
            }
        };
        let Some(id) = claims.delegation_id else { return Ok(Err(Invalid::NotADelegation)) };
        // Another organization's chain is unknown here: nothing about it is revealed.
        if claims.org_id != call.caller.org_id && !call.caller.is_platform_admin() {
            return Ok(Err(Invalid::UnknownChain));
        }
        let hops = match self.check_chain(claims.org_id, id).await? {
            Ok(hops) => hops,
            Err(reason) => return Ok(Err(reason)),
        };
        if hops.last().map(|h| h.delegatee_id.to_string()) != Some(claims.sub.clone()) {
            return Ok(Err(Invalid::UnknownChain));
        }
        if self.shared.revocations.is_revoked(&claims.jti) {
            return Ok(Err(Invalid::Revoked));
        }
        // The root delegator's credential (the token's client) must still stand.
        match self.check_token_client(&claims.client_id, &claims.sub, claims.org_id).await {
            Ok(()) => Ok(Ok(Standing { scope: claims.scope, expires_at: claims.exp * 1000, hops })),
            Err(EngineError::InvalidToken(_)) => Ok(Err(Invalid::Revoked)),
            Err(e) => Err(e),
        }
    }

    /// A biscuit delegation: its signature and the holder's blocks (offline checks), then
    /// its chain as for a JWT; it stands with the scope the blocks leave.
    async fn check_biscuit(&self, call: &Call, token: &str, audience: Option<&str>) -> Result<Checked> {
        let grant = match self.shared.biscuit.verify(token, self.shared.now_ms(), audience) {
            Ok(grant) => grant,
            Err(fault) => {
                return Ok(Err(match fault {
                    BiscuitFault::Malformed => Invalid::Malformed,
                    BiscuitFault::BadSignature => Invalid::BadSignature,
                    BiscuitFault::Expired => Invalid::Expired,
                    BiscuitFault::Attenuated => Invalid::Attenuated,
                }))
            }
        };
        if grant.org_id != call.caller.org_id && !call.caller.is_platform_admin() {
            return Ok(Err(Invalid::UnknownChain));
        }
        let hops = match self.check_chain(grant.org_id, grant.delegation_id).await? {
            Ok(hops) => hops,
            Err(reason) => return Ok(Err(reason)),
        };
        let Some(expires_at) = hops.last().filter(|l| l.delegatee_id == grant.delegatee_id).map(|l| l.expires_at)
        else {
            return Ok(Err(Invalid::UnknownChain));
        };
        Ok(Ok(Standing { scope: grant.scopes.join(" "), expires_at, hops }))
    }

    /// The organization's delegation links, oldest first, narrowed by `query`.
    pub async fn list_delegations(
        &self,
        call: &Call,
        org: Option<Uuid>,
        query: DelegationQuery,
    ) -> Result<Page<Delegation>> {
        let org_id = org.unwrap_or(call.caller.org_id);
        self.authorize(call, "delegations.list", org_id)?;
        let limit = page_limit(&query.page)?;
        let now = self.shared.now_ms();
        let filter = DelegationFilter {
            delegator_id: query.delegator_id,
            delegatee_id: query.delegatee_id,
            status: query.status,
            now,
        };
        let items: Vec<Delegation> = self
            .shared
            .store
            .list_delegations(org_id, &filter, decode_cursor(&query.page)?, limit)
            .await?
            .into_iter()
            .map(|l| l.as_of(now))
            .collect();
        let next_cursor = next_cursor(&items, limit, |l| l.id);
        Ok(Page { items, next_cursor })
    }

    /// One link, with the hops from its chain's root to it.
    pub async fn get_delegation(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<DelegationView> {
        let org_id = org.unwrap_or(call.caller.org_id);
        self.authorize(call, "delegations.get", org_id)?;
        let now = self.shared.now_ms();
        let store = &self.shared.store;
        let link = store.get_delegation(org_id, id).await?.ok_or(EngineError::not_found("delegation"))?;
        let mut hops = vec![link.clone().as_of(now)];
        let mut next = link.parent_id;
        while let Some(parent) = next {
            let Some(p) = store.get_delegation(org_id, parent).await? else { break };
            next = p.parent_id;
            hops.push(p.as_of(now));
        }
        hops.reverse();
        Ok(DelegationView { link: link.as_of(now), hops })
    }

    /// Revoke a link and every link below it, at once and on every node (the delegator,
    /// or an admin of the organization). Answers the links it revoked (none if it was
    /// revoked already).
    pub async fn revoke_delegation(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<Vec<Uuid>> {
        let org_id = org.unwrap_or(call.caller.org_id);
        let link = self.shared.store.get_delegation(org_id, id).await?;
        let same_org = org_id == call.caller.org_id;
        let target =
            Target { same_org, same_agent: link.as_ref().is_some_and(|l| l.delegator_id == call.caller.agent_id) };
        self.shared.policy.authorize_target("delegations.revoke", &call.caller.scope, target)?;
        let link = link.ok_or(EngineError::not_found("delegation"))?;
        if link.status == DelegationStatus::Revoked {
            return Ok(Vec::new());
        }
        let index = self.shared.delegations.index(org_id).await?;
        let below = index.downstream(id);
        let now = self.shared.now_ms();
        let detail = json!({"chain_id": link.chain_id, "cascade": below});
        let event = self.call_event(call, org_id, "delegation.revoke", id, detail);
        let announce = ClusterEvent::of(&DelegationsChanged { org_id, origin: self.shared.delegations.node() });
        let commit = Commit {
            event: event.seal(),
            changes: vec![DelegationChange::RevokeDelegation { org_id, id, now }.into()],
            announce: Some(announce.clone()),
        };
        let revoked = self.shared.delegations.revoke(org_id, commit).await?;
        self.announce(announce);
        let after = self.shared.delegations.index(org_id).await?;
        for revoked_id in &revoked {
            let delegator = after.get(revoked_id).map(|l| l.delegator_id).unwrap_or(link.delegator_id);
            self.count(org_id, delegator, Metric::DelegationsRevoked);
        }
        Ok(revoked)
    }
}

/// The tokens family's [`crate::families::tokens::bearer::TokenCondition`] for
/// delegation tokens: one stands only while its whole chain does.
pub(crate) fn chain_stands<'a>(engine: &'a Engine, claims: &'a AccessClaims) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        if let Some(id) = claims.delegation_id {
            if let Err(reason) = engine.check_chain(claims.org_id, id).await? {
                return Err(EngineError::InvalidToken(format!("the token's delegation chain is {}", reason.as_str())));
            }
        }
        Ok(())
    })
}
