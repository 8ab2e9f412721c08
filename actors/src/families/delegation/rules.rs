//! Delegation chains: one agent hands part of its authority to another, which may hand
//! part of that on. Each hop is a [`Delegation`] (a link); the first link of a chain is
//! its root, and its id is the chain's id. The rules every hop obeys are here, pure:
//!
//! 1. the effective scope is the parent's ∩ the requested ∩ the delegatee's own allowed
//!    scopes — a requested scope the parent does not hold is refused, not dropped;
//! 2. expiry never extends: at most the parent's, and at most `max_ttl` from now;
//! 3. no agent appears twice in a chain (no cycles, no self-delegation);
//! 4. the depth cap is the smallest of the configured cap, the root's `max_depth` and
//!    every later hop's.

use std::sync::Arc;

use dashmap::DashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::model::{integral, present, rfc3339, Millis};

/// Whether a link still stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DelegationStatus {
    Active,
    Revoked,
    /// Never stored: an active link past its expiry, as reads report it.
    Expired,
}

impl DelegationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DelegationStatus::Active => "active",
            DelegationStatus::Revoked => "revoked",
            DelegationStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<DelegationStatus> {
        match s {
            "active" => Some(DelegationStatus::Active),
            "revoked" => Some(DelegationStatus::Revoked),
            "expired" => Some(DelegationStatus::Expired),
            _ => None,
        }
    }
}

/// The form a delegation's token takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    /// An RFC 9068 JWT, signed with the JWKS keys.
    Jwt,
    /// A biscuit, signed with the biscuit root key: attenuable offline by its holder.
    Biscuit,
}

impl TokenFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenFormat::Jwt => "jwt",
            TokenFormat::Biscuit => "biscuit",
        }
    }

    pub fn parse(s: &str) -> Option<TokenFormat> {
        match s {
            "jwt" => Some(TokenFormat::Jwt),
            "biscuit" => Some(TokenFormat::Biscuit),
            _ => None,
        }
    }
}

/// One hop of a chain: `delegator` handed `scope` to `delegatee` until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delegation {
    pub id: Uuid,
    pub org_id: Uuid,
    /// The root link's id.
    pub chain_id: Uuid,
    /// The link this one was delegated from; `None` for the root.
    pub parent_id: Option<Uuid>,
    pub delegator_id: Uuid,
    pub delegatee_id: Uuid,
    /// Space-delimited, as in the token.
    pub scope: String,
    pub audience: String,
    /// 1 for the root.
    pub depth: u32,
    /// The most hops this chain may have below and including this one.
    pub max_depth: u32,
    pub token_format: TokenFormat,
    /// The token issued for this link: the JWT's `jti`, or the hex revocation id of the
    /// biscuit's authority block (which every attenuated descendant carries too).
    pub token_id: String,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    pub expires_at: Millis,
    pub status: DelegationStatus,
    #[serde(with = "rfc3339::option")]
    pub revoked_at: Option<Millis>,
}

impl Delegation {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// As reads report it: an active link past its expiry is `Expired`.
    pub fn as_of(mut self, now: Millis) -> Delegation {
        if self.status == DelegationStatus::Active && self.expires_at <= now {
            self.status = DelegationStatus::Expired;
        }
        self
    }
}

/// A link with the hops that lead to it, root first: what `GET /delegations/{id}`
/// answers.
#[derive(Debug, Clone, Serialize)]
pub struct DelegationView {
    #[serde(flatten)]
    pub link: Delegation,
    pub hops: Vec<Delegation>,
}

/// `POST /oauth2/token/delegate`: what the delegator asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegateRequest {
    pub delegatee_id: Uuid,
    /// Space-delimited; all of the delegator token's scope when left out.
    #[serde(default, deserialize_with = "present")]
    pub scope: Option<String>,
    /// Seconds; at most the delegator token's remaining life and `delegation_max_ttl`.
    #[serde(default, deserialize_with = "integral")]
    pub expires_in: Option<i64>,
    /// The new token's `aud`; the delegator token's when left out.
    #[serde(default, deserialize_with = "present")]
    pub audience: Option<String>,
    /// Lowers the chain's depth cap (for the root: sets it below the configured one).
    #[serde(default, deserialize_with = "integral")]
    pub max_depth: Option<u32>,
    /// `jwt` (the default) or `biscuit`.
    #[serde(default, deserialize_with = "present")]
    pub token_format: Option<String>,
}

/// The answer to a delegation: the delegatee's token and where it sits.
#[derive(Debug, Clone, Serialize)]
pub struct DelegationIssued {
    /// An RFC 9068 access token: `sub` the delegatee, `act` the delegators (the
    /// outermost the latest), `chain_id` and `delegation_id` claims.
    pub token: String,
    /// `Bearer` for a JWT, `Biscuit` for a biscuit.
    pub token_type: &'static str,
    pub token_format: TokenFormat,
    pub delegation_id: Uuid,
    pub chain_id: Uuid,
    pub scope: String,
    #[serde(with = "rfc3339")]
    pub expires_at: Millis,
    pub depth: u32,
}

/// One hop as `verify-delegation` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    pub delegation_id: Uuid,
    pub delegator_id: Uuid,
    pub delegatee_id: Uuid,
    pub scope: String,
    #[serde(with = "rfc3339")]
    pub expires_at: Millis,
}

impl From<&Delegation> for Hop {
    fn from(l: &Delegation) -> Hop {
        Hop {
            delegation_id: l.id,
            delegator_id: l.delegator_id,
            delegatee_id: l.delegatee_id,
            scope: l.scope.clone(),
            expires_at: l.expires_at,
        }
    }
}

/// Why a delegation token is not valid (`verify-delegation`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Invalid {
    Malformed,
    BadSignature,
    Expired,
    NotYetValid,
    /// A valid access token that is no delegation.
    NotADelegation,
    /// No such chain in the caller's organization.
    UnknownChain,
    /// The link, one above it, or the token itself was revoked (or the root's
    /// credential was).
    Revoked,
    AgentSuspended,
    AgentDeleted,
    /// A biscuit whose holder's blocks allow none of its scopes now (or for the
    /// audience asked about).
    Attenuated,
}

impl Invalid {
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::Malformed => "malformed",
            Invalid::BadSignature => "bad_signature",
            Invalid::Expired => "expired",
            Invalid::NotYetValid => "not_yet_valid",
            Invalid::NotADelegation => "not_a_delegation",
            Invalid::UnknownChain => "unknown_chain",
            Invalid::Revoked => "revoked",
            Invalid::AgentSuspended => "agent_suspended",
            Invalid::AgentDeleted => "agent_deleted",
            Invalid::Attenuated => "attenuated",
        }
    }
}

/// `verify-delegation`'s answer.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Verification {
    Valid {
        valid: bool,
        delegator_id: Uuid,
        delegatee_id: Uuid,
        scope: String,
        #[serde(with = "rfc3339")]
        expires_at: Millis,
        chain_id: Uuid,
        delegation_id: Uuid,
        token_format: TokenFormat,
        /// Root first.
        chain: Vec<Hop>,
    },
    Invalid {
        valid: bool,
        reason: Invalid,
    },
}

/// The RFC 8693 `act` claim of a link whose hops (root first) are `hops`: the latest
/// delegator outermost, each earlier one nested in the `act` of the one after it.
pub fn act_claim(hops: &[Delegation]) -> Option<serde_json::Value> {
    hops.iter().fold(None, |inner, hop| {
        let mut act = serde_json::json!({"sub": hop.delegator_id.to_string()});
        if let Some(inner) = inner {
            act["act"] = inner;
        }
        Some(act)
    })
}

/// Why a hop may not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HopRefused {
    /// The delegatee is the delegator.
    ToSelf,
    /// The delegatee is already in the chain.
    Cycle,
    /// A requested scope the parent does not hold.
    Widening(String),
    /// Nothing would be left to delegate.
    NoScope,
    /// The chain is at its depth cap.
    TooDeep { cap: u32 },
    /// `expires_in` is not a positive number of seconds.
    BadLifetime,
    /// The parent has (all but) expired.
    ParentExpired,
}

/// What the new hop starts from: the delegator's token (and its link, when the token is
/// itself a delegation).
#[derive(Debug, Clone)]
pub struct HopRequest<'a> {
    pub delegator: Uuid,
    pub delegatee: Uuid,
    /// The delegator token's scopes.
    pub parent_scopes: &'a [String],
    /// The delegator token's expiry (unix ms).
    pub parent_expires_at: Millis,
    /// The delegator token's link, if it is a delegation.
    pub parent: Option<&'a Delegation>,
    /// Every agent already in the chain, root delegator first (empty for a root).
    pub chain_agents: &'a [Uuid],
    /// The scopes asked for; `None`: all the parent's.
    pub requested: Option<&'a [String]>,
    /// What the delegatee may hold at all.
    pub delegatee_allowed: &'a [String],
    pub expires_in_secs: Option<i64>,
    pub max_depth: Option<u32>,
    pub now: Millis,
    /// The longest a delegation may live.
    pub max_ttl_secs: i64,
    /// The configured depth cap.
    pub depth_cap: u32,
}

/// The hop as it will be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopPlan {
    pub scopes: Vec<String>,
    pub expires_at: Millis,
    pub depth: u32,
    pub max_depth: u32,
}

/// Apply the four rules to `req`.
pub fn plan_hop(req: &HopRequest<'_>) -> Result<HopPlan, HopRefused> {
    if req.delegatee == req.delegator {
        return Err(HopRefused::ToSelf);
    }
    if req.chain_agents.contains(&req.delegatee) {
        return Err(HopRefused::Cycle);
    }
    let (depth, inherited_cap) = match req.parent {
        Some(p) => (p.depth + 1, p.max_depth),
        None => (1, req.depth_cap),
    };
    let max_depth = inherited_cap.min(req.depth_cap).min(req.max_depth.unwrap_or(u32::MAX));
    if depth > max_depth {
        return Err(HopRefused::TooDeep { cap: max_depth });
    }
    let wanted: Vec<String> = match req.requested {
        Some(requested) => {
            if let Some(wider) = requested.iter().find(|s| !req.parent_scopes.contains(s)) {
                return Err(HopRefused::Widening(wider.clone()));
            }
            requested.to_vec()
        }
        None => req.parent_scopes.to_vec(),
    };
    let mut scopes: Vec<String> = wanted.into_iter().filter(|s| req.delegatee_allowed.contains(s)).collect();
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(HopRefused::NoScope);
    }
    let ttl = match req.expires_in_secs {
        Some(secs) if secs <= 0 => return Err(HopRefused::BadLifetime),
        Some(secs) => secs.min(req.max_ttl_secs),
        None => req.max_ttl_secs,
    };
    let expires_at = (req.now + ttl * 1000).min(req.parent_expires_at);
    if expires_at <= req.now {
        return Err(HopRefused::ParentExpired);
    }
    Ok(HopPlan { scopes, expires_at, depth, max_depth })
}

/// An organization's links that have not expired: what verification reads. Its owner
/// (the organization's actor, the one writer) adds links in place; readers look links up
/// without locking one another. A revocation replaces the whole index (re-read from the
/// store, which did the cascade).
#[derive(Debug, Default)]
pub struct ChainIndex {
    links: DashMap<Uuid, Arc<Delegation>>,
}

impl ChainIndex {
    pub fn new(links: impl IntoIterator<Item = Delegation>) -> ChainIndex {
        ChainIndex { links: links.into_iter().map(|l| (l.id, Arc::new(l))).collect() }
    }

    pub fn get(&self, id: &Uuid) -> Option<Arc<Delegation>> {
        self.links.get(id).map(|l| l.clone())
    }

    /// The hops from the root to `id`, root first; `None` if any is unknown.
    pub fn hops(&self, id: Uuid) -> Option<Vec<Arc<Delegation>>> {
        let mut out = Vec::new();
        let mut next = Some(id);
        while let Some(id) = next {
            let link = self.get(&id)?;
            next = link.parent_id;
            out.push(link);
            if out.len() > 64 {
                return None;
            }
        }
        out.reverse();
        Some(out)
    }

    /// `id` and every link delegated from it, at any depth, that is still active.
    pub fn downstream(&self, id: Uuid) -> Vec<Uuid> {
        let mut out = vec![id];
        let mut i = 0;
        while i < out.len() {
            let parent = out[i];
            out.extend(self.links.iter().filter(|l| l.parent_id == Some(parent)).map(|l| l.id));
            i += 1;
        }
        out.retain(|id| self.get(id).is_none_or(|l| l.status == DelegationStatus::Active));
        out
    }

    /// The ids of the revoked links.
    pub fn revoked_ids(&self) -> Vec<Uuid> {
        self.links.iter().filter(|l| l.status == DelegationStatus::Revoked).map(|l| l.id).collect()
    }

    /// Add (or replace) a link, in place.
    pub fn insert(&self, link: Delegation) {
        self.links.insert(link.id, Arc::new(link));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn link(parent: Option<&Delegation>, delegator: Uuid, delegatee: Uuid, plan: &HopPlan) -> Delegation {
        let id = Uuid::now_v7();
        Delegation {
            id,
            org_id: Uuid::nil(),
            chain_id: parent.map(|p| p.chain_id).unwrap_or(id),
            parent_id: parent.map(|p| p.id),
            delegator_id: delegator,
            delegatee_id: delegatee,
            scope: plan.scopes.join(" "),
            audience: "aud".into(),
            depth: plan.depth,
            max_depth: plan.max_depth,
            token_format: TokenFormat::Jwt,
            token_id: Uuid::now_v7().to_string(),
            created_at: 0,
            expires_at: plan.expires_at,
            status: DelegationStatus::Active,
            revoked_at: None,
        }
    }

    fn request<'a>(parent: Option<&'a Delegation>, scopes: &'a [String], agents: &'a [Uuid]) -> HopRequest<'a> {
        HopRequest {
            delegator: *agents.last().unwrap(),
            delegatee: Uuid::now_v7(),
            parent_scopes: scopes,
            parent_expires_at: parent.map(|p| p.expires_at).unwrap_or(900_000),
            parent,
            chain_agents: agents,
            requested: None,
            delegatee_allowed: scopes,
            expires_in_secs: None,
            max_depth: None,
            now: 0,
            max_ttl_secs: 3600,
            depth_cap: 3,
        }
    }

    #[test]
    fn the_rules_refuse_what_they_must() {
        let all = s(&["a", "b", "c"]);
        let root_agent = [Uuid::now_v7()];
        let mut r = request(None, &all, &root_agent);
        r.delegatee = root_agent[0];
        assert_eq!(plan_hop(&r), Err(HopRefused::ToSelf));
        let wider = s(&["a", "z"]);
        let mut r = request(None, &all, &root_agent);
        r.requested = Some(&wider);
        assert_eq!(plan_hop(&r), Err(HopRefused::Widening("z".into())));
        let none: Vec<String> = Vec::new();
        let mut r = request(None, &all, &root_agent);
        r.delegatee_allowed = &none;
        assert_eq!(plan_hop(&r), Err(HopRefused::NoScope));
        let mut r = request(None, &all, &root_agent);
        r.expires_in_secs = Some(0);
        assert_eq!(plan_hop(&r), Err(HopRefused::BadLifetime));
        // Expiry clamps to the parent's.
        let r = request(None, &all, &root_agent);
        assert_eq!(plan_hop(&r).unwrap().expires_at, 900_000);
        // max_depth 1: no second hop.
        let mut r = request(None, &all, &root_agent);
        r.max_depth = Some(1);
        let plan = plan_hop(&r).unwrap();
        let root = link(None, root_agent[0], r.delegatee, &plan);
        let agents = [root_agent[0], root.delegatee_id];
        let r2 = request(Some(&root), &all, &agents);
        assert_eq!(plan_hop(&r2), Err(HopRefused::TooDeep { cap: 1 }));
        // A cycle back to the root delegator.
        let mut r3 = request(None, &all, &agents);
        r3.delegatee = root_agent[0];
        assert_eq!(plan_hop(&r3), Err(HopRefused::Cycle));
    }

    #[test]
    fn the_index_walks_chains_and_cascades() {
        let all = s(&["a"]);
        let a = [Uuid::now_v7()];
        let r = request(None, &all, &a);
        let plan = plan_hop(&r).unwrap();
        let root = link(None, a[0], r.delegatee, &plan);
        let child = link(Some(&root), root.delegatee_id, Uuid::now_v7(), &HopPlan { depth: 2, ..plan.clone() });
        let other = link(None, a[0], Uuid::now_v7(), &plan);
        let index = ChainIndex::new([root.clone(), other.clone()]);
        assert!(index.hops(child.id).is_none(), "an unknown link has no hops");
        index.insert(child.clone());
        assert_eq!(index.hops(child.id).unwrap().iter().map(|l| l.id).collect::<Vec<_>>(), vec![root.id, child.id]);
        let mut down = index.downstream(root.id);
        down.sort();
        let mut want = vec![root.id, child.id];
        want.sort();
        assert_eq!(down, want);
        index.insert(Delegation { status: DelegationStatus::Revoked, revoked_at: Some(5), ..child.clone() });
        assert_eq!(index.downstream(root.id), vec![root.id], "a revoked link is not revoked again");
        assert_eq!(index.revoked_ids(), vec![child.id]);
    }

    proptest! {
        /// For random chains and requests, every hop made is within its parent: scope a
        /// subset, expiry no later, depth within the cap.
        #[test]
        fn every_hop_is_within_its_parent(
            root_scopes in prop::collection::btree_set("[a-e]", 1..5),
            hops in prop::collection::vec(
                (prop::collection::btree_set("[a-g]", 0..5), prop::option::of(-5i64..5000),
                 prop::collection::btree_set("[a-g]", 0..6), prop::option::of(0u32..6), any::<bool>()),
                1..7),
            start_exp in 1i64..10_000_000,
        ) {
            let mut parent: Option<Delegation> = None;
            let mut scopes: Vec<String> = root_scopes.into_iter().collect();
            let mut expires = start_exp;
            let mut agents = vec![Uuid::now_v7()];
            for (requested, expires_in, allowed, max_depth, ask_all) in hops {
                let requested: Vec<String> = requested.into_iter().collect();
                let allowed: Vec<String> = allowed.into_iter().collect();
                let req = HopRequest {
                    delegator: *agents.last().unwrap(),
                    delegatee: Uuid::now_v7(),
                    parent_scopes: &scopes,
                    parent_expires_at: expires,
                    parent: parent.as_ref(),
                    chain_agents: &agents,
                    requested: (!ask_all).then_some(&requested[..]),
                    delegatee_allowed: &allowed,
                    expires_in_secs: expires_in,
                    max_depth,
                    now: 0,
                    max_ttl_secs: 3600,
                    depth_cap: 3,
                };
                let Ok(plan) = plan_hop(&req) else { continue };
                prop_assert!(plan.scopes.iter().all(|s| scopes.contains(s)), "{plan:?} widens {scopes:?}");
                prop_assert!(plan.scopes.iter().all(|s| allowed.contains(s)));
                prop_assert!(plan.expires_at <= expires);
                prop_assert!(plan.depth <= plan.max_depth && plan.max_depth <= 3);
                if let Some(p) = &parent {
                    prop_assert!(plan.max_depth <= p.max_depth && plan.depth == p.depth + 1);
                }
                let next = link(parent.as_ref(), req.delegator, req.delegatee, &plan);
                agents.push(req.delegatee);
                scopes = plan.scopes.clone();
                expires = plan.expires_at;
                parent = Some(next);
            }
        }
    }
}
