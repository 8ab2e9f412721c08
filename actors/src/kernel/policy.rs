//! Authorization of management operations: the route's required scope comes from
//! `policies/scopes.json`, the decision from the biscuit datalog policy in
//! `policies/authorization.datalog`. Both are parsed once at start. Evaluating a biscuit
//! authorizer costs ~60–70 µs, so decisions are memoized by their inputs (operation, the
//! token's scope string, the same-organization and same-agent flags); the policy is pure,
//! so a memoized decision is exactly the one a fresh evaluation would give.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::time::Duration;

use biscuit_auth::builder::AuthorizerBuilder;
use biscuit_auth::AuthorizerLimits;
use dashmap::DashMap;
use serde::Deserialize;

use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::DelegationSettings;

const SCOPES_JSON: &str = include_str!("../../../policies/scopes.json");
const POLICY_DATALOG: &str = include_str!("../../../policies/authorization.datalog");
const DELEGATION_DATALOG: &str = include_str!("../../../policies/delegation.datalog");
/// Upper bound of memoized decisions; the memo is cleared when it is reached.
const MEMO_LIMIT: usize = 65_536;

/// Every operation the engine authorizes; `scopes.json` must name a scope for each.
pub const OPERATIONS: &[&str] = &[
    "organizations.create",
    "organizations.list",
    "organizations.get",
    "organizations.update",
    "organizations.delegation",
    "tiers.list",
    "organizations.usage",
    "organizations.delete",
    "agents.create",
    "agents.list",
    "agents.get",
    "agents.update",
    "agents.delete",
    "agents.suspend",
    "agents.reactivate",
    "credentials.create",
    "credentials.list",
    "credentials.rotate",
    "credentials.revoke",
    "audit.read",
    "audit.verify",
    "tokens.introspect",
    "keys.rotate",
    "tokens.exchange",
    "engine.inject_fault",
    "delegations.verify",
    "delegations.list",
    "delegations.get",
    "delegations.revoke",
    "webhooks.create",
    "webhooks.list",
    "webhooks.event_types",
    "webhooks.get",
    "webhooks.update",
    "webhooks.delete",
    "webhooks.deliveries",
    "webhooks.redeliver",
    "webhooks.test",
    "webhooks.rotate_secret",
    "federation.create",
    "federation.list",
    "federation.get",
    "federation.update",
    "federation.delete",
    "federation.refresh",
    "federation.verify",
    "users.create",
    "users.list",
    "users.get",
    "users.update",
    "users.delete",
    "users.suspend",
    "users.reactivate",
    "users.password",
    "resource_servers.create",
    "resource_servers.list",
    "resource_servers.get",
    "resource_servers.update",
    "resource_servers.delete",
    "clients.create",
    "clients.list",
    "clients.get",
    "clients.update",
    "clients.delete",
];

#[derive(Debug, Deserialize)]
pub struct ScopeCatalog {
    pub scopes: BTreeMap<String, String>,
    pub org_admin_scopes: Vec<String>,
    pub operations: BTreeMap<String, String>,
}

pub struct Policy {
    pub catalog: ScopeCatalog,
    base: AuthorizerBuilder,
    memo: DashMap<(&'static str, Arc<str>, Target), bool>,
    /// `policies/delegation.datalog`, and its memoized decisions.
    delegation: AuthorizerBuilder,
    delegation_memo: DashMap<(String, bool, u32, DelegationSettings), Option<Arc<str>>>,
}

/// Where the target of an operation stands relative to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// The target belongs to the caller's organization.
    pub same_org: bool,
    /// The target is the calling agent itself (e.g. the subject of a token exchange).
    pub same_agent: bool,
}

fn policy_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::internal(format!("authorization policy: {e}"))
}

impl Policy {
    pub fn load() -> Result<Policy> {
        let catalog: ScopeCatalog = serde_json::from_str(SCOPES_JSON).map_err(policy_err)?;
        for op in OPERATIONS {
            let scope = catalog
                .operations
                .get(*op)
                .ok_or_else(|| policy_err(format!("scopes.json names no scope for {op}")))?;
            if !catalog.scopes.contains_key(scope) {
                return Err(policy_err(format!("{op} requires unknown scope {scope}")));
            }
        }
        // biscuit's default time limit (1 ms) is easily exceeded on a loaded machine and
        // would turn into a spurious denial; the policy is ours and tiny, so the limit
        // only guards against a degenerate edit of it.
        let limits = AuthorizerLimits { max_facts: 1000, max_iterations: 100, max_time: Duration::from_millis(250) };
        let mut base = AuthorizerBuilder::new().set_limits(limits.clone()).code(POLICY_DATALOG).map_err(policy_err)?;
        let delegation = AuthorizerBuilder::new().set_limits(limits).code(DELEGATION_DATALOG).map_err(policy_err)?;
        for (op, scope) in &catalog.operations {
            base = base
                .fact(biscuit_auth::builder::fact(
                    "required_scope",
                    &[biscuit_auth::builder::string(op), biscuit_auth::builder::string(scope)],
                ))
                .map_err(policy_err)?;
        }
        Ok(Policy { catalog, base, memo: DashMap::new(), delegation, delegation_memo: DashMap::new() })
    }

    /// Allow or deny `operation` for a token with `scope` (space-delimited) on a target
    /// in the caller's organization (`same_org`) or another.
    pub fn authorize(&self, operation: &'static str, scope: &Arc<str>, same_org: bool) -> Result<()> {
        self.authorize_target(operation, scope, Target { same_org, same_agent: false })
    }

    /// Allow or deny `operation` for a token with `scope` on `target`.
    pub fn authorize_target(&self, operation: &'static str, scope: &Arc<str>, target: Target) -> Result<()> {
        let key = (operation, scope.clone(), target);
        let allowed = match self.memo.get(&key) {
            Some(hit) => *hit,
            None => {
                let allowed = self.evaluate(operation, scope, target)?;
                if self.memo.len() >= MEMO_LIMIT {
                    self.memo.clear();
                }
                self.memo.insert(key, allowed);
                allowed
            }
        };
        if allowed {
            return Ok(());
        }
        // Name what is missing: the scope, if the token lacks it (RFC 6750 §3.1), else
        // that the scope it holds does not reach this target.
        match self.catalog.operations.get(operation) {
            Some(needed) if !scope.split(' ').any(|s| s == needed) => {
                Err(EngineError::InsufficientScope { scope: needed.clone() })
            }
            Some(needed) => Err(EngineError::Forbidden(format!(
                "the token's {needed} scope does not reach this target (another organization's, or another agent's)"
            ))),
            None => Err(EngineError::Forbidden("the token does not permit this call".into())),
        }
    }

    fn evaluate(&self, operation: &str, scope: &str, target: Target) -> Result<bool> {
        use biscuit_auth::builder::{boolean, fact, string};
        let mut builder = self
            .base
            .clone()
            .fact(fact("operation", &[string(operation)]))
            .map_err(policy_err)?
            .fact(fact("same_org", &[boolean(target.same_org)]))
            .map_err(policy_err)?
            .fact(fact("same_agent", &[boolean(target.same_agent)]))
            .map_err(policy_err)?;
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            builder = builder.fact(fact("scope", &[string(s)])).map_err(policy_err)?;
        }
        let mut authorizer = builder.build_unauthenticated().map_err(policy_err)?;
        // Only a decision of the policy is an answer; running out of time or facts is an
        // error, and is never memoized as a denial.
        match authorizer.authorize() {
            Ok(_) => Ok(true),
            Err(biscuit_auth::error::Token::FailedLogic(_)) => Ok(false),
            Err(e) => Err(policy_err(e)),
        }
    }

    /// Allow or deny a new delegation hop carrying `scopes` (sorted) at `depth`, to an
    /// agent in the delegator's organization (`same_org`) or another, under the
    /// organization's own `settings`. A refusal names the policy line that refused.
    pub fn authorize_delegation(
        &self,
        scopes: &[String],
        same_org: bool,
        depth: u32,
        settings: &DelegationSettings,
    ) -> Result<()> {
        let key = (scopes.join(" "), same_org, depth, settings.clone());
        let refusal = match self.delegation_memo.get(&key) {
            Some(hit) => hit.clone(),
            None => {
                let refusal = self.evaluate_delegation(scopes, same_org, depth, settings)?;
                if self.delegation_memo.len() >= MEMO_LIMIT {
                    self.delegation_memo.clear();
                }
                self.delegation_memo.insert(key, refusal.clone());
                refusal
            }
        };
        match refusal {
            None => Ok(()),
            Some(rule) => Err(EngineError::Forbidden(format!(
                "the delegation policy does not allow delegating {:?} at depth {depth} (refused by `{rule}`)",
                scopes.join(" ")
            ))),
        }
    }

    /// `None` when the delegation policy allows the hop; else the policy that refused it.
    fn evaluate_delegation(
        &self,
        scopes: &[String],
        same_org: bool,
        depth: u32,
        settings: &DelegationSettings,
    ) -> Result<Option<Arc<str>>> {
        use biscuit_auth::builder::{boolean, fact, int, string};
        use biscuit_auth::error::{Logic, MatchedPolicy, Token};
        let mut builder = self
            .delegation
            .clone()
            .fact(fact("same_org", &[boolean(same_org)]))
            .map_err(policy_err)?
            .fact(fact("depth", &[int(i64::from(depth))]))
            .map_err(policy_err)?;
        for s in scopes {
            builder = builder.fact(fact("delegated_scope", &[string(s)])).map_err(policy_err)?;
        }
        for s in &settings.non_delegable_scopes {
            builder = builder.fact(fact("org_non_delegable", &[string(s)])).map_err(policy_err)?;
        }
        if let Some(cap) = settings.max_depth {
            builder = builder.fact(fact("org_max_depth", &[int(i64::from(cap))])).map_err(policy_err)?;
        }
        let mut authorizer = builder.build_unauthenticated().map_err(policy_err)?;
        match authorizer.authorize() {
            Ok(_) => Ok(None),
            Err(Token::FailedLogic(Logic::Unauthorized { policy: MatchedPolicy::Deny(i), .. })) => {
                let rule = authorizer.dump().3.get(i).map(|p| p.to_string()).unwrap_or_else(|| "deny".into());
                Ok(Some(rule.into()))
            }
            Err(Token::FailedLogic(_)) => Ok(Some("no allow policy".into())),
            Err(e) => Err(policy_err(e)),
        }
    }

    /// Scopes with management meaning (as opposed to an organization's own scopes).
    pub fn is_management_scope(&self, scope: &str) -> bool {
        self.catalog.scopes.contains_key(scope)
    }

    /// A scope that looks like a management scope without being one: a case variant
    /// (`PLATFORM:ADMIN`), a wildcard (`*`, `agents:*`) or any other name in a namespace
    /// the catalog reserves (`agents:…`, `platform:…`). It grants nothing here, but a
    /// downstream service that compares loosely would be fooled, so none may be granted.
    pub fn is_lookalike(&self, scope: &str) -> bool {
        if self.is_management_scope(scope) {
            return false;
        }
        let namespace = |s: &str| s.split(':').next().unwrap_or_default().to_ascii_lowercase();
        scope == "*"
            || self.catalog.scopes.keys().any(|k| k.eq_ignore_ascii_case(scope) || namespace(k) == namespace(scope))
    }
}

impl crate::kernel::privilege::ScopeCatalog for Policy {
    fn is_management(&self, scope: &str) -> bool {
        self.is_management_scope(scope)
    }

    fn is_lookalike(&self, scope: &str) -> bool {
        Policy::is_lookalike(self, scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policy_enforces_scope_and_tenant() {
        let p = Policy::load().unwrap();
        let admin: Arc<str> = p.catalog.org_admin_scopes.join(" ").into();
        assert!(p.authorize("agents.create", &admin, true).is_ok());
        assert!(p.authorize("agents.create", &admin, false).is_err());
        assert!(p.authorize("organizations.create", &admin, true).is_err());
        let reader: Arc<str> = "agents:read".into();
        assert!(p.authorize("agents.get", &reader, true).is_ok());
        assert!(p.authorize("agents.update", &reader, true).is_err());
        let platform: Arc<str> = "platform:admin agents:read".into();
        assert!(p.authorize("organizations.create", &platform, false).is_ok());
        assert!(p.authorize("agents.get", &platform, false).is_ok());
        assert!(p.authorize("agents.create", &platform, false).is_err());
        // memoized answers are the same answers
        assert!(p.authorize("agents.create", &admin, false).is_err());
        assert!(p.authorize("agents.create", &admin, true).is_ok());
    }

    #[test]
    fn the_delegation_policy_keeps_platform_power_and_organizations_apart() {
        let p = Policy::load().unwrap();
        let s = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let none = DelegationSettings::default();
        assert!(p.authorize_delegation(&s(&["agents:read", "search:query"]), true, 1, &none).is_ok());
        assert!(p.authorize_delegation(&s(&["agents:read"]), false, 1, &none).is_err(), "across organizations");
        assert!(p.authorize_delegation(&s(&["agents:read", "platform:admin"]), true, 1, &none).is_err());
        assert!(p.authorize_delegation(&s(&["credentials:write"]), true, 2, &none).is_err());
        assert!(p.authorize_delegation(&s(&["agents:read"]), true, 3, &none).is_ok(), "memoized per input");
    }

    #[test]
    fn an_organization_narrows_delegation_with_its_own_settings() {
        let p = Policy::load().unwrap();
        let s = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let org = DelegationSettings { non_delegable_scopes: s(&["billing:pay"]), max_depth: Some(2) };
        assert!(p.authorize_delegation(&s(&["search:query"]), true, 2, &org).is_ok());
        let err = p.authorize_delegation(&s(&["billing:pay", "search:query"]), true, 1, &org).unwrap_err();
        assert!(err.to_string().contains("org_non_delegable"), "{err}");
        let err = p.authorize_delegation(&s(&["search:query"]), true, 3, &org).unwrap_err();
        assert!(err.to_string().contains("org_max_depth"), "{err}");
        // the same inputs under the shipped policy alone are allowed: the memo tells them apart
        let none = DelegationSettings::default();
        assert!(p.authorize_delegation(&s(&["billing:pay"]), true, 3, &none).is_ok());
    }

    #[test]
    fn management_scope_lookalikes_are_recognised() {
        let p = Policy::load().unwrap();
        for bad in ["PLATFORM:ADMIN", "Agents:Read", "agents:*", "*", "platform:root", "AUDIT:read"] {
            assert!(p.is_lookalike(bad), "{bad}");
        }
        for good in ["agents:read", "platform:admin", "search:query", "files:*", "agentsx:read"] {
            assert!(!p.is_lookalike(good), "{good}");
        }
    }

    #[test]
    fn token_exchange_is_own_tokens_or_the_exchange_scope_in_the_organization() {
        let p = Policy::load().unwrap();
        let none: Arc<str> = "".into();
        let exchanger: Arc<str> = "tokens:exchange".into();
        let own = Target { same_org: true, same_agent: true };
        let other = Target { same_org: true, same_agent: false };
        let foreign = Target { same_org: false, same_agent: false };
        assert!(p.authorize_target("tokens.exchange", &none, own).is_ok());
        assert!(p.authorize_target("tokens.exchange", &none, other).is_err());
        assert!(p.authorize_target("tokens.exchange", &exchanger, other).is_ok());
        assert!(p.authorize_target("tokens.exchange", &exchanger, foreign).is_err());
    }
}
