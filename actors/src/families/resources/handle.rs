//! The resource-servers family's verbs: an organization registers the APIs and MCP
//! servers its tokens are for (`resource-servers:read`, `resource-servers:write`), and
//! the token endpoint finds the one a `resource` parameter names.

use serde_json::json;
use uuid::Uuid;

use super::rules;
use super::store::{NewResourceServer, ResourceChange, ResourceServer, ResourceServerPatch};
use crate::engine::{Call, Engine};
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{Page, PageRequest};
use crate::kernel::names::check_name;
use crate::kernel::paging::{decode_cursor, next_cursor, page_limit};
use crate::kernel::{privilege, scopes};

/// Most scopes one resource offers.
const MAX_SCOPES: usize = 64;

fn check_ttl(ttl: Option<u64>) -> Result<Option<u64>> {
    match ttl {
        Some(t) if !rules::TTL_RANGE.contains(&t) => Err(EngineError::invalid(
            "access_token_ttl",
            format!("must be {} to {} seconds", rules::TTL_RANGE.start(), rules::TTL_RANGE.end()),
        )),
        other => Ok(other),
    }
}

impl Engine {
    /// A resource's scopes: scope tokens of the organization's own — never a management
    /// scope or one that looks like it (those are AgentIdP's, for its own API).
    fn check_resource_scopes(&self, requested: &[String]) -> Result<Vec<String>> {
        let scopes = scopes::normalize(requested).map_err(|e| {
            EngineError::invalid("scopes", e.to_string().trim_start_matches("invalid input: ").to_string())
        })?;
        if scopes.len() > MAX_SCOPES {
            return Err(EngineError::invalid("scopes", format!("at most {MAX_SCOPES}")));
        }
        if let Err(refusal) = privilege::check_grantable(&scopes, &[], &self.shared.policy) {
            let scope = match refusal {
                privilege::Refusal::Lookalike(s) | privilege::Refusal::NotHeld(s) | privilege::Refusal::Stronger(s) => {
                    s
                }
                privilege::Refusal::LastPlatformAdmin => String::new(),
            };
            return Err(EngineError::invalid(
                "scopes",
                format!("{scope:?} is (or looks like) a scope of AgentIdP's own API: a resource offers the organization's own scopes"),
            ));
        }
        Ok(scopes)
    }

    async fn resource_record(&self, org_id: Uuid, id: Uuid) -> Result<ResourceServer> {
        self.shared.store.get_resource_server(org_id, id).await?.ok_or(EngineError::not_found("resource server"))
    }

    pub async fn create_resource_server(&self, call: &Call, new: NewResourceServer) -> Result<ResourceServer> {
        let org_id = Self::target_org(call, new.org_id);
        self.authorize(call, "resource_servers.create", org_id)?;
        let now = self.shared.now_ms();
        let resource = ResourceServer {
            id: Uuid::now_v7(),
            org_id,
            identifier: rules::check_identifier(&new.identifier)?,
            name: check_name(&new.name)?,
            scopes: self.check_resource_scopes(&new.scopes)?,
            access_token_ttl: check_ttl(new.access_token_ttl)?,
            dpop_required: new.dpop_required,
            created_at: now,
            updated_at: now,
        };
        if self.shared.store.get_org(org_id).await?.is_none() {
            return Err(EngineError::not_found("organization"));
        }
        let event = self.call_event(
            call,
            org_id,
            "resource_server.create",
            resource.id,
            json!({"identifier": resource.identifier, "scopes": resource.scopes}),
        );
        self.commit(event, vec![ResourceChange::Insert(resource.clone()).into()], None).await.map_err(|e| match e {
            EngineError::Conflict(_) => {
                EngineError::Conflict(format!("a resource server {:?} exists", resource.identifier))
            }
            e => e,
        })?;
        Ok(resource)
    }

    pub async fn list_resource_servers(
        &self,
        call: &Call,
        org: Option<Uuid>,
        page: PageRequest,
    ) -> Result<Page<ResourceServer>> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "resource_servers.list", org_id)?;
        let limit = page_limit(&page)?;
        let items = self.shared.store.list_resource_servers(org_id, decode_cursor(&page)?, limit).await?;
        let next_cursor = next_cursor(&items, limit, |r| r.id);
        Ok(Page { items, next_cursor })
    }

    pub async fn get_resource_server(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<ResourceServer> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "resource_servers.get", org_id)?;
        self.resource_record(org_id, id).await
    }

    pub async fn update_resource_server(
        &self,
        call: &Call,
        org: Option<Uuid>,
        id: Uuid,
        patch: ResourceServerPatch,
    ) -> Result<ResourceServer> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "resource_servers.update", org_id)?;
        let mut resource = self.resource_record(org_id, id).await?;
        if let Some(name) = patch.name {
            resource.name = check_name(&name)?;
        }
        if let Some(scopes) = patch.scopes {
            resource.scopes = self.check_resource_scopes(&scopes)?;
        }
        if let Some(ttl) = patch.access_token_ttl {
            resource.access_token_ttl = check_ttl(ttl)?;
        }
        if let Some(dpop) = patch.dpop_required {
            resource.dpop_required = dpop;
        }
        resource.updated_at = self.shared.now_ms();
        let detail = json!({"identifier": resource.identifier, "scopes": resource.scopes, "dpop_required": resource.dpop_required});
        let event = self.call_event(call, org_id, "resource_server.update", id, detail);
        self.commit(event, vec![ResourceChange::Update(resource.clone()).into()], None).await?;
        Ok(resource)
    }

    pub async fn delete_resource_server(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<()> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "resource_servers.delete", org_id)?;
        let resource = self.resource_record(org_id, id).await?;
        let event =
            self.call_event(call, org_id, "resource_server.delete", id, json!({"identifier": resource.identifier}));
        self.commit(event, vec![ResourceChange::Delete { org_id, id }.into()], None).await
    }

    /// The resource server a token request names (`resource`, RFC 8707) in the client's
    /// organization; `None` if it has none by that identifier.
    pub(crate) async fn resource_named(&self, org_id: Uuid, identifier: &str) -> Result<Option<ResourceServer>> {
        if identifier.len() > rules::MAX_IDENTIFIER {
            return Ok(None);
        }
        self.shared.store.resource_server_by_identifier(org_id, identifier).await
    }
}
