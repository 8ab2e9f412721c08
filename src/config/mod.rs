//! Server configuration, layered: defaults ← TOML file ← `AGENTIDP_*` environment ←
//! command-line flags. Each setting is declared once, as a field of [`Settings`]: its
//! name is the file key, the flag is derived from it (`token_ttl` → `--token-ttl`), the
//! environment variable and the help (with the default) are its attributes; the README's
//! table is checked against `serve --help` (`tests/it/cli.rs`). clap resolves flags and
//! environment; the file, read into the same struct, fills what both left unset.
//! [`Settings::resolve`] validates each value, naming where it came from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use agentidp_engine::families::signing::keys::SigningAlg;
use agentidp_engine::EngineConfig;
use anyhow::Context;
use base64::Engine as _;
use serde::Deserialize;

/// Settings shared by `serve`, `migrate` and `bootstrap`: the command line and
/// environment (clap), and the TOML file (serde, the same fields; a key the struct does
/// not have is refused).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// TOML configuration file (keys as in the README table).
    #[arg(long, env = "AGENTIDP_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "AGENTIDP_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Folder of the embedded SQLite store [default: ./agentidp-data].
    #[arg(long, env = "AGENTIDP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL; selects PostgreSQL instead of the embedded store.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis URL; selects the Redis coordinator for multi-node deployments.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of Redis keys and channels [default: agentidp].
    #[arg(long, env = "AGENTIDP_REDIS_NAMESPACE")]
    pub redis_namespace: Option<String>,
    /// Public base URL: the `iss` of tokens [default: http://<listen>].
    #[arg(long, env = "AGENTIDP_ISSUER")]
    pub issuer: Option<String>,
    /// `aud` of access tokens [default: the issuer].
    #[arg(long, env = "AGENTIDP_AUDIENCE")]
    pub audience: Option<String>,
    /// Access-token lifetime in seconds [default: 900].
    #[arg(long, env = "AGENTIDP_TOKEN_TTL")]
    pub token_ttl: Option<u64>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "AGENTIDP_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Algorithm of new signing keys: ES256, RS256 or EdDSA [default: ES256].
    #[arg(long, env = "AGENTIDP_SIGNING_ALG")]
    pub signing_alg: Option<String>,
    /// Seconds a new signing key is published before it signs [default: 120].
    #[arg(long, env = "AGENTIDP_KEY_PREANNOUNCE")]
    pub key_preannounce: Option<u64>,
    /// Rotate the signing key every this many seconds [default: never].
    #[arg(long, env = "AGENTIDP_KEY_ROTATION_INTERVAL")]
    pub key_rotation_interval: Option<u64>,
    /// Base64 of the 32-byte key sealing private keys at rest [default: <data_dir>/master.key,
    /// created].
    #[arg(long, env = "AGENTIDP_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// Most concurrent HTTP connections; more wait in the listen backlog [default: 10000].
    #[arg(long, env = "AGENTIDP_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a connection may take to send a request head, also between kept-alive
    /// requests (1-300) [default: 10].
    #[arg(long, env = "AGENTIDP_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<u64>,
    /// Seconds a request body may take to arrive (1-300) [default: 30].
    #[arg(long, env = "AGENTIDP_BODY_READ_TIMEOUT")]
    pub body_read_timeout: Option<u64>,
    /// Seconds a response may wait for a client that takes none of it before the
    /// connection is closed (1-300) [default: 30].
    #[arg(long, env = "AGENTIDP_WRITE_TIMEOUT")]
    pub write_timeout: Option<u64>,
    /// A browser origin (`https://app.example.com`) allowed to call discovery, the JWKS,
    /// DID documents and the OAuth endpoints (CORS); repeat it, or comma-separate them in
    /// the variable; `*` allows any [default: none, no CORS].
    #[arg(long = "cors-origin", env = "AGENTIDP_CORS_ORIGINS", value_delimiter = ',')]
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Development only: webhooks may go over plain http to loopback addresses
    /// [default: false].
    #[arg(long, env = "AGENTIDP_WEBHOOK_ALLOW_LOOPBACK_HTTP", num_args = 0..=1, default_missing_value = "true")]
    pub webhook_allow_loopback_http: Option<bool>,
    /// Development only: a federation partner's jwks_uri may be plain http to a loopback
    /// address [default: false].
    #[arg(long, env = "AGENTIDP_FEDERATION_ALLOW_LOOPBACK_HTTP", num_args = 0..=1, default_missing_value = "true")]
    pub federation_allow_loopback_http: Option<bool>,
    /// Seconds before a partner's JWKS is refetched for another unknown kid (10-3600)
    /// [default: 10].
    #[arg(long, env = "AGENTIDP_FEDERATION_REFETCH_COOLDOWN")]
    pub federation_refetch_cooldown: Option<u64>,
    /// Seconds of leeway on exp, nbf and iat of what others sign: client assertions, DPoP
    /// proofs, partners' JWTs (0-300). AgentIdP's own tokens get none [default: 30].
    #[arg(long, env = "AGENTIDP_CLOCK_SKEW")]
    pub clock_skew: Option<u64>,
    /// Milliseconds between a node's looks for webhook work (50-60000) [default: 1000].
    #[arg(long, env = "AGENTIDP_WEBHOOK_POLL_MS")]
    pub webhook_poll_ms: Option<u64>,
    /// Seconds a node's lease on a subscription lasts: a dead node's subscriptions move
    /// after it (1-3600) [default: 30].
    #[arg(long, env = "AGENTIDP_WEBHOOK_LEASE")]
    pub webhook_lease: Option<u64>,
    /// Seconds one delivery attempt may take (1-60) [default: 15].
    #[arg(long, env = "AGENTIDP_WEBHOOK_TIMEOUT")]
    pub webhook_timeout: Option<u64>,
    /// Days a settled webhook delivery (delivered, or failed for good) is kept before the
    /// janitor removes it (1-3650) [default: 30].
    #[arg(long, env = "AGENTIDP_WEBHOOK_DELIVERY_RETENTION_DAYS")]
    pub webhook_delivery_retention_days: Option<u64>,
    /// Days per-agent analytics counts are kept; older days are rolled into their
    /// organization's totals by the janitor (1-3650) [default: 400].
    #[arg(long, env = "AGENTIDP_ANALYTICS_DETAIL_DAYS")]
    pub analytics_detail_days: Option<u64>,
    /// Seconds between the janitor's rounds, which remove what has ended: expired
    /// revocations, old deliveries, the change feed (10-86400) [default: 60].
    #[arg(long, env = "AGENTIDP_JANITOR_INTERVAL")]
    pub janitor_interval: Option<u64>,
    /// Seconds between an audit chain's signed checkpoints while it moves (1-86400)
    /// [default: 60].
    #[arg(long, env = "AGENTIDP_AUDIT_CHECKPOINT_INTERVAL")]
    pub audit_checkpoint_interval: Option<u64>,
    /// Events after which an audit chain gets a signed checkpoint sooner
    /// (1-10000000) [default: 10000].
    #[arg(long, env = "AGENTIDP_AUDIT_CHECKPOINT_EVENTS")]
    pub audit_checkpoint_events: Option<i64>,
    /// Where each new audit checkpoint is also POSTed as JSON (chain, seq, hash, created_at
    /// and the signed jwt): a copy beyond the store's reach. https, as for webhooks.
    #[arg(long, env = "AGENTIDP_AUDIT_CHECKPOINT_WEBHOOK")]
    pub audit_checkpoint_webhook: Option<String>,
    /// Where audit events past their organization's retention are archived (gzip NDJSON
    /// segments with manifests) before they leave the store; in a cluster, storage every
    /// node shares [default: <data_dir>/audit-archive].
    #[arg(long, env = "AGENTIDP_AUDIT_ARCHIVE_DIR")]
    pub audit_archive_dir: Option<PathBuf>,
    /// Seconds between the audit archiver's rounds (10-86400) [default: 60].
    #[arg(long, env = "AGENTIDP_AUDIT_ARCHIVE_INTERVAL")]
    pub audit_archive_interval: Option<u64>,
    /// Most events in one archive segment, removed from the store in one transaction
    /// (100-100000) [default: 5000].
    #[arg(long, env = "AGENTIDP_AUDIT_ARCHIVE_BATCH")]
    pub audit_archive_batch: Option<u32>,
    /// The compliance report's rotation policy: a client secret older than this many days
    /// is a finding (1-3650) [default: 90].
    #[arg(long, env = "AGENTIDP_COMPLIANCE_CREDENTIAL_MAX_AGE_DAYS")]
    pub compliance_credential_max_age_days: Option<u64>,
    /// Stripe secret API key: enables billing (with the webhook secret and the prices).
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    /// Signing secret of the Stripe webhook endpoint (whsec_…).
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,
    /// Stripe price id of the pro tier.
    #[arg(long, env = "STRIPE_PRICE_PRO")]
    pub stripe_price_pro: Option<String>,
    /// Stripe price id of the enterprise tier.
    #[arg(long, env = "STRIPE_PRICE_ENTERPRISE")]
    pub stripe_price_enterprise: Option<String>,
    /// Stripe's API at another base URL (a local fake, for tests) [default: Stripe's].
    #[arg(long, env = "STRIPE_API_BASE")]
    pub stripe_api_base: Option<String>,
    /// Days an organization keeps its paid tier after a failed payment (0-60) [default: 7].
    #[arg(long, env = "AGENTIDP_BILLING_GRACE_DAYS")]
    pub billing_grace_days: Option<u64>,
    /// PEM certificate chain: serve HTTPS (with --tls-key); the default issuer becomes
    /// https://<listen>.
    #[arg(long, env = "AGENTIDP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "AGENTIDP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Milliseconds between analytics flushes (100 to 60000). File only.
    #[arg(skip)]
    analytics_flush_ms: Option<u64>,
    /// `[tiers.free]`, `[tiers.pro]`, `[tiers.enterprise]`: each limit a number or
    /// `"unlimited"`; a limit left out keeps its default. File only.
    #[arg(skip)]
    #[serde(default)]
    tiers: FileTiers,
}

mod tiers;
use tiers::FileTiers;

/// Settings with every layer applied.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub listen: SocketAddr,
    pub log_json: bool,
    pub engine: EngineConfig,
    pub http: crate::HttpLimits,
    /// What `serve` should warn about once logging is up (a setting that works but is
    /// likely a mistake).
    pub warnings: Vec<String>,
}

/// The issuer must be an absolute http(s) URL: clients compare it byte for byte and build
/// every endpoint from it.
fn check_issuer(issuer: &str) -> anyhow::Result<()> {
    let bad =
        || anyhow::anyhow!("the issuer must be an absolute http(s) URL without query or fragment, not {issuer:?}");
    let url = url::Url::parse(issuer).map_err(|_| bad())?;
    let fine = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if fine {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Where a setting's value came from, named as the operator wrote it: the flag, the
/// environment variable, or the file's key — so an error points at what to change.
#[derive(Debug, Clone, Default)]
pub struct Origin(String);

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The origin of a value clap resolved for the argument `id`: its flag if the command line
/// has it (clap lets a flag win over the variable), otherwise its environment variable.
pub fn clap_origin(command: &clap::Command, id: &str, argv: &[String]) -> Option<Origin> {
    let arg = command.get_arguments().find(|a| a.get_id() == id)?;
    let flag = arg.get_long().map(|l| format!("--{l}"));
    let on_line = flag.as_ref().is_some_and(|f| argv.iter().any(|a| a == f || a.starts_with(&format!("{f}="))));
    match (on_line, flag, arg.get_env()) {
        (false, _, Some(var)) if std::env::var_os(var).is_some() => Some(Origin(var.to_string_lossy().into_owned())),
        (_, Some(flag), _) => Some(Origin(flag)),
        _ => None,
    }
}

/// The layers a value is picked from, highest first: clap (flags and environment), then
/// the file.
struct Layers {
    command: clap::Command,
    argv: Vec<String>,
    file: Option<PathBuf>,
}

impl Layers {
    fn pick<T>(&self, id: &str, cli: Option<T>, file: Option<T>) -> Option<(T, Origin)> {
        match (cli, file) {
            (Some(v), _) => Some((v, clap_origin(&self.command, id, &self.argv).unwrap_or_else(|| Origin(id.into())))),
            (None, Some(v)) => {
                let place = self.file.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default();
                Some((v, Origin(format!("{id}{place}"))))
            }
            (None, None) => None,
        }
    }
}

impl Settings {
    /// Stripe billing: on when the secret key is given, which then needs the webhook
    /// secret and at least one price; any other billing setting without the key is an
    /// error (it would silently do nothing).
    fn billing(&self, layers: &Layers, file: &Settings) -> anyhow::Result<Option<agentidp_engine::BillingSettings>> {
        use agentidp_engine::kernel::model::Tier;
        let pick = |id, cli: &Option<String>, file: &Option<String>| layers.pick(id, cli.clone(), file.clone());
        let key = pick("stripe_secret_key", &self.stripe_secret_key, &file.stripe_secret_key);
        let secret = pick("stripe_webhook_secret", &self.stripe_webhook_secret, &file.stripe_webhook_secret);
        let pro = pick("stripe_price_pro", &self.stripe_price_pro, &file.stripe_price_pro);
        let enterprise = pick("stripe_price_enterprise", &self.stripe_price_enterprise, &file.stripe_price_enterprise);
        let base = pick("stripe_api_base", &self.stripe_api_base, &file.stripe_api_base);
        let grace = layers.pick("billing_grace_days", self.billing_grace_days, file.billing_grace_days);
        let Some((key, _)) = key else {
            let given =
                [secret.map(|s| s.1), pro.map(|s| s.1), enterprise.map(|s| s.1), base.map(|s| s.1), grace.map(|g| g.1)]
                    .into_iter()
                    .flatten()
                    .next();
            if let Some(from) = given {
                anyhow::bail!("{from} is a billing setting, and billing needs STRIPE_SECRET_KEY (--stripe-secret-key)");
            }
            return Ok(None);
        };
        let (secret, _) = secret.ok_or_else(|| {
            anyhow::anyhow!("billing needs the webhook signing secret: STRIPE_WEBHOOK_SECRET (--stripe-webhook-secret)")
        })?;
        let prices: Vec<(Tier, String)> = [(Tier::Pro, pro), (Tier::Enterprise, enterprise)]
            .into_iter()
            .filter_map(|(t, p)| Some((t, p?.0)))
            .collect();
        anyhow::ensure!(
            !prices.is_empty(),
            "billing needs a Stripe price for at least one paid tier: STRIPE_PRICE_PRO or STRIPE_PRICE_ENTERPRISE"
        );
        let mut settings = agentidp_engine::BillingSettings::new(key, secret, prices);
        if let Some((base, from)) = base {
            let ok = url::Url::parse(&base).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            anyhow::ensure!(ok, "{from}: an absolute http(s) URL, like http://127.0.0.1:8420, not {base:?}");
            settings.api_base = Some(base);
        }
        if let Some((days, from)) = grace {
            anyhow::ensure!(days <= 60, "{from}: the grace period must be 0 to 60 days");
            settings.grace = Duration::from_secs(days * 86_400);
        }
        Ok(Some(settings))
    }

    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        let layers = Layers {
            command: <Settings as clap::Args>::augment_args(clap::Command::new("agentidp")),
            argv: std::env::args().collect(),
            file: self.config.clone(),
        };
        let file: Settings = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => Settings::default(),
        };
        let billing = self.billing(&layers, &file)?;
        let listen = self.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        // A relative path in the file (data_dir, the TLS files) is the file's: resolved
        // against its folder.
        let file_dir = self.config.as_deref().and_then(|p| p.parent()).map(PathBuf::from);
        let in_file_dir = |p: PathBuf| match &file_dir {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p,
        };
        let file_data_dir = file.data_dir.map(in_file_dir);
        let tls = match (
            layers.pick("tls_cert", self.tls_cert.clone(), file.tls_cert.map(in_file_dir)),
            layers.pick("tls_key", self.tls_key.clone(), file.tls_key.map(in_file_dir)),
        ) {
            (Some(cert), Some(key)) => Some(crate::limits::tls_config(cert, key)?),
            (None, None) => None,
            _ => anyhow::bail!("TLS needs both a certificate (--tls-cert) and its key (--tls-key)"),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let data_dir = self.data_dir.clone().or(file_data_dir).unwrap_or_else(|| PathBuf::from("./agentidp-data"));
        let mut warnings = Vec::new();
        let issuer = match layers.pick("issuer", self.issuer.clone(), file.issuer) {
            Some((issuer, from)) => {
                let issuer = issuer.trim_end_matches('/').to_string();
                check_issuer(&issuer).with_context(|| format!("{from}"))?;
                issuer
            }
            None => {
                if listen.ip().is_unspecified() {
                    warnings.push(format!(
                        "listening on {listen} with the default issuer {scheme}://{listen}, which no client can reach: \
                         set --issuer (AGENTIDP_ISSUER) to the URL clients use"
                    ));
                }
                format!("{scheme}://{listen}")
            }
        };
        let audience = self.audience.clone().or(file.audience).unwrap_or_else(|| issuer.clone());
        let log_format = match layers.pick("log_format", self.log_format.clone(), file.log_format) {
            Some((format, from)) => {
                anyhow::ensure!(format == "text" || format == "json", "{from}: must be text or json, not {format:?}");
                format
            }
            None => "text".into(),
        };
        let mut engine = EngineConfig::embedded(data_dir);
        engine.database_url = self.database_url.clone().or(file.database_url).filter(|s| !s.is_empty());
        engine.redis_url = self.redis_url.clone().or(file.redis_url).filter(|s| !s.is_empty());
        if let Some(ns) = self.redis_namespace.clone().or(file.redis_namespace) {
            engine.redis_namespace = ns;
        }
        engine.issuer = issuer;
        engine.audience = audience;
        if let Some((ttl, from)) = layers.pick("token_ttl", self.token_ttl, file.token_ttl) {
            anyhow::ensure!((10..=86_400).contains(&ttl), "{from}: the token TTL must be 10 to 86400 seconds");
            engine.token_ttl = Duration::from_secs(ttl);
        }
        if let Some((alg, from)) = layers.pick("signing_alg", self.signing_alg.clone(), file.signing_alg) {
            engine.signing_alg = SigningAlg::parse(&alg)
                .with_context(|| format!("{from}: the signing algorithm must be ES256, RS256 or EdDSA, not {alg:?}"))?;
        }
        if let Some(secs) = self.key_preannounce.or(file.key_preannounce) {
            engine.key_preannounce = Duration::from_secs(secs);
        }
        if let Some((secs, from)) =
            layers.pick("key_rotation_interval", self.key_rotation_interval, file.key_rotation_interval)
        {
            anyhow::ensure!(secs >= 60, "{from}: the key rotation interval must be at least 60 seconds");
            engine.key_rotation_interval = Some(Duration::from_secs(secs));
        }
        if let Some((key, from)) = layers.pick("master_key", self.master_key.clone(), file.master_key) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .with_context(|| format!("{from}: the master key must be base64"))?;
            anyhow::ensure!(bytes.len() == 32, "{from}: the master key must be 32 bytes (base64 of 32 random bytes)");
            engine.master_key = Some(bytes);
        }
        engine.vault = agentidp_engine::vault_from_env();
        if let Some(ms) = file.analytics_flush_ms {
            anyhow::ensure!((100..=60_000).contains(&ms), "analytics_flush_ms must be 100 to 60000");
            engine.analytics_flush = Duration::from_millis(ms);
        }
        if let Some(allow) = self.federation_allow_loopback_http.or(file.federation_allow_loopback_http) {
            engine.federation.destinations.allow_loopback_http = allow;
        }
        if let Some((secs, from)) = layers.pick(
            "federation_refetch_cooldown",
            self.federation_refetch_cooldown,
            file.federation_refetch_cooldown,
        ) {
            anyhow::ensure!((10..=3600).contains(&secs), "{from}: the refetch cooldown must be 10 to 3600 seconds");
            engine.federation.refetch_cooldown = Duration::from_secs(secs);
        }
        if let Some((secs, from)) = layers.pick("clock_skew", self.clock_skew, file.clock_skew) {
            anyhow::ensure!((0..=300).contains(&secs), "{from}: the clock skew must be 0 to 300 seconds");
            engine.clock_skew = Duration::from_secs(secs);
        }
        let hooks = &mut engine.webhooks;
        if let Some(allow) = self.webhook_allow_loopback_http.or(file.webhook_allow_loopback_http) {
            hooks.destinations.allow_loopback_http = allow;
        }
        if let Some((ms, from)) = layers.pick("webhook_poll_ms", self.webhook_poll_ms, file.webhook_poll_ms) {
            anyhow::ensure!((50..=60_000).contains(&ms), "{from}: the webhook poll must be 50 to 60000 milliseconds");
            hooks.poll = Duration::from_millis(ms);
        }
        if let Some((secs, from)) = layers.pick("webhook_lease", self.webhook_lease, file.webhook_lease) {
            anyhow::ensure!((1..=3600).contains(&secs), "{from}: the webhook lease must be 1 to 3600 seconds");
            hooks.lease = Duration::from_secs(secs);
        }
        if let Some((secs, from)) = layers.pick("webhook_timeout", self.webhook_timeout, file.webhook_timeout) {
            anyhow::ensure!((1..=60).contains(&secs), "{from}: the webhook timeout must be 1 to 60 seconds");
            hooks.timeout = Duration::from_secs(secs);
        }
        if let Some((days, from)) = layers.pick(
            "webhook_delivery_retention_days",
            self.webhook_delivery_retention_days,
            file.webhook_delivery_retention_days,
        ) {
            anyhow::ensure!((1..=3650).contains(&days), "{from}: the delivery retention must be 1 to 3650 days");
            engine.webhooks.delivery_retention = Duration::from_secs(days * 86_400);
        }
        if let Some((days, from)) =
            layers.pick("analytics_detail_days", self.analytics_detail_days, file.analytics_detail_days)
        {
            anyhow::ensure!((1..=3650).contains(&days), "{from}: the analytics detail must be 1 to 3650 days");
            engine.analytics_detail = Duration::from_secs(days * 86_400);
        }
        if let Some((secs, from)) = layers.pick("janitor_interval", self.janitor_interval, file.janitor_interval) {
            anyhow::ensure!((10..=86_400).contains(&secs), "{from}: the janitor interval must be 10 to 86400 seconds");
            engine.janitor.every = Duration::from_secs(secs);
        }
        if let Some((secs, from)) =
            layers.pick("audit_checkpoint_interval", self.audit_checkpoint_interval, file.audit_checkpoint_interval)
        {
            anyhow::ensure!((1..=86_400).contains(&secs), "{from}: the checkpoint interval must be 1 to 86400 seconds");
            engine.checkpoints.every = Duration::from_secs(secs);
        }
        if let Some((n, from)) =
            layers.pick("audit_checkpoint_events", self.audit_checkpoint_events, file.audit_checkpoint_events)
        {
            anyhow::ensure!((1..=10_000_000).contains(&n), "{from}: must be 1 to 10000000 events");
            engine.checkpoints.every_events = n;
        }
        if let Some((url, from)) = layers.pick(
            "audit_checkpoint_webhook",
            self.audit_checkpoint_webhook.clone(),
            file.audit_checkpoint_webhook,
        ) {
            engine.webhooks.destinations.check_url(&url).map_err(|why| anyhow::anyhow!("{from}: {why}"))?;
            engine.checkpoint_webhook = Some(url);
        }
        if let Some((dir, _)) =
            layers.pick("audit_archive_dir", self.audit_archive_dir.clone(), file.audit_archive_dir.map(in_file_dir))
        {
            engine.archive.dir = Some(dir);
        }
        if let Some((secs, from)) =
            layers.pick("audit_archive_interval", self.audit_archive_interval, file.audit_archive_interval)
        {
            anyhow::ensure!((10..=86_400).contains(&secs), "{from}: the archive interval must be 10 to 86400 seconds");
            engine.archive.every = Duration::from_secs(secs);
        }
        if let Some((n, from)) = layers.pick("audit_archive_batch", self.audit_archive_batch, file.audit_archive_batch)
        {
            anyhow::ensure!((100..=100_000).contains(&n), "{from}: must be 100 to 100000 events");
            engine.archive.batch = n;
        }
        let tiers = &mut engine.tiers;
        for (name, given, limits) in [
            ("free", &file.tiers.free, &mut tiers.free),
            ("pro", &file.tiers.pro, &mut tiers.pro),
            ("enterprise", &file.tiers.enterprise, &mut tiers.enterprise),
        ] {
            if let Some(given) = given {
                given.apply(name, limits)?;
            }
        }
        let mut http = crate::HttpLimits::default();
        if let Some((n, from)) = layers.pick("max_connections", self.max_connections, file.max_connections) {
            anyhow::ensure!(n >= 1, "{from}: must be at least 1");
            http.max_connections = n;
        }
        let seconds = |(v, from): (u64, Origin)| -> anyhow::Result<Duration> {
            anyhow::ensure!((1..=300).contains(&v), "{from}: must be 1 to 300 seconds");
            Ok(Duration::from_secs(v))
        };
        if let Some(v) = layers.pick("header_read_timeout", self.header_read_timeout, file.header_read_timeout) {
            http.header_read_timeout = seconds(v)?;
        }
        if let Some(v) = layers.pick("body_read_timeout", self.body_read_timeout, file.body_read_timeout) {
            http.body_read_timeout = seconds(v)?;
        }
        if let Some(v) = layers.pick("write_timeout", self.write_timeout, file.write_timeout) {
            http.write_timeout = seconds(v)?;
        }
        let given = Some(self.cors_origins.clone()).filter(|o| !o.is_empty());
        let in_file = Some(file.cors_origins).filter(|o| !o.is_empty());
        let (origins, from) = layers.pick("cors_origins", given, in_file).unwrap_or_default();
        for origin in origins.iter().filter(|o| *o != "*") {
            let ok = url::Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && matches!(u.path(), "" | "/")
            });
            anyhow::ensure!(
                ok,
                "{from}: a CORS origin is scheme://host[:port], like https://app.example.com, not {origin:?}"
            );
        }
        http.cors_origins = origins;
        http.tls = tls;
        engine.billing = billing;
        if let Some((days, from)) = layers.pick(
            "compliance_credential_max_age_days",
            self.compliance_credential_max_age_days,
            file.compliance_credential_max_age_days,
        ) {
            anyhow::ensure!(
                (1..=3650).contains(&days),
                "{from}: the credential rotation policy must be 1 to 3650 days"
            );
            engine.compliance.credential_max_age = Duration::from_secs(days * 86_400);
        }
        Ok(Resolved { listen, log_json: log_format == "json", engine, http, warnings })
    }
}

#[cfg(test)]
mod tests;
