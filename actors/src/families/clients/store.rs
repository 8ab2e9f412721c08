//! The clients family's records, store port and changes.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::error::Result;
use crate::kernel::model::{present, rfc3339, Millis};

/// An application is active or suspended, as an agent is (the same two states, their names
/// and their parsing).
pub type ClientStatus = crate::kernel::model::AgentStatus;

/// An application: an OAuth client that people authorize (the authorization code
/// grant), public (no secret, PKCE only) or confidential.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Client {
    pub id: Uuid,
    pub org_id: Uuid,
    pub client_id: String,
    pub name: String,
    /// Matched exactly (a loopback redirect on any port).
    pub redirect_uris: Vec<String>,
    /// `none` (public), `client_secret_basic`, `client_secret_post`, `private_key_jwt`.
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    /// The scopes it may ask for.
    pub scopes: Vec<String>,
    /// The resource servers (identifiers) it may ask tokens for.
    pub resources: Vec<String>,
    /// When the client is an agent acting for the people who authorize it.
    pub agent_id: Option<Uuid>,
    /// Its public keys, for `private_key_jwt`.
    pub jwks: Option<serde_json::Value>,
    /// The organization's own application: people are not asked to consent to it.
    pub first_party: bool,
    pub status: ClientStatus,
    /// The first characters of its secret, to tell secrets apart (confidential clients).
    pub secret_prefix: Option<String>,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    pub updated_at: Millis,
}

/// A client as created or re-secreted: its secret is in this answer only.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedClient {
    #[serde(flatten)]
    pub client: Client,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

fn default_method() -> String {
    "client_secret_basic".into()
}

fn default_grants() -> Vec<String> {
    vec!["authorization_code".into(), "refresh_token".into()]
}

/// `POST /api/v1/clients`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub name: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default = "default_method")]
    pub token_endpoint_auth_method: String,
    #[serde(default = "default_grants")]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    pub agent_id: Option<Uuid>,
    #[serde(default, deserialize_with = "present")]
    pub jwks: Option<serde_json::Value>,
    #[serde(default)]
    pub first_party: bool,
    /// For the platform administrator: the organization (else the caller's).
    #[serde(default, deserialize_with = "present")]
    pub org_id: Option<Uuid>,
}

/// `PATCH /api/v1/clients/{id}`: what is present changes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub redirect_uris: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub grant_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub resources: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub jwks: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    pub first_party: Option<bool>,
}

/// A client with the hash of its secret (never leaves the engine).
#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub client: Client,
    pub secret_hash: Option<Vec<u8>>,
}

/// What the engine reads of applications.
#[async_trait]
pub trait ClientStore: Send + Sync + 'static {
    async fn get_app_client(&self, org_id: Uuid, id: Uuid) -> Result<Option<Client>>;
    /// By its `client_id`, whatever its organization (the authorization and token
    /// endpoints are told only that).
    async fn app_client(&self, client_id: &str) -> Result<Option<ClientRecord>>;
    async fn list_app_clients(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Client>>;
}

#[derive(Debug, Clone)]
pub enum ClientChange {
    Insert {
        client: Client,
        secret_hash: Option<Vec<u8>>,
    },
    /// Everything but the secret; `NotFound` if gone.
    Update(Client),
    /// A new secret; `NotFound` if gone.
    SetSecret {
        org_id: Uuid,
        id: Uuid,
        prefix: String,
        secret_hash: Vec<u8>,
        at: Millis,
    },
    Delete {
        org_id: Uuid,
        id: Uuid,
    },
}

crate::store::applied_by_adapters!(ClientChange);
