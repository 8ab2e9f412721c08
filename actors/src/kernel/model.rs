//! The engine's public records and requests. These are the nouns of the API; they carry
//! no storage or HTTP detail. Timestamps are unix milliseconds internally and RFC 3339 on
//! the wire.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Unix time in milliseconds; every timestamp the engine stores is one of these.
pub type Millis = i64;

/// Serialize [`Millis`] as RFC 3339 text, the form every JSON client expects.
pub mod rfc3339 {
    use serde::{Serialize, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub fn format(ms: i64) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    }

    /// Parse RFC 3339 text into unix milliseconds.
    pub fn parse(text: &str) -> Option<i64> {
        let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
    }

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        format(*ms).serialize(s)
    }

    /// Read back what [`serialize`] wrote (e.g. an exported audit event).
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        parse(&text).ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 timestamp"))
    }

    pub mod option {
        use serde::Serializer;

        pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => s.serialize_str(&super::format(*ms)),
                None => s.serialize_none(),
            }
        }
    }
}

/// Service tier of an organization; decides its quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Pro,
    Enterprise,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Pro => "pro",
            Tier::Enterprise => "enterprise",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "free" => Some(Tier::Free),
            "pro" => Some(Tier::Pro),
            "enterprise" => Some(Tier::Enterprise),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub tier: Tier,
    /// What the organization keeps from being delegated (on top of the shipped policy).
    pub delegation: DelegationSettings,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    pub updated_at: Millis,
}

/// An organization's own delegation rules. They reach the delegation policy
/// (`policies/delegation.datalog`) as facts, and can only narrow what it allows. Set by
/// the organization's admin with `PUT /organizations/{id}/delegation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegationSettings {
    /// Scopes no agent of the organization may hand on, whatever its token holds.
    #[serde(default)]
    pub non_delegable_scopes: Vec<String>,
    /// A depth cap below the configured one; absent, the configured cap alone applies.
    #[serde(default, deserialize_with = "integral", skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    pub name: String,
    #[serde(default, deserialize_with = "present")]
    pub tier: Option<Tier>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationPatch {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub tier: Option<Tier>,
}

/// A field that may be left out but not set to `null`: there is no "no name", and the
/// contract gives no field a null. (`#[serde(default, deserialize_with = "present")]`.)
pub fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)?.map(Some).ok_or_else(|| serde::de::Error::custom("may be left out but not null"))
}

/// An integer field that may be left out but not be `null`, given as JSON integer or
/// as a float with an integral value (`5.0`: JSON Schema's `integer` admits it).
pub fn integral<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    let n = serde_json::Number::deserialize(d)?;
    let whole = n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64));
    whole
        .and_then(|i| T::try_from(i).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("{n} is not an integer in range")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Active,
    Suspended,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "active",
            AgentStatus::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<AgentStatus> {
        match s {
            "active" => Some(AgentStatus::Active),
            "suspended" => Some(AgentStatus::Suspended),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Agent {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub status: AgentStatus,
    /// Scopes the agent may request; a token never carries a scope outside this list.
    pub scopes: Vec<String>,
    /// Free-form JSON object owned by the organization.
    pub metadata: serde_json::Value,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    pub updated_at: Millis,
}

/// Only `name` is required; an agent without scopes gets tokens with an empty scope.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    pub name: String,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub metadata: Option<serde_json::Value>,
    /// Platform administrators may create agents in another organization.
    #[serde(default, deserialize_with = "present")]
    pub org_id: Option<Uuid>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialStatus {
    Active,
    Revoked,
}

impl CredentialStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialStatus::Active => "active",
            CredentialStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<CredentialStatus> {
        match s {
            "active" => Some(CredentialStatus::Active),
            "revoked" => Some(CredentialStatus::Revoked),
            _ => None,
        }
    }
}

/// A client credential as listed: never the secret, which is shown once.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Credential {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub org_id: Uuid,
    pub client_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: CredentialStatus,
    /// The first characters of the secret, to tell credentials apart (empty for
    /// `private_key_jwt`).
    pub secret_prefix: String,
    /// The registered public key of a `private_key_jwt` credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwk: Option<serde_json::Value>,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339::option")]
    pub rotated_at: Option<Millis>,
    #[serde(with = "rfc3339::option")]
    pub revoked_at: Option<Millis>,
}

/// A credential together with its secret, returned exactly once (on create and rotate);
/// `private_key_jwt` credentials have no secret.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedCredential {
    #[serde(flatten)]
    pub credential: Credential,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// What kind of credential to create: a generated secret (the default) or a public key
/// the agent signs client assertions with (RFC 7523 `private_key_jwt`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    #[serde(rename = "type", default, deserialize_with = "present")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub jwk: Option<serde_json::Value>,
}

/// One page of a listing; `next_cursor` is opaque and absent on the last page.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Where a listing starts and how long it may be.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// A security-relevant act, as stored: chained to its predecessor in the same
/// organization's chain by `prev_hash`. It reads back from its JSON form, so an export
/// can be verified away from the server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    pub id: Uuid,
    /// `None` for acts no organization can be named for (an unknown client id).
    pub org_id: Option<Uuid>,
    /// Position in the organization's chain, from 1.
    pub seq: i64,
    #[serde(with = "rfc3339")]
    pub occurred_at: Millis,
    /// Who acted: an agent id, a client id, or `anonymous`.
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: Outcome,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Filters of an audit listing; the organization is decided by the caller's token.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub org_id: Option<Uuid>,
    pub agent_id: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub page: PageRequest,
}

/// The result of re-computing an organization's audit hash chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    pub org_id: Option<Uuid>,
    pub intact: bool,
    pub events_checked: u64,
    /// The first event whose hash or link does not match, when the chain is broken.
    pub first_broken_event: Option<Uuid>,
    /// The chain's latest signed checkpoint, and whether the chain still holds the event
    /// it vouches for (missing or different: events were removed or rewritten).
    pub checkpoint: Option<CheckpointCheck>,
    /// Where the walk began: after this `seq`, the newest checkpoint an earlier
    /// verification found intact (its event still there with its hash); `None`, from the
    /// chain's first event.
    pub resumed_after: Option<i64>,
}

/// What verification found of a chain's latest checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointCheck {
    pub seq: i64,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    pub holds: bool,
}

/// An OAuth 2.0 access token response (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a sender-constrained token.
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
    /// The organization's daily quota after this request (for the `RateLimit` headers).
    #[serde(skip)]
    pub quota: Option<QuotaState>,
}

/// What an organization has used of its tier today (`GET /organizations/{id}/usage`).
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub org_id: Uuid,
    pub tier: Tier,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub calls: Allowance,
    pub agents: Allowance,
    pub webhooks: Allowance,
    /// The next UTC midnight, when `calls` starts again from zero.
    #[serde(with = "rfc3339")]
    pub resets_at: Millis,
}

/// Used, of a limit (`null`: unlimited).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Allowance {
    pub used: u64,
    pub limit: Option<u64>,
}

/// A signing key, as reported after a rotation.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: &'static str,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    /// When it starts signing; until then it is only published.
    #[serde(with = "rfc3339")]
    pub activates_at: Millis,
}

/// What `admin recover` did; the secret is shown here once and nowhere else.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveredAdmin {
    pub org_id: Uuid,
    pub agent_id: Uuid,
    pub client_id: String,
    /// Shown once.
    pub client_secret: String,
    /// No platform administrator was left: this one is new.
    pub created: bool,
}

/// What `bootstrap` created; the secrets are shown here once and nowhere else.
#[derive(Debug, Clone, Serialize)]
pub struct BootstrapOutput {
    pub org_id: Uuid,
    pub agent_id: Uuid,
    pub client_id: String,
    pub client_secret: String,
    pub platform_org_id: Uuid,
    pub platform_client_id: String,
    pub platform_client_secret: String,
    /// The first organization's administrator as a person: signs in with this email
    /// and password (generated, shown once).
    pub admin_user_id: Uuid,
    pub admin_email: String,
    pub admin_password: String,
}

/// What a counted call learns about its organization's quota (the `RateLimit` headers).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct QuotaState {
    pub tier: Tier,
    /// The day's limit; `None`: unlimited.
    pub limit: Option<u64>,
    /// Calls left today (this node's view: other nodes' unused leases count as used).
    pub remaining: Option<u64>,
    /// Whole seconds to the next UTC midnight, rounded up.
    pub reset_secs: u64,
}

/// The verified identity behind a management call: who, in which organization, with
/// which scopes. Built only by [`crate::Engine::authenticate`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub agent_id: Uuid,
    pub org_id: Uuid,
    pub client_id: String,
    /// The token's space-delimited scope, as issued.
    pub scope: std::sync::Arc<str>,
    pub token_id: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Thumbprint of the key a DPoP-bound token is bound to.
    pub jkt: Option<String>,
    /// The link of a delegation token (its `delegation_id`).
    pub delegation_id: Option<Uuid>,
}

impl Caller {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }

    pub fn scopes(&self) -> Vec<String> {
        self.scope.split(' ').filter(|s| !s.is_empty()).map(String::from).collect()
    }

    pub fn is_platform_admin(&self) -> bool {
        self.has_scope("platform:admin")
    }
}

/// Paths of the OAuth endpoints under the issuer. Client assertions name them as their
/// audience and DPoP proofs as their `htu`, so the engine must know them.
pub const TOKEN_PATH: &str = "/api/v1/oauth2/token";
pub const INTROSPECT_PATH: &str = "/api/v1/oauth2/introspect";
pub const REVOKE_PATH: &str = "/api/v1/oauth2/revoke";
