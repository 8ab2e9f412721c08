//! Organizations, agents and credentials: validation, authorization, persistence,
//! cache invalidation and audit, in that order. Each mutation returns only after its
//! row and its audit event are durable.

use serde_json::json;
use uuid::Uuid;

use super::{decode_cursor, next_cursor, page_limit, Call, Engine};
use crate::coord::ClusterEvent;
use crate::domain::{jose, scopes, secrets};
use crate::error::{EngineError, Result};
use crate::model::*;

const MAX_NAME: usize = 128;
const MAX_DESCRIPTION: usize = 1024;
const MAX_METADATA_BYTES: usize = 16 * 1024;
const PLATFORM_ORG: &str = "platform";
const FIRST_ORG: &str = "default";

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(EngineError::invalid("name", format!("must be 1 to {MAX_NAME} printable characters")));
    }
    Ok(name.to_string())
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
    /// so no one can mint an agent more powerful than itself.
    fn check_grantable(&self, call: &Call, requested: &[String]) -> Result<Vec<String>> {
        let scopes = scopes::normalize(requested)?;
        let held = call.caller.scopes();
        if let Some(s) = scopes.iter().find(|s| self.shared.policy.is_management_scope(s) && !held.contains(s)) {
            return Err(EngineError::Forbidden(format!("cannot grant scope {s:?}, which the caller does not hold")));
        }
        Ok(scopes)
    }

    // ---- organizations --------------------------------------------------------------

    pub async fn create_org(&self, call: &Call, new: NewOrganization) -> Result<Organization> {
        self.shared.policy.authorize("organizations.create", &call.caller.scope, false)?;
        let now = self.shared.now_ms();
        let org = Organization {
            id: Uuid::now_v7(),
            name: check_name(&new.name)?,
            tier: new.tier.unwrap_or(Tier::Free),
            created_at: now,
            updated_at: now,
        };
        self.shared.store.insert_org(&org).await.map_err(name_taken("organization", &org.name))?;
        self.audit_call(call, org.id, "organization.create", org.id, json!({"name": org.name, "tier": org.tier}))
            .await?;
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
        let saved = self.shared.store.update_org(&org).await.map_err(name_taken("organization", &org.name))?;
        if !saved {
            return Err(EngineError::not_found("organization"));
        }
        self.audit_call(call, org.id, "organization.update", org.id, json!({"name": org.name, "tier": org.tier}))
            .await?;
        Ok(org)
    }

    pub async fn delete_org(&self, call: &Call, id: Uuid) -> Result<()> {
        self.authorize(call, "organizations.delete", id)?;
        if id == call.caller.org_id {
            return Err(EngineError::Conflict("an organization cannot delete itself".into()));
        }
        if !self.shared.store.delete_org(id).await? {
            return Err(EngineError::not_found("organization"));
        }
        self.invalidate(ClusterEvent::Everything).await?;
        self.audit_call(call, id, "organization.delete", id, json!({})).await
    }

    // ---- agents ---------------------------------------------------------------------

    /// The organization a call acts in: the one named, or the caller's own.
    fn target_org(call: &Call, org: Option<Uuid>) -> Uuid {
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
        self.shared.store.insert_agent(&agent).await.map_err(name_taken("agent", &agent.name))?;
        self.audit_call(call, org_id, "agent.create", agent.id, json!({"name": agent.name, "scopes": agent.scopes}))
            .await?;
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

    pub async fn get_agent(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<Agent> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "agents.get", org_id)?;
        // Served from the record cache when possible: every change to an agent
        // invalidates it (here and on every node) before it is acknowledged.
        let caches = &self.shared.caches;
        if let Some(agent) = caches.agent_record(id).filter(|a| a.org_id == org_id) {
            return Ok(agent.as_ref().clone());
        }
        let epoch = caches.epoch();
        let agent = self.shared.store.get_agent(org_id, id).await?.ok_or(EngineError::not_found("agent"))?;
        caches.fill_record(epoch, &agent);
        Ok(agent)
    }

    pub async fn update_agent(&self, call: &Call, org: Option<Uuid>, id: Uuid, patch: AgentPatch) -> Result<Agent> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "agents.update", org_id)?;
        let mut agent = self.shared.store.get_agent(org_id, id).await?.ok_or(EngineError::not_found("agent"))?;
        if let Some(name) = &patch.name {
            agent.name = check_name(name)?;
        }
        if patch.description.is_some() {
            agent.description = check_description(patch.description)?;
        }
        if let Some(scopes) = &patch.scopes {
            agent.scopes = self.check_grantable(call, scopes)?;
        }
        if patch.metadata.is_some() {
            agent.metadata = check_metadata(patch.metadata)?;
        }
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
        let mut agent = self.shared.store.get_agent(org_id, id).await?.ok_or(EngineError::not_found("agent"))?;
        agent.status = status;
        self.save_agent(call, agent, action).await
    }

    async fn save_agent(&self, call: &Call, mut agent: Agent, action: &str) -> Result<Agent> {
        agent.updated_at = self.shared.now_ms();
        let saved = self.shared.store.update_agent(&agent).await.map_err(name_taken("agent", &agent.name))?;
        if !saved {
            return Err(EngineError::not_found("agent"));
        }
        self.invalidate(ClusterEvent::AgentChanged { agent_id: agent.id }).await?;
        self.audit_call(
            call,
            agent.org_id,
            action,
            agent.id,
            json!({"name": agent.name, "status": agent.status, "scopes": agent.scopes}),
        )
        .await?;
        Ok(agent)
    }

    pub async fn delete_agent(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<()> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "agents.delete", org_id)?;
        if id == call.caller.agent_id {
            return Err(EngineError::Conflict("an agent cannot delete itself".into()));
        }
        if !self.shared.store.delete_agent(org_id, id).await? {
            return Err(EngineError::not_found("agent"));
        }
        self.invalidate(ClusterEvent::AgentChanged { agent_id: id }).await?;
        self.audit_call(call, org_id, "agent.delete", id, json!({})).await
    }

    // ---- credentials ----------------------------------------------------------------

    /// The agent a credential operation targets, checked to be in the target org.
    async fn credential_agent(
        &self,
        call: &Call,
        org: Option<Uuid>,
        agent_id: Uuid,
        op: &'static str,
    ) -> Result<Agent> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, op, org_id)?;
        self.shared.store.get_agent(org_id, agent_id).await?.ok_or(EngineError::not_found("agent"))
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
        let issued = match (new.kind.as_deref().unwrap_or("client_secret"), new.jwk) {
            ("client_secret", None) => self.new_credential(&agent).await?,
            ("client_secret", Some(_)) => {
                return Err(EngineError::invalid("jwk", "a client_secret credential takes no jwk"))
            }
            ("private_key_jwt", Some(jwk)) => {
                let parsed = jose::parse_public_jwk(&jwk).map_err(|e| EngineError::invalid("jwk", e))?;
                self.new_key_credential(&agent, parsed.value).await?
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
        self.audit_call(
            call,
            agent.org_id,
            "credential.create",
            issued.credential.id,
            json!({"agent_id": agent.id, "client_id": issued.credential.client_id, "type": issued.credential.kind}),
        )
        .await?;
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

    async fn new_credential(&self, agent: &Agent) -> Result<IssuedCredential> {
        let secret = secrets::new_secret()?;
        let credential = self.credential_row(agent, "client_secret", secrets::shown_prefix(&secret), None)?;
        self.shared.store.insert_credential(&credential, &self.shared.hasher.hash(&secret)).await?;
        Ok(IssuedCredential { credential, client_secret: Some(secret) })
    }

    async fn new_key_credential(&self, agent: &Agent, jwk: serde_json::Value) -> Result<IssuedCredential> {
        let credential = self.credential_row(agent, "private_key_jwt", String::new(), Some(jwk))?;
        self.shared.store.insert_credential(&credential, &[]).await?;
        Ok(IssuedCredential { credential, client_secret: None })
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
        if let Some(existing) = self.shared.store.get_credential(agent.id, id).await? {
            if existing.kind != "client_secret" {
                return Err(EngineError::Conflict(
                    "a private_key_jwt credential has no secret to rotate: register a new key instead".into(),
                ));
            }
        }
        let secret = secrets::new_secret()?;
        let credential = match self
            .shared
            .store
            .rotate_credential(
                agent.id,
                id,
                &secrets::shown_prefix(&secret),
                &self.shared.hasher.hash(&secret),
                self.shared.now_ms(),
            )
            .await?
        {
            Some(c) => c,
            None => {
                return Err(match self.shared.store.get_credential(agent.id, id).await? {
                    Some(_) => EngineError::Conflict("a revoked credential cannot be rotated".into()),
                    None => EngineError::not_found("credential"),
                })
            }
        };
        self.invalidate(ClusterEvent::ClientChanged { client_id: credential.client_id.clone() }).await?;
        self.audit_call(
            call,
            agent.org_id,
            "credential.rotate",
            id,
            json!({"agent_id": agent.id, "client_id": credential.client_id}),
        )
        .await?;
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
        let credential = self
            .shared
            .store
            .revoke_credential(agent.id, id, self.shared.now_ms())
            .await?
            .ok_or(EngineError::not_found("credential"))?;
        self.invalidate(ClusterEvent::ClientChanged { client_id: credential.client_id.clone() }).await?;
        self.audit_call(
            call,
            agent.org_id,
            "credential.revoke",
            id,
            json!({"agent_id": agent.id, "client_id": credential.client_id}),
        )
        .await?;
        Ok(credential)
    }

    // ---- bootstrap ------------------------------------------------------------------

    /// On an empty store: create the platform organization with its administrator, and
    /// a first organization with an org-admin agent, each with a credential. Returns the
    /// secrets, which are not stored anywhere in clear. `Conflict` if already done.
    pub async fn bootstrap(&self) -> Result<BootstrapOutput> {
        if self.shared.store.count_orgs().await? > 0 {
            return Err(EngineError::Conflict("the store is already bootstrapped".into()));
        }
        let catalog = &self.shared.policy.catalog;
        let all_scopes: Vec<String> = catalog.scopes.keys().cloned().collect();
        let (platform_org, platform_agent, platform_cred) =
            self.bootstrap_org(PLATFORM_ORG, Tier::Enterprise, "platform-admin", all_scopes).await?;
        let (org, agent, cred) =
            self.bootstrap_org(FIRST_ORG, Tier::Free, "admin", catalog.org_admin_scopes.clone()).await?;
        for (org_id, agent_id) in [(platform_org.id, platform_agent.id), (org.id, agent.id)] {
            let event = self
                .event(Some(org_id), "bootstrap".into(), "organization.bootstrap", Outcome::Success)
                .target(agent_id);
            self.audit(event).await?;
        }
        Ok(BootstrapOutput {
            org_id: org.id,
            agent_id: agent.id,
            client_id: cred.credential.client_id,
            client_secret: cred.client_secret.unwrap_or_default(),
            platform_org_id: platform_org.id,
            platform_client_id: platform_cred.credential.client_id,
            platform_client_secret: platform_cred.client_secret.unwrap_or_default(),
        })
    }

    async fn bootstrap_org(
        &self,
        name: &str,
        tier: Tier,
        agent_name: &str,
        scopes: Vec<String>,
    ) -> Result<(Organization, Agent, IssuedCredential)> {
        let now = self.shared.now_ms();
        let org = Organization { id: Uuid::now_v7(), name: name.into(), tier, created_at: now, updated_at: now };
        self.shared.store.insert_org(&org).await?;
        let agent = Agent {
            id: Uuid::now_v7(),
            org_id: org.id,
            name: agent_name.into(),
            description: Some("created by bootstrap".into()),
            status: AgentStatus::Active,
            scopes,
            metadata: json!({}),
            created_at: now,
            updated_at: now,
        };
        self.shared.store.insert_agent(&agent).await?;
        let cred = self.new_credential(&agent).await?;
        Ok((org, agent, cred))
    }
}
