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
//! granted first, and the ledger's grants are clamped under a row lock. A crash forgets
//! no admitted call; what it loses is the unused part of its lease (at most one chunk
//! per node), which the day then counts as used.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use ractor::RpcReplyPort;
use serde::Serialize;
use uuid::Uuid;

use super::keyed::{KeyedFamily, KeyedHost};
use crate::clock::Clock;
use crate::domain::tiers::TierTable;
use crate::error::{EngineError, Result};
use crate::model::{Millis, Tier};
use crate::store::{DirectoryStore, QuotaStore};

const DAY_MS: i64 = 86_400_000;
const UNLIMITED: u64 = u64::MAX;

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
    pub refills: prometheus::IntCounter,
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
        if lease.day.swap(today, Ordering::AcqRel) != today {
            lease.tokens.store(0, Ordering::Release);
            lease.granted.store(self.ledger.calls_granted(org_id, today).await?, Ordering::Release);
        }
        let granted = lease.granted.load(Ordering::Acquire);
        lease.exhausted.store(limit.is_some_and(|l| granted >= l), Ordering::Release);
        Ok(())
    }

    async fn refill(&self, org_id: Uuid, lease: &Lease) -> Result<()> {
        if lease.day.load(Ordering::Acquire) != utc_day(self.clock.now_ms()) {
            self.hydrate(org_id, lease).await?;
        }
        let result = async {
            let limit = lease.limit();
            let day = lease.day.load(Ordering::Acquire);
            let (granted_now, total) = self.ledger.grant_calls(org_id, day, chunk(limit), limit).await?;
            self.refills.inc();
            lease.tokens.fetch_add(granted_now as i64, Ordering::AcqRel);
            lease.granted.store(total, Ordering::Release);
            if limit.is_some_and(|l| total >= l) {
                lease.exhausted.store(true, Ordering::Release);
            }
            Ok(())
        }
        .await;
        lease.refilling.store(false, Ordering::Release);
        result
    }
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
    clock: Arc<dyn Clock>,
}

impl Quota {
    pub fn new(host: KeyedHost<TierCounters>, leases: Leases, clock: Arc<dyn Clock>) -> Self {
        Quota { host, leases, clock }
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
    pub async fn used_today(&self, org_id: Uuid, ledger: &dyn QuotaStore) -> Result<u64> {
        let today = utc_day(self.clock.now_ms());
        match self.leases.get(&org_id).map(|l| l.value().clone()) {
            Some(lease) if lease.day.load(Ordering::Acquire) == today => {
                let left_here = lease.tokens.load(Ordering::Acquire).max(0) as u64;
                Ok(lease.granted.load(Ordering::Acquire).saturating_sub(left_here))
            }
            _ => ledger.calls_granted(org_id, today).await,
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
