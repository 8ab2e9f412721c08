//! The resource-servers family's records, store port and changes.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::error::Result;
use crate::kernel::model::{present, rfc3339, Millis};

/// An API or MCP server that tokens are for (RFC 8707's "resource"): a token asked for
/// it carries its identifier as `aud` and only its scopes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourceServer {
    pub id: Uuid,
    pub org_id: Uuid,
    /// An absolute URI (https, or http on a loopback host), no fragment or query; unique
    /// in the organization.
    pub identifier: String,
    pub name: String,
    /// The scopes tokens for it may carry (the organization's own, never management
    /// scopes).
    pub scopes: Vec<String>,
    /// Seconds its access tokens live; `None`: the server's token lifetime.
    pub access_token_ttl: Option<u64>,
    /// Tokens for it are issued only DPoP-bound.
    pub dpop_required: bool,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    pub updated_at: Millis,
}

/// `POST /api/v1/resource-servers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewResourceServer {
    pub identifier: String,
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    pub access_token_ttl: Option<u64>,
    #[serde(default)]
    pub dpop_required: bool,
    /// For the platform administrator: the organization (else the caller's).
    #[serde(default, deserialize_with = "present")]
    pub org_id: Option<Uuid>,
}

/// `PATCH /api/v1/resource-servers/{id}`: what is present changes (the identifier
/// never: tokens name it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceServerPatch {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub scopes: Option<Vec<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub access_token_ttl: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub dpop_required: Option<bool>,
}

/// A field that may be left out (`None`), or be `null` (`Some(None)`).
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// What the engine reads of resource servers.
#[async_trait]
pub trait ResourceStore: Send + Sync + 'static {
    async fn get_resource_server(&self, org_id: Uuid, id: Uuid) -> Result<Option<ResourceServer>>;
    async fn resource_server_by_identifier(&self, org_id: Uuid, identifier: &str) -> Result<Option<ResourceServer>>;
    async fn list_resource_servers(&self, org_id: Uuid, after: Option<Uuid>, limit: u32)
        -> Result<Vec<ResourceServer>>;
}

#[derive(Debug, Clone)]
pub enum ResourceChange {
    /// `Conflict` if the organization has one with that identifier.
    Insert(ResourceServer),
    /// `NotFound` if gone.
    Update(ResourceServer),
    Delete {
        org_id: Uuid,
        id: Uuid,
    },
}

crate::store::applied_by_adapters!(ResourceChange);
