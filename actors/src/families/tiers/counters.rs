//! Tier counters: the daily call quota, one actor per organization (a keyed family).
//!
//! The hot path never waits on a mailbox or the store. Each node holds, per
//! organization, a [`Lease`]: calls it may admit on its own, an atomic it takes from.
//! The organization's actor refills the lease ahead of need, by granting itself a chunk
//! from the ledger (`QuotaStore`: one row per organization and UTC day, shared by every
//! node) — never past the tier's limit. So:
//!
//! 1. a call takes one from its node's lease (`fetch_sub`); while the lease holds more
//!    than half a chunk that is all it does;
//! 2. below that, it asks the actor for a refill without waiting for it;
//! 3. an empty lease makes the call wait for the actor, which grants a chunk (clamped
//!    to what is left of the day's limit) and takes one from it, or refuses;
//! 4. once the ledger has granted the whole limit, the lease says so and every further
//!    call that day is refused on the spot, with no message at all.
//!
//! Admitted calls never pass the limit, on any number of nodes: every admitted call was
//! granted first, and the ledger's grants are clamped (under a row lock in a store, in
//! one script in Redis). A crash forgets no admitted call; what it loses is the unused
//! part of its lease (at most one chunk per node), which the day then counts as used.
//!
//! When a ledger that knows how many nodes draw on it (Redis) becomes unreachable, each
//! node grants its lease, once, its share of what it last saw left: the remainder
//! divided by the live nodes (they beat in Redis every few seconds). It then admits
//! nothing more until the ledger answers again (calls past the share get 503), tries
//! the ledger at most once a second, and on its return writes the calls it granted
//! itself into the ledger first. A store
//! ledger (which cannot answer while the store is down) grants nothing: calls past the
//! lease get 503.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use ractor::RpcReplyPort;
use uuid::Uuid;

use crate::families::directory::events::OrgChanged;
use crate::families::directory::DirectoryStore;
use crate::families::tiers::{GrantRequest, QuotaStore};
use crate::kernel::clock::Clock;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{Millis, Tier};
use crate::kernel::tiers::TierTable;
use crate::runtime::events::Listeners;
use crate::runtime::keyed::{KeyedFamily, KeyedHost};
use crate::runtime::metrics::QuotaMetrics;

const DAY_MS: i64 = 86_400_000;
const UNLIMITED: u64 = u64::MAX;
/// While the ledger is unreachable, how often a lease tries it again.
const LEDGER_RETRY_MS: i64 = 1_000;

/// The UTC day (days since the epoch) of `now`.
pub fn utc_day(now: Millis) -> i64 {
    now.div_euclid(DAY_MS)
}

/// Calls granted to a lease at a time: about a fiftieth of the limit (so a crash loses
/// little), at least one, at most a thousand; ten thousand when there is no limit.
fn chunk(limit: Option<u64>) -> u64 {
    match limit {
        Some(limit) => (limit / 50).clamp(1, 1_000),
        None => 10_000,
    }
}

pub use crate::kernel::model::QuotaState;

/// One organization's lease on this node.
pub(crate) struct Lease {
    day: AtomicI64,
    /// Calls this node may still admit; briefly below zero while a take is undone.
    tokens: AtomicI64,
    limit: AtomicU64,
    tier: AtomicU8,
    /// The day's total granted (all nodes), as of the last refill.
    granted: AtomicU64,
    /// The ledger has granted the whole limit today.
    exhausted: AtomicBool,
    /// A refill has been asked for and not done yet.
    refilling: AtomicBool,
    /// Nodes drawing on the ledger at the last refill; 0: the ledger does not say.
    nodes: AtomicU32,
    /// Calls this node granted itself while the ledger was unreachable, not yet written to it.
    owed: AtomicU64,
    /// While the ledger is unreachable: when to try it again (engine ms); 0 otherwise.
    retry_at: AtomicI64,
}

fn tier_code(t: Tier) -> u8 {
    match t {
        Tier::Free => 0,
        Tier::Pro => 1,
        Tier::Enterprise => 2,
    }
}

fn tier_of(code: u8) -> Tier {
    match code {
        0 => Tier::Free,
        1 => Tier::Pro,
        _ => Tier::Enterprise,
    }
}

impl Lease {
    fn limit(&self) -> Option<u64> {
        Some(self.limit.load(Ordering::Acquire)).filter(|l| *l != UNLIMITED)
    }

    fn state(&self, now: Millis) -> QuotaState {
        let limit = self.limit();
        let left_here = self.tokens.load(Ordering::Acquire).max(0) as u64;
        let used = self.granted.load(Ordering::Acquire).saturating_sub(left_here);
        let day_end = (utc_day(now) + 1) * DAY_MS;
        QuotaState {
            tier: tier_of(self.tier.load(Ordering::Acquire)),
            limit,
            remaining: limit.map(|l| l.saturating_sub(used)),
            reset_secs: ((day_end - now + 999) / 1000).max(1) as u64,
        }
    }

    fn refused(&self, now: Millis) -> EngineError {
        let state = self.state(now);
        EngineError::QuotaExceeded {
            tier: state.tier,
            limit: state.limit.unwrap_or(0),
            retry_after: Duration::from_secs(state.reset_secs),
            resets_at: (utc_day(now) + 1) * DAY_MS,
        }
    }
}

type Leases = Arc<DashMap<Uuid, Arc<Lease>>>;

/// The family: what an organization's actor needs.
pub(crate) struct TierCounters {
    pub directory: Arc<dyn DirectoryStore>,
    pub ledger: Arc<dyn QuotaStore>,
    pub tiers: TierTable,
    pub clock: Arc<dyn Clock>,
    pub leases: Leases,
    pub metrics: QuotaMetrics,
}

pub(crate) enum Msg {
    /// Grant the lease another chunk; with a reply, also take one call from it.
    Refill(Option<RpcReplyPort<Result<QuotaState>>>),
    /// The organization changed (its tier, say): read it again, then reply if asked.
    OrgChanged(Option<RpcReplyPort<Result<()>>>),
}

impl TierCounters {
    /// Read the organization's tier into the lease, and the day's total if the day is new.
    async fn hydrate(&self, org_id: Uuid, lease: &Lease) -> Result<()> {
        let org = self.directory.get_org(org_id).await?.ok_or_else(|| EngineError::not_found("organization"))?;
        let limit = self.tiers.limits(org.tier).calls_per_day;
        lease.tier.store(tier_code(org.tier), Ordering::Release);
        lease.limit.store(limit.unwrap_or(UNLIMITED), Ordering::Release);
        let today = utc_day(self.clock.now_ms());
        if lease.day.load(Ordering::Acquire) != today {
            // A new day: what every node has been granted, then the day (a lease whose day
            // is today is one calls take from).
            let granted = self.ledger.calls_granted(org_id, today).await?;
            lease.tokens.store(0, Ordering::Release);
            lease.owed.store(0, Ordering::Release);
            lease.retry_at.store(0, Ordering::Release);
            lease.granted.store(granted, Ordering::Release);
            lease.day.store(today, Ordering::Release);
        }
        let granted = lease.granted.load(Ordering::Acquire);
        lease.exhausted.store(limit.is_some_and(|l| granted >= l), Ordering::Release);
        Ok(())
    }

    async fn refill(&self, org_id: Uuid, lease: &Lease) -> Result<()> {
        let result = self.try_refill(org_id, lease).await;
        lease.refilling.store(false, Ordering::Release);
        result
    }

    async fn try_refill(&self, org_id: Uuid, lease: &Lease) -> Result<()> {
        if lease.day.load(Ordering::Acquire) != utc_day(self.clock.now_ms()) {
            self.hydrate(org_id, lease).await?;
        }
        let now = self.clock.now_ms();
        let retry_at = lease.retry_at.load(Ordering::Acquire);
        if retry_at != 0 && now < retry_at {
            return Err(ledger_down());
        }
        let (limit, day) = (lease.limit(), lease.day.load(Ordering::Acquire));
        let owed = lease.owed.load(Ordering::Acquire);
        let seen = lease.granted.load(Ordering::Acquire);
        let request = GrantRequest { want: chunk(limit), limit, owed, seen };
        match self.ledger.grant_calls(org_id, day, request).await {
            Ok(grant) => {
                self.metrics.refills.inc();
                lease.owed.fetch_sub(owed, Ordering::AcqRel);
                if retry_at != 0 {
                    lease.retry_at.store(0, Ordering::Release);
                    tracing::info!(org_id = %org_id, written_back = owed, "quota ledger reachable again");
                }
                lease.nodes.store(grant.nodes.unwrap_or(0), Ordering::Release);
                lease.tokens.fetch_add(grant.granted as i64, Ordering::AcqRel);
                lease.granted.store(grant.total, Ordering::Release);
                if limit.is_some_and(|l| grant.total >= l) {
                    lease.exhausted.store(true, Ordering::Release);
                }
                Ok(())
            }
            Err(EngineError::Unavailable(reason)) => {
                self.metrics.ledger_unreachable.inc();
                lease.retry_at.store(now + LEDGER_RETRY_MS, Ordering::Release);
                let nodes = u64::from(lease.nodes.load(Ordering::Acquire));
                // The share is granted once per outage (an unlimited tier: a chunk a try).
                let share = match limit {
                    _ if nodes == 0 || (retry_at != 0 && limit.is_some()) => 0,
                    Some(l) => l.saturating_sub(lease.granted.load(Ordering::Acquire)) / nodes,
                    None => chunk(None),
                };
                if retry_at == 0 {
                    tracing::warn!(
                        org_id = %org_id, %reason, nodes, share,
                        "quota ledger unreachable; admitting this node's share of the day's remainder"
                    );
                }
                if share == 0 {
                    return Err(ledger_down());
                }
                self.metrics.outage_grants.inc_by(share);
                lease.owed.fetch_add(share, Ordering::AcqRel);
                lease.granted.fetch_add(share, Ordering::AcqRel);
                lease.tokens.fetch_add(share as i64, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

fn ledger_down() -> EngineError {
    EngineError::Unavailable("the quota ledger is unreachable (and this node's outage share, if any, is spent)".into())
}

#[async_trait]
impl KeyedFamily for TierCounters {
    const NAME: &'static str = "tier_counters";
    type Key = Uuid;
    type Msg = Msg;
    type State = Arc<Lease>;

    async fn start(&self, org_id: &Uuid) -> Result<Arc<Lease>> {
        // A lease outlives an idle actor: the next one carries on with it.
        let lease = self
            .leases
            .entry(*org_id)
            .or_insert_with(|| {
                Arc::new(Lease {
                    day: AtomicI64::new(i64::MIN),
                    tokens: AtomicI64::new(0),
                    limit: AtomicU64::new(0),
                    tier: AtomicU8::new(0),
                    granted: AtomicU64::new(0),
                    exhausted: AtomicBool::new(false),
                    refilling: AtomicBool::new(false),
                    nodes: AtomicU32::new(0),
                    owed: AtomicU64::new(0),
                    retry_at: AtomicI64::new(0),
                })
            })
            .clone();
        self.hydrate(*org_id, &lease).await?;
        Ok(lease)
    }

    async fn handle(&self, org_id: &Uuid, lease: &mut Arc<Lease>, msg: Msg) -> Result<()> {
        match msg {
            Msg::Refill(reply) => {
                let refilled = self.refill(*org_id, lease).await;
                if let Some(reply) = reply {
                    let now = self.clock.now_ms();
                    let answer = refilled.and_then(|()| {
                        if lease.tokens.fetch_sub(1, Ordering::AcqRel) > 0 {
                            Ok(lease.state(now))
                        } else {
                            lease.tokens.fetch_add(1, Ordering::AcqRel);
                            Err(lease.refused(now))
                        }
                    });
                    let _ = reply.send(answer);
                }
            }
            Msg::OrgChanged(reply) => {
                let reread = self.hydrate(*org_id, lease).await;
                match reply {
                    Some(reply) => {
                        let _ = reply.send(reread);
                    }
                    None => reread?,
                }
            }
        }
        Ok(())
    }
}

/// The engine's handle on the quota.
#[derive(Clone)]
pub(crate) struct Quota {
    host: KeyedHost<TierCounters>,
    leases: Leases,
    ledger: Arc<dyn QuotaStore>,
    clock: Arc<dyn Clock>,
}

impl Quota {
    pub fn new(
        host: KeyedHost<TierCounters>,
        leases: Leases,
        ledger: Arc<dyn QuotaStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Quota { host, leases, ledger, clock }
    }

    /// The tier this node's lease of `org_id` knows, if it has one.
    pub fn tier(&self, org_id: Uuid) -> Option<Tier> {
        let lease = self.leases.get(&org_id)?;
        (lease.day.load(Ordering::Acquire) != i64::MIN).then(|| tier_of(lease.tier.load(Ordering::Acquire)))
    }

    /// Count one call of `org_id`: admitted with the quota's state, or `QuotaExceeded`.
    pub async fn take(&self, org_id: Uuid) -> Result<QuotaState> {
        let now = self.clock.now_ms();
        let lease = self.leases.get(&org_id).map(|l| l.value().clone());
        if let Some(lease) = lease.filter(|l| l.day.load(Ordering::Acquire) == utc_day(now)) {
            if lease.exhausted.load(Ordering::Acquire) && lease.tokens.load(Ordering::Acquire) <= 0 {
                return Err(lease.refused(now));
            }
            let before = lease.tokens.fetch_sub(1, Ordering::AcqRel);
            if before > 0 {
                let low = chunk(lease.limit()) as i64 / 2;
                if before - 1 <= low
                    && !lease.exhausted.load(Ordering::Acquire)
                    && !lease.refilling.swap(true, Ordering::AcqRel)
                {
                    if let Err(e) = self.host.send(&org_id, Msg::Refill(None)).await {
                        lease.refilling.store(false, Ordering::Release);
                        tracing::warn!(org_id = %org_id, error = %e, "quota lease refill not sent");
                    }
                }
                return Ok(lease.state(now));
            }
            lease.tokens.fetch_add(1, Ordering::AcqRel);
        }
        self.host.call(&org_id, |reply| Msg::Refill(Some(reply))).await
    }

    /// Calls of `org_id` today: this node's view (its own unused lease not counted, other
    /// nodes' counted as used), as the day's ledger total when this node has no lease.
    pub async fn used_today(&self, org_id: Uuid) -> Result<u64> {
        let today = utc_day(self.clock.now_ms());
        match self.leases.get(&org_id).map(|l| l.value().clone()) {
            Some(lease) if lease.day.load(Ordering::Acquire) == today => {
                let left_here = lease.tokens.load(Ordering::Acquire).max(0) as u64;
                Ok(lease.granted.load(Ordering::Acquire).saturating_sub(left_here))
            }
            _ => self.ledger.calls_granted(org_id, today).await,
        }
    }

    /// The organization changed on this node or another: once this returns, calls see its
    /// new tier here. (A failure only logs: the lease re-reads the tier at the next day or
    /// actor start, and the engine's answer about the change itself stands.)
    pub async fn org_changed(&self, org_id: Uuid) {
        if self.leases.contains_key(&org_id) {
            if let Err(e) = self.host.call(&org_id, |reply| Msg::OrgChanged(Some(reply))).await {
                tracing::warn!(org_id = %org_id, error = %e, "quota lease did not re-read its organization");
            }
        }
    }
}

/// An organization's change (its tier) counts for its quota on the committing node before
/// it is answered, and on every other node as it arrives.
pub(crate) fn listen(quota: &Quota, listeners: &mut Listeners) {
    let (here, elsewhere) = (quota.clone(), quota.clone());
    listeners
        .here(move |e: OrgChanged| {
            let quota = here.clone();
            async move {
                quota.org_changed(e.org_id).await;
                Ok(())
            }
        })
        .elsewhere(move |e: OrgChanged| {
            let quota = elsewhere.clone();
            tokio::spawn(async move { quota.org_changed(e.org_id).await });
        });
}
