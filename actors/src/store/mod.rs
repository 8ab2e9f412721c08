//! The durable-records ports and their two adapters. Domain code and actors see only the
//! narrow port they use ([`DirectoryStore`], [`AuditStore`], …; [`Store`] is all of them);
//! each adapter is a folder with one file per port, converts its driver's errors into
//! [`EngineError`] once, and owns its SQL.
//!
//! Both adapters store timestamps as unix milliseconds and JSON as text, so records read
//! back identically from either (the audit hash chain depends on that).

use async_trait::async_trait;
use uuid::Uuid;

use crate::coord::ClusterEvent;
use crate::domain::analytics::{Day, DayRange, Metric};
use crate::domain::audit_chain::SealedEvent;
use crate::domain::billing::TenantSubscription;
use crate::domain::delegation::{Delegation, DelegationStatus};
use crate::domain::federation::Partner;
use crate::domain::tiers::TierTable;
use crate::domain::webhooks::{Delivery, Webhook};
use crate::error::{EngineError, Result};
use crate::model::{
    Agent, AgentStatus, AuditEvent, AuditQuery, Credential, CredentialStatus, Millis, Organization, Tier,
};

/// What a store says of a change that breaks a uniqueness or reference rule: the
/// engine names what is taken where it knows (`name_taken`, …); the database's own
/// message never reaches a client.
pub const CONFLICT: &str = "the change conflicts with a record that exists (or refers to one that does not)";

pub mod postgres;
pub mod redis;
pub mod sqlite;

/// Chain key of audit events that no organization can be named for.
pub const UNATTRIBUTED_CHAIN: Uuid = Uuid::nil();

/// Everything the token endpoint needs to authenticate a client, in one read.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub client_id: String,
    pub credential_status: CredentialStatus,
    /// `client_secret` or `private_key_jwt`.
    pub kind: String,
    pub secret_hash: Vec<u8>,
    /// The registered public key of a `private_key_jwt` credential.
    pub public_jwk: Option<serde_json::Value>,
    pub agent_id: Uuid,
    pub org_id: Uuid,
    pub agent_status: AgentStatus,
    pub agent_scopes: Vec<String>,
}

/// A signing key as stored. `private_key` is PKCS#8 DER sealed by the keystore (or
/// empty when `key_ref` points into Vault).
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: String,
    pub private_key: Vec<u8>,
    pub key_ref: Option<String>,
    pub created_at: Millis,
    pub activates_at: Millis,
}

/// A revoked access token, remembered until it would have expired anyway.
#[derive(Debug, Clone, PartialEq)]
pub struct Revocation {
    pub jti: String,
    pub org_id: Uuid,
    /// Unix seconds, as in the token's `exp`.
    pub expires_at: i64,
}

/// A change to the directory, committed in the same transaction as the audit event that
/// records it: either both are durable or neither is.
#[derive(Debug, Clone)]
pub enum Change {
    InsertOrg(Organization),
    /// Name, tier and `updated_at`; `NotFound` if the organization is gone.
    UpdateOrg(Organization),
    /// The organization's delegation settings alone (a tier change beside it is kept).
    SetOrgDelegation {
        org_id: Uuid,
        settings: crate::model::DelegationSettings,
        at: crate::model::Millis,
    },
    /// Deletes the organization with its agents and credentials (audit events stay).
    DeleteOrg(Uuid),
    /// Refuse (with `TierLimit`) unless the organization, at its tier as committed, has
    /// fewer agents than that tier allows. Checked in the transaction — under the
    /// organization's row lock on PostgreSQL — so concurrent creations on any node
    /// never pass the limit, and a tier change counts at once.
    HasRoomForAgent {
        org_id: Uuid,
        tiers: TierTable,
    },
    InsertAgent(Agent),
    /// `NotFound` if the agent is gone.
    UpdateAgent(Agent),
    DeleteAgent {
        org_id: Uuid,
        id: Uuid,
    },
    InsertCredential {
        credential: Credential,
        secret_hash: Vec<u8>,
    },
    /// Replace the secret of an active credential; `Conflict` if it is not active.
    RotateCredential {
        agent_id: Uuid,
        id: Uuid,
        secret_prefix: String,
        secret_hash: Vec<u8>,
        now: Millis,
    },
    RevokeCredential {
        agent_id: Uuid,
        id: Uuid,
        now: Millis,
    },
    /// Remember a revoked token (idempotent).
    RevokeToken {
        revocation: Revocation,
        now: Millis,
    },
    /// Record a delegation link; `Conflict` unless its parent (if any) is active — checked
    /// under the parent's row lock on PostgreSQL, so a link is never added below one a
    /// concurrent revocation is revoking.
    InsertDelegation(Delegation),
    /// Revoke the link `id` of `org_id` and every active link below it, at any depth
    /// (found in the store, so links made on other nodes are included). `NotFound` if
    /// there is no such link.
    RevokeDelegation {
        org_id: Uuid,
        id: Uuid,
        now: Millis,
    },
    /// Refuse (with `TierLimit`) unless the organization, at its tier as committed, has
    /// fewer webhook subscriptions than that tier allows (checked as for agents).
    HasRoomForWebhook {
        org_id: Uuid,
        tiers: TierTable,
    },
    /// A new subscription. Its `audit_cursor` is set to its organization's chain head as
    /// committed (it receives what happens from now on), whatever the record says.
    InsertWebhook(Box<WebhookRecord>),
    /// URL, event types, description, enabled, disabled reason and `updated_at`;
    /// re-enabling clears `failing_since`. `NotFound` if the subscription is gone.
    UpdateWebhook(Webhook),
    /// A new signing secret; the one in force becomes the previous one, still signing
    /// beside it until `previous_until`.
    RotateWebhookSecret {
        org_id: Uuid,
        id: Uuid,
        secret: SealedSecret,
        previous_until: Millis,
        at: Millis,
    },
    /// Deletes the subscription with its deliveries.
    DeleteWebhook {
        org_id: Uuid,
        id: Uuid,
    },
    /// A new federation partner; `Conflict` if the organization has one with its issuer.
    InsertPartner(Box<Partner>),
    /// Everything but the ids and `created_at`; `NotFound` if the partner is gone.
    UpdatePartner(Box<Partner>),
    DeletePartner {
        org_id: Uuid,
        id: Uuid,
    },
    /// A new verification method of an agent's DID; `Conflict` if its key id is taken.
    InsertDidKey(Box<DidKeyRecord>),
    /// `NotFound` if the agent has no such key.
    RemoveDidKey {
        agent_id: Uuid,
        key_id: String,
    },
    /// Remember a Stripe event as processed; `Conflict` if it already was (on any node).
    ClaimStripeEvent {
        id: String,
        kind: String,
        at: Millis,
    },
    /// Insert or replace an organization's subscription record.
    PutSubscription(Box<TenantSubscription>),
}

/// One of an agent's DID keys as stored.
#[derive(Debug, Clone)]
pub struct DidKeyRecord {
    pub agent_id: Uuid,
    pub org_id: Uuid,
    /// The verification method's fragment (`key-1`).
    pub key_id: String,
    pub public_jwk: serde_json::Value,
    /// The private key, when AgentIdP generated it.
    pub sealed: Option<SealedSecret>,
    pub created_at: Millis,
}

/// One entry of a group commit: an audit event, the changes it records, and what every
/// node must be told about them. The changes, the announcement (in the cluster change
/// feed) and the event are written together, or — if a change fails — none of them, and
/// the rest of the batch goes on.
#[derive(Debug)]
pub struct Commit {
    pub event: SealedEvent,
    pub changes: Vec<Change>,
    pub announce: Option<ClusterEvent>,
}

impl Commit {
    /// An audit event that records no change (e.g. a token issued).
    pub fn event(event: SealedEvent) -> Commit {
        Commit { event, changes: Vec::new(), announce: None }
    }
}

/// An entry of the cluster change feed (`cluster_events`).
#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub seq: i64,
    pub created_at: Millis,
    pub event: ClusterEvent,
}

/// A store that answers: one cheap round trip, for readiness checks and for an actor
/// that must not start without its store.
#[async_trait]
pub trait Ping: Send + Sync + 'static {
    async fn ping(&self) -> Result<()>;
}

/// Settings the engine keeps in the store (e.g. the secret-hash key).
#[async_trait]
pub trait SettingsStore: Send + Sync + 'static {
    /// Store `value` under `key` unless a value is there; return the value in force.
    async fn setting_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>>;
    /// The value under `key`, if any.
    async fn setting(&self, key: &str) -> Result<Option<Vec<u8>>>;
}

/// Organizations, agents and credentials, as the engine reads them. (They change only
/// with their audit event: see [`Change`] and [`AuditStore::append_audit`].)
#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    async fn get_org(&self, id: Uuid) -> Result<Option<Organization>>;
    async fn list_orgs(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Organization>>;
    async fn count_orgs(&self) -> Result<u64>;
    /// Agents of `org_id`, of any status.
    async fn count_agents(&self, org_id: Uuid) -> Result<u64>;

    async fn get_agent(&self, org_id: Uuid, id: Uuid) -> Result<Option<Agent>>;
    async fn list_agents(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Agent>>;
    /// Every agent, of any organization and status, that holds `scope` (e.g. the
    /// platform administrators).
    async fn agents_with_scope(&self, scope: &str) -> Result<Vec<Agent>>;

    async fn list_credentials(&self, agent_id: Uuid) -> Result<Vec<Credential>>;
    async fn get_credential(&self, agent_id: Uuid, id: Uuid) -> Result<Option<Credential>>;
    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>>;
}

/// The signing keys (the KeyManager's port).
#[async_trait]
pub trait SigningKeyStore: Send + Sync + 'static {
    async fn insert_signing_key(&self, key: &KeyRecord) -> Result<()>;
    async fn signing_keys(&self) -> Result<Vec<KeyRecord>>;
}

/// Revoked tokens (the RevocationActor's port).
#[async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// Revocations of tokens that have not expired by `now_secs`.
    async fn revocations(&self, now_secs: i64) -> Result<Vec<Revocation>>;
    /// Forget revocations of tokens expired by `now_secs`; returns how many.
    async fn purge_revocations(&self, now_secs: i64) -> Result<u64>;
}

/// The audit trail, and the group commit that writes every change with its event (the
/// AuditWriter's port).
#[async_trait]
pub trait AuditStore: Ping {
    /// Apply each entry's changes, record its announcement in the change feed, link its
    /// event into its chain — all entries in one transaction (group commit). The outer
    /// error fails the whole batch (nothing written); an inner one only its entry, whose
    /// changes and event are then left out.
    async fn append_audit(&self, entries: Vec<Commit>) -> Result<Vec<Result<()>>>;
    /// Newest first (by `seq`), from before the `before_seq` cursor.
    async fn list_audit(&self, query: &AuditQuery, before_seq: Option<i64>, limit: u32) -> Result<Vec<AuditEvent>>;
    async fn get_audit(&self, id: Uuid) -> Result<Option<AuditEvent>>;
    /// A chain's events in `seq` order, starting after `after_seq`.
    async fn audit_chain(&self, chain: Uuid, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>>;
}

/// The cluster change feed (the CacheKeeper's port).
#[async_trait]
pub trait FeedStore: Send + Sync + 'static {
    /// Change-feed entries created at or after `since`, oldest first.
    async fn cluster_events_since(&self, since: Millis) -> Result<Vec<FeedEntry>>;
    /// Forget change-feed entries created before `before`; returns how many.
    async fn purge_cluster_events(&self, before: Millis) -> Result<u64>;
}

/// The daily call quota's ledger (the tier counters' port): calls granted to leases per
/// organization and UTC day, never past the limit. The store is the ledger of a single
/// node or of nodes sharing PostgreSQL alone; with Redis configured, [`redis::RedisLedger`].
#[async_trait]
pub trait QuotaStore: Send + Sync + 'static {
    /// Grant more calls to `org_id` on `day` (see [`GrantRequest`]), never making the
    /// day's total pass the limit.
    async fn grant_calls(&self, org_id: Uuid, day: i64, request: GrantRequest) -> Result<Grant>;
    /// The day's total granted so far.
    async fn calls_granted(&self, org_id: Uuid, day: i64) -> Result<u64>;
}

/// What a lease asks of [`QuotaStore::grant_calls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantRequest {
    /// Calls wanted.
    pub want: u64,
    /// The day's limit; `None`: no limit.
    pub limit: Option<u64>,
    /// Calls the node admitted on its own while the ledger was unreachable: added first
    /// and unclamped (they happened).
    pub owed: u64,
    /// The day's total as the node last saw it (its own outage grants included). A
    /// ledger that can lose its memory (Redis without persistence) starts a day it has
    /// forgotten from there instead of from zero.
    pub seen: u64,
}

/// What [`QuotaStore::grant_calls`] granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Calls granted now.
    pub granted: u64,
    /// The day's total granted after this grant.
    pub total: u64,
    /// The nodes drawing on this ledger lately, where the ledger knows (Redis does): what
    /// a node divides the day's remainder by when the ledger becomes unreachable.
    pub nodes: Option<u32>,
}

/// What a delegation listing is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct DelegationFilter {
    pub delegator_id: Option<Uuid>,
    pub delegatee_id: Option<Uuid>,
    /// `Expired` is an active link past its expiry at `now`; `Active` one before it.
    pub status: Option<DelegationStatus>,
    pub now: Millis,
}

/// Delegation chains (the DelegationActor's port; links are written as [`Change`]s).
#[async_trait]
pub trait DelegationStore: Send + Sync + 'static {
    /// The links of `org_id` that have not expired by `now`, revoked ones included.
    async fn live_delegations(&self, org_id: Uuid, now: Millis) -> Result<Vec<Delegation>>;
    async fn get_delegation(&self, org_id: Uuid, id: Uuid) -> Result<Option<Delegation>>;
    /// The authority-block revocation ids of revoked biscuit links (of every
    /// organization) that have not expired by `now`: what offline verifiers refuse.
    async fn revoked_biscuits(&self, now: Millis) -> Result<Vec<String>>;
    /// Oldest first (by id), after the `after` cursor.
    async fn list_delegations(
        &self,
        org_id: Uuid,
        filter: &DelegationFilter,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Delegation>>;
}

/// A webhook signing secret as stored: sealed by the keystore under `kid` (or a
/// reference into Vault in `key_ref`).
#[derive(Debug, Clone, PartialEq)]
pub struct SealedSecret {
    pub kid: String,
    pub sealed: Vec<u8>,
    pub key_ref: Option<String>,
}

/// A subscription as stored: the record, its sealed secrets and where its queue stands.
#[derive(Debug, Clone)]
pub struct WebhookRecord {
    pub webhook: Webhook,
    pub secret: SealedSecret,
    /// The secret rotated away and until when it still signs.
    pub previous: Option<(SealedSecret, Millis)>,
    /// The last seq of the organization's audit chain turned into deliveries.
    pub audit_cursor: i64,
    /// When the current run of failed attempts began.
    pub failing_since: Option<Millis>,
}

/// Webhook subscriptions' queues (the DeliveryQueue actors' port, and the webhook
/// endpoints'). Subscriptions themselves change as [`Change`]s, with their audit events.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// The subscription `id` (of `org_id`, when given).
    async fn webhook(&self, org_id: Option<Uuid>, id: Uuid) -> Result<Option<WebhookRecord>>;
    /// Oldest first (by id), after the `after` cursor.
    async fn list_webhooks(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Webhook>>;
    async fn count_webhooks(&self, org_id: Uuid) -> Result<u64>;
    /// Take or keep the lease on every enabled subscription whose lease is free, expired
    /// at `now`, or `node`'s own, until `until`; at most `limit` of them. Answers
    /// (subscription, organization) for every lease `node` holds now.
    async fn claim_webhooks(&self, node: &str, now: Millis, until: Millis, limit: u32) -> Result<Vec<(Uuid, Uuid)>>;
    /// Give up `node`'s leases (a graceful shutdown: another node takes over at once).
    async fn release_webhooks(&self, node: &str) -> Result<()>;
    /// The audit events of `org_id`'s chain after `after_seq` whose action is one of
    /// `actions`, oldest first, at most `limit`; and how far that read reaches: the last
    /// event's seq if the page is full, else the chain's head (every event up to it was
    /// committed and read, so a cursor may move there).
    async fn webhook_events(
        &self,
        org_id: Uuid,
        after_seq: i64,
        actions: Vec<String>,
        limit: u32,
    ) -> Result<(Vec<AuditEvent>, i64)>;
    /// Queue `deliveries` (ignoring any already queued for their audit event) and move the
    /// subscription's cursor to `cursor`, in one transaction.
    async fn enqueue_deliveries(&self, webhook_id: Uuid, deliveries: Vec<Delivery>, cursor: i64) -> Result<()>;
    /// The pending deliveries with the lowest audit seqs, in that order: the head of the
    /// queue, at most `limit`.
    async fn pending_deliveries(&self, webhook_id: Uuid, limit: u32) -> Result<Vec<Delivery>>;
    /// Pending deliveries.
    async fn queue_depth(&self, webhook_id: Uuid) -> Result<u64>;
    /// Store the outcomes of consecutive attempts (status, attempts, next attempt,
    /// response, latency) in one transaction, and the subscription's run of failures:
    /// begun at `now` if the last attempt `failed` and it had not begun, ended if not.
    /// Answers when the run began, if it goes on.
    async fn record_attempts(&self, deliveries: &[Delivery], failed: bool, now: Millis) -> Result<Option<Millis>>;
    /// Newest first (by id), before the `before` cursor.
    async fn list_deliveries(&self, webhook_id: Uuid, before: Option<Uuid>, limit: u32) -> Result<Vec<Delivery>>;
    async fn get_delivery(&self, webhook_id: Uuid, id: Uuid) -> Result<Option<Delivery>>;
    /// Make a delivery pending again, due at `now`, its attempts counted from zero.
    /// `NotFound` if there is no such delivery.
    async fn redeliver(&self, webhook_id: Uuid, id: Uuid, now: Millis) -> Result<Delivery>;
}

/// Federation partners (written by changes).
#[async_trait]
pub trait FederationStore: Send + Sync + 'static {
    /// Every partner of every organization (the node's index of issuers is built from it).
    async fn all_partners(&self) -> Result<Vec<Partner>>;
    /// One partner; `org_id` confines the lookup to an organization.
    async fn partner(&self, org_id: Option<Uuid>, id: Uuid) -> Result<Option<Partner>>;
    /// An organization's partners by id, after `after`.
    async fn list_partners(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Partner>>;
}

/// Agents' DID keys (written by changes).
#[async_trait]
pub trait DidStore: Send + Sync + 'static {
    /// The agent's keys, oldest first.
    async fn did_keys(&self, agent_id: Uuid) -> Result<Vec<DidKeyRecord>>;
    /// The agent a DID names, whatever its organization (a DID names no organization).
    async fn did_agent(&self, agent_id: Uuid) -> Result<Option<Agent>>;
    /// Whether an agent of this id existed and was deleted (its DID is deactivated).
    async fn agent_deleted(&self, agent_id: Uuid) -> Result<bool>;
}

/// One analytics count to add: `count` more of `metric` for (organization, agent, day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalyticsCount {
    pub org_id: Uuid,
    pub agent_id: Uuid,
    pub day: Day,
    pub metric: Metric,
    pub count: u64,
}

/// The usage analytics (the AnalyticsAggregator's port, and the analytics endpoints').
#[async_trait]
pub trait AnalyticsStore: Send + Sync + 'static {
    /// Add every count to its row, in one transaction: all of them or none.
    async fn add_analytics(&self, counts: Vec<AnalyticsCount>) -> Result<()>;
    /// The counts of `org_id` — of one agent, or all of them summed — per day and metric
    /// over `range`, optionally of one metric only. Days with no count are left out.
    async fn analytics(
        &self,
        org_id: Uuid,
        agent_id: Option<Uuid>,
        metric: Option<Metric>,
        range: DayRange,
    ) -> Result<Vec<(Metric, Day, u64)>>;
}

/// Organizations' subscriptions and the Stripe events processed (`tenant_subscriptions`,
/// `stripe_events`; written through [`Change`]s).
#[async_trait]
pub trait BillingStore: Send + Sync + 'static {
    async fn subscription(&self, org_id: Uuid) -> Result<Option<TenantSubscription>>;
    async fn subscription_by_customer(&self, customer_id: &str) -> Result<Option<TenantSubscription>>;
    async fn stripe_event_seen(&self, id: &str) -> Result<bool>;
    /// Past-due subscriptions whose grace period ended at or before `now`.
    async fn lapsed_subscriptions(&self, now: Millis) -> Result<Vec<TenantSubscription>>;
}

/// What the compliance report reads of an organization in one query each (indexed by
/// organization), so it stays fast at a hundred thousand agents.
#[async_trait]
pub trait ComplianceStore: Send + Sync + 'static {
    /// Every agent of the organization: id, status and scopes (no more, at 100k agents).
    async fn agent_facts(&self, org_id: Uuid) -> Result<Vec<crate::domain::compliance::AgentFacts>>;
    /// Every active credential of the organization.
    async fn org_credentials(&self, org_id: Uuid) -> Result<Vec<Credential>>;
    /// The agents that have at least one DID key.
    async fn agents_with_did_keys(&self, org_id: Uuid) -> Result<Vec<Uuid>>;
    /// The agents that were issued a token on `day` or later (from the analytics counts).
    async fn agents_with_tokens_since(&self, org_id: Uuid, day: i64) -> Result<Vec<Uuid>>;
}

/// The whole durable store: every port, and its migrations. The engine opens one and
/// hands each actor the narrow port it uses; a new family adds its own port here (and
/// one adapter file per backend).
#[async_trait]
pub trait Store:
    Ping
    + SettingsStore
    + DirectoryStore
    + SigningKeyStore
    + RevocationStore
    + AuditStore
    + FeedStore
    + QuotaStore
    + AnalyticsStore
    + DelegationStore
    + WebhookStore
    + FederationStore
    + DidStore
    + BillingStore
    + ComplianceStore
{
    /// Apply pending migrations; returns the schema version now in force.
    async fn migrate(&self) -> Result<u32>;
}

/// How many of `want` calls may be granted when `granted` are and the limit is `limit`.
pub(crate) fn grantable(granted: u64, want: u64, limit: Option<u64>) -> u64 {
    match limit {
        Some(limit) => want.min(limit.saturating_sub(granted)),
        None => want,
    }
}

/// `TierLimit` if an organization on `tier` with `agents` agents may not have another.
pub(crate) fn check_agent_room(tier: &str, agents: u64, tiers: &TierTable) -> Result<()> {
    check_room(tier, agents, "agents", |t| tiers.limits(t).max_agents)
}

/// `TierLimit` if an organization on `tier` with `webhooks` subscriptions may not have
/// another.
pub(crate) fn check_webhook_room(tier: &str, webhooks: u64, tiers: &TierTable) -> Result<()> {
    check_room(tier, webhooks, "webhook subscriptions", |t| tiers.limits(t).max_webhooks)
}

fn check_room(tier: &str, have: u64, what: &'static str, limit: impl Fn(Tier) -> Option<u64>) -> Result<()> {
    let tier = Tier::parse(tier).ok_or_else(|| EngineError::internal(format!("bad tier column {tier:?}")))?;
    match limit(tier) {
        Some(limit) if have >= limit => Err(EngineError::TierLimit { tier, what, limit }),
        _ => Ok(()),
    }
}

/// A partner's unique (organization, issuer) pair was taken: say so in the API's words.
pub(crate) fn same_issuer(e: EngineError) -> EngineError {
    match e {
        EngineError::Conflict(_) => {
            EngineError::Conflict("the organization already has a federation partner with this issuer".into())
        }
        e => e,
    }
}

/// Decode a JSON text column written by this crate.
pub(crate) fn json_column<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| crate::EngineError::internal(format!("bad json column: {e}")))
}

pub(crate) fn enum_column<T>(value: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(value).ok_or_else(|| crate::EngineError::internal(format!("bad enum column {value:?}")))
}
