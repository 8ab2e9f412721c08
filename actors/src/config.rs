//! Engine configuration: plain data, passed explicitly to [`crate::Engine::start`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::families::billing::settings::BillingSettings;
use crate::families::federation::settings::FederationSettings;
use crate::families::signing::keys::SigningAlg;
use crate::families::webhooks::settings::WebhookSettings;
use crate::kernel::clock::{Clock, SystemClock};
use crate::kernel::tiers::TierTable;
use crate::runtime::keystore::VaultConfig;
use crate::runtime::outbound::{Resolver, SystemResolver};

/// Which durable store and coordinator to use, and the knobs of the identity core.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Folder of the embedded SQLite store (used when `database_url` is `None`).
    pub data_dir: PathBuf,
    /// `postgres://…` selects PostgreSQL.
    pub database_url: Option<String>,
    /// `redis://…` selects the Redis coordinator; otherwise it is in-process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel, so several deployments can share one Redis.
    pub redis_namespace: String,
    /// The `iss` claim and the base of discovery URLs, e.g. `http://127.0.0.1:8080`.
    pub issuer: String,
    /// Default `aud` of access tokens.
    pub audience: String,
    /// Lifetime of issued access tokens.
    pub token_ttl: Duration,
    /// Key of the HMAC that stores client secrets; generated and persisted in the store
    /// when `None`, so every node that shares the store agrees on it.
    pub secret_hash_key: Option<Vec<u8>>,
    /// Largest number of audit events written in one group commit.
    pub audit_batch_max: usize,
    /// How long a supervisor waits for a child to answer before giving up.
    pub call_timeout: Duration,
    /// Algorithm of newly generated signing keys.
    pub signing_alg: SigningAlg,
    /// How long a new signing key is published in the JWKS before it signs, so verifiers
    /// that cache the JWKS (we allow 60 s) never meet an unknown `kid`.
    pub key_preannounce: Duration,
    /// Rotate the signing key on this schedule, if set.
    pub key_rotation_interval: Option<Duration>,
    /// Key that encrypts private keys at rest in the store (32 bytes). When `None`, the
    /// key is read from (or created in) `data_dir/master.key`; nodes sharing one
    /// PostgreSQL must share this key.
    pub master_key: Option<Vec<u8>>,
    /// Keep private keys in HashiCorp Vault KV v2 instead of the store.
    pub vault: Option<VaultConfig>,
    /// How often each node reads the store's cluster change feed: the bound on how long
    /// a change made on another node (a revocation, a suspension) can go unseen here when
    /// its coordinator announcement was lost.
    pub feed_poll: Duration,
    /// How often the analytics aggregator writes its counts: what a crash can lose.
    pub analytics_flush: Duration,
    /// The cost of new password hashes (argon2id).
    pub passwords: crate::families::users::password::PasswordSettings,
    /// How long per-agent analytics counts are kept; older days are rolled into their
    /// organization's totals by the janitor.
    pub analytics_detail: Duration,
    /// How often, and in what batches, the janitor removes what has ended.
    pub janitor: crate::runtime::janitor::JanitorSettings,
    /// When each audit chain gets a signed checkpoint.
    pub checkpoints: crate::families::audit::checkpointer::CheckpointSettings,
    /// Where each new audit checkpoint is also POSTed (JSON), if anywhere; the webhook
    /// destination rules apply to it.
    pub checkpoint_webhook: Option<String>,
    /// Where audit events past their retention are archived, how often and how many at
    /// a time (the directory defaults to `data_dir/audit-archive`).
    pub archive: crate::families::audit::archive::ArchiveSettings,
    /// Failed client authentications of one client_id, within `lockout_window`, before
    /// it is locked out for the window (per node).
    pub lockout_failures: u32,
    /// The same from one peer address, whatever client_ids it names: higher, since one
    /// address (a NAT, a proxy) may front many agents.
    pub lockout_address_failures: u32,
    pub lockout_window: Duration,
    /// The most hops a delegation chain may have (a request's `max_depth` can only lower it).
    pub delegation_max_depth: u32,
    /// The longest a delegation may live (it never outlives the token it is made from).
    pub delegation_max_ttl: Duration,
    /// The limits of each tier (the same on every node).
    pub tiers: TierTable,
    /// The clock every time-dependent rule reads.
    pub clock: Arc<dyn Clock>,
    /// Leeway on `exp`, `nbf` and `iat` of what others sign (client assertions, DPoP
    /// proofs, partners' JWTs). AgentIdP's own tokens get none: they die at `exp`.
    pub clock_skew: Duration,
    /// How webhooks are delivered.
    pub webhooks: WebhookSettings,
    /// How partners' JWKS documents are fetched and cached.
    pub federation: FederationSettings,
    /// What the compliance report counts as stale or too long-lived.
    pub compliance: crate::families::compliance::rules::CompliancePolicy,
    /// Stripe billing, when configured (`None`: tiers are set by the platform admin only).
    pub billing: Option<BillingSettings>,
    /// How outbound requests resolve host names (the system's resolver unless injected).
    pub resolver: Arc<dyn Resolver>,
}

impl EngineConfig {
    /// An embedded (SQLite) configuration rooted at `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir: PathBuf = data_dir.into();
        EngineConfig {
            archive: crate::families::audit::archive::ArchiveSettings {
                dir: Some(data_dir.join("audit-archive")),
                ..Default::default()
            },
            data_dir,
            database_url: None,
            redis_url: None,
            redis_namespace: "agentidp".into(),
            issuer: "http://127.0.0.1:8080".into(),
            audience: "http://127.0.0.1:8080".into(),
            token_ttl: Duration::from_secs(900),
            secret_hash_key: None,
            audit_batch_max: 512,
            call_timeout: Duration::from_secs(10),
            signing_alg: SigningAlg::Es256,
            key_preannounce: Duration::from_secs(120),
            key_rotation_interval: None,
            master_key: None,
            vault: None,
            feed_poll: Duration::from_secs(1),
            analytics_flush: Duration::from_secs(1),
            analytics_detail: Duration::from_secs(400 * 86_400),
            passwords: Default::default(),
            janitor: Default::default(),
            checkpoints: Default::default(),
            checkpoint_webhook: None,
            tiers: TierTable::default(),
            delegation_max_depth: 3,
            delegation_max_ttl: Duration::from_secs(3600),
            lockout_failures: 10,
            lockout_address_failures: 100,
            lockout_window: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
            webhooks: WebhookSettings::default(),
            federation: FederationSettings::default(),
            clock_skew: Duration::from_secs(crate::kernel::validity::DEFAULT_CLOCK_SKEW_SECS),
            billing: None,
            compliance: Default::default(),
            resolver: Arc::new(SystemResolver),
        }
    }

    /// What the signing family's KeyManager is started with.
    pub(crate) fn key_settings(&self) -> crate::families::signing::actor::KeySettings {
        crate::families::signing::actor::KeySettings {
            issuer: self.issuer.clone(),
            token_ttl: self.token_ttl,
            signing_alg: self.signing_alg,
            key_preannounce: self.key_preannounce,
            key_rotation_interval: self.key_rotation_interval,
        }
    }

    /// The issuer's path without its slashes (`tenant/a` for `https://h/tenant/a`), empty
    /// for an issuer at the host's root: RFC 8414 §3 places the metadata document at
    /// `/.well-known/oauth-authorization-server/<this>`.
    pub fn issuer_path(&self) -> String {
        url::Url::parse(&self.issuer).map(|u| u.path().trim_matches('/').to_string()).unwrap_or_default()
    }
}
