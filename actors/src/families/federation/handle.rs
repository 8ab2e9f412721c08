//! Federation: partners (other identity providers whose JWTs an organization accepts),
//! and checking a partner's JWT (`verify_partner_jwt`, shared by `POST /federation/verify`
//! and the RFC 7523 JWT-bearer grant, which is the tokens family's). Fetching and caching
//! the partners' keys is the JwksCache actors' work (`actor.rs`).

use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::engine::{Call, Engine};
use crate::families::federation::actor::KeySnapshot;
use crate::families::federation::actor::PartnersChanged;
use crate::families::federation::rules::{self as rules, NewPartner, Partner, PartnerPatch, PartnerRules, VerifiedJwt};
use crate::families::federation::PartnerChange;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{rfc3339, AgentStatus, Millis, Page, PageRequest};
use crate::kernel::paging::{decode_cursor, next_cursor, page_limit};
use crate::runtime::events::ClusterEvent;

/// A partner with what this node knows of its keys.
#[derive(Debug, Clone, Serialize)]
pub struct PartnerView {
    #[serde(flatten)]
    pub partner: Partner,
    /// What the `aud` of the partner's JWT-bearer assertions must name: this
    /// organization under our issuer (assertions are bound to one organization).
    pub assertion_audience: String,
    pub jwks_status: JwksStatus,
}

/// This node's view of a partner's keys.
#[derive(Debug, Clone, Serialize)]
pub struct JwksStatus {
    /// `fetched` (from `jwks_uri`), `static`, or `not_fetched` (not used on this node yet).
    pub source: &'static str,
    #[serde(with = "rfc3339::option")]
    pub fetched_at: Option<Millis>,
    /// When the keys are refreshed next (on their first use after it).
    #[serde(with = "rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub refresh_after: Option<Millis>,
    pub keys: Vec<Value>,
    pub last_error: Option<String>,
    #[serde(with = "rfc3339::option")]
    pub last_error_at: Option<Millis>,
}

fn status_of(partner: &Partner, snapshot: Option<&KeySnapshot>, now: Millis) -> JwksStatus {
    let fetched = partner.rules.jwks_uri.is_some();
    JwksStatus {
        source: match (fetched, snapshot) {
            (false, _) => "static",
            (true, Some(_)) => "fetched",
            (true, None) => "not_fetched",
        },
        fetched_at: snapshot.and_then(|s| s.fetched_at),
        refresh_after: snapshot.filter(|_| fetched).map(|s| s.fresh_until),
        keys: snapshot.map(|s| s.usable(now).iter().map(|k| k.summary()).collect()).unwrap_or_default(),
        last_error: snapshot.and_then(|s| s.last_error.as_ref().map(|(_, e)| e.clone())),
        last_error_at: snapshot.and_then(|s| s.last_error.as_ref().map(|(at, _)| *at)),
    }
}

/// The answer of `POST /federation/verify`.
#[derive(Debug, Clone, Serialize)]
pub struct FederatedVerification {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The local agent the JWT's subject maps to, if it maps to an active one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<Value>,
}

/// The `client_id` of a JWT-bearer grant's tokens is this and the partner's id.
pub(crate) const FEDERATION_CLIENT: &str = "federation:";

fn invalid(e: rules::FieldError) -> EngineError {
    EngineError::invalid(e.0, e.1)
}

impl Engine {
    /// Check where a partner's keys come from: exactly one of `jwks_uri` (an allowed
    /// destination, its name resolved now) and a static `jwks` (a valid JWKS).
    async fn check_key_source(&self, jwks_uri: &Option<String>, jwks: &Option<Value>) -> Result<()> {
        match (jwks_uri, jwks) {
            (Some(_), Some(_)) => Err(EngineError::invalid("jwks", "give jwks_uri or jwks, not both")),
            (None, None) => Err(EngineError::invalid("jwks_uri", "give jwks_uri (or a static jwks)")),
            (Some(uri), None) => {
                let settings = &self.shared.config.federation;
                crate::runtime::outbound::check_destination(
                    settings.destinations,
                    self.shared.config.resolver.as_ref(),
                    uri,
                )
                .await
                .map_err(|why| EngineError::invalid("jwks_uri", why))
            }
            (None, Some(doc)) => {
                if doc.to_string().len() > self.shared.config.federation.max_jwks_bytes {
                    return Err(EngineError::invalid("jwks", "the JWKS is too large"));
                }
                rules::parse_jwks(doc).map(|_| ()).map_err(|e| EngineError::invalid("jwks", e))
            }
        }
    }

    /// Check a partner's rules as `call` would have them: well-formed, and bounded by
    /// what the caller holds — it names no management scope the caller lacks (and never
    /// `platform:admin`), its table maps to no agent stronger than the caller — then
    /// record the caller's management scopes as the partner's bound, which every grant
    /// is held to (a claim mapping names its agent only in the JWT).
    async fn check_rules(&self, call: &Call, org_id: Uuid, r: &mut PartnerRules) -> Result<()> {
        r.allowed_algs = rules::check_algs(&r.allowed_algs).map_err(invalid)?;
        rules::check_subjects(&r.allowed_subjects).map_err(invalid)?;
        rules::check_mapping(&r.subject_mapping).map_err(invalid)?;
        r.allowed_scopes = rules::check_scopes(&r.allowed_scopes).map_err(invalid)?;
        rules::check_audiences(&r.allowed_audiences).map_err(invalid)?;
        rules::check_lifetime(r.max_assertion_lifetime).map_err(invalid)?;
        if r.allowed_scopes.iter().any(|s| s == rules::NEVER_FEDERATED) {
            return Err(EngineError::invalid(
                "allowed_scopes",
                format!("{:?} is never granted through federation", rules::NEVER_FEDERATED),
            ));
        }
        r.allowed_scopes = self.check_grantable(call, &r.allowed_scopes)?;
        if let rules::SubjectMapping::Table { table } = &r.subject_mapping {
            for agent_id in table.values() {
                if let Some(agent) = self.shared.store.get_agent(org_id, *agent_id).await? {
                    if agent.scopes.iter().any(|s| s == rules::NEVER_FEDERATED) {
                        return Err(EngineError::Forbidden(format!(
                            "subject_mapping names agent {agent_id}, a platform administrator: never reached through federation"
                        )));
                    }
                    self.check_not_stronger(call, &agent)?;
                }
            }
        }
        let held = call.caller.scopes();
        let held: Vec<&str> = held.iter().map(String::as_str).collect();
        r.configured_with = Some(crate::kernel::privilege::configurer_bound(&held, &self.shared.policy));
        Ok(())
    }

    fn view(&self, partner: Partner) -> PartnerView {
        let snapshot = self.shared.federation.snapshot(partner.id);
        let jwks_status = status_of(&partner, snapshot.as_deref(), self.shared.now_ms());
        let assertion_audience = rules::org_audience(&self.shared.config.issuer, partner.org_id);
        PartnerView { partner, assertion_audience, jwks_status }
    }

    /// Partners that break the configurer rule (stored before it, or changed around it):
    /// logged at startup, and found by the compliance report; their grants carry only
    /// what the rule allows.
    pub(crate) fn report_unbounded_partners(&self) {
        let policy = &self.shared.policy;
        for partner in self.shared.federation.all() {
            if let Some(why) = rules::unbounded(&partner.rules, policy) {
                tracing::warn!(
                    partner = %partner.id, org = %partner.org_id, issuer = %partner.issuer,
                    "federation partner not bounded by its configurer: {why}; its grants carry no scope beyond \
                     the bound (save it again as an administrator holding the scopes)"
                );
            }
        }
    }

    /// Register a partner of the caller's organization (the platform admin: of any).
    pub async fn create_partner(&self, call: &Call, new: NewPartner) -> Result<PartnerView> {
        let org_id = new.org_id.unwrap_or(call.caller.org_id);
        self.authorize(call, "federation.create", org_id)?;
        if self.shared.store.get_org(org_id).await?.is_none() {
            return Err(EngineError::not_found("organization"));
        }
        rules::check_issuer(&new.issuer).map_err(invalid)?;
        let mut partner_rules = PartnerRules {
            jwks_uri: new.jwks_uri,
            jwks: new.jwks,
            allowed_algs: new.allowed_algs.unwrap_or_else(|| rules::ALGORITHMS.iter().map(|a| a.to_string()).collect()),
            allowed_subjects: new.allowed_subjects.unwrap_or(rules::SubjectRule::Any),
            subject_mapping: new.subject_mapping,
            allowed_scopes: new.allowed_scopes,
            allowed_audiences: new.allowed_audiences.unwrap_or_default(),
            max_assertion_lifetime: new.max_assertion_lifetime.unwrap_or(rules::DEFAULT_LIFETIME_SECS),
            replay_protection: new.replay_protection.unwrap_or(true),
            configured_with: None,
        };
        self.check_rules(call, org_id, &mut partner_rules).await?;
        self.check_key_source(&partner_rules.jwks_uri, &partner_rules.jwks).await?;
        let expires_at = new.expires_at.as_deref().map(rules::parse_expiry).transpose().map_err(invalid)?;
        let now = self.shared.now_ms();
        let partner = Partner {
            id: Uuid::now_v7(),
            org_id,
            issuer: new.issuer,
            rules: partner_rules,
            enabled: new.enabled.unwrap_or(true),
            expires_at,
            created_at: now,
            updated_at: now,
        };
        let detail = json!({"issuer": partner.issuer, "jwks_uri": partner.rules.jwks_uri});
        let event = self.call_event(call, org_id, "federation.partner.create", partner.id, detail);
        let change = PartnerChange::InsertPartner(Box::new(partner.clone())).into();
        self.commit(event, vec![change], Some(ClusterEvent::of(&PartnersChanged {}))).await?;
        Ok(self.view(partner))
    }

    pub async fn list_partners(&self, call: &Call, org: Option<Uuid>, page: PageRequest) -> Result<Page<PartnerView>> {
        let org_id = org.unwrap_or(call.caller.org_id);
        self.authorize(call, "federation.list", org_id)?;
        let limit = page_limit(&page)?;
        let partners = self.shared.store.list_partners(org_id, decode_cursor(&page)?, limit).await?;
        let next_cursor = next_cursor(&partners, limit, |p| p.id);
        Ok(Page { items: partners.into_iter().map(|p| self.view(p)).collect(), next_cursor })
    }

    async fn partner_of(&self, call: &Call, operation: &'static str, org: Option<Uuid>, id: Uuid) -> Result<Partner> {
        let org_id = org.unwrap_or(call.caller.org_id);
        self.authorize(call, operation, org_id)?;
        self.shared.store.partner(Some(org_id), id).await?.ok_or_else(|| EngineError::not_found("federation partner"))
    }

    pub async fn get_partner(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<PartnerView> {
        Ok(self.view(self.partner_of(call, "federation.get", org, id).await?))
    }

    pub async fn update_partner(
        &self,
        call: &Call,
        org: Option<Uuid>,
        id: Uuid,
        patch: PartnerPatch,
    ) -> Result<PartnerView> {
        let mut partner = self.partner_of(call, "federation.update", org, id).await?;
        if let Some(issuer) = patch.issuer {
            rules::check_issuer(&issuer).map_err(invalid)?;
            partner.issuer = issuer;
        }
        let r = &mut partner.rules;
        match (patch.jwks_uri, patch.jwks) {
            (Some(_), Some(_)) => return Err(EngineError::invalid("jwks", "give jwks_uri or jwks, not both")),
            (Some(uri), None) => (r.jwks_uri, r.jwks) = (Some(uri), None),
            (None, Some(doc)) => (r.jwks_uri, r.jwks) = (None, Some(doc)),
            (None, None) => {}
        }
        if let Some(v) = patch.allowed_algs {
            r.allowed_algs = v;
        }
        if let Some(v) = patch.allowed_subjects {
            r.allowed_subjects = v;
        }
        if let Some(v) = patch.subject_mapping {
            r.subject_mapping = v;
        }
        if let Some(v) = patch.allowed_scopes {
            r.allowed_scopes = v;
        }
        if let Some(v) = patch.allowed_audiences {
            r.allowed_audiences = v;
        }
        if let Some(v) = patch.max_assertion_lifetime {
            r.max_assertion_lifetime = v;
        }
        if let Some(v) = patch.replay_protection {
            r.replay_protection = v;
        }
        if let Some(v) = patch.enabled {
            partner.enabled = v;
        }
        if let Some(expiry) = patch.expires_at {
            partner.expires_at = expiry.as_deref().map(rules::parse_expiry).transpose().map_err(invalid)?;
        }
        let mut checked = partner.rules.clone();
        self.check_rules(call, partner.org_id, &mut checked).await?;
        self.check_key_source(&checked.jwks_uri, &checked.jwks).await?;
        partner.rules = checked;
        partner.updated_at = self.shared.now_ms();
        let detail = json!({"issuer": partner.issuer, "jwks_uri": partner.rules.jwks_uri, "enabled": partner.enabled});
        let event = self.call_event(call, partner.org_id, "federation.partner.update", id, detail);
        let change = PartnerChange::UpdatePartner(Box::new(partner.clone())).into();
        self.commit(event, vec![change], Some(ClusterEvent::of(&PartnersChanged {}))).await?;
        Ok(self.view(partner))
    }

    pub async fn delete_partner(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<()> {
        let partner = self.partner_of(call, "federation.delete", org, id).await?;
        let detail = json!({"issuer": partner.issuer});
        let event = self.call_event(call, partner.org_id, "federation.partner.delete", id, detail);
        let change = PartnerChange::DeletePartner { org_id: partner.org_id, id }.into();
        self.commit(event, vec![change], Some(ClusterEvent::of(&PartnersChanged {}))).await
    }

    /// Fetch the partner's JWKS now, on this node; the answer shows the outcome.
    pub async fn refresh_partner(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<PartnerView> {
        let partner = self.partner_of(call, "federation.refresh", org, id).await?;
        self.shared.federation.refresh(partner.id).await?;
        Ok(self.view(partner))
    }

    /// Check a partner's JWT against the partners with its issuer (those of `org` only,
    /// when given): the first that accepts it wins. The inner error is the JWT's fault
    /// (a reason to show), the outer one the engine's.
    pub(crate) async fn verify_partner_jwt(
        &self,
        jwt: &str,
        org: Option<Uuid>,
        audiences: impl Fn(&Partner) -> Vec<String>,
    ) -> Result<std::result::Result<(Arc<Partner>, VerifiedJwt), String>> {
        let peeked = match rules::peek(jwt) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let now = self.shared.now_ms();
        let candidates: Vec<Arc<Partner>> = self
            .shared
            .federation
            .partners_for(&peeked.iss)
            .into_iter()
            .filter(|p| org.is_none_or(|o| p.org_id == o) && p.in_force(now))
            .collect();
        if candidates.is_empty() {
            return Ok(Err("the JWT's issuer is not a federation partner".into()));
        }
        let mut reason = String::new();
        for partner in candidates {
            if !rules::alg_allowed(&partner.rules, peeked.header.alg) {
                reason = format!("alg {:?} is not allowed for this partner", peeked.header.alg);
                continue;
            }
            let mut snapshot = self.shared.federation.keys(&partner).await?;
            if rules::candidates(snapshot.usable(now), &peeked.header).is_empty() && peeked.header.kid.is_some() {
                snapshot = self.shared.federation.refetch_for_unknown_kid(&partner, &snapshot).await?;
            }
            let keys = rules::candidates(snapshot.usable(now), &peeked.header);
            if keys.is_empty() {
                reason = match &snapshot.last_error {
                    Some((_, e)) if snapshot.usable(now).is_empty() => {
                        format!("the partner's keys are unavailable: {e}")
                    }
                    _ => "no key of the partner matches the JWT's kid and alg".into(),
                };
                continue;
            }
            let accepted = audiences(&partner);
            for key in keys {
                match rules::verify(jwt, &peeked.header, &partner, key, &accepted, now, self.clock_skew()) {
                    Ok(verified) => return Ok(Ok((partner, verified))),
                    Err(e) => reason = e,
                }
            }
        }
        Ok(Err(reason))
    }

    /// What a grant's `aud` must name: the partner's organization under our issuer.
    /// Our issuer or token endpoint alone is not enough: two organizations may trust
    /// the same issuer, and an assertion meant for one must never admit into the other.
    pub(crate) fn grant_audiences(&self, partner: &Partner) -> Vec<String> {
        vec![rules::org_audience(&self.shared.config.issuer, partner.org_id)]
    }

    /// `POST /federation/verify`: is this a valid JWT of one of the caller's
    /// organization's partners (the platform admin: of any)? A check only — it spends
    /// no `jti`.
    pub async fn verify_federated(&self, call: &Call, token: &str) -> Result<FederatedVerification> {
        self.authorize(call, "federation.verify", call.caller.org_id)?;
        if token.len() > crate::kernel::jose::MAX_JWT_LEN {
            return Err(EngineError::invalid("token", format!("at most {} bytes", crate::kernel::jose::MAX_JWT_LEN)));
        }
        let platform = call.caller.scope.split(' ').any(|s| s == "platform:admin");
        let org = (!platform).then_some(call.caller.org_id);
        let outcome = self
            .verify_partner_jwt(token, org, |p| {
                if p.rules.allowed_audiences.is_empty() {
                    self.grant_audiences(p)
                } else {
                    p.rules.allowed_audiences.clone()
                }
            })
            .await?;
        let metric =
            |outcome| self.shared.federation.metrics().assertions.with_label_values(&["verify", outcome]).inc();
        Ok(match outcome {
            Ok((partner, verified)) => {
                metric("accepted");
                let agent_id = match partner.rules.subject_mapping.agent(&verified.claims) {
                    Some(id) if self.agent_status(partner.org_id, id).await? == Some(AgentStatus::Active) => Some(id),
                    _ => None,
                };
                FederatedVerification {
                    valid: true,
                    reason: None,
                    partner_id: Some(partner.id),
                    issuer: Some(partner.issuer.clone()),
                    agent_id,
                    claims: Some(verified.claims),
                }
            }
            Err(reason) => {
                metric("refused");
                FederatedVerification {
                    valid: false,
                    reason: Some(reason),
                    partner_id: None,
                    issuer: None,
                    agent_id: None,
                    claims: None,
                }
            }
        })
    }
}
