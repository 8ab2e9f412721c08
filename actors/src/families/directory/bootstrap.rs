//! The way in: bootstrapping an empty store (the platform organization and a first one,
//! each with its administrator), and the operator's recovery of the platform admin.

use serde_json::json;
use uuid::Uuid;

use crate::engine::Engine;
use crate::families::directory::events::AgentChanged;
use crate::families::directory::handle::{FIRST_ORG, PLATFORM_ADMIN, PLATFORM_ORG};
use crate::families::directory::DirectoryChange;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::*;
use crate::kernel::scopes;
use crate::runtime::events::ClusterEvent;

impl Engine {
    /// On an empty store: create the platform organization with its administrator, and
    /// a first organization with an org-admin agent, each with a credential. Returns the
    /// secrets, which are not stored anywhere in clear (the person is the users
    /// family's: [`Engine::bootstrap`]). `Conflict` if already done.
    pub(crate) async fn bootstrap_directory(&self) -> Result<BootstrapOutput> {
        if self.shared.store.count_orgs().await? > 0 {
            return Err(EngineError::Conflict("the store is already bootstrapped".into()));
        }
        let catalog = &self.shared.policy.catalog;
        let all_scopes: Vec<String> = catalog.scopes.keys().cloned().collect();
        let (platform_org, _, platform_cred) =
            self.bootstrap_org(PLATFORM_ORG, Tier::Enterprise, "platform-admin", all_scopes).await?;
        let (org, agent, cred) =
            self.bootstrap_org(FIRST_ORG, Tier::Free, "admin", catalog.org_admin_scopes.clone()).await?;
        Ok(BootstrapOutput {
            org_id: org.id,
            agent_id: agent.id,
            client_id: cred.credential.client_id,
            client_secret: cred.client_secret.unwrap_or_default(),
            platform_org_id: platform_org.id,
            platform_client_id: platform_cred.credential.client_id,
            platform_client_secret: platform_cred.client_secret.unwrap_or_default(),
            admin_user_id: Uuid::nil(),
            admin_email: String::new(),
            admin_password: String::new(),
        })
    }

    /// An organization with one agent and its credential, committed with its audit event.
    async fn bootstrap_org(
        &self,
        name: &str,
        tier: Tier,
        agent_name: &str,
        scopes: Vec<String>,
    ) -> Result<(Organization, Agent, IssuedCredential)> {
        let now = self.shared.now_ms();
        let org = Organization {
            id: Uuid::now_v7(),
            name: name.into(),
            tier,
            delegation: Default::default(),
            created_at: now,
            updated_at: now,
        };
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
        let (cred, cred_change) = self.new_credential(&agent)?;
        let event =
            self.event(Some(org.id), "bootstrap".into(), "organization.bootstrap", Outcome::Success).target(agent.id);
        let changes = vec![
            DirectoryChange::InsertOrg(org.clone()).into(),
            DirectoryChange::InsertAgent(agent.clone()).into(),
            cred_change,
        ];
        self.commit(event, changes, None).await?;
        Ok((org, agent, cred))
    }

    // ---- operator recovery ----------------------------------------------------------

    /// The operator's way back in (`agentidp admin recover`), for whoever holds the store
    /// itself: reactivate the oldest platform administrator (creating one in the platform
    /// organization if none is left), give it every management scope again, and issue it
    /// a fresh client secret, shown once. Audited as `admin.recover` by `operator`.
    pub async fn recover_platform_admin(&self) -> Result<RecoveredAdmin> {
        let now = self.shared.now_ms();
        let all_scopes: Vec<String> = self.shared.policy.catalog.scopes.keys().cloned().collect();
        let mut admins = self.shared.store.agents_with_scope(PLATFORM_ADMIN).await?;
        admins.sort_by_key(|a| (a.created_at, a.id));
        let mut changes = Vec::new();
        let (agent, created) = match admins.into_iter().next() {
            Some(mut agent) => {
                agent.status = AgentStatus::Active;
                let mut scopes = all_scopes.clone();
                scopes.extend(agent.scopes.iter().filter(|s| !all_scopes.contains(s)).cloned());
                agent.scopes = scopes::normalize(&scopes)?;
                agent.updated_at = now;
                changes.push(DirectoryChange::UpdateAgent(agent.clone()).into());
                (agent, false)
            }
            None => {
                let org_id = match self.find_org_named(PLATFORM_ORG).await? {
                    Some(org) => org.id,
                    None => {
                        let org = Organization {
                            id: Uuid::now_v7(),
                            name: PLATFORM_ORG.into(),
                            tier: Tier::Enterprise,
                            delegation: Default::default(),
                            created_at: now,
                            updated_at: now,
                        };
                        changes.push(DirectoryChange::InsertOrg(org.clone()).into());
                        org.id
                    }
                };
                let agent = Agent {
                    id: Uuid::now_v7(),
                    org_id,
                    name: format!("platform-admin-recovered-{}", now / 1000),
                    description: Some("created by agentidp admin recover".into()),
                    status: AgentStatus::Active,
                    scopes: all_scopes,
                    metadata: json!({}),
                    created_at: now,
                    updated_at: now,
                };
                changes.push(DirectoryChange::InsertAgent(agent.clone()).into());
                (agent, true)
            }
        };
        let (cred, cred_change) = self.new_credential(&agent)?;
        changes.push(cred_change);
        let event = self
            .event(Some(agent.org_id), "operator".into(), "admin.recover", Outcome::Success)
            .target(agent.id)
            .detail(&json!({"client_id": cred.credential.client_id, "created": created}));
        self.commit(event, changes, Some(ClusterEvent::of(&AgentChanged { agent_id: agent.id }))).await?;
        Ok(RecoveredAdmin {
            org_id: agent.org_id,
            agent_id: agent.id,
            client_id: cred.credential.client_id,
            client_secret: cred.client_secret.unwrap_or_default(),
            created,
        })
    }

    async fn find_org_named(&self, name: &str) -> Result<Option<Organization>> {
        let mut after = None;
        loop {
            let page = self.shared.store.list_orgs(after, 200).await?;
            if let Some(org) = page.iter().find(|o| o.name == name) {
                return Ok(Some(org.clone()));
            }
            match page.last() {
                Some(last) if page.len() == 200 => after = Some(last.id),
                _ => return Ok(None),
            }
        }
    }
}
