//! The compliance report: gathered from the store in a handful of queries per
//! organization, evaluated by `domain::compliance`, and kept for five minutes in the
//! coordinator (Redis with several nodes, so every node serves the same report). A change
//! the report reads — an agent, a credential, a delegation, a webhook, a DID key, a key
//! rotation, a tier change — drops it as it commits (the audit writer does, for every
//! commit), so the next request recomputes.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::engine::{Call, Engine};
use crate::families::analytics::rules::{day_of, Metric};
use crate::families::compliance::rules::{cache_key, evaluate, ComplianceReport, Finding, Inputs};
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::Millis;

/// How long a report is served before it is computed again (unless a change drops it).
pub const REPORT_TTL: Duration = Duration::from_secs(300);
const PAGE: u32 = 1000;

/// The findings of one agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentCompliance {
    pub agent_id: Uuid,
    pub org_id: Uuid,
    #[serde(with = "crate::kernel::model::rfc3339")]
    pub generated_at: Millis,
    pub findings: Vec<Finding>,
}

/// Every item of a keyset-paginated listing: `page(after)` answers up to [`PAGE`] items
/// after the one whose id is `after`.
async fn every_page<T, F, Fut>(mut page: F, id: fn(&T) -> Uuid) -> Result<Vec<T>>
where
    F: FnMut(Option<Uuid>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>>>,
{
    let mut all = Vec::new();
    loop {
        let batch = page(all.last().map(id)).await?;
        let done = batch.len() < PAGE as usize;
        all.extend(batch);
        if done {
            return Ok(all);
        }
    }
}

impl Engine {
    /// The organization's compliance report (the caller's, or `org_id` as platform admin).
    pub async fn compliance_report(&self, call: &Call, org_id: Option<Uuid>) -> Result<ComplianceReport> {
        let org_id = org_id.unwrap_or(call.caller.org_id);
        self.authorize(call, "compliance.read", org_id)?;
        self.shared.store.get_org(org_id).await?.ok_or(EngineError::not_found("organization"))?;
        self.cached_report(org_id).await
    }

    /// The findings that concern one agent, from the organization's report.
    pub async fn compliance_agent(&self, call: &Call, org_id: Option<Uuid>, agent_id: Uuid) -> Result<AgentCompliance> {
        let org_id = org_id.unwrap_or(call.caller.org_id);
        self.authorize(call, "compliance.read", org_id)?;
        self.shared.store.get_agent(org_id, agent_id).await?.ok_or(EngineError::not_found("agent"))?;
        let report = self.cached_report(org_id).await?;
        let findings = report.findings.into_iter().filter(|f| f.agents.contains(&agent_id)).collect();
        Ok(AgentCompliance { agent_id, org_id, generated_at: report.generated_at, findings })
    }

    async fn cached_report(&self, org_id: Uuid) -> Result<ComplianceReport> {
        let key = cache_key(org_id);
        // A cache that cannot be read is recomputed around, not failed on.
        if let Ok(Some(bytes)) = self.shared.coord.cache_get(&key).await {
            if let Ok(report) = serde_json::from_slice::<ComplianceReport>(&bytes) {
                return Ok(report);
            }
        }
        let report = self.compute_report(org_id).await?;
        if let Ok(bytes) = serde_json::to_vec(&report) {
            if let Err(e) = self.shared.coord.cache_put(&key, &bytes, REPORT_TTL).await {
                tracing::warn!(error = %e, "compliance report not cached");
            }
        }
        Ok(report)
    }

    /// Gather what the report reads and evaluate it.
    pub async fn compute_report(&self, org_id: Uuid) -> Result<ComplianceReport> {
        let store = &self.shared.store;
        let now = self.shared.now_ms();
        let policy = self.shared.config.compliance;
        let agents = store.agent_facts(org_id).await?;
        let credentials = store.org_credentials(org_id).await?;
        let did: HashSet<Uuid> = store.agents_with_did_keys(org_id).await?.into_iter().collect();
        let since = day_of(now - policy.unused_after.as_millis() as i64);
        let mut recent: HashSet<Uuid> = store.agents_with_tokens_since(org_id, since).await?.into_iter().collect();
        recent.extend(self.shared.analytics.unwritten_agents(org_id, Metric::TokensIssued, since).await);
        let delegations = store.live_delegations(org_id, now).await?;
        let mut failing = Vec::new();
        for hook in every_page(|after| store.list_webhooks(org_id, after, PAGE), |w| w.id).await? {
            if let Some(why) = hook.disabled_reason.clone().filter(|_| !hook.enabled) {
                failing.push((hook.id, format!("disabled: {why}")));
            } else if let Some(record) = store.webhook(Some(org_id), hook.id).await? {
                if let Some(since) = record.failing_since {
                    failing.push((hook.id, format!("failing since {}", crate::kernel::model::rfc3339::format(since))));
                }
            }
        }
        let signing = store
            .signing_keys()
            .await?
            .into_iter()
            .filter(|k| k.activates_at <= now)
            .max_by_key(|k| k.activates_at)
            .map(|k| (k.kid, k.created_at));
        let unbounded: Vec<(Uuid, String)> = self
            .shared
            .federation
            .all()
            .iter()
            .filter(|p| p.org_id == org_id)
            .filter_map(|p| {
                crate::families::federation::rules::unbounded(&p.rules, &self.shared.policy).map(|why| (p.id, why))
            })
            .collect();
        let users = every_page(|after| store.list_users(org_id, None, after, PAGE), |u| u.id).await?;
        let audit = self.verify_chain(Some(org_id), false).await?;
        let usage = self.usage_of(org_id).await?;
        let policy_scopes = &self.shared.policy;
        let management = |scope: &str| {
            policy_scopes.is_management_scope(scope) && (scope.ends_with(":write") || scope == "platform:admin")
        };
        let input = Inputs {
            org_id,
            now,
            agents: &agents,
            credentials: &credentials,
            agents_with_did_keys: &did,
            agents_with_recent_tokens: &recent,
            delegations: &delegations,
            delegation_max_depth: self.shared.config.delegation_max_depth,
            failing_webhooks: &failing,
            unbounded_partners: &unbounded,
            signing_key: signing.as_ref().map(|(kid, made)| (kid.as_str(), *made)),
            audit: &audit,
            usage: &usage,
            is_management_scope: &management,
            users: &users,
        };
        Ok(evaluate(&input, &policy))
    }
}
