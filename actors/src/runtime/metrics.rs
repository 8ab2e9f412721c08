//! Engine metrics, registered in a registry the front-end extends with its own and
//! serves at `/metrics`.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::kernel::error::{EngineError, Result};

#[derive(Clone)]
pub struct EngineMetrics {
    pub registry: Registry,
    pub tokens_issued: IntCounterVec,
    pub client_auth_failures: IntCounter,
    pub actor_restarts: IntCounterVec,
    pub audit_events: IntCounter,
    /// Audit events written to archive segments and removed from the store.
    pub audit_archived: IntCounter,
    /// Checkpoints sent to `--audit-checkpoint-webhook`, by outcome.
    pub audit_checkpoint_pushes: IntCounterVec,
    pub audit_batch_size: Histogram,
    /// Seconds a group commit took, flush to disk included.
    pub audit_commit_seconds: Histogram,
    pub token_cache_hits: IntCounter,
    /// Refusals that name no organization, by action, and whether their audit event was
    /// written (`recorded`) or only counted (`sampled_out`): one per address and window
    /// is written, so no anonymous flood makes the store grow.
    pub anonymous_refusals: IntCounterVec,
    /// Calls refused by a tier's limits, by tier and reason (`daily_quota`, `token_rate`).
    pub limit_rejections: IntCounterVec,
    /// Client authentications refused by the brute-force lockout, by what is locked
    /// (`client_id` or `address`). Not a tier's limit: the lockout is decided before the
    /// client — and so its organization's tier — is looked up, and an address has none.
    pub lockout_refusals: IntCounterVec,
    pub quota: QuotaMetrics,
    pub analytics: AnalyticsMetrics,
    pub webhooks: WebhookMetrics,
    pub federation: FederationMetrics,
}

/// What the JwksCache actors and partner JWT checks do.
#[derive(Clone)]
pub struct FederationMetrics {
    /// Fetches of partners' JWKS documents, by outcome (`ok`, `error`) and why they were
    /// made (`first`, `scheduled`, `unknown_kid`, `forced`).
    pub fetches: IntCounterVec,
    /// Refetches for an unknown kid not made (`cooldown`, `global_cap`).
    pub refetches_skipped: IntCounterVec,
    /// Partner JWTs checked, by use (`grant`, `verify`) and outcome (`accepted`, `refused`).
    pub assertions: IntCounterVec,
}

/// The webhook deliveries' metrics.
#[derive(Clone)]
pub struct WebhookMetrics {
    /// Attempts by outcome: `delivered`, `retry` (failed, tried again later), `failed`
    /// (the schedule is spent, or 410), `refused` (the SSRF guard stopped it).
    pub attempts: IntCounterVec,
    /// Pending deliveries of the subscriptions this node drives.
    pub queue_depth: IntGauge,
    /// From the event's commit to its successful delivery.
    pub latency_seconds: Histogram,
    /// Subscriptions the engine disabled, by reason (`gone`, `failing`).
    pub disabled: IntCounterVec,
}

/// What the analytics aggregator's flushes do.
#[derive(Clone)]
pub struct AnalyticsMetrics {
    /// Rows (organization, agent, day, metric) written per flush.
    pub flush_rows: Histogram,
    /// Seconds one flush's transaction took.
    pub flush_seconds: Histogram,
    /// Flushes the store refused (their counts are kept for the next).
    pub flush_failures: IntCounter,
}

/// What the tier counters count.
#[derive(Clone)]
pub struct QuotaMetrics {
    /// Chunks the ledger granted to this node's quota leases.
    pub refills: IntCounter,
    /// Refills that found the ledger unreachable.
    pub ledger_unreachable: IntCounter,
    /// Calls a lease granted itself while the ledger was unreachable.
    pub outage_grants: IntCounter,
}

/// A histogram, registered.
fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Result<Histogram> {
    let histogram = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).map_err(reg_err)?;
    registry.register(Box::new(histogram.clone())).map_err(reg_err)?;
    Ok(histogram)
}

/// A counter, registered.
fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter> {
    let counter = IntCounter::new(name, help).map_err(reg_err)?;
    registry.register(Box::new(counter.clone())).map_err(reg_err)?;
    Ok(counter)
}

fn reg_err(e: prometheus::Error) -> EngineError {
    EngineError::internal(format!("metrics: {e}"))
}

impl EngineMetrics {
    pub fn new() -> Result<Self> {
        let registry = Registry::new_custom(Some("agentidp".into()), None).map_err(reg_err)?;
        let tokens_issued = IntCounterVec::new(
            Opts::new("tokens_issued_total", "Access tokens issued, by grant type"),
            &["grant_type"],
        )
        .map_err(reg_err)?;
        let client_auth_failures =
            IntCounter::new("client_auth_failures_total", "Failed client authentications at the token endpoint")
                .map_err(reg_err)?;
        let actor_restarts = IntCounterVec::new(
            Opts::new("actor_restarts_total", "Supervised actors restarted after a failure"),
            &["actor"],
        )
        .map_err(reg_err)?;
        let audit_events = IntCounter::new("audit_events_total", "Audit events made durable").map_err(reg_err)?;
        let audit_archived = IntCounter::new(
            "audit_archived_total",
            "Audit events archived past their retention and removed from the store",
        )
        .map_err(reg_err)?;
        let audit_batch_size = Histogram::with_opts(
            HistogramOpts::new("audit_batch_size", "Audit events per group commit")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]),
        )
        .map_err(reg_err)?;
        let audit_commit_seconds = Histogram::with_opts(
            HistogramOpts::new("audit_commit_seconds", "Time to commit and flush one audit batch")
                .buckets(vec![0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1]),
        )
        .map_err(reg_err)?;
        let token_cache_hits =
            IntCounter::new("bearer_cache_hits_total", "Management calls whose Bearer token was already verified")
                .map_err(reg_err)?;
        let anonymous_refusals = IntCounterVec::new(
            Opts::new(
                "anonymous_refusals_total",
                "Refusals naming no organization, by action and whether the audit event was written or sampled out",
            ),
            &["action", "audit"],
        )
        .map_err(reg_err)?;
        registry.register(Box::new(anonymous_refusals.clone())).map_err(reg_err)?;
        registry.register(Box::new(tokens_issued.clone())).map_err(reg_err)?;
        registry.register(Box::new(client_auth_failures.clone())).map_err(reg_err)?;
        registry.register(Box::new(actor_restarts.clone())).map_err(reg_err)?;
        registry.register(Box::new(audit_events.clone())).map_err(reg_err)?;
        registry.register(Box::new(audit_archived.clone())).map_err(reg_err)?;
        let audit_checkpoint_pushes = IntCounterVec::new(
            Opts::new("audit_checkpoint_pushes_total", "Checkpoints sent to the checkpoint webhook, by outcome"),
            &["outcome"],
        )
        .map_err(reg_err)?;
        registry.register(Box::new(audit_checkpoint_pushes.clone())).map_err(reg_err)?;
        registry.register(Box::new(audit_batch_size.clone())).map_err(reg_err)?;
        registry.register(Box::new(audit_commit_seconds.clone())).map_err(reg_err)?;
        registry.register(Box::new(token_cache_hits.clone())).map_err(reg_err)?;
        let limit_rejections = IntCounterVec::new(
            Opts::new("limit_rejections_total", "Calls refused by a tier's limits, by tier and reason"),
            &["tier", "reason"],
        )
        .map_err(reg_err)?;
        registry.register(Box::new(limit_rejections.clone())).map_err(reg_err)?;
        let lockout_refusals = IntCounterVec::new(
            Opts::new("lockout_refusals_total", "Client authentications refused by the brute-force lockout, by kind"),
            &["kind"],
        )
        .map_err(reg_err)?;
        registry.register(Box::new(lockout_refusals.clone())).map_err(reg_err)?;
        let quota = QuotaMetrics {
            refills: counter(&registry, "quota_lease_refills_total", "Chunks granted to this node's quota leases")?,
            ledger_unreachable: counter(
                &registry,
                "quota_ledger_unreachable_total",
                "Quota lease refills that found the ledger unreachable",
            )?,
            outage_grants: counter(
                &registry,
                "quota_outage_grants_total",
                "Calls a quota lease granted itself while the ledger was unreachable",
            )?,
        };
        let analytics = AnalyticsMetrics {
            flush_rows: histogram(
                &registry,
                "analytics_flush_rows",
                "Analytics rows written per flush",
                vec![1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0],
            )?,
            flush_seconds: histogram(
                &registry,
                "analytics_flush_seconds",
                "Time to write one analytics flush",
                vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
            )?,
            flush_failures: counter(
                &registry,
                "analytics_flush_failures_total",
                "Analytics flushes the store refused (kept for the next)",
            )?,
        };
        let attempts = IntCounterVec::new(
            Opts::new("webhook_attempts_total", "Webhook delivery attempts, by outcome"),
            &["outcome"],
        )
        .map_err(reg_err)?;
        let disabled = IntCounterVec::new(
            Opts::new("webhooks_disabled_total", "Webhook subscriptions the engine disabled, by reason"),
            &["reason"],
        )
        .map_err(reg_err)?;
        let queue_depth =
            IntGauge::new("webhook_queue_depth", "Pending deliveries of the subscriptions this node drives")
                .map_err(reg_err)?;
        registry.register(Box::new(attempts.clone())).map_err(reg_err)?;
        registry.register(Box::new(disabled.clone())).map_err(reg_err)?;
        registry.register(Box::new(queue_depth.clone())).map_err(reg_err)?;
        let webhooks = WebhookMetrics {
            attempts,
            queue_depth,
            disabled,
            latency_seconds: histogram(
                &registry,
                "webhook_delivery_latency_seconds",
                "From an event's commit to its successful delivery",
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0],
            )?,
        };
        let fetches = IntCounterVec::new(
            Opts::new("federation_jwks_fetches_total", "Fetches of partners' JWKS documents, by outcome and reason"),
            &["outcome", "reason"],
        )
        .map_err(reg_err)?;
        let refetches_skipped = IntCounterVec::new(
            Opts::new("federation_refetches_skipped_total", "Unknown-kid refetches not made, by why"),
            &["why"],
        )
        .map_err(reg_err)?;
        let assertions = IntCounterVec::new(
            Opts::new("federation_assertions_total", "Partner JWTs checked, by use and outcome"),
            &["use", "outcome"],
        )
        .map_err(reg_err)?;
        registry.register(Box::new(fetches.clone())).map_err(reg_err)?;
        registry.register(Box::new(refetches_skipped.clone())).map_err(reg_err)?;
        registry.register(Box::new(assertions.clone())).map_err(reg_err)?;
        let federation = FederationMetrics { fetches, refetches_skipped, assertions };
        Ok(EngineMetrics {
            federation,
            webhooks,
            analytics,
            limit_rejections,
            lockout_refusals,
            quota,
            registry,
            tokens_issued,
            client_auth_failures,
            actor_restarts,
            audit_events,
            audit_archived,
            audit_checkpoint_pushes,
            audit_batch_size,
            audit_commit_seconds,
            token_cache_hits,
            anonymous_refusals,
        })
    }
}
