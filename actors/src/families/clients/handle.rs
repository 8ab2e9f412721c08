//! The clients family's verbs: an organization registers the applications people
//! authorize (`clients:read`, `clients:write`). A confidential client's secret is shown
//! once, in the answer that made it; the store keeps an HMAC of it.

use serde_json::json;
use uuid::Uuid;

use super::rules;
use super::store::{Client, ClientChange, ClientPatch, ClientStatus, IssuedClient, NewClient};
use crate::engine::{Call, Engine};
use crate::families::directory::secrets;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{AgentStatus, Page, PageRequest};
use crate::kernel::names::check_name;
use crate::kernel::paging::{decode_cursor, next_cursor, page_limit};

/// The prefix of an application's client id (an agent credential's is `aidp_ci_`).
pub const APP_CLIENT_ID_PREFIX: &str = "aidp_app_";
const MAX_RESOURCES: usize = 20;

fn check_redirects(uris: &[String]) -> Result<Vec<String>> {
    if uris.len() > rules::MAX_REDIRECT_URIS {
        return Err(EngineError::invalid("redirect_uris", format!("at most {}", rules::MAX_REDIRECT_URIS)));
    }
    let mut out = uris.iter().map(|u| rules::check_redirect_uri(u)).collect::<Result<Vec<_>>>()?;
    let mut seen = std::collections::HashSet::new();
    out.retain(|u| seen.insert(u.clone()));
    Ok(out)
}

/// A `private_key_jwt` client's JWKS: public keys only.
fn check_jwks(method: &str, jwks: Option<serde_json::Value>) -> Result<Option<serde_json::Value>> {
    let bad = |why: &str| Err(EngineError::invalid("jwks", why.to_string()));
    match (method, jwks) {
        ("private_key_jwt", None) => bad("a private_key_jwt client registers its public keys ({\"keys\": [...]})"),
        ("private_key_jwt", Some(jwks)) => {
            let keys = jwks.get("keys").and_then(|k| k.as_array()).filter(|k| !k.is_empty() && k.len() <= 10);
            let Some(keys) = keys else { return bad("must be {\"keys\": [...]} with 1 to 10 keys") };
            if keys.iter().any(|k| k.get("kty").and_then(|t| t.as_str()).is_none()) {
                return bad("every key needs its kty");
            }
            if keys.iter().any(|k| ["d", "p", "q", "k"].iter().any(|private| k.get(private).is_some())) {
                return bad("holds private key material: register public keys only");
            }
            Ok(Some(jwks))
        }
        (_, Some(_)) => bad("only a private_key_jwt client registers keys"),
        (_, None) => Ok(None),
    }
}

impl Engine {
    /// Resource identifiers a client may ask tokens for: each one the organization's.
    async fn check_client_resources(&self, org_id: Uuid, resources: &[String]) -> Result<Vec<String>> {
        if resources.len() > MAX_RESOURCES {
            return Err(EngineError::invalid("resources", format!("at most {MAX_RESOURCES}")));
        }
        let mut out = Vec::with_capacity(resources.len());
        for r in resources {
            if self.resource_named(org_id, r).await?.is_none() {
                return Err(EngineError::invalid(
                    "resources",
                    format!("{r:?} is not a resource server of the organization (POST /api/v1/resource-servers)"),
                ));
            }
            out.push(r.clone());
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn client_record(&self, org_id: Uuid, id: Uuid) -> Result<Client> {
        self.shared.store.get_app_client(org_id, id).await?.ok_or(EngineError::not_found("client"))
    }

    /// A fresh secret for a confidential client: the secret, its shown prefix, its HMAC.
    fn client_secret(&self, method: &str) -> Result<Option<(String, String, Vec<u8>)>> {
        if matches!(method, "client_secret_basic" | "client_secret_post") {
            let secret = secrets::new_secret()?;
            let (prefix, hash) = (secrets::shown_prefix(&secret), self.shared.hasher.hash(&secret));
            return Ok(Some((secret, prefix, hash)));
        }
        Ok(None)
    }

    pub async fn create_client(&self, call: &Call, new: NewClient) -> Result<IssuedClient> {
        let org_id = Self::target_org(call, new.org_id);
        self.authorize(call, "clients.create", org_id)?;
        let method = new.token_endpoint_auth_method;
        if !rules::AUTH_METHODS.contains(&method.as_str()) {
            return Err(EngineError::invalid(
                "token_endpoint_auth_method",
                format!("must be one of {}", rules::AUTH_METHODS.join(", ")),
            ));
        }
        let redirect_uris = check_redirects(&new.redirect_uris)?;
        let grant_types = rules::check_grants(&new.grant_types, &method, redirect_uris.len())?;
        let scopes = self.check_grantable(call, &new.scopes)?;
        let jwks = check_jwks(&method, new.jwks)?;
        if self.shared.store.get_org(org_id).await?.is_none() {
            return Err(EngineError::not_found("organization"));
        }
        let resources = self.check_client_resources(org_id, &new.resources).await?;
        if let Some(agent) = new.agent_id {
            if self.agent_status(org_id, agent).await? != Some(AgentStatus::Active) {
                return Err(EngineError::invalid("agent_id", "names no active agent of the organization"));
            }
        }
        let secret = self.client_secret(&method)?;
        let now = self.shared.now_ms();
        let client = Client {
            id: Uuid::now_v7(),
            org_id,
            client_id: secrets::new_client_id()?.replacen(secrets::CLIENT_ID_PREFIX, APP_CLIENT_ID_PREFIX, 1),
            name: check_name(&new.name)?,
            redirect_uris,
            token_endpoint_auth_method: method,
            grant_types,
            scopes,
            resources,
            agent_id: new.agent_id,
            jwks,
            first_party: new.first_party,
            status: ClientStatus::Active,
            secret_prefix: secret.as_ref().map(|s| s.1.clone()),
            created_at: now,
            updated_at: now,
        };
        let detail = json!({
            "client_id": client.client_id, "name": client.name, "redirect_uris": client.redirect_uris,
            "token_endpoint_auth_method": client.token_endpoint_auth_method, "grant_types": client.grant_types,
            "scopes": client.scopes, "first_party": client.first_party, "agent_id": client.agent_id,
        });
        let event = self.call_event(call, org_id, "client.create", client.id, detail);
        let change = ClientChange::Insert { client: client.clone(), secret_hash: secret.as_ref().map(|s| s.2.clone()) };
        self.commit(event, vec![change.into()], None).await?;
        Ok(IssuedClient { client, client_secret: secret.map(|s| s.0) })
    }

    pub async fn list_clients(&self, call: &Call, org: Option<Uuid>, page: PageRequest) -> Result<Page<Client>> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "clients.list", org_id)?;
        let limit = page_limit(&page)?;
        let items = self.shared.store.list_app_clients(org_id, decode_cursor(&page)?, limit).await?;
        let next_cursor = next_cursor(&items, limit, |c| c.id);
        Ok(Page { items, next_cursor })
    }

    pub async fn get_client(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<Client> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "clients.get", org_id)?;
        self.client_record(org_id, id).await
    }

    pub async fn update_client(&self, call: &Call, org: Option<Uuid>, id: Uuid, patch: ClientPatch) -> Result<Client> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "clients.update", org_id)?;
        let mut client = self.client_record(org_id, id).await?;
        if let Some(name) = patch.name {
            client.name = check_name(&name)?;
        }
        if let Some(uris) = patch.redirect_uris {
            client.redirect_uris = check_redirects(&uris)?;
        }
        let grants = patch.grant_types.unwrap_or_else(|| client.grant_types.clone());
        client.grant_types =
            rules::check_grants(&grants, &client.token_endpoint_auth_method, client.redirect_uris.len())?;
        if let Some(scopes) = patch.scopes {
            client.scopes = self.check_grantable(call, &scopes)?;
        }
        if let Some(resources) = patch.resources {
            client.resources = self.check_client_resources(org_id, &resources).await?;
        }
        if let Some(jwks) = patch.jwks {
            client.jwks = check_jwks(&client.token_endpoint_auth_method, Some(jwks))?;
        }
        if let Some(first_party) = patch.first_party {
            client.first_party = first_party;
        }
        self.save_client(call, client, "client.update").await
    }

    pub async fn suspend_client(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<Client> {
        self.set_client_status(call, org, id, ClientStatus::Suspended, "client.suspend").await
    }

    pub async fn reactivate_client(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<Client> {
        self.set_client_status(call, org, id, ClientStatus::Active, "client.reactivate").await
    }

    async fn set_client_status(
        &self,
        call: &Call,
        org: Option<Uuid>,
        id: Uuid,
        status: ClientStatus,
        action: &str,
    ) -> Result<Client> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "clients.update", org_id)?;
        let mut client = self.client_record(org_id, id).await?;
        client.status = status;
        self.save_client(call, client, action).await
    }

    async fn save_client(&self, call: &Call, mut client: Client, action: &str) -> Result<Client> {
        client.updated_at = self.shared.now_ms();
        let detail = json!({
            "client_id": client.client_id, "status": client.status, "redirect_uris": client.redirect_uris,
            "grant_types": client.grant_types, "scopes": client.scopes, "first_party": client.first_party,
        });
        let event = self.call_event(call, client.org_id, action, client.id, detail);
        self.commit(event, vec![ClientChange::Update(client.clone()).into()], None).await?;
        Ok(client)
    }

    /// A new secret for a confidential client (the old one stops working at once).
    pub async fn rotate_client_secret(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<IssuedClient> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "clients.update", org_id)?;
        let mut client = self.client_record(org_id, id).await?;
        let Some((secret, prefix, secret_hash)) = self.client_secret(&client.token_endpoint_auth_method)? else {
            return Err(EngineError::Conflict(format!(
                "a {} client has no secret to rotate",
                client.token_endpoint_auth_method
            )));
        };
        let at = self.shared.now_ms();
        let event = self.call_event(call, org_id, "client.rotate_secret", id, json!({"client_id": client.client_id}));
        let change = ClientChange::SetSecret { org_id, id, prefix: prefix.clone(), secret_hash, at };
        self.commit(event, vec![change.into()], None).await?;
        client.secret_prefix = Some(prefix);
        client.updated_at = at;
        Ok(IssuedClient { client, client_secret: Some(secret) })
    }

    pub async fn delete_client(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<()> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "clients.delete", org_id)?;
        let client = self.client_record(org_id, id).await?;
        let event = self.call_event(call, org_id, "client.delete", id, json!({"client_id": client.client_id}));
        self.commit(event, vec![ClientChange::Delete { org_id, id }.into()], None).await
    }
}
