//! The [`Engine`] handle: starts the actor tree over the configured store and
//! coordinator, and offers every operation as a typed async method. Actor references and
//! message types stay private; the handle reaches actors through supervisor-kept slots.

mod backends;
mod operations;

pub(crate) use backends::Store;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use uuid::Uuid;

use crate::config::EngineConfig;
use crate::families::analytics::actor as aggregator;
use crate::families::analytics::actor::Analytics;
use crate::families::analytics::rules::Metric;
use crate::families::audit::chain::Event;
use crate::families::audit::writer as audit_writer;
use crate::families::audit::writer::AuditLog;
use crate::families::audit::Commit;
use crate::families::delegation::actor::{DelegationChains, Delegations};
use crate::families::directory::secrets::{self, SecretHasher};
use crate::families::federation::actor::{Federation, JwksCaches};
use crate::families::revocation::actor as revocations;
use crate::families::revocation::actor::Revocations;
use crate::families::signing::actor as key_manager;
use crate::families::signing::actor::Keys;
use crate::families::tiers::counters::{Quota, QuotaState, TierCounters};
use crate::families::webhooks::actor::{self as webhook_queues, DeliveryQueues, Webhooks};
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{Millis, Outcome};
use crate::kernel::policy::Policy;
use crate::runtime::actor::Children;
use crate::runtime::cache::Epoch;
use crate::runtime::cache_keeper;
use crate::runtime::coord::Coordinator;
use crate::runtime::events::{ClusterEvent, Listeners};
use crate::runtime::keyed::{self, KeyedConfig, KeyedMetrics};
use crate::runtime::keystore::Keystore;
use crate::runtime::metrics::EngineMetrics;
use crate::runtime::supervisor;
use crate::store::Change;

pub use crate::families::analytics::handle::AnalyticsQuery;
pub use crate::families::billing::handle::{CheckoutParams, StripeOutcome, SubscriptionView};
pub use crate::families::clients::{Client, ClientPatch, ClientStatus, IssuedClient, NewClient};
pub use crate::families::compliance::handle::{AgentCompliance, REPORT_TTL};
pub use crate::families::delegation::handle::DelegationQuery;
pub use crate::families::dids::handle::{AddedDidKey, AgentDid, NewDidKey, Resolution, MAX_DID_KEYS};
pub use crate::families::federation::handle::{FederatedVerification, JwksStatus, PartnerView};
pub use crate::families::resources::{NewResourceServer, ResourceServer, ResourceServerPatch};
pub use crate::families::tokens::handle::{
    AuthenticatedClient, ClientAuth, DpopPresentation, Introspector, OAuthError, TokenRequest,
    ASSERTION_TYPE_JWT_BEARER, GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER, GRANT_TOKEN_EXCHANGE,
    TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT,
};
pub use crate::families::users::{NewUser, User, UserPatch, UserQuery, UserStatus};
pub use operations::{Liveness, Readiness, READY_CHECK_TIMEOUT};

pub use crate::kernel::model::Caller;

/// One management call: the caller and the request id its audit events carry.
#[derive(Debug, Clone)]
pub struct Call {
    pub caller: Arc<Caller>,
    pub request_id: Option<String>,
}

/// Where an unauthenticated request (at the OAuth endpoints) came from: its request id
/// for the audit trail, and its peer address for the per-address lockout.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub request_id: Option<String>,
    /// The TCP peer (forwarding headers are not trusted).
    pub addr: Option<std::net::IpAddr>,
}

/// What the engine handle holds: its configuration and ports, and a handle on each
/// registered actor family. Actors never see it; each is started with its own `Deps`.
pub(crate) struct Shared {
    pub config: EngineConfig,
    pub store: Arc<dyn Store>,
    pub coord: Arc<dyn Coordinator>,
    /// What other families require of a token on every use.
    pub token_conditions: Vec<crate::families::tokens::bearer::TokenCondition>,
    /// The tokens family's credential and Bearer caches.
    pub token_caches: Arc<crate::families::tokens::cache::TokenCaches>,
    /// The directory's cached agents (as authentication needs them) and agent records.
    pub agent_entries: Arc<crate::families::directory::cache::AgentEntries>,
    pub agent_records: Arc<crate::families::directory::cache::AgentRecords>,
    /// The DIDs' rendered documents.
    pub did_documents: Arc<crate::families::dids::cache::DidDocuments>,
    /// What the families do with cluster events.
    pub listeners: Arc<Listeners>,
    pub policy: Policy,
    pub metrics: EngineMetrics,
    pub hasher: SecretHasher,
    pub keys: Keys,
    pub audit: AuditLog,
    /// The words audit records share (a cache of the store's dictionary).
    pub audit_words: Arc<crate::families::audit::record::Dictionary>,
    /// What archives audit events past their retention (its actor runs a round every
    /// `archive.every`).
    pub archiver: crate::families::audit::archive::Deps,
    pub revocations: Revocations,
    pub quota: Quota,
    pub analytics: Analytics,
    pub delegations: Delegations,
    pub webhooks: Webhooks,
    pub federation: Federation,
    /// Stripe billing, when configured.
    pub billing: Option<crate::families::billing::handle::Billing>,
    /// Seals webhook secrets (as it seals signing keys).
    pub keystore: Arc<Keystore>,
    /// The root key of biscuit delegations.
    pub biscuit: Arc<crate::families::delegation::biscuit::BiscuitKeys>,
    /// Hashes and verifies people's passwords (argon2id), a bounded number at a time.
    pub passwords: crate::families::users::password::Hasher,
    /// Brute-force protection at the token endpoint (and at sign-in).
    pub lockout: crate::families::tokens::limits::Lockout,
    /// The same lockout, keyed by the peer address.
    pub address_lockout: crate::families::tokens::limits::Lockout,
    /// Which refusals naming no organization are written to the audit trail.
    pub refusals: crate::families::tokens::limits::RefusalSampler,
    /// Each client's token rate, by tier.
    pub client_rates: crate::families::tokens::limits::ClientRates,
    /// Every registered child of the root supervisor.
    pub children: Arc<Children>,
    /// What removes what has ended (its actor runs a round every `janitor.every`).
    pub janitor: crate::runtime::janitor::Janitor,
}

impl Shared {
    pub fn now_ms(&self) -> Millis {
        self.config.clock.now_ms()
    }
}

impl Engine {
    /// Seconds of leeway on the times of what others sign.
    pub(crate) fn clock_skew(&self) -> i64 {
        i64::try_from(self.shared.config.clock_skew.as_secs()).unwrap_or(i64::MAX / 4)
    }
}

/// The engine handle. Cheap to clone; every clone drives the same engine.
#[derive(Clone)]
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
    pub(crate) supervisor: ActorRef<supervisor::Msg>,
}

impl Engine {
    /// Apply the store's migrations and return the schema version, without starting.
    pub async fn migrate(config: &EngineConfig) -> Result<u32> {
        Ok(backends::open_store(config).await?.1)
    }

    /// Open the store (migrating it), connect the coordinator and start the actor tree.
    pub async fn start(config: EngineConfig) -> Result<Engine> {
        let (store, _) = backends::open_store(&config).await?;
        let audit_words = Arc::new(crate::families::audit::record::Dictionary::default());
        crate::families::audit::upgrade::convert(store.as_ref(), &audit_words).await?;
        let (coord, ledger) = backends::connect_coordinator(&config, &store).await?;
        let hash_key = match &config.secret_hash_key {
            Some(k) => k.clone(),
            None => store.setting_or_insert("secret_hash_key", &secrets::new_hash_key()?).await?,
        };
        let keystore =
            Arc::new(Keystore::open(&config.data_dir, config.master_key.as_deref(), config.vault.as_ref()).await?);
        let biscuit = Arc::new(crate::families::delegation::root_key::load_or_create(store.as_ref(), &keystore).await?);
        let metrics = EngineMetrics::new()?;
        // One epoch for every cache: an invalidation anywhere voids fills in flight.
        let epoch = Arc::new(Epoch::default());
        let agent_limit = crate::families::directory::cache::AGENT_LIMIT;
        let agent_entries = Arc::new(crate::runtime::cache::EpochMap::new(epoch.clone(), agent_limit));
        let agent_records = Arc::new(crate::runtime::cache::EpochMap::new(epoch.clone(), agent_limit));
        let token_caches =
            Arc::new(crate::families::tokens::cache::TokenCaches::new(epoch.clone(), agent_entries.clone()));
        let did_documents =
            Arc::new(crate::runtime::cache::EpochMap::new(epoch, crate::families::dids::cache::DOCUMENT_LIMIT));
        let (clock, timeout) = (config.clock.clone(), config.call_timeout);

        // The actor families, in start order: one registration each.
        let mut children = Children::default();
        let keys = children.register(key_manager::child(
            key_manager::Deps {
                store: store.clone(),
                keystore: keystore.clone(),
                coord: coord.clone(),
                clock: clock.clone(),
                settings: config.key_settings(),
            },
            timeout,
        ));
        // The webhook dispatcher, once registered (its queues commit through the writer).
        let nudged: Arc<std::sync::OnceLock<Webhooks>> = Arc::default();
        let audit = children.register(audit_writer::child(
            audit_writer::Deps {
                store: store.clone(),
                dict: audit_words.clone(),
                coord: coord.clone(),
                metrics: metrics.clone(),
                batch_max: config.audit_batch_max,
                stale: vec![crate::families::compliance::REPORT_STALE],
                durable: vec![webhook_queues::nudge_when_durable(nudged.clone())],
            },
            timeout,
        ));
        let analytics = children.register(aggregator::child(aggregator::Deps {
            store: store.clone(),
            tally: Arc::default(),
            metrics: metrics.analytics.clone(),
            interval: config.analytics_flush,
        }));
        let revocations =
            children.register(revocations::child(revocations::Deps { store: store.clone(), clock: clock.clone() }));
        let keyed_metrics = KeyedMetrics::new(&metrics.registry)?;
        let leases = Arc::default();
        let counters = TierCounters {
            directory: store.clone(),
            ledger: ledger.clone(),
            tiers: config.tiers.clone(),
            clock: clock.clone(),
            leases: Arc::clone(&leases),
            metrics: metrics.quota.clone(),
        };
        let quota = Quota::new(
            children.register(keyed::child(
                counters,
                KeyedConfig { call_timeout: timeout, ..Default::default() },
                keyed_metrics.clone(),
            )),
            leases,
            ledger,
            clock.clone(),
        );
        let (snapshots, pending) = (Arc::default(), Arc::default());
        let chains = DelegationChains {
            store: store.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
            snapshots: Arc::clone(&snapshots),
            pending: Arc::clone(&pending),
        };
        let delegations = Delegations::new(
            children.register(keyed::child(
                chains,
                KeyedConfig { call_timeout: timeout, ..Default::default() },
                keyed_metrics.clone(),
            )),
            snapshots,
            pending,
        );
        let queued = Arc::default();
        let http = crate::runtime::outbound::reqwest::ReqwestClient::guarded(
            config.webhooks.destinations,
            config.resolver.clone(),
        )?;
        let queues = DeliveryQueues {
            webhooks: store.clone(),
            trail: store.clone(),
            words: audit_words.clone(),
            audit: audit.clone(),
            keystore: keystore.clone(),
            http: Arc::new(http),
            resolver: config.resolver.clone(),
            clock: clock.clone(),
            settings: config.webhooks,
            metrics: metrics.webhooks.clone(),
            queued: Arc::clone(&queued),
            depths: Arc::default(),
        };
        let queue_host = children.register(keyed::child(
            queues,
            KeyedConfig { call_timeout: timeout, ..Default::default() },
            keyed_metrics.clone(),
        ));
        let webhooks = children.register(webhook_queues::dispatcher(
            queue_host,
            queued,
            webhook_queues::DispatchDeps {
                webhooks: store.clone(),
                clock: clock.clone(),
                settings: config.webhooks,
                node: Uuid::now_v7().to_string(),
                stopping: Arc::default(),
            },
        ));
        let _ = nudged.set(webhooks.clone());
        let registry: Arc<crate::families::federation::actor::Registry> = Arc::default();
        let jwks = JwksCaches {
            registry: registry.clone(),
            http: Arc::new(crate::runtime::outbound::reqwest::ReqwestClient::guarded(
                config.federation.destinations,
                config.resolver.clone(),
            )?),
            clock: clock.clone(),
            settings: config.federation,
            metrics: metrics.federation.clone(),
        };
        let federation = Federation::new(
            children.register(keyed::child(
                jwks,
                // Idle actors hold nothing (the snapshots are the registry's): stop them soon.
                KeyedConfig { call_timeout: timeout, idle_after: Duration::from_secs(60), ..Default::default() },
                keyed_metrics.clone(),
            )),
            registry,
            store.clone(),
            clock.clone(),
            config.federation,
            metrics.federation.clone(),
        );
        federation.reload().await?;
        let billing = match &config.billing {
            #[cfg(not(feature = "stripe"))]
            Some(_) => return Err(backends::not_built("billing", "Stripe billing", "stripe")),
            #[cfg(feature = "stripe")]
            Some(settings) => {
                let api = crate::families::billing::stripe::StripeApi::new(
                    &settings.secret_key,
                    settings.api_base.as_deref(),
                )?;
                children.register(crate::families::billing::actor::child(crate::families::billing::actor::Deps {
                    subscriptions: store.clone(),
                    directory: store.clone(),
                    audit: audit.clone(),
                    clock: clock.clone(),
                    every: settings.sweep_every,
                }));
                Some(crate::families::billing::handle::Billing { settings: settings.clone(), api: Arc::new(api) })
            }
            None => None,
        };
        // What has ended is removed by the janitor, each family's sweep registered here.
        let janitor = crate::runtime::janitor::Janitor::new(
            vec![
                revocations::sweep(store.clone()),
                webhook_queues::sweep(store.clone(), config.webhooks.delivery_retention),
                cache_keeper::feed_sweep(store.clone()),
                aggregator::sweep(store.clone(), config.analytics_detail),
            ],
            clock.clone(),
            config.janitor,
            &metrics.registry,
        )?;
        children.register(crate::runtime::janitor::child(janitor.clone()));
        children.register(crate::families::audit::checkpointer::child(crate::families::audit::checkpointer::Deps {
            store: store.clone(),
            keys: keys.clone(),
            clock: clock.clone(),
            issuer: config.issuer.clone(),
            settings: config.checkpoints,
            push: match &config.checkpoint_webhook {
                Some(url) => Some(crate::families::audit::checkpointer::Push {
                    url: url.clone(),
                    http: Arc::new(crate::runtime::outbound::reqwest::ReqwestClient::guarded(
                        config.webhooks.destinations,
                        config.resolver.clone(),
                    )?),
                    resolver: config.resolver.clone(),
                    destinations: config.webhooks.destinations,
                    pushes: metrics.audit_checkpoint_pushes.clone(),
                }),
                None => None,
            },
        }));
        let archiver = crate::families::audit::archive::Deps {
            store: store.clone(),
            dict: audit_words.clone(),
            keys: keys.clone(),
            clock: clock.clone(),
            issuer: config.issuer.clone(),
            tiers: config.tiers.clone(),
            settings: config.archive.clone(),
            archived: metrics.audit_archived.clone(),
            tidied: Default::default(),
        };
        if config.archive.dir.is_some() {
            children.register(crate::families::audit::archive::child(archiver.clone()));
        }
        // What each family does with cluster events, registered by the family.
        let mut listeners = Listeners::default();
        crate::families::directory::cache::listen(&agent_entries, &agent_records, &mut listeners);
        crate::families::tokens::cache::listen(&token_caches, &mut listeners);
        crate::families::dids::cache::listen(&did_documents, &mut listeners);
        crate::families::revocation::actor::listen(&revocations, &mut listeners);
        crate::families::signing::actor::listen(&keys, &mut listeners);
        crate::families::tiers::counters::listen(&quota, &mut listeners);
        crate::families::delegation::actor::listen(&delegations, &mut listeners);
        crate::families::federation::actor::listen(&federation, &mut listeners);
        let listeners = Arc::new(listeners);
        // The keeper hands cluster events to the families, so it starts last.
        children.register(cache_keeper::child(cache_keeper::Deps {
            store: store.clone(),
            coord: coord.clone(),
            clock,
            listeners: listeners.clone(),
            feed_poll: config.feed_poll,
        }));

        let children = Arc::new(children);
        let args = supervisor::Args { children: children.clone(), restarts: metrics.actor_restarts.clone() };
        let shared = Arc::new(Shared {
            hasher: SecretHasher::new(&hash_key),
            policy: Policy::load()?,
            metrics,
            token_conditions: vec![crate::families::delegation::handle::chain_stands],
            token_caches,
            agent_entries,
            agent_records,
            did_documents,
            listeners,
            keys,
            audit,
            audit_words,
            archiver,
            revocations,
            quota,
            analytics,
            delegations,
            webhooks,
            federation,
            billing,
            keystore,
            biscuit,
            passwords: crate::families::users::password::Hasher::new(config.passwords)?,
            lockout: crate::families::tokens::limits::Lockout::new(
                config.lockout_failures,
                config.lockout_window,
                config.clock.clone(),
            ),
            address_lockout: crate::families::tokens::limits::Lockout::new(
                config.lockout_address_failures,
                config.lockout_window,
                config.clock.clone(),
            ),
            refusals: crate::families::tokens::limits::RefusalSampler::new(config.lockout_window, config.clock.clone()),
            client_rates: crate::families::tokens::limits::ClientRates::new(&config.tiers, &config.clock),
            children,
            janitor,
            config,
            store,
            coord,
        });
        let (supervisor, _) = Actor::spawn(None, supervisor::EngineSupervisor, args)
            .await
            .map_err(|e| EngineError::Unavailable(format!("engine failed to start: {e}")))?;
        let engine = Engine { shared, supervisor };
        engine.report_unbounded_partners();
        Ok(engine)
    }

    /// Graceful shutdown: drain every family that registered a drain (the audit writer
    /// writes every pending event, the analytics aggregator its counts), in registration
    /// order, then stop the actor tree.
    pub async fn shutdown(&self) {
        let within = self.shared.config.call_timeout;
        for child in self.shared.children.iter() {
            if !child.drain(within).await {
                tracing::error!(actor = child.name, "did not drain before shutdown");
            }
        }
        let _ = self.supervisor.stop_and_wait(None, Some(Duration::from_secs(15))).await;
    }

    /// The registry holding the engine's metrics; the front-end adds its own to it.
    pub fn metrics_registry(&self) -> &prometheus::Registry {
        &self.shared.metrics.registry
    }

    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Every scope with management meaning, with its description.
    pub fn scope_catalog(&self) -> impl Iterator<Item = (&str, &str)> {
        self.shared.policy.catalog.scopes.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Append an audit event and wait until it is durable.
    pub(crate) async fn audit(&self, event: Event) -> Result<()> {
        self.commit(event, Vec::new(), None).await
    }

    /// Commit `changes` with the audit `event` that records them — in one transaction, so
    /// neither is ever durable without the other — and return once both are. What every
    /// node must apply (`announce`) is recorded in the store's change feed in the same
    /// transaction, applied here at once, and announced through the coordinator. That
    /// announcement is only the fast path: a node that misses it (Redis down, a lost
    /// subscription) reads the feed within `feed_poll`, so a failed announcement never
    /// fails (or half-fails) the request.
    pub(crate) async fn commit(
        &self,
        event: Event,
        changes: Vec<Box<dyn Change>>,
        announce: Option<ClusterEvent>,
    ) -> Result<()> {
        let commit = Commit { event: event.seal(), changes, announce: announce.clone() };
        self.shared.audit.append(commit).await?;
        if let Some(event) = announce {
            // What the families registered: the change counts here before it is answered.
            self.shared.listeners.committed(&event).await?;
            self.announce(event);
        }
        Ok(())
    }

    /// Announce a committed change to the other nodes, in the background (the change
    /// feed is the guarantee; this is the fast path).
    pub(crate) fn announce(&self, event: ClusterEvent) {
        let coord = self.shared.coord.clone();
        tokio::spawn(async move {
            if let Err(e) = coord.publish(&event).await {
                tracing::warn!(error = %e, "announcement not published; other nodes will read it from the change feed");
            }
        });
    }

    /// Count a management call against its organization's daily quota: the HTTP front-end
    /// meters every authenticated management request. `QuotaExceeded` past the limit.
    pub async fn meter(&self, call: &Call) -> Result<QuotaState> {
        let (org_id, agent_id) = (call.caller.org_id, call.caller.agent_id);
        match self.shared.quota.take(org_id).await {
            Ok(state) => {
                self.count(org_id, agent_id, Metric::ApiCalls);
                Ok(state)
            }
            Err(e) => {
                if matches!(e, EngineError::QuotaExceeded { .. }) {
                    self.count(org_id, agent_id, Metric::QuotaRejections);
                }
                Err(self.quota_refusal(e))
            }
        }
    }

    /// Count one `metric` for an agent today, in the usage analytics.
    pub(crate) fn count(&self, org_id: Uuid, agent_id: Uuid, metric: Metric) {
        let day = crate::families::analytics::rules::day_of(self.shared.now_ms());
        self.shared.analytics.count(org_id, agent_id, day, metric);
    }

    /// Count a refusal by the daily quota in `agentidp_limit_rejections_total`.
    pub(crate) fn quota_refusal(&self, e: EngineError) -> EngineError {
        if let EngineError::QuotaExceeded { tier, .. } = &e {
            self.rejected(tier.as_str(), "daily_quota");
        }
        e
    }

    /// Audit a refusal: one that names an organization always; one that names none (an
    /// unknown client, an assertion no partner signed — anyone can send those) once per
    /// action, address and window, the rest only counted.
    pub(crate) async fn audit_refusal(&self, event: Event, address: Option<&str>) -> Result<()> {
        if event.org_id.is_some() {
            return self.audit(event).await;
        }
        self.audit_sampled(event, address).await
    }

    /// Write one refusal of this action from this address a window (the rest counted):
    /// for refusals anyone can make at will, such as sign-ins to emails no one has.
    pub(crate) async fn audit_sampled(&self, event: Event, address: Option<&str>) -> Result<()> {
        let metric = &self.shared.metrics.anonymous_refusals;
        let key = format!("{} {}", event.action, address.unwrap_or("-"));
        match self.shared.refusals.admit(&key) {
            Some(unwritten) => {
                metric.with_label_values(&[&event.action, "recorded"]).inc();
                let mut event = event;
                if let Some(fields) = event.detail.as_object_mut().filter(|_| unwritten > 0) {
                    fields.insert("unwritten_before".into(), unwritten.into());
                }
                self.audit(event).await
            }
            None => {
                metric.with_label_values(&[&event.action, "sampled_out"]).inc();
                Ok(())
            }
        }
    }

    /// Count a refusal by a tier's limits.
    pub(crate) fn rejected(&self, tier: &str, reason: &str) {
        self.shared.metrics.limit_rejections.with_label_values(&[tier, reason]).inc();
    }

    /// A new audit event stamped with the current time.
    pub(crate) fn event(&self, org_id: Option<Uuid>, actor: String, action: &str, outcome: Outcome) -> Event {
        Event::new(self.shared.now_ms(), org_id, actor, action, outcome)
    }

    /// The audit event of a successful management act by `call`.
    pub(crate) fn call_event(
        &self,
        call: &Call,
        org_id: Uuid,
        action: &str,
        target: impl ToString,
        detail: serde_json::Value,
    ) -> Event {
        self.event(Some(org_id), call.caller.agent_id.to_string(), action, Outcome::Success)
            .target(target)
            .request_id(call.request_id.clone())
            .detail(&detail)
    }

    /// Check `operation` against the policy for a target in `target_org`.
    pub(crate) fn authorize(&self, call: &Call, operation: &'static str, target_org: Uuid) -> Result<()> {
        self.shared.policy.authorize(operation, &call.caller.scope, target_org == call.caller.org_id)
    }
}
