//! Webhook deliveries: one DeliveryQueue actor per subscription (a keyed family), and
//! the WebhookDispatcher that decides which subscriptions this node drives.
//!
//! The audit trail is the outbox. A subscription's queue actor reads its organization's
//! audit chain after the subscription's `audit_cursor`, turns each event it wants into a
//! delivery, and stores the deliveries with the new cursor in one transaction (a
//! delivery per audit event at most, so a re-read after a crash adds nothing twice).
//! Then it delivers the pending ones in audit order, one at a time: the head of the
//! queue waits for its retry before anything behind it goes, so a receiver sees a
//! subscription's events in the order they happened. Outcomes are stored a batch at a
//! time (one transaction per batch of up to 32 attempts). A crash between an attempt and
//! its record means the attempt is made again, with the same `webhook-id`: duplicates
//! are possible, loss is not.
//!
//! The dispatcher ticks every `webhooks.poll`: it claims (or keeps) the lease of every
//! enabled subscription it can — a lease lasts `webhooks.lease`, so a dead node's
//! subscriptions move to a live node when their lease runs out — and asks each claimed
//! subscription's actor to pump. A commit on this node nudges its organization's
//! subscriptions at once; events committed on other nodes are found on the next tick.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::{DashMap, DashSet};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use uuid::Uuid;

use super::settings::WebhookSettings;
use crate::families::audit::chain::Event;
use crate::families::audit::writer::{AuditLog, OnDurable};
use crate::families::audit::Commit;
use crate::families::webhooks::rules::{self, Delivery, DeliveryStatus, Webhook};
use crate::families::webhooks::WebhookChange;
use crate::families::webhooks::{WebhookRecord, WebhookStore};
use crate::kernel::clock::Clock;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{Millis, Outcome};
use crate::runtime::actor::{ChildSpec, Slot};
use crate::runtime::keyed::{KeyedFamily, KeyedHost};
use crate::runtime::keystore::Keystore;
use crate::runtime::metrics::WebhookMetrics;
use crate::runtime::outbound::{HttpClient, OutboundRequest, Resolver};
use crate::store::SealedSecret;

/// Audit events read per page while deriving deliveries.
const DERIVE_PAGE: u32 = 200;
/// How often a cursor that moved without a delivery is stored.
const CURSOR_EVERY: Duration = Duration::from_secs(30);
/// Deliveries attempted per pump (the next pump goes on).
const PUMP_MAX: usize = 256;
/// Deliveries read, attempted and recorded together.
const BATCH: usize = 32;
/// Subscriptions one node claims per tick.
const CLAIM_MAX: u32 = 10_000;
/// The most response bytes read from a receiver (the body is not used).
const RESPONSE_CAP: usize = 64 * 1024;

/// The family: what each subscription's queue actor works with.
pub(crate) struct DeliveryQueues {
    pub webhooks: Arc<dyn WebhookStore>,
    /// The audit trail the deliveries are derived from (the outbox), and its words.
    pub trail: Arc<dyn crate::families::audit::AuditStore>,
    pub words: Arc<crate::families::audit::record::Dictionary>,
    pub audit: AuditLog,
    pub keystore: Arc<Keystore>,
    pub http: Arc<dyn HttpClient>,
    /// Every delivery re-resolves its host and checks every address (a name whose
    /// answer changed to a private address is refused before anything is sent).
    pub resolver: Arc<dyn Resolver>,
    pub clock: Arc<dyn Clock>,
    pub settings: WebhookSettings,
    pub metrics: WebhookMetrics,
    /// Subscriptions with a pump asked for and not begun (a burst of asks is one pump).
    pub queued: Arc<DashSet<Uuid>>,
    /// Each driven subscription's pending deliveries (the queue-depth gauge is the sum).
    pub depths: Arc<DashMap<Uuid, u64>>,
}

pub(crate) enum Msg {
    /// Derive new deliveries from the audit chain and deliver what is due.
    Pump,
}

/// A queue actor's state: the signing keys it has unsealed, by kid, and how far it has
/// read its organization's chain (which may be ahead of the stored cursor).
#[derive(Default)]
pub(crate) struct QueueState {
    keys: HashMap<String, Vec<u8>>,
    cursor: Option<i64>,
    cursor_stored: Option<Instant>,
}

/// What one attempt came to.
struct Attempt {
    status: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
    latency_ms: i64,
}

impl DeliveryQueues {
    async fn key(&self, state: &mut QueueState, sealed: &SealedSecret) -> Result<Vec<u8>> {
        if let Some(key) = state.keys.get(&sealed.kid) {
            return Ok(key.clone());
        }
        let secret = self.keystore.unseal_bytes(&sealed.kid, &sealed.sealed, sealed.key_ref.as_deref()).await?;
        let key = std::str::from_utf8(&secret)
            .ok()
            .and_then(rules::secret_key)
            .ok_or_else(|| EngineError::internal(format!("webhook secret {} is malformed", sealed.kid)))?;
        state.keys.insert(sealed.kid.clone(), key.clone());
        Ok(key)
    }

    /// The keys a delivery is signed with now: the current one, and the previous one
    /// during its overlap.
    async fn signing_keys(&self, state: &mut QueueState, record: &WebhookRecord, now: Millis) -> Result<Vec<Vec<u8>>> {
        let mut keys = vec![self.key(state, &record.secret).await?];
        if let Some((previous, until)) = &record.previous {
            if now < *until {
                keys.push(self.key(state, previous).await?);
            }
        }
        Ok(keys)
    }

    /// Turn the audit events after the cursor into deliveries, page by page. Only the
    /// actions the subscription wants are read; the rest of the chain (token issuance
    /// above all) is stepped over in the store. A cursor that moved without a delivery is
    /// written at most every `CURSOR_EVERY` (a crash re-reads from the stored one, and
    /// finds nothing new to queue).
    async fn derive(&self, state: &mut QueueState, record: &WebhookRecord) -> Result<()> {
        let webhook = &record.webhook;
        let actions: Vec<&str> =
            rules::EVENT_TYPES.iter().filter(|t| webhook.wants(t.name)).map(|t| t.action).collect();
        let mut cursor = state.cursor.unwrap_or(record.audit_cursor).max(record.audit_cursor);
        let trail = crate::families::audit::read::Reader { store: self.trail.as_ref(), dict: &self.words };
        loop {
            let (events, reach) = trail.selected_after(webhook.org_id, cursor, &actions, DERIVE_PAGE).await?;
            let now = self.clock.now_ms();
            let deliveries: Vec<Delivery> =
                events.iter().filter_map(|(seq, e)| rules::derive(webhook, *seq, e, now)).collect();
            let stale = state.cursor_stored.is_none_or(|at| at.elapsed() >= CURSOR_EVERY);
            if !deliveries.is_empty() || (reach > record.audit_cursor && stale) {
                self.webhooks.enqueue_deliveries(webhook.id, deliveries, reach).await?;
                state.cursor_stored = Some(crate::kernel::clock::monotonic());
            }
            cursor = reach;
            state.cursor = Some(cursor);
            if events.len() < DERIVE_PAGE as usize {
                return Ok(());
            }
        }
    }

    async fn attempt(&self, webhook: &Webhook, keys: &[Vec<u8>], delivery: &Delivery) -> Attempt {
        let now = self.clock.now_ms();
        let timestamp = now / 1000;
        let id = delivery.id.to_string();
        let signature: Vec<String> =
            keys.iter().map(|k| rules::sign(k, &id, timestamp, delivery.payload.as_bytes())).collect();
        let mut request = OutboundRequest::post(&webhook.url, delivery.payload.clone().into_bytes())
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature.join(" "));
        request.timeout = self.settings.timeout;
        request.max_response_bytes = RESPONSE_CAP;
        let started = crate::kernel::clock::monotonic();
        let destinations = self.settings.destinations;
        let outcome =
            match crate::runtime::outbound::check_destination(destinations, self.resolver.as_ref(), &webhook.url).await
            {
                Ok(()) => self.http.send(request).await,
                Err(why) => {
                    Err(EngineError::Unavailable(format!("outbound request to {} refused: {why}", webhook.url)))
                }
            };
        let latency_ms = started.elapsed().as_millis() as i64;
        match outcome {
            Ok(response) => Attempt {
                status: Some(response.status),
                error: (!(200..300).contains(&response.status))
                    .then(|| format!("the receiver answered {}", response.status)),
                retry_after: response.header("retry-after").and_then(|v| rules::parse_retry_after(v, now)),
                latency_ms,
            },
            Err(e) => Attempt { status: None, error: Some(e.to_string()), retry_after: None, latency_ms },
        }
    }

    /// Deliver the due head of the queue, and what follows it, until one must wait.
    /// Attempts go out one at a time, in order; their outcomes are stored a batch at a
    /// time (one transaction, so one fsync, per batch rather than per delivery) — a crash
    /// before the batch is stored repeats its attempts, with the same ids.
    async fn deliver(&self, state: &mut QueueState, record: &WebhookRecord) -> Result<()> {
        let id = record.webhook.id;
        let mut attempted = 0;
        while attempted < PUMP_MAX {
            let batch = self.webhooks.pending_deliveries(id, BATCH as u32).await?;
            let full = batch.len() == BATCH;
            let (mut done, mut wait, mut gone, mut last_failed) =
                (Vec::with_capacity(batch.len()), false, false, false);
            for mut delivery in batch {
                let now = self.clock.now_ms();
                if delivery.next_attempt_at.is_some_and(|at| at > now) {
                    wait = true;
                    break;
                }
                let keys = self.signing_keys(state, record, now).await?;
                let attempt = self.attempt(&record.webhook, &keys, &delivery).await;
                self.settle(&mut delivery, &attempt);
                last_failed = attempt.error.is_some();
                gone = attempt.status == Some(410);
                let pending = delivery.status == DeliveryStatus::Pending;
                done.push(delivery);
                if gone || pending {
                    wait = true;
                    break;
                }
            }
            if done.is_empty() {
                break;
            }
            let now = self.clock.now_ms();
            let failing_since = self.webhooks.record_attempts(&done, last_failed, now).await?;
            if gone {
                return self.disable(&record.webhook, "gone", "the receiver answered 410 Gone").await;
            }
            if let Some(since) = failing_since {
                if now - since >= self.settings.disable_after.as_millis() as i64 {
                    let days = self.settings.disable_after.as_secs_f64() / 86_400.0;
                    let why = format!("every delivery attempt failed for {days:.1} days");
                    return self.disable(&record.webhook, "failing", &why).await;
                }
            }
            attempted += done.len();
            if wait || !full {
                break;
            }
        }
        Ok(())
    }

    /// Record an attempt's outcome on its delivery: delivered, due again later, or failed
    /// for good (the schedule spent, or 410).
    fn settle(&self, delivery: &mut Delivery, attempt: &Attempt) {
        let now = self.clock.now_ms();
        let gone = attempt.status == Some(410);
        delivery.attempts += 1;
        delivery.response_status = attempt.status;
        delivery.latency_ms = Some(attempt.latency_ms);
        delivery.last_error = attempt.error.clone();
        let outcome = if attempt.error.is_none() {
            delivery.status = DeliveryStatus::Delivered;
            delivery.delivered_at = Some(now);
            delivery.next_attempt_at = None;
            self.metrics.latency_seconds.observe((now - delivery.created_at).max(0) as f64 / 1000.0);
            "delivered"
        } else {
            let retry = (!gone).then(|| rules::next_retry(delivery.attempts, jitter(), attempt.retry_after));
            match retry.flatten() {
                Some(wait) => {
                    delivery.next_attempt_at = Some(now + wait.as_millis() as i64);
                    "retry"
                }
                None => {
                    delivery.status = DeliveryStatus::Failed;
                    delivery.next_attempt_at = None;
                    "failed"
                }
            }
        };
        let refused = attempt.error.as_deref().is_some_and(|e| e.contains(" refused: "));
        self.metrics.attempts.with_label_values(&[if refused { "refused" } else { outcome }]).inc();
    }

    /// Turn the subscription off, with its audit event (`webhook.disable`, which the
    /// organization's other subscriptions receive as `webhook.disabled`).
    async fn disable(&self, webhook: &Webhook, reason: &'static str, why: &str) -> Result<()> {
        let now = self.clock.now_ms();
        let mut off = webhook.clone();
        off.enabled = false;
        off.disabled_reason = Some(why.to_string());
        off.updated_at = now;
        let detail = serde_json::json!({"reason": why, "url": webhook.url});
        let event = Event::new(now, Some(webhook.org_id), "agentidp".into(), "webhook.disable", Outcome::Success)
            .target(webhook.id)
            .detail(&detail);
        let commit =
            Commit { event: event.seal(), changes: vec![WebhookChange::UpdateWebhook(off).into()], announce: None };
        self.audit.append(commit).await?;
        self.metrics.disabled.with_label_values(&[reason]).inc();
        tracing::warn!(webhook_id = %webhook.id, url = %webhook.url, reason = why, "webhook subscription disabled");
        Ok(())
    }

    async fn pump(&self, id: Uuid, state: &mut QueueState) -> Result<()> {
        let Some(record) = self.webhooks.webhook(None, id).await? else {
            self.depths.remove(&id);
            return Ok(());
        };
        if !record.webhook.enabled {
            self.depths.remove(&id);
            return Ok(());
        }
        self.derive(state, &record).await?;
        self.deliver(state, &record).await?;
        self.depths.insert(id, self.webhooks.queue_depth(id).await?);
        self.metrics.queue_depth.set(self.depths.iter().map(|d| *d.value() as i64).sum());
        Ok(())
    }
}

/// In [0, 1): spreads retries.
fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[async_trait]
impl KeyedFamily for DeliveryQueues {
    const NAME: &'static str = "webhooks";
    type Key = Uuid;
    type Msg = Msg;
    type State = QueueState;

    async fn start(&self, _: &Uuid) -> Result<QueueState> {
        Ok(QueueState::default())
    }

    async fn handle(&self, id: &Uuid, state: &mut QueueState, msg: Msg) -> Result<()> {
        match msg {
            Msg::Pump => {
                self.queued.remove(id);
                // A store or keystore that is down is not this subscription's failure: the
                // next tick pumps again.
                if let Err(e) = self.pump(*id, state).await {
                    tracing::warn!(webhook_id = %id, error = %e, "webhook queue not pumped");
                }
            }
        }
        Ok(())
    }
}

/// The engine's handle on the webhook queues.
/// The audit writer's hook: once an event that is a webhook event is durable, the
/// organization's subscriptions this node drives deliver it now (the others' nodes find
/// it on their next tick). `target` is set once the dispatcher is registered (the
/// writer starts first: the queues commit through it).
pub(crate) fn nudge_when_durable(target: Arc<std::sync::OnceLock<Webhooks>>) -> OnDurable {
    OnDurable {
        action: |action| rules::EVENT_TYPES.iter().any(|t| t.action == action),
        run: Arc::new(move |org_id| {
            if let Some(webhooks) = target.get() {
                webhooks.nudge(org_id);
            }
        }),
    }
}

#[derive(Clone)]
pub(crate) struct Webhooks {
    host: KeyedHost<DeliveryQueues>,
    queued: Arc<DashSet<Uuid>>,
    dispatcher: Arc<Slot<DispatchMsg>>,
}

impl Webhooks {
    /// Ask `id`'s queue to pump, unless a pump is already asked for.
    fn pump(host: &KeyedHost<DeliveryQueues>, queued: &DashSet<Uuid>, id: Uuid) {
        if queued.insert(id) {
            let host = host.clone();
            tokio::spawn(async move {
                if let Err(e) = host.send(&id, Msg::Pump).await {
                    tracing::warn!(webhook_id = %id, error = %e, "webhook queue not reached");
                }
            });
        }
    }

    /// An event of `org_id` was committed here: pump its subscriptions this node drives.
    pub fn nudge(&self, org_id: Uuid) {
        if let Some(dispatcher) = self.dispatcher.load_full() {
            let _ = dispatcher.send_message(DispatchMsg::Nudge(org_id));
        }
    }

    /// Pump `id` now (a redelivery, a test event), if this node drives it; otherwise its
    /// node finds the work on its next tick.
    pub fn pump_now(&self, id: Uuid) {
        Self::pump(&self.host, &self.queued, id);
    }
}

/// What the dispatcher is started with.
#[derive(Clone)]
pub(crate) struct DispatchDeps {
    pub webhooks: Arc<dyn WebhookStore>,
    pub clock: Arc<dyn Clock>,
    pub settings: WebhookSettings,
    /// This node, as leases name it.
    pub node: String,
    /// Set by the shutdown drain: claim nothing more (the leases are being given up).
    pub stopping: Arc<AtomicBool>,
}

#[derive(Clone)]
struct Dispatcher {
    host: KeyedHost<DeliveryQueues>,
    queued: Arc<DashSet<Uuid>>,
}

pub(crate) enum DispatchMsg {
    Tick,
    Nudge(Uuid),
    Crash,
}

pub(crate) struct DispatchState {
    deps: DispatchDeps,
    /// The subscriptions this node holds the lease of, with their organizations.
    driven: HashMap<Uuid, Uuid>,
    ticker: JoinHandle<()>,
}

impl Actor for Dispatcher {
    type Msg = DispatchMsg;
    type State = DispatchState;
    type Arguments = DispatchDeps;

    async fn pre_start(
        &self,
        myself: ActorRef<DispatchMsg>,
        deps: DispatchDeps,
    ) -> Result<DispatchState, ActorProcessingErr> {
        let ticker = myself.send_interval(deps.settings.poll, || DispatchMsg::Tick);
        let _ = myself.send_message(DispatchMsg::Tick);
        Ok(DispatchState { deps, driven: HashMap::new(), ticker })
    }

    async fn post_stop(&self, _: ActorRef<DispatchMsg>, state: &mut DispatchState) -> Result<(), ActorProcessingErr> {
        state.ticker.abort();
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<DispatchMsg>,
        msg: DispatchMsg,
        state: &mut DispatchState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DispatchMsg::Tick if state.deps.stopping.load(Ordering::Acquire) => {}
            DispatchMsg::Tick => {
                let deps = &state.deps;
                let now = deps.clock.now_ms();
                let until = now + deps.settings.lease.as_millis() as i64;
                match deps.webhooks.claim_webhooks(&deps.node, now, until, CLAIM_MAX).await {
                    Ok(claimed) => {
                        state.driven = claimed.into_iter().collect();
                        for id in state.driven.keys() {
                            Webhooks::pump(&self.host, &self.queued, *id);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "webhook leases not claimed"),
                }
            }
            DispatchMsg::Nudge(org_id) => {
                for (id, _) in state.driven.iter().filter(|(_, org)| **org == org_id) {
                    Webhooks::pump(&self.host, &self.queued, *id);
                }
            }
            DispatchMsg::Crash => panic!("webhook dispatcher: fault injected"),
        }
        Ok(())
    }
}

/// Register the dispatcher over `host`; on shutdown it gives up this node's leases so
/// another node takes over at once.
pub(crate) fn dispatcher(
    host: KeyedHost<DeliveryQueues>,
    queued: Arc<DashSet<Uuid>>,
    deps: DispatchDeps,
) -> (ChildSpec, Webhooks) {
    let slot: Arc<Slot<DispatchMsg>> = Arc::default();
    let handle = Webhooks { host: host.clone(), queued: queued.clone(), dispatcher: slot.clone() };
    let (store, node, stopping) = (deps.webhooks.clone(), deps.node.clone(), deps.stopping.clone());
    let spec = ChildSpec::singleton(
        "webhook_dispatcher",
        Dispatcher { host, queued },
        move || deps.clone(),
        slot,
        || DispatchMsg::Crash,
    )
    .with_drain(move |within| {
        let (store, node) = (store.clone(), node.clone());
        stopping.store(true, Ordering::Release);
        Box::pin(async move { matches!(tokio::time::timeout(within, store.release_webhooks(&node)).await, Ok(Ok(()))) })
    });
    (spec, handle)
}

/// The janitor's sweep of settled deliveries past their retention.
pub(crate) fn sweep(store: Arc<dyn WebhookStore>, retention: Duration) -> crate::runtime::janitor::Sweep {
    let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    crate::runtime::janitor::Sweep {
        what: "webhook_deliveries",
        run: Arc::new(move |now, batch| {
            let store = store.clone();
            Box::pin(async move { store.purge_deliveries(now.saturating_sub(retention), batch).await })
        }),
    }
}
