//! Engine configuration: plain data, passed explicitly to [`crate::Engine::start`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::domain::tiers::TierTable;
use crate::domain::webhooks::Destinations;
use crate::keys::SigningAlg;
use crate::outbound::{Resolver, SystemResolver};

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
    pub compliance: crate::domain::compliance::CompliancePolicy,
    /// Stripe billing, when configured (`None`: tiers are set by the platform admin only).
    pub billing: Option<BillingSettings>,
    /// How outbound requests resolve host names (the system's resolver unless injected).
    pub resolver: Arc<dyn Resolver>,
}

/// Stripe billing: the API key, the webhook signing secret and one price per paid tier.
#[derive(Clone)]
pub struct BillingSettings {
    pub secret_key: String,
    pub webhook_secret: String,
    /// The Stripe price of each paid tier.
    pub prices: Vec<(crate::model::Tier, String)>,
    /// Stripe's API at another address (a local fake in tests); Stripe's own when `None`.
    pub api_base: Option<String>,
    /// How long an organization keeps its paid tier after a failed payment.
    pub grace: Duration,
    /// How often a node looks for grace periods that ended.
    pub sweep_every: Duration,
}

impl std::fmt::Debug for BillingSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingSettings")
            .field("prices", &self.prices)
            .field("api_base", &self.api_base)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl BillingSettings {
    /// Seven days of grace after a failed payment; grace periods checked every minute.
    pub fn new(secret_key: String, webhook_secret: String, prices: Vec<(crate::model::Tier, String)>) -> Self {
        BillingSettings {
            secret_key,
            webhook_secret,
            prices,
            api_base: None,
            grace: Duration::from_secs(7 * 86_400),
            sweep_every: Duration::from_secs(60),
        }
    }
}

/// How the JwksCache actors fetch partners' keys.
#[derive(Debug, Clone, Copy)]
pub struct FederationSettings {
    /// After a refetch for an unknown `kid`, a partner's JWKS is not refetched for another
    /// unknown kid for this long (at least 10 s).
    pub refetch_cooldown: Duration,
    /// Refetches for unknown kids, all partners together, per second at most.
    pub refetch_per_sec: u32,
    /// A partner's last good keys stay in use this long past their freshness while its
    /// JWKS cannot be fetched (stale-if-error).
    pub stale_cap: Duration,
    /// One fetch's whole exchange.
    pub fetch_timeout: Duration,
    /// The largest JWKS document read.
    pub max_jwks_bytes: usize,
    /// After a failed fetch, the next scheduled one comes this much later.
    pub retry_after_error: Duration,
    /// Where `jwks_uri` may point (development: plain http to loopback too).
    pub destinations: Destinations,
}

impl Default for FederationSettings {
    fn default() -> Self {
        FederationSettings {
            refetch_cooldown: Duration::from_secs(10),
            refetch_per_sec: 20,
            stale_cap: Duration::from_secs(24 * 3600),
            fetch_timeout: Duration::from_secs(5),
            max_jwks_bytes: 64 * 1024,
            retry_after_error: Duration::from_secs(30),
            destinations: Destinations::default(),
        }
    }
}

/// How webhook deliveries run.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    /// How often a node claims (or keeps) subscriptions' leases and looks for due
    /// deliveries and events committed on other nodes.
    pub poll: Duration,
    /// How long a claimed lease lasts: a dead node's subscriptions move to another node
    /// this long after its last renewal.
    pub lease: Duration,
    /// One delivery attempt's whole exchange.
    pub timeout: Duration,
    /// A subscription failing for this long without one success is disabled.
    pub disable_after: Duration,
    /// After a secret rotation, the old secret signs beside the new one this long.
    pub secret_overlap: Duration,
    /// Where deliveries may go (development: plain http to loopback too).
    pub destinations: Destinations,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            timeout: Duration::from_secs(15),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            secret_overlap: Duration::from_secs(24 * 3600),
            destinations: Destinations::default(),
        }
    }
}

/// Where Vault is and where our secrets live in it.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub addr: String,
    pub token: String,
    /// KV v2 mount, e.g. `secret`.
    pub mount: String,
    /// Path prefix under the mount, e.g. `agentidp`.
    pub prefix: String,
}

impl EngineConfig {
    /// An embedded (SQLite) configuration rooted at `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
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
            tiers: TierTable::default(),
            delegation_max_depth: 3,
            delegation_max_ttl: Duration::from_secs(3600),
            lockout_failures: 10,
            lockout_address_failures: 100,
            lockout_window: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
            webhooks: WebhookSettings::default(),
            federation: FederationSettings::default(),
            clock_skew: Duration::from_secs(crate::domain::validity::DEFAULT_CLOCK_SKEW_SECS),
            billing: None,
            compliance: Default::default(),
            resolver: Arc::new(SystemResolver),
        }
    }

    /// The issuer's path without its slashes (`tenant/a` for `https://h/tenant/a`), empty
    /// for an issuer at the host's root: RFC 8414 §3 places the metadata document at
    /// `/.well-known/oauth-authorization-server/<this>`.
    pub fn issuer_path(&self) -> String {
        url::Url::parse(&self.issuer).map(|u| u.path().trim_matches('/').to_string()).unwrap_or_default()
    }
}
