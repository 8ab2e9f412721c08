//! Federation partners' keys: one JwksCache actor per partner (a keyed family) fetches
//! the partner's JWKS and publishes a [`KeySnapshot`]; verification reads the snapshot
//! and never waits on a mailbox unless it must. The rules, in the order a partner JWT
//! meets them (docs/architecture.md lists them too):
//!
//! 1. A JWT that fails the cheap checks — malformed, unknown `iss`, an algorithm the
//!    partner does not allow — is refused before any key is sought: it never causes a
//!    fetch.
//! 2. The first use of a partner on a node fetches its JWKS (callers wait for it).
//! 3. A snapshot is fresh for the JWKS response's `Cache-Control` max-age, bounded to
//!    [5 min, 24 h]. The first use after that asks the actor for a refresh in the
//!    background and goes on with the keys it has.
//! 4. A `kid` the snapshot does not hold triggers one refetch — single-flight, since the
//!    partner's actor handles one message at a time and a request that finds a newer
//!    snapshot than the one its caller saw answers it without fetching — unless the
//!    partner's last fetch was less than `refetch_cooldown` (≥ 10 s) ago, or every
//!    partner together has used up `refetch_per_sec`. Then the JWT is refused without a
//!    message to the actor.
//! 5. A failed fetch keeps the last good keys (stale-if-error) until `stale_cap` past
//!    their freshness; after that the partner has no keys until a fetch succeeds. The
//!    next scheduled try comes `retry_after_error` later.
//! 6. A fetch is bounded: `fetch_timeout`, `max_jwks_bytes`, no redirects, and only to
//!    the destinations allowed (https to public addresses; plain http to loopback only
//!    in development).
//!
//! The partner definitions themselves are a node-wide index rebuilt from the store on
//! every change — this node's (before the change's request is answered) and every other
//! node's (announced, with the change feed as the guarantee). A partner whose key source
//! changed starts over with no snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use dashmap::{DashMap, DashSet};
use ractor::RpcReplyPort;
use uuid::Uuid;

use super::settings::FederationSettings;
use crate::families::federation::rules::{self, Partner, PartnerKey};
use crate::families::federation::FederationStore;
use crate::kernel::clock::Clock;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::Millis;
use crate::runtime::events::{Event, Listeners};
use crate::runtime::keyed::{KeyedFamily, KeyedHost};
use crate::runtime::metrics::FederationMetrics;
use crate::runtime::outbound::{HttpClient, OutboundRequest};

/// A partner's keys as this node last fetched them.
#[derive(Clone)]
pub(crate) struct KeySnapshot {
    pub keys: Vec<PartnerKey>,
    /// Counts every fetch attempt (a caller that saw generation n asks for a newer one).
    pub generation: u64,
    /// The last successful fetch.
    pub fetched_at: Option<Millis>,
    /// When a refresh is due.
    pub fresh_until: Millis,
    /// When the last good keys stop being usable (their freshness plus the stale cap).
    pub usable_until: Millis,
    /// The last fetch attempt (for the unknown-kid cooldown).
    pub attempted_at: Option<Millis>,
    pub last_error: Option<(Millis, String)>,
    /// The key source this snapshot is of: the `jwks_uri`, or the static JWKS's text.
    source: String,
}

impl KeySnapshot {
    /// The keys, if still usable at `now`.
    pub fn usable(&self, now: Millis) -> &[PartnerKey] {
        if now <= self.usable_until {
            &self.keys
        } else {
            &[]
        }
    }
}

fn source_of(partner: &Partner) -> String {
    match (&partner.rules.jwks_uri, &partner.rules.jwks) {
        (Some(uri), _) => uri.clone(),
        (None, Some(jwks)) => jwks.to_string(),
        (None, None) => String::new(),
    }
}

/// A static JWKS's snapshot: always fresh, never fetched.
fn static_snapshot(partner: &Partner) -> Option<KeySnapshot> {
    let jwks = partner.rules.jwks.as_ref().filter(|_| partner.rules.jwks_uri.is_none())?;
    let (keys, last_error) = match rules::parse_jwks(jwks) {
        Ok(keys) => (keys, None),
        Err(e) => (Vec::new(), Some((partner.updated_at, e))),
    };
    Some(KeySnapshot {
        keys,
        generation: 1,
        fetched_at: None,
        fresh_until: Millis::MAX,
        usable_until: Millis::MAX,
        attempted_at: None,
        last_error,
        source: source_of(partner),
    })
}

/// Every partner this node knows, by id and by issuer (in creation order).
#[derive(Default)]
pub(crate) struct PartnerIndex {
    by_id: HashMap<Uuid, Arc<Partner>>,
    by_issuer: HashMap<String, Vec<Arc<Partner>>>,
}

/// What the handle and the actors share.
pub(crate) struct Registry {
    index: ArcSwap<PartnerIndex>,
    snapshots: DashMap<Uuid, Arc<KeySnapshot>>,
    /// Partners with a background refresh asked for and not yet begun.
    pending: DashSet<Uuid>,
    /// The global cap's window: its start (ms) and the refetches made in it.
    window: Mutex<(Millis, u32)>,
    /// Rebuilds of the index, one at a time (a slow one never overwrites a newer one).
    reload: tokio::sync::Mutex<()>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            index: ArcSwap::from_pointee(PartnerIndex::default()),
            snapshots: DashMap::new(),
            pending: DashSet::new(),
            window: Mutex::new((0, 0)),
            reload: tokio::sync::Mutex::new(()),
        }
    }
}

/// Why a fetch is asked for (the metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    First,
    Scheduled,
    UnknownKid,
    Forced,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::First => "first",
            Reason::Scheduled => "scheduled",
            Reason::UnknownKid => "unknown_kid",
            Reason::Forced => "forced",
        }
    }
}

type Reply = RpcReplyPort<Result<Arc<KeySnapshot>>>;

pub(crate) enum Msg {
    /// Fetch the JWKS unless a snapshot newer than generation `seen` exists (or, for an
    /// unknown kid, the cooldown or the global cap says no); answer the snapshot.
    Refresh { reason: Reason, seen: u64, reply: Option<Reply> },
}

/// The family: what each partner's actor works with.
pub(crate) struct JwksCaches {
    pub registry: Arc<Registry>,
    /// A guarded client (it connects only to allowed destinations, follows no redirect).
    pub http: Arc<dyn HttpClient>,
    pub clock: Arc<dyn Clock>,
    pub settings: FederationSettings,
    pub metrics: FederationMetrics,
}

impl JwksCaches {
    /// Take one refetch from the global cap's one-second window.
    fn within_global_cap(&self, now: Millis) -> bool {
        let mut window = self.registry.window.lock().unwrap_or_else(|p| p.into_inner());
        if now - window.0 >= 1000 {
            *window = (now, 0);
        }
        if window.1 >= self.settings.refetch_per_sec {
            return false;
        }
        window.1 += 1;
        true
    }

    /// GET the JWKS: the parsed keys and how long they are fresh.
    async fn fetch(&self, uri: &str) -> std::result::Result<(Vec<PartnerKey>, std::time::Duration), String> {
        let mut request = OutboundRequest::get(uri).header("accept", "application/jwk-set+json, application/json");
        request.timeout = self.settings.fetch_timeout;
        request.max_response_bytes = self.settings.max_jwks_bytes;
        request.max_redirects = 0;
        let response = self.http.send(request).await.map_err(|e| match e {
            EngineError::Invalid { message, .. } => message,
            other => other.to_string(),
        })?;
        match response.status {
            200 => {}
            300..=399 => {
                return Err(format!("the JWKS endpoint answered {} (redirects are not followed)", response.status))
            }
            status => return Err(format!("the JWKS endpoint answered {status}")),
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&response.body).map_err(|_| "the JWKS is not JSON".to_string())?;
        let keys = rules::parse_jwks(&doc)?;
        Ok((keys, rules::max_age(response.header("cache-control"))))
    }

    /// Fetch and publish a new snapshot (a failure is recorded in it, never raised).
    async fn refresh(
        &self,
        partner: &Partner,
        uri: &str,
        previous: Option<&KeySnapshot>,
        reason: Reason,
    ) -> Arc<KeySnapshot> {
        let outcome = self.fetch(uri).await;
        let now = self.clock.now_ms();
        let generation = previous.map_or(0, |p| p.generation) + 1;
        let source = source_of(partner);
        let snapshot = match outcome {
            Ok((keys, max_age)) => {
                self.metrics.fetches.with_label_values(&["ok", reason.as_str()]).inc();
                let fresh_until = now + max_age.as_millis() as i64;
                KeySnapshot {
                    keys,
                    generation,
                    fetched_at: Some(now),
                    fresh_until,
                    usable_until: fresh_until + self.settings.stale_cap.as_millis() as i64,
                    attempted_at: Some(now),
                    last_error: None,
                    source,
                }
            }
            Err(error) => {
                self.metrics.fetches.with_label_values(&["error", reason.as_str()]).inc();
                tracing::warn!(partner = %partner.id, issuer = %partner.issuer, %error, "partner JWKS not fetched");
                let kept = previous.filter(|p| p.source == source && now <= p.usable_until);
                KeySnapshot {
                    keys: kept.map(|p| p.keys.clone()).unwrap_or_default(),
                    generation,
                    fetched_at: kept.and_then(|p| p.fetched_at),
                    fresh_until: now + self.settings.retry_after_error.as_millis() as i64,
                    usable_until: kept.map_or(now, |p| p.usable_until),
                    attempted_at: Some(now),
                    last_error: Some((now, error)),
                    source,
                }
            }
        };
        let snapshot = Arc::new(snapshot);
        self.registry.snapshots.insert(partner.id, snapshot.clone());
        snapshot
    }
}

#[async_trait]
impl KeyedFamily for JwksCaches {
    const NAME: &'static str = "jwks_caches";
    type Key = Uuid;
    type Msg = Msg;
    type State = ();

    async fn start(&self, _: &Uuid) -> Result<()> {
        Ok(())
    }

    async fn handle(&self, id: &Uuid, _: &mut (), msg: Msg) -> Result<()> {
        let Msg::Refresh { reason, seen, reply } = msg;
        if reason == Reason::Scheduled {
            self.registry.pending.remove(id);
        }
        let answer = self.answer(*id, reason, seen).await;
        match reply {
            Some(reply) => {
                let _ = reply.send(answer);
            }
            None => {
                answer?;
            }
        }
        Ok(())
    }
}

impl JwksCaches {
    async fn answer(&self, id: Uuid, reason: Reason, seen: u64) -> Result<Arc<KeySnapshot>> {
        let partner = self
            .registry
            .index
            .load()
            .by_id
            .get(&id)
            .cloned()
            .ok_or_else(|| EngineError::not_found("federation partner"))?;
        let current = self.registry.snapshots.get(&id).map(|s| s.clone()).filter(|s| s.source == source_of(&partner));
        if let Some(current) = &current {
            if current.generation > seen {
                return Ok(current.clone());
            }
        }
        let Some(uri) = partner.rules.jwks_uri.clone() else {
            let snapshot = Arc::new(static_snapshot(&partner).ok_or_else(|| EngineError::internal("no key source"))?);
            self.registry.snapshots.insert(id, snapshot.clone());
            return Ok(snapshot);
        };
        let now = self.clock.now_ms();
        if let (Reason::UnknownKid, Some(current)) = (reason, &current) {
            let cooldown = self.settings.refetch_cooldown.as_millis() as i64;
            if current.attempted_at.is_some_and(|at| now - at < cooldown) {
                self.metrics.refetches_skipped.with_label_values(&["cooldown"]).inc();
                return Ok(current.clone());
            }
            if !self.within_global_cap(now) {
                self.metrics.refetches_skipped.with_label_values(&["global_cap"]).inc();
                return Ok(current.clone());
            }
        }
        Ok(self.refresh(&partner, &uri, current.as_deref(), reason).await)
    }
}

/// The engine's handle on the partners and their keys.
#[derive(Clone)]
pub(crate) struct Federation {
    host: KeyedHost<JwksCaches>,
    registry: Arc<Registry>,
    store: Arc<dyn FederationStore>,
    clock: Arc<dyn Clock>,
    settings: FederationSettings,
    metrics: FederationMetrics,
}

impl Federation {
    pub fn new(
        host: KeyedHost<JwksCaches>,
        registry: Arc<Registry>,
        store: Arc<dyn FederationStore>,
        clock: Arc<dyn Clock>,
        settings: FederationSettings,
        metrics: FederationMetrics,
    ) -> Self {
        Federation { host, registry, store, clock, settings, metrics }
    }

    pub fn metrics(&self) -> &FederationMetrics {
        &self.metrics
    }

    /// The partners whose issuer is `iss`, in creation order.
    pub fn partners_for(&self, iss: &str) -> Vec<Arc<Partner>> {
        self.registry.index.load().by_issuer.get(iss).cloned().unwrap_or_default()
    }

    /// The partner with id `id`, if there is one.
    pub fn partner(&self, id: Uuid) -> Option<Arc<Partner>> {
        self.registry.index.load().by_id.get(&id).cloned()
    }

    /// Every partner, of every organization.
    pub fn all(&self) -> Vec<Arc<Partner>> {
        self.registry.index.load().by_id.values().cloned().collect()
    }

    /// This node's snapshot of a partner's keys, if it has one.
    pub fn snapshot(&self, id: Uuid) -> Option<Arc<KeySnapshot>> {
        self.registry.snapshots.get(&id).map(|s| s.clone())
    }

    /// The partner's keys for verifying now: the published snapshot (refreshed in the
    /// background when due), or — on first use, or when its keys are past usable — a
    /// fetch waited for.
    pub async fn keys(&self, partner: &Partner) -> Result<Arc<KeySnapshot>> {
        let now = self.clock.now_ms();
        match self.snapshot(partner.id).filter(|s| s.source == source_of(partner)) {
            None => self.ask(partner.id, Reason::First, 0).await,
            Some(s) if now > s.usable_until && now >= s.fresh_until => {
                self.ask(partner.id, Reason::Scheduled, s.generation).await
            }
            Some(s) => {
                if now >= s.fresh_until && self.registry.pending.insert(partner.id) {
                    let (host, registry, id, seen) =
                        (self.host.clone(), self.registry.clone(), partner.id, s.generation);
                    tokio::spawn(async move {
                        let msg = Msg::Refresh { reason: Reason::Scheduled, seen, reply: None };
                        if let Err(e) = host.send(&id, msg).await {
                            registry.pending.remove(&id);
                            tracing::warn!(partner = %id, error = %e, "partner JWKS refresh not asked for");
                        }
                    });
                }
                Ok(s)
            }
        }
    }

    /// A kid `seen` does not hold: the partner's actor refetches, unless its cooldown is
    /// on (decided here, without a message) or the global cap says no.
    pub async fn refetch_for_unknown_kid(&self, partner: &Partner, seen: &KeySnapshot) -> Result<Arc<KeySnapshot>> {
        let cooldown = self.settings.refetch_cooldown.as_millis() as i64;
        let now = self.clock.now_ms();
        if partner.rules.jwks_uri.is_none() || seen.attempted_at.is_some_and(|at| now - at < cooldown) {
            if partner.rules.jwks_uri.is_some() {
                self.metrics.refetches_skipped.with_label_values(&["cooldown"]).inc();
            }
            return Ok(self.snapshot(partner.id).unwrap_or_else(|| Arc::new(seen.clone())));
        }
        self.ask(partner.id, Reason::UnknownKid, seen.generation).await
    }

    /// Fetch the partner's JWKS now (the refresh endpoint).
    pub async fn refresh(&self, partner_id: Uuid) -> Result<Arc<KeySnapshot>> {
        let seen = self.snapshot(partner_id).map_or(0, |s| s.generation);
        self.ask(partner_id, Reason::Forced, seen).await
    }

    async fn ask(&self, id: Uuid, reason: Reason, seen: u64) -> Result<Arc<KeySnapshot>> {
        self.host.call(&id, |reply| Msg::Refresh { reason, seen, reply: Some(reply) }).await
    }

    /// Rebuild the index from the store. A partner that is gone, or whose key source
    /// changed, loses its snapshot; a static JWKS gets its snapshot at once.
    pub async fn reload(&self) -> Result<()> {
        let _one_at_a_time = self.registry.reload.lock().await;
        let partners = self.store.all_partners().await?;
        let mut index = PartnerIndex::default();
        for partner in partners {
            let partner = Arc::new(partner);
            index.by_issuer.entry(partner.issuer.clone()).or_default().push(partner.clone());
            index.by_id.insert(partner.id, partner);
        }
        for list in index.by_issuer.values_mut() {
            list.sort_by_key(|p| (p.created_at, p.id));
        }
        self.registry.snapshots.retain(|id, s| index.by_id.get(id).is_some_and(|p| source_of(p) == s.source));
        for partner in index.by_id.values() {
            if !self.registry.snapshots.contains_key(&partner.id) {
                if let Some(snapshot) = static_snapshot(partner) {
                    self.registry.snapshots.insert(partner.id, Arc::new(snapshot));
                }
            }
        }
        self.registry.index.store(Arc::new(index));
        Ok(())
    }

    /// Partners changed on another node (or anything may have): rebuild in the background.
    pub fn changed_elsewhere(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.reload().await {
                tracing::warn!(error = %e, "federation partners not re-read");
            }
        });
    }
}

/// A federation partner was created, changed or deleted: rebuild the partner index.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartnersChanged {}

impl Event for PartnersChanged {
    const KIND: &'static str = "partners_changed";
}

/// A partner change counts on the committing node before it is answered; the others
/// rebuild their index as it arrives, and after a gap.
pub(crate) fn listen(federation: &Federation, listeners: &mut Listeners) {
    let (here, elsewhere, everything) = (federation.clone(), federation.clone(), federation.clone());
    listeners
        .here(move |_: PartnersChanged| {
            let federation = here.clone();
            async move { federation.reload().await }
        })
        .elsewhere(move |_: PartnersChanged| elsewhere.changed_elsewhere())
        .everything(move || everything.changed_elsewhere());
}
