//! The compliance report's rules, checked case by case.

use super::*;
use crate::kernel::model::{Allowance, CredentialStatus, Tier};

const NOW: Millis = 1_800_000_000_000;

fn agent(status: AgentStatus, scopes: &[&str]) -> AgentFacts {
    AgentFacts { id: Uuid::now_v7(), status, scopes: scopes.iter().map(|s| s.to_string()).collect() }
}

fn credential(agent: Uuid, age_days: i64) -> Credential {
    Credential {
        id: Uuid::now_v7(),
        agent_id: agent,
        org_id: Uuid::nil(),
        client_id: "c".into(),
        kind: "client_secret".into(),
        status: CredentialStatus::Active,
        secret_prefix: String::new(),
        jwk: None,
        created_at: NOW - age_days * DAY_MS,
        rotated_at: None,
        revoked_at: None,
    }
}

fn usage(agents: u64) -> Usage {
    Usage {
        org_id: Uuid::nil(),
        tier: Tier::Free,
        day: "2027-01-15".into(),
        calls: Allowance { used: 0, limit: Some(1000) },
        agents: Allowance { used: agents, limit: Some(10) },
        webhooks: Allowance { used: 0, limit: Some(1) },
        resets_at: 0,
    }
}

#[test]
fn a_clean_organization_scores_100_and_each_finding_costs_its_weight() {
    let fresh = agent(AgentStatus::Active, &["search:query"]);
    let agents = vec![fresh.clone()];
    let credentials = vec![credential(fresh.id, 1)];
    let audit = ChainReport {
        org_id: None,
        intact: true,
        events_checked: 3,
        first_broken_event: None,
        checkpoint: None,
        resumed_after: None,
    };
    let (dids, recent) = (HashSet::from([fresh.id]), HashSet::from([fresh.id]));
    let light = usage(1);
    let management = |s: &str| s.ends_with(":write") || s == "platform:admin";
    let clean = Inputs {
        org_id: Uuid::nil(),
        now: NOW,
        agents: &agents,
        credentials: &credentials,
        agents_with_did_keys: &dids,
        agents_with_recent_tokens: &recent,
        delegations: &[],
        delegation_max_depth: 5,
        failing_webhooks: &[],
        unbounded_partners: &[],
        signing_key: Some(("k1", NOW - DAY_MS)),
        audit: &audit,
        usage: &light,
        is_management_scope: &management,
        users: &[],
    };
    let report = evaluate(&clean, &CompliancePolicy::default());
    assert_eq!((report.score, report.findings.len()), (100, 0), "{report:?}");
    assert!(report.checks.iter().all(|c| c.passed) && report.checks.len() == 13);

    // A person who has not signed in for the unused period; one who has; one suspended.
    let person = |last: Option<i64>, status| crate::families::users::User {
        id: Uuid::now_v7(),
        org_id: Uuid::nil(),
        email: "p@example.com".into(),
        name: "P".into(),
        status,
        scopes: vec![],
        has_password: true,
        last_login_at: last,
        created_at: NOW - 100 * DAY_MS,
        updated_at: NOW - 100 * DAY_MS,
    };
    use crate::families::users::UserStatus;
    let people = [
        person(None, UserStatus::Active),
        person(Some(NOW - DAY_MS), UserStatus::Active),
        person(None, UserStatus::Suspended),
    ];
    let report = evaluate(&Inputs { users: &people, ..clean }, &CompliancePolicy::default());
    assert_eq!(report.users_checked, 3);
    let dormant: Vec<&Finding> = report.findings.iter().filter(|f| f.id == "user-dormant").collect();
    assert_eq!(dormant.len(), 1, "{report:?}");
    assert_eq!(dormant[0].resources, vec![people[0].id.to_string()]);
    assert_eq!(dormant[0].title, "1 user has not signed in for 30 days");

    // Old and unused credential, a manager, a broken chain, an old key, a full tier.
    let admin = agent(AgentStatus::Active, &["agents:write"]);
    let agents = vec![fresh.clone(), admin.clone()];
    let credentials = vec![credential(fresh.id, 100)];
    let broken = ChainReport {
        org_id: None,
        intact: false,
        events_checked: 3,
        first_broken_event: Some(Uuid::nil()),
        checkpoint: None,
        resumed_after: None,
    };
    let recent = HashSet::new();
    let full = usage(10);
    let report = evaluate(
        &Inputs {
            agents: &agents,
            credentials: &credentials,
            agents_with_recent_tokens: &recent,
            signing_key: Some(("k1", NOW - 100 * DAY_MS)),
            audit: &broken,
            usage: &full,
            ..clean
        },
        &CompliancePolicy::default(),
    );
    let ids: Vec<&str> = report.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "audit-chain",
            "credential-rotation",
            "signing-key-age",
            "tier-utilization",
            "credential-unused",
            "did-key",
            "management-scopes"
        ]
    );
    assert_eq!(report.score, 100 - 25 - 5 - 5 - 5 - 2);
    let rotation = &report.findings[1];
    assert_eq!(rotation.agents, vec![fresh.id]);
    assert!(report.findings.iter().find(|f| f.id == "did-key").unwrap().agents == vec![admin.id]);
}

#[test]
fn delegations_and_webhooks_are_checked() {
    use crate::families::delegation::rules::TokenFormat;
    let (boss, suspended) = (agent(AgentStatus::Active, &[]), agent(AgentStatus::Suspended, &[]));
    let agents = vec![boss.clone(), suspended.clone()];
    let link = |delegatee: Uuid, depth: u32, lifetime_h: i64| Delegation {
        id: Uuid::now_v7(),
        org_id: Uuid::nil(),
        chain_id: Uuid::nil(),
        parent_id: None,
        delegator_id: boss.id,
        delegatee_id: delegatee,
        scope: "x:y".into(),
        audience: "a".into(),
        depth,
        max_depth: 3,
        token_format: TokenFormat::Jwt,
        token_id: "t".into(),
        created_at: NOW - 1000,
        expires_at: NOW - 1000 + lifetime_h * 3_600_000,
        status: DelegationStatus::Active,
        revoked_at: None,
    };
    let links = vec![link(suspended.id, 1, 1), link(boss.id, 2, 48), link(boss.id, 1, 0)];
    let audit = ChainReport {
        org_id: None,
        intact: true,
        events_checked: 0,
        first_broken_event: None,
        checkpoint: None,
        resumed_after: None,
    };
    let everyone: HashSet<Uuid> = agents.iter().map(|a| a.id).collect();
    let light = usage(2);
    let failing = vec![(Uuid::nil(), "failing since then".to_string())];
    let report = evaluate(
        &Inputs {
            org_id: Uuid::nil(),
            now: NOW,
            agents: &agents,
            credentials: &[],
            agents_with_did_keys: &everyone,
            agents_with_recent_tokens: &everyone,
            delegations: &links,
            delegation_max_depth: 5,
            failing_webhooks: &failing,
            unbounded_partners: &[],
            signing_key: None,
            audit: &audit,
            usage: &light,
            is_management_scope: &|_| false,
            users: &[],
        },
        &CompliancePolicy::default(),
    );
    let by_id = |id: &str| report.findings.iter().find(|f| f.id == id).cloned();
    let suspended_links = by_id("suspended-in-delegation").unwrap();
    assert_eq!((suspended_links.agents, suspended_links.severity), (vec![suspended.id], Severity::High));
    assert_eq!(by_id("delegation-depth").unwrap().resources, vec![links[1].id.to_string()], "depth 2 of 3");
    assert_eq!(by_id("delegation-lifetime").unwrap().resources, vec![links[1].id.to_string()], "48 h > 24 h");
    assert_eq!(by_id("webhook-health").unwrap().resources.len(), 1);
    assert_eq!(report.findings.len(), 4, "the expired link counts for nothing: {report:?}");
}
