//! Organizations, agents and credentials: validation, authorization, persistence,
//! cache invalidation and audit, in that order. Each mutation returns only after its
//! row and its audit event are durable.

use serde_json::json;
use uuid::Uuid;

use crate::engine::{Call, Engine};
use crate::families::analytics::rules::Metric;
use crate::families::directory::cache::AgentEntry;
use crate::families::directory::events::AgentChanged;
use crate::families::directory::events::ClientChanged;
use crate::families::directory::events::OrgChanged;
use crate::families::directory::secrets;
use crate::families::directory::DirectoryChange;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::jose;
use crate::kernel::model::*;
use crate::kernel::names::check_name;
use crate::kernel::paging::{decode_cursor, next_cursor, page_limit};
use crate::kernel::privilege;
use crate::kernel::scopes;
use crate::runtime::events::ClusterEvent;
use crate::store::Change;

const MAX_DESCRIPTION: usize = 1024;
const MAX_METADATA_BYTES: usize = 16 * 1024;
pub(crate) const PLATFORM_ORG: &str = "platform";
pub(crate) const PLATFORM_ADMIN: &str = privilege::PLATFORM_ADMIN;
pub(crate) const FIRST_ORG: &str = "default";

/// A privilege rule's refusal as the API answers it.
pub(crate) fn refused(refusal: privilege::Refusal) -> EngineError {
    match refusal {
        privilege::Refusal::Lookalike(s) => EngineError::invalid(
            "scopes",
            format!("{s:?} looks like a management scope but is not one (the management scopes are scopes_supported in the discovery document)"),
        ),
        privilege::Refusal::NotHeld(s) => {
            EngineError::Forbidden(format!("cannot grant scope {s:?}, which the caller does not hold"))
        }
        privilege::Refusal::Stronger(s) => EngineError::Forbidden(format!(
            "the agent holds scope {s:?}, which the caller does not: only an agent at least as strong may change it"
        )),
        privilege::Refusal::LastPlatformAdmin => EngineError::Conflict(
            "this is the last active platform administrator: it cannot be suspended, deleted or lose platform:admin \
             (give another agent platform:admin first; an operator locked out uses `agentidp admin recover`)"
                .into(),
        ),
    }
}

/// An organization's delegation settings, normalized (scopes sorted and unique). A depth
/// cap above the configured one is kept but has no effect; 0 turns delegation off.
fn check_delegation(settings: DelegationSettings) -> Result<DelegationSettings> {
    let non_delegable_scopes = scopes::normalize(&settings.non_delegable_scopes).map_err(|e| match e {
        EngineError::Invalid { message, .. } => EngineError::invalid("delegation.non_delegable_scopes", message),
        e => e,
    })?;
    Ok(DelegationSettings { non_delegable_scopes, ..settings })
}

/// Turn a store conflict into a message that names what is taken.
fn name_taken<'a>(kind: &'static str, name: &'a str) -> impl FnOnce(EngineError) -> EngineError + 'a {
    move |e| match e {
        EngineError::Conflict(_) => EngineError::Conflict(format!("an {kind} named {name:?} exists")),
        e => e,
    }
}

fn check_description(d: Option<String>) -> Result<Option<String>> {
    match d {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => {
            Err(EngineError::invalid("description", format!("at most {MAX_DESCRIPTION} characters")))
        }
        other => Ok(other),
    }
}

fn check_metadata(m: Option<serde_json::Value>) -> Result<serde_json::Value> {
    let m = m.unwrap_or_else(|| json!({}));
    if !m.is_object() {
        return Err(EngineError::invalid("metadata", "must be a JSON object"));
    }
    if serde_json::to_vec(&m).map(|v| v.len()).unwrap_or(usize::MAX) > MAX_METADATA_BYTES {
        return Err(EngineError::invalid("metadata", "at most 16 KiB"));
    }
    Ok(m)
}

impl Engine {
    /// Agent scopes must be valid tokens, and a caller may grant only scopes it holds,
    /// so no one can mint an agent more powerful than itself ([`privilege`]).
    pub(crate) fn check_grantable(&self, call: &Call, requested: &[String]) -> Result<Vec<String>> {
        let scopes = scopes::normalize(requested)?;
        let held = call.caller.scopes();
        let held: Vec<&str> = held.iter().map(String::as_str).collect();
        privilege::check_grantable(&scopes, &held, &self.shared.policy).map_err(refused)?;
        Ok(scopes)
    }

    /// The twin of [`Engine::check_grantable`]: a caller may change, suspend, delete or
    /// re-credential an agent only if it holds every management scope that agent holds,
    /// so no one takes power from (or through) a stronger agent. Scopes without
    /// management meaning (an organization's own, like `search:query`) do not count.
    pub(crate) fn check_not_stronger(&self, call: &Call, target: &Agent) -> Result<()> {
        let held = call.caller.scopes();
        let held: Vec<&str> = held.iter().map(String::as_str).collect();
        privilege::check_not_stronger(&target.scopes, &held, &self.shared.policy).map_err(refused)
    }

    /// Refuse what would leave no active platform administrator: suspending or deleting
    /// the last one, or taking `platform:admin` from it. `after` is the agent as the
    /// change would leave it (`None`: deleted).
    async fn keep_a_platform_admin(&self, before: &Agent, after: Option<&Agent>) -> Result<()> {
        let state = |a: &Agent| privilege::AdminState {
            active: a.status == AgentStatus::Active,
            platform_admin: a.scopes.iter().any(|s| s == PLATFORM_ADMIN),
        };
        let (before_state, after_state) = (state(before), after.map(state));
        if !before_state.is_admin() || after_state.is_some_and(privilege::AdminState::is_admin) {
            return Ok(());
        }
        let others = self.shared.store.agents_with_scope(PLATFORM_ADMIN).await?;
        let others = others.iter().filter(|a| a.id != before.id && state(a).is_admin()).count();
        privilege::check_keeps_a_platform_admin(before_state, after_state, others).map_err(refused)
    }

    // ---- organizations --------------------------------------------------------------

    pub async fn create_org(&self, call: &Call, new: NewOrganization) -> Result<Organization> {
        self.shared.policy.authorize("organizations.create", &call.caller.scope, false)?;
        let now = self.shared.now_ms();
        let org = Organization {
            id: Uuid::now_v7(),
            name: check_name(&new.name)?,
            tier: new.tier.unwrap_or(Tier::Free),
            delegation: DelegationSettings::default(),
            created_at: now,
            updated_at: now,
        };
        let event =
            self.call_event(call, org.id, "organization.create", org.id, json!({"name": org.name, "tier": org.tier}));
        self.commit(event, vec![DirectoryChange::InsertOrg(org.clone()).into()], None)
            .await
            .map_err(name_taken("organization", &org.name))?;
        Ok(org)
    }

    pub async fn list_orgs(&self, call: &Call, page: PageRequest) -> Result<Page<Organization>> {
        self.shared.policy.authorize("organizations.list", &call.caller.scope, false)?;
        let limit = page_limit(&page)?;
        let items = self.shared.store.list_orgs(decode_cursor(&page)?, limit).await?;
        let next_cursor = next_cursor(&items, limit, |o| o.id);
        Ok(Page { items, next_cursor })
    }

    pub async fn get_org(&self, call: &Call, id: Uuid) -> Result<Organization> {
        self.authorize(call, "organizations.get", id)?;
        self.shared.store.get_org(id).await?.ok_or(EngineError::not_found("organization"))
    }

    pub async fn update_org(&self, call: &Call, id: Uuid, patch: OrganizationPatch) -> Result<Organization> {
        self.authorize(call, "organizations.update", id)?;
        let mut org = self.shared.store.get_org(id).await?.ok_or(EngineError::not_found("organization"))?;
        if let Some(name) = &patch.name {
            org.name = check_name(name)?;
        }
        if let Some(tier) = patch.tier {
            org.tier = tier;
        }
        org.updated_at = self.shared.now_ms();
        let event =
            self.call_event(call, org.id, "organization.update", org.id, json!({"name": org.name, "tier": org.tier}));
        self.commit(
            event,
            vec![DirectoryChange::UpdateOrg(org.clone()).into()],
            Some(ClusterEvent::of(&OrgChanged { org_id: org.id })),
        )
        .await
        .map_err(name_taken("organization", &org.name))?;
        Ok(org)
    }

    /// Replace the organization's own delegation rules (its admin's, or the platform's).
    pub async fn set_org_delegation(
        &self,
        call: &Call,
        id: Uuid,
        settings: DelegationSettings,
    ) -> Result<Organization> {
        self.authorize(call, "organizations.delegation", id)?;
        let settings = check_delegation(settings)?;
        let mut org = self.shared.store.get_org(id).await?.ok_or(EngineError::not_found("organization"))?;
        org.delegation = settings;
        org.updated_at = self.shared.now_ms();
        let event = self.call_event(call, org.id, "organization.delegation", org.id, json!(org.delegation));
        let change =
            DirectoryChange::SetOrgDelegation { org_id: org.id, settings: org.delegation.clone(), at: org.updated_at }
                .into();
        self.commit(event, vec![change], None).await?;
        Ok(org)
    }

    pub async fn delete_org(&self, call: &Call, id: Uuid) -> Result<()> {
        self.authorize(call, "organizations.delete", id)?;
        if id == call.caller.org_id {
            return Err(EngineError::Conflict("an organization cannot delete itself".into()));
        }
        let admins = self.shared.store.agents_with_scope(PLATFORM_ADMIN).await?;
        let active: Vec<&Agent> = admins.iter().filter(|a| a.status == AgentStatus::Active).collect();
        if !active.is_empty() && active.iter().all(|a| a.org_id == id) {
            return Err(EngineError::Conflict("the organization holds the last active platform administrator".into()));
        }
        let event = self.call_event(call, id, "organization.delete", id, json!({}));
        self.commit(event, vec![DirectoryChange::DeleteOrg(id).into()], Some(ClusterEvent::everything())).await
    }

    // ---- agents ---------------------------------------------------------------------

    /// The organization a call acts in: the one named, or the caller's own.
    pub(crate) fn target_org(call: &Call, org: Option<Uuid>) -> Uuid {
        org.unwrap_or(call.caller.org_id)
    }

    pub async fn create_agent(&self, call: &Call, new: NewAgent) -> Result<Agent> {
        let org_id = Self::target_org(call, new.org_id);
        self.authorize(call, "agents.create", org_id)?;
        let now = self.shared.now_ms();
        let agent = Agent {
            id: Uuid::now_v7(),
            org_id,
            name: check_name(&new.name)?,
            description: check_description(new.description)?,
            status: AgentStatus::Active,
            scopes: self.check_grantable(call, new.scopes.as_deref().unwrap_or_default())?,
            metadata: check_metadata(new.metadata)?,
            created_at: now,
            updated_at: now,
        };
        if self.shared.store.get_org(org_id).await?.is_none() {
            return Err(EngineError::not_found("organization"));
        }
        let event = self.call_event(
            call,
            org_id,
            "agent.create",
            agent.id,
            json!({"name": agent.name, "scopes": agent.scopes}),
        );
        // The tier's agent limit is checked in the same transaction as the insert.
        let room = DirectoryChange::HasRoomForAgent { org_id, tiers: self.shared.config.tiers.clone() }.into();
        self.commit(event, vec![room, DirectoryChange::InsertAgent(agent.clone()).into()], None)
            .await
            .map_err(name_taken("agent", &agent.name))?;
        self.count(org_id, agent.id, Metric::AgentsCreated);
        Ok(agent)
    }

    pub async fn list_agents(&self, call: &Call, org: Option<Uuid>, page: PageRequest) -> Result<Page<Agent>> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "agents.list", org_id)?;
        let limit = page_limit(&page)?;
        let items = self.shared.store.list_agents(org_id, decode_cursor(&page)?, limit).await?;
        let next_cursor = next_cursor(&items, limit, |a| a.id);
        Ok(Page { items, next_cursor })
    }

    /// An agent's status in `org_id` (cached), `None` if it is gone.
    pub(crate) async fn agent_status(&self, org_id: Uuid, agent_id: Uuid) -> Result<Option<AgentStatus>> {
        let entries = &self.shared.agent_entries;
        if let Some(agent) = entries.get(&agent_id) {
            return Ok((agent.org_id == org_id).then_some(agent.status));
        }
        let epoch = entries.epoch();
        Ok(self.shared.store.get_agent(org_id, agent_id).await?.map(|agent| {
            entries.fill(epoch, agent.id, std::sync::Arc::new(AgentEntry::of(&agent)));
            agent.status
        }))
    }

    pub async fn get_agent(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<Agent> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "agents.get", org_id)?;
        // Served from the record cache when possible: every change to an agent
        // invalidates it (here and on every node) before it is acknowledged.
        let records = &self.shared.agent_records;
        if let Some(agent) = records.get(&id).filter(|a| a.org_id == org_id) {
            return Ok(agent.as_ref().clone());
        }
        let epoch = records.epoch();
        let agent = self.shared.store.get_agent(org_id, id).await?.ok_or(EngineError::not_found("agent"))?;
        records.fill(epoch, id, std::sync::Arc::new(agent.clone()));
        Ok(agent)
    }

    pub async fn update_agent(&self, call: &Call, org: Option<Uuid>, id: Uuid, patch: AgentPatch) -> Result<Agent> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "agents.update", org_id)?;
        let before = self.shared.store.get_agent(org_id, id).await?.ok_or(EngineError::not_found("agent"))?;
        self.check_not_stronger(call, &before)?;
        let mut agent = before.clone();
        if let Some(name) = &patch.name {
            agent.name = check_name(name)?;
        }
        if patch.description.is_some() {
            agent.description = check_description(patch.description)?;
        }
        if let Some(scopes) = &patch.scopes {
            agent.scopes = self.check_grantable(call, scopes)?;
            if id == call.caller.agent_id && agent.scopes != before.scopes {
                return Err(EngineError::Conflict("an agent cannot change its own scopes".into()));
            }
        }
        if patch.metadata.is_some() {
            agent.metadata = check_metadata(patch.metadata)?;
        }
        self.keep_a_platform_admin(&before, Some(&agent)).await?;
        self.save_agent(call, agent, "agent.update").await
    }

    pub async fn suspend_agent(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<Agent> {
        self.set_agent_status(call, org, id, AgentStatus::Suspended, "agents.suspend", "agent.suspend").await
    }

    pub async fn reactivate_agent(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<Agent> {
        self.set_agent_status(call, org, id, AgentStatus::Active, "agents.reactivate", "agent.reactivate").await
    }

    async fn set_agent_status(
        &self,
        call: &Call,
        org: Option<Uuid>,
        id: Uuid,
        status: AgentStatus,
        operation: &'static str,
        action: &str,
    ) -> Result<Agent> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, operation, org_id)?;
        if id == call.caller.agent_id {
            return Err(EngineError::Conflict("an agent cannot suspend or reactivate itself".into()));
        }
        let before = self.shared.store.get_agent(org_id, id).await?.ok_or(EngineError::not_found("agent"))?;
        self.check_not_stronger(call, &before)?;
        let mut agent = before.clone();
        agent.status = status;
        self.keep_a_platform_admin(&before, Some(&agent)).await?;
        self.save_agent(call, agent, action).await
    }

    async fn save_agent(&self, call: &Call, mut agent: Agent, action: &str) -> Result<Agent> {
        agent.updated_at = self.shared.now_ms();
        let event = self.call_event(
            call,
            agent.org_id,
            action,
            agent.id,
            json!({"name": agent.name, "status": agent.status, "scopes": agent.scopes}),
        );
        let announce = ClusterEvent::of(&AgentChanged { agent_id: agent.id });
        self.commit(event, vec![DirectoryChange::UpdateAgent(agent.clone()).into()], Some(announce))
            .await
            .map_err(name_taken("agent", &agent.name))?;
        Ok(agent)
    }

    pub async fn delete_agent(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<()> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "agents.delete", org_id)?;
        if id == call.caller.agent_id {
            return Err(EngineError::Conflict("an agent cannot delete itself".into()));
        }
        let before = self.shared.store.get_agent(org_id, id).await?.ok_or(EngineError::not_found("agent"))?;
        self.check_not_stronger(call, &before)?;
        self.keep_a_platform_admin(&before, None).await?;
        let event = self.call_event(call, org_id, "agent.delete", id, json!({}));
        let announce = ClusterEvent::of(&AgentChanged { agent_id: id });
        self.commit(event, vec![DirectoryChange::DeleteAgent { org_id, id }.into()], Some(announce)).await?;
        self.count(org_id, id, Metric::AgentsDeleted);
        Ok(())
    }

    // ---- credentials ----------------------------------------------------------------

    /// The agent a credential operation targets, checked to be in the target org; for a
    /// change (`op` is not a read), also checked to be no stronger than the caller, since
    /// whoever holds an agent's credential holds its power.
    pub(crate) async fn credential_agent(
        &self,
        call: &Call,
        org: Option<Uuid>,
        agent_id: Uuid,
        op: &'static str,
    ) -> Result<Agent> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, op, org_id)?;
        let agent = self.shared.store.get_agent(org_id, agent_id).await?.ok_or(EngineError::not_found("agent"))?;
        if op != "credentials.list" {
            self.check_not_stronger(call, &agent)?;
        }
        Ok(agent)
    }

    /// Create a credential: a generated client secret (shown once, in this answer), or
    /// for `{"type": "private_key_jwt", "jwk": {…}}` a registered public key.
    pub async fn create_credential(
        &self,
        call: &Call,
        org: Option<Uuid>,
        agent_id: Uuid,
        new: NewCredential,
    ) -> Result<IssuedCredential> {
        let agent = self.credential_agent(call, org, agent_id, "credentials.create").await?;
        let (issued, change) = match (new.kind.as_deref().unwrap_or("client_secret"), new.jwk) {
            ("client_secret", None) => self.new_credential(&agent)?,
            ("client_secret", Some(_)) => {
                return Err(EngineError::invalid("jwk", "a client_secret credential takes no jwk"))
            }
            ("private_key_jwt", Some(jwk)) => {
                let parsed = jose::parse_public_jwk(&jwk).map_err(|e| EngineError::invalid("jwk", e))?;
                self.new_key_credential(&agent, parsed.value)?
            }
            ("private_key_jwt", None) => {
                return Err(EngineError::invalid("jwk", "a private_key_jwt credential needs the public jwk"))
            }
            (other, _) => {
                return Err(EngineError::invalid(
                    "type",
                    format!("{other:?} is not a credential type (client_secret, private_key_jwt)"),
                ))
            }
        };
        let event = self.call_event(
            call,
            agent.org_id,
            "credential.create",
            issued.credential.id,
            json!({"agent_id": agent.id, "client_id": issued.credential.client_id, "type": issued.credential.kind}),
        );
        self.commit(event, vec![change], None).await?;
        self.count(agent.org_id, agent.id, Metric::CredentialsCreated);
        Ok(issued)
    }

    fn credential_row(
        &self,
        agent: &Agent,
        kind: &str,
        secret_prefix: String,
        jwk: Option<serde_json::Value>,
    ) -> Result<Credential> {
        Ok(Credential {
            id: Uuid::now_v7(),
            agent_id: agent.id,
            org_id: agent.org_id,
            client_id: secrets::new_client_id()?,
            kind: kind.into(),
            status: CredentialStatus::Active,
            secret_prefix,
            jwk,
            created_at: self.shared.now_ms(),
            rotated_at: None,
            revoked_at: None,
        })
    }

    /// A new client-secret credential for `agent`, and the change that stores it.
    pub(crate) fn new_credential(&self, agent: &Agent) -> Result<(IssuedCredential, Box<dyn Change>)> {
        let secret = secrets::new_secret()?;
        let credential = self.credential_row(agent, "client_secret", secrets::shown_prefix(&secret), None)?;
        let change = DirectoryChange::InsertCredential {
            credential: credential.clone(),
            secret_hash: self.shared.hasher.hash(&secret),
        }
        .into();
        Ok((IssuedCredential { credential, client_secret: Some(secret) }, change))
    }

    /// A new private_key_jwt credential for `agent`, and the change that stores it.
    fn new_key_credential(&self, agent: &Agent, jwk: serde_json::Value) -> Result<(IssuedCredential, Box<dyn Change>)> {
        let credential = self.credential_row(agent, "private_key_jwt", String::new(), Some(jwk))?;
        let change =
            DirectoryChange::InsertCredential { credential: credential.clone(), secret_hash: Vec::new() }.into();
        Ok((IssuedCredential { credential, client_secret: None }, change))
    }

    pub async fn list_credentials(&self, call: &Call, org: Option<Uuid>, agent_id: Uuid) -> Result<Vec<Credential>> {
        let agent = self.credential_agent(call, org, agent_id, "credentials.list").await?;
        self.shared.store.list_credentials(agent.id).await
    }

    /// Replace a credential's secret; the old secret stops working at once.
    pub async fn rotate_credential(
        &self,
        call: &Call,
        org: Option<Uuid>,
        agent_id: Uuid,
        id: Uuid,
    ) -> Result<IssuedCredential> {
        let agent = self.credential_agent(call, org, agent_id, "credentials.rotate").await?;
        let mut credential =
            self.shared.store.get_credential(agent.id, id).await?.ok_or(EngineError::not_found("credential"))?;
        if credential.kind != "client_secret" {
            return Err(EngineError::Conflict(
                "a private_key_jwt credential has no secret to rotate: register a new key instead".into(),
            ));
        }
        if credential.status != CredentialStatus::Active {
            return Err(EngineError::Conflict("a revoked credential cannot be rotated".into()));
        }
        let secret = secrets::new_secret()?;
        let now = self.shared.now_ms();
        credential.secret_prefix = secrets::shown_prefix(&secret);
        credential.rotated_at = Some(now);
        let change = DirectoryChange::RotateCredential {
            agent_id: agent.id,
            id,
            secret_prefix: credential.secret_prefix.clone(),
            secret_hash: self.shared.hasher.hash(&secret),
            now,
        }
        .into();
        let event = self.call_event(
            call,
            agent.org_id,
            "credential.rotate",
            id,
            json!({"agent_id": agent.id, "client_id": credential.client_id}),
        );
        let announce = ClusterEvent::of(&ClientChanged { client_id: credential.client_id.clone() });
        self.commit(event, vec![change], Some(announce)).await?;
        self.count(agent.org_id, agent.id, Metric::CredentialsRotated);
        Ok(IssuedCredential { credential, client_secret: Some(secret) })
    }

    pub async fn revoke_credential(
        &self,
        call: &Call,
        org: Option<Uuid>,
        agent_id: Uuid,
        id: Uuid,
    ) -> Result<Credential> {
        let agent = self.credential_agent(call, org, agent_id, "credentials.revoke").await?;
        let mut credential =
            self.shared.store.get_credential(agent.id, id).await?.ok_or(EngineError::not_found("credential"))?;
        let now = self.shared.now_ms();
        credential.status = CredentialStatus::Revoked;
        credential.revoked_at = credential.revoked_at.or(Some(now));
        let event = self.call_event(
            call,
            agent.org_id,
            "credential.revoke",
            id,
            json!({"agent_id": agent.id, "client_id": credential.client_id}),
        );
        let announce = ClusterEvent::of(&ClientChanged { client_id: credential.client_id.clone() });
        self.commit(
            event,
            vec![DirectoryChange::RevokeCredential { agent_id: agent.id, id, now }.into()],
            Some(announce),
        )
        .await?;
        self.count(agent.org_id, agent.id, Metric::CredentialsRevoked);
        Ok(credential)
    }
}
