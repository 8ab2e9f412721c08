//! The compliance report: what an organization's records say about its security hygiene,
//! as findings (severity, the agents or resources concerned, a remediation line each)
//! and an overall score. A pure function of what the engine gathered and `now`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::families::delegation::rules::{Delegation, DelegationStatus};
use crate::kernel::model::{AgentStatus, ChainReport, Credential, Millis, Usage};

const DAY_MS: i64 = 86_400_000;

/// Audit actions whose changes the report reads: committing one drops the organization's
/// cached report (whoever commits it — a request, or an actor on its own).
const RELEVANT: &[&str] = &[
    "agent.",
    "credential.",
    "delegation.",
    "webhook.",
    "did.",
    "keys.",
    "billing.",
    "organization.",
    "federation.partner.",
    "user.",
];

/// Whether a committed change of `action` (one that changed records) makes a cached report
/// stale.
pub fn changes_report(action: &str) -> bool {
    RELEVANT.iter().any(|prefix| action.starts_with(prefix))
}

/// Where an organization's report is cached in the coordinator.
pub fn cache_key(org_id: Uuid) -> String {
    format!("compliance:{org_id}")
}

/// What counts as stale or too long-lived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompliancePolicy {
    /// A credential's secret older than this should have been rotated.
    pub credential_max_age: Duration,
    /// A credential whose agent got no token for this long is unused.
    pub unused_after: Duration,
    /// A signing key older than this should have been rotated.
    pub signing_key_max_age: Duration,
    /// A delegation meant to live longer than this is longer-lived than policy.
    pub delegation_max_lifetime: Duration,
    /// Usage of a tier limit at or past this share is reported.
    pub utilization_warning: f64,
}

impl Default for CompliancePolicy {
    fn default() -> Self {
        CompliancePolicy {
            credential_max_age: Duration::from_secs(90 * 86_400),
            unused_after: Duration::from_secs(30 * 86_400),
            signing_key_max_age: Duration::from_secs(90 * 86_400),
            delegation_max_lifetime: Duration::from_secs(86_400),
            utilization_warning: 0.8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Points a finding of this severity takes off the score of 100.
    fn weight(self) -> u32 {
        match self {
            Severity::Info => 0,
            Severity::Low => 2,
            Severity::Medium => 5,
            Severity::High => 10,
            Severity::Critical => 25,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id of the check that found it (`credential-rotation`, …).
    pub id: String,
    pub severity: Severity,
    pub title: String,
    /// The agents concerned (empty when the finding is about something else).
    pub agents: Vec<Uuid>,
    /// Other things concerned: credential ids, delegation ids, subscription ids, key ids.
    pub resources: Vec<String>,
    pub remediation: String,
}

/// One check and whether it passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub id: String,
    pub passed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceReport {
    pub org_id: Uuid,
    #[serde(with = "crate::kernel::model::rfc3339")]
    pub generated_at: Millis,
    /// 100 less the weight of each finding (critical 25, high 10, medium 5, low 2).
    pub score: u32,
    pub agents_checked: usize,
    /// The organization's users (people).
    #[serde(default)]
    pub users_checked: usize,
    pub checks: Vec<Check>,
    /// Most severe first.
    pub findings: Vec<Finding>,
}

/// What the report reads of an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentFacts {
    pub id: Uuid,
    pub status: AgentStatus,
    pub scopes: Vec<String>,
}

/// Everything the report reads, gathered by the engine.
pub struct Inputs<'a> {
    pub org_id: Uuid,
    pub now: Millis,
    pub agents: &'a [AgentFacts],
    /// Active credentials.
    pub credentials: &'a [Credential],
    pub agents_with_did_keys: &'a HashSet<Uuid>,
    /// Agents issued a token within `unused_after`.
    pub agents_with_recent_tokens: &'a HashSet<Uuid>,
    /// Live (active, unexpired) delegation links.
    pub delegations: &'a [Delegation],
    /// The depth cap of the deployment.
    pub delegation_max_depth: u32,
    /// Subscriptions that are failing (failing since) or were disabled (why).
    pub failing_webhooks: &'a [(Uuid, String)],
    /// Federation partners not bounded by their configurer's scopes, and why.
    pub unbounded_partners: &'a [(Uuid, String)],
    /// The key signing now: its kid and when it was made.
    pub signing_key: Option<(&'a str, Millis)>,
    pub audit: &'a ChainReport,
    pub usage: &'a Usage,
    pub is_management_scope: &'a dyn Fn(&str) -> bool,
    /// The organization's people.
    pub users: &'a [crate::families::users::User],
}

/// "1 agent has", "2 agents have": a count with the words that agree with it.
fn many(n: usize, one: &str, other: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { other })
}

fn days(d: Duration) -> u64 {
    d.as_secs() / 86_400
}

fn finding(id: &str, severity: Severity, title: String, remediation: &str) -> Finding {
    Finding {
        id: id.into(),
        severity,
        title,
        agents: Vec::new(),
        resources: Vec::new(),
        remediation: remediation.into(),
    }
}

/// The report.
pub fn evaluate(input: &Inputs<'_>, policy: &CompliancePolicy) -> ComplianceReport {
    let now = input.now;
    let mut checks = Vec::new();
    let mut findings = Vec::new();
    let mut check = |id: &str, found: Option<Finding>| {
        checks.push(Check { id: id.into(), passed: found.is_none() });
        findings.extend(found);
    };
    let status: HashMap<Uuid, AgentStatus> = input.agents.iter().map(|a| (a.id, a.status)).collect();
    let ms = |d: Duration| d.as_millis() as i64;
    let secrets = || input.credentials.iter().filter(|c| c.kind == "client_secret");

    // Credentials older than the rotation policy.
    let stale: Vec<&Credential> =
        secrets().filter(|c| now - c.rotated_at.unwrap_or(c.created_at) > ms(policy.credential_max_age)).collect();
    check(
        "credential-rotation",
        (!stale.is_empty()).then(|| Finding {
            agents: unique(stale.iter().map(|c| c.agent_id)),
            resources: stale.iter().map(|c| c.id.to_string()).collect(),
            ..finding(
                "credential-rotation",
                Severity::Medium,
                format!(
                    "{} older than {} days",
                    many(stale.len(), "client secret is", "client secrets are"),
                    days(policy.credential_max_age)
                ),
                "Rotate them (POST /api/v1/agents/{id}/credentials/{cid}/rotate) and give the agents the new secret",
            )
        }),
    );

    // Credentials of agents that got no token for `unused_after` (and are that old).
    let unused: Vec<&Credential> = input
        .credentials
        .iter()
        .filter(|c| now - c.rotated_at.unwrap_or(c.created_at) > ms(policy.unused_after))
        .filter(|c| !input.agents_with_recent_tokens.contains(&c.agent_id))
        .collect();
    check(
        "credential-unused",
        (!unused.is_empty()).then(|| Finding {
            agents: unique(unused.iter().map(|c| c.agent_id)),
            resources: unused.iter().map(|c| c.id.to_string()).collect(),
            ..finding(
                "credential-unused",
                Severity::Low,
                format!("{} not used for {} days", many(unused.len(), "credential was", "credentials were"), days(policy.unused_after)),
                "Revoke credentials no longer used (DELETE /api/v1/agents/{id}/credentials/{cid}), or delete their agents",
            )
        }),
    );

    // People who have not signed in for `unused_after` (and were created before it): an
    // account nobody uses is one nobody would notice being used.
    let dormant: Vec<Uuid> = input
        .users
        .iter()
        .filter(|u| u.status == crate::families::users::UserStatus::Active)
        .filter(|u| now - u.last_login_at.unwrap_or(u.created_at) > ms(policy.unused_after))
        .map(|u| u.id)
        .collect();
    check(
        "user-dormant",
        (!dormant.is_empty()).then(|| Finding {
            resources: dormant.iter().map(Uuid::to_string).collect(),
            ..finding(
                "user-dormant",
                Severity::Low,
                format!(
                    "{} not signed in for {} days",
                    many(dormant.len(), "user has", "users have"),
                    days(policy.unused_after)
                ),
                "Suspend or delete people who no longer use AgentIdP (POST /api/v1/users/{id}/suspend)",
            )
        }),
    );

    // Agents holding management scopes.
    let managers: Vec<Uuid> = input
        .agents
        .iter()
        .filter(|a| a.status == AgentStatus::Active && a.scopes.iter().any(|s| (input.is_management_scope)(s)))
        .map(|a| a.id)
        .collect();
    check(
        "management-scopes",
        (!managers.is_empty()).then(|| Finding {
            agents: managers.clone(),
            ..finding(
                "management-scopes",
                Severity::Info,
                format!("{} management scopes", many(managers.len(), "agent holds", "agents hold")),
                "Keep management scopes to the agents that administer; remove the rest with PATCH /api/v1/agents/{id}",
            )
        }),
    );

    // Agents without a DID key.
    let without_did: Vec<Uuid> = input
        .agents
        .iter()
        .filter(|a| a.status == AgentStatus::Active && !input.agents_with_did_keys.contains(&a.id))
        .map(|a| a.id)
        .collect();
    check(
        "did-key",
        (!without_did.is_empty()).then(|| Finding {
            agents: without_did.clone(),
            ..finding(
                "did-key",
                Severity::Info,
                format!("{} no DID key", many(without_did.len(), "agent has", "agents have")),
                "Register or generate a DID key (POST /api/v1/agents/{id}/did/keys) so the agent can prove its DID",
            )
        }),
    );

    // Suspended agents still in active delegation chains.
    let live: Vec<&Delegation> =
        input.delegations.iter().filter(|d| d.status == DelegationStatus::Active && d.expires_at > now).collect();
    let suspended_links: Vec<&&Delegation> = live
        .iter()
        .filter(|d| {
            [d.delegator_id, d.delegatee_id].iter().any(|a| status.get(a).is_some_and(|s| *s == AgentStatus::Suspended))
        })
        .collect();
    check(
        "suspended-in-delegation",
        (!suspended_links.is_empty()).then(|| Finding {
            agents: unique(
                suspended_links
                    .iter()
                    .flat_map(|d| [d.delegator_id, d.delegatee_id])
                    .filter(|a| status.get(a).is_some_and(|s| *s == AgentStatus::Suspended)),
            ),
            resources: suspended_links.iter().map(|d| d.id.to_string()).collect(),
            ..finding(
                "suspended-in-delegation",
                Severity::High,
                format!(
                    "{} suspended agents",
                    many(suspended_links.len(), "active delegation link involves", "active delegation links involve")
                ),
                "Revoke those links (DELETE /api/v1/delegations/{id}), which revokes everything below them",
            )
        }),
    );

    // Chains near the depth cap.
    let deep: Vec<&&Delegation> =
        live.iter().filter(|d| d.depth + 1 >= d.max_depth.min(input.delegation_max_depth).max(1)).collect();
    check(
        "delegation-depth",
        (!deep.is_empty()).then(|| Finding {
            agents: unique(deep.iter().map(|d| d.delegatee_id)),
            resources: deep.iter().map(|d| d.id.to_string()).collect(),
            ..finding(
                "delegation-depth",
                Severity::Low,
                format!(
                    "{} at or one hop from their depth cap",
                    many(deep.len(), "delegation link is", "delegation links are")
                ),
                "Shorten the chains: delegate from nearer the root, or revoke links no longer needed",
            )
        }),
    );

    // Links meant to live longer than policy.
    let long: Vec<&&Delegation> =
        live.iter().filter(|d| d.expires_at - d.created_at > ms(policy.delegation_max_lifetime)).collect();
    check(
        "delegation-lifetime",
        (!long.is_empty()).then(|| Finding {
            agents: unique(long.iter().map(|d| d.delegatee_id)),
            resources: long.iter().map(|d| d.id.to_string()).collect(),
            ..finding(
                "delegation-lifetime",
                Severity::Medium,
                format!(
                    "{} longer than {} hours",
                    many(long.len(), "delegation link lives", "delegation links live"),
                    policy.delegation_max_lifetime.as_secs() / 3600
                ),
                "Revoke them and delegate again with a shorter ttl",
            )
        }),
    );

    check(
        "webhook-health",
        (!input.failing_webhooks.is_empty()).then(|| Finding {
            resources: input.failing_webhooks.iter().map(|(id, why)| format!("{id}: {why}")).collect(),
            ..finding(
                "webhook-health",
                Severity::Medium,
                format!(
                    "{} failing or disabled",
                    many(input.failing_webhooks.len(), "webhook subscription is", "webhook subscriptions are")
                ),
                "Fix the receivers, then re-enable (PATCH /api/v1/webhooks/{id} {\"enabled\": true}) and redeliver",
            )
        }),
    );

    check(
        "federation-partner-bound",
        (!input.unbounded_partners.is_empty()).then(|| Finding {
            resources: input.unbounded_partners.iter().map(|(id, why)| format!("{id}: {why}")).collect(),
            ..finding(
                "federation-partner-bound",
                Severity::High,
                format!(
                    "{} federation partners are not bounded by the scopes of whoever configured them",
                    input.unbounded_partners.len()
                ),
                "Review each partner; save it again (PATCH /api/v1/federation/partners/{id}) as an administrator \
                 holding its allowed management scopes, or narrow them. Until then its grants carry no management scope",
            )
        }),
    );

    let old_key = input.signing_key.filter(|(_, made)| now - made > ms(policy.signing_key_max_age));
    check(
        "signing-key-age",
        old_key.map(|(kid, made)| Finding {
            resources: vec![kid.to_string()],
            ..finding(
                "signing-key-age",
                Severity::Medium,
                format!("the signing key is {} days old", (now - made) / DAY_MS),
                "Rotate it (POST /api/v1/keys/rotate, or --key-rotation-interval) — the platform admin's",
            )
        }),
    );

    check(
        "audit-chain",
        (!input.audit.intact).then(|| Finding {
            resources: input.audit.first_broken_event.map(|e| e.to_string()).into_iter().collect(),
            ..finding(
                "audit-chain",
                Severity::Critical,
                "the audit chain does not verify: an event was changed or removed".into(),
                "Investigate the store's access log from the first broken event on; restore the trail from a backup",
            )
        }),
    );

    let u = input.usage;
    let near: Vec<String> = [("agents", &u.agents), ("calls today", &u.calls), ("webhooks", &u.webhooks)]
        .into_iter()
        .filter_map(|(what, a)| {
            let limit = a.limit.filter(|l| *l > 0)?;
            let share = a.used as f64 / limit as f64;
            (share >= policy.utilization_warning).then(|| format!("{what}: {} of {limit}", a.used))
        })
        .collect();
    let full = [&u.agents, &u.calls, &u.webhooks].iter().any(|a| a.limit.is_some_and(|l| a.used >= l));
    check(
        "tier-utilization",
        (!near.is_empty()).then(|| Finding {
            resources: near.clone(),
            ..finding(
                "tier-utilization",
                if full { Severity::Medium } else { Severity::Low },
                format!("the {} tier is nearly used up ({})", u.tier.as_str(), near.join(", ")),
                "Move to a larger tier (POST /api/v1/billing/checkout-session) or free up what is unused",
            )
        }),
    );

    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
    let lost: u32 = findings.iter().map(|f| f.severity.weight()).sum();
    ComplianceReport {
        org_id: input.org_id,
        generated_at: now,
        score: 100u32.saturating_sub(lost),
        agents_checked: input.agents.len(),
        users_checked: input.users.len(),
        checks,
        findings,
    }
}

fn unique(ids: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(*id)).collect()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
