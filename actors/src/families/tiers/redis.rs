//! Redis: the daily call quota's ledger for a cluster ([`QuotaStore`]). One key per
//! organization and UTC day (`{namespace}:quota:{org}:{day}`), always with a TTL; nodes
//! lease chunks with `INCRBY` clamped to what is left, in one script, so every node
//! draws on one limit. Each node also beats in a sorted set of live nodes every few
//! seconds; a grant reports how many there are, which a node divides the day's
//! remainder by if Redis becomes unreachable.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bb8_redis::bb8::Pool;
use bb8_redis::RedisConnectionManager;
use uuid::Uuid;

use crate::families::tiers::{Grant, GrantRequest, QuotaStore};
use crate::kernel::clock::Clock;
use crate::kernel::error::{EngineError, Result};
use crate::runtime::coord::redis::{pool, redis_err};

const DAY_MS: i64 = 86_400_000;
/// How often a node says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node silent for this long no longer counts as one of the cluster's.
const NODE_SILENT_MS: i64 = 15_000;

/// Lua: count `node` live now and return how many nodes are (silent ones dropped).
const LIVE_NODES: &str = "local function live_nodes(set, now, node, cutoff)
      redis.call('ZADD', set, now, node)
      redis.call('ZREMRANGEBYSCORE', set, '-inf', now - cutoff)
      redis.call('PEXPIRE', set, 2 * cutoff)
      return redis.call('ZCARD', set)
    end
";

/// KEYS: the day's key, the node set. ARGV: want, limit (-1: none), owed, seen, TTL (ms),
/// now (ms), node id, silence cutoff (ms). A day the key is missing for (never drawn on,
/// or Redis restarted empty) starts from what the node last saw, `seen`, which already
/// holds its `owed`. Returns {granted now, the day's total, live nodes}.
static GRANT_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(&format!(
        "{LIVE_NODES}
        local want, limit, owed, seen = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
        local total = tonumber(redis.call('GET', KEYS[1]))
        if total == nil then
          total = math.max(seen, owed)
          if total > 0 then redis.call('SET', KEYS[1], total) end
        elseif owed > 0 then
          total = redis.call('INCRBY', KEYS[1], owed)
        end
        local grant = want
        if limit >= 0 then grant = math.max(0, math.min(want, limit - total)) end
        if grant > 0 then total = redis.call('INCRBY', KEYS[1], grant) end
        if total > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
        return {{grant, total, live_nodes(KEYS[2], tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8]))}}"
    ))
});

/// The heartbeat. KEYS: the node set; ARGV: now (ms), node id, silence cutoff (ms).
static BEAT_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(&format!(
        "{LIVE_NODES} return live_nodes(KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]))"
    ))
});

pub struct RedisLedger {
    pool: Pool<RedisConnectionManager>,
    namespace: String,
    node: Uuid,
    clock: Arc<dyn Clock>,
    /// The heartbeat runs while this lives.
    _alive: Arc<()>,
}

/// A node saying it is alive.
struct Beat {
    pool: Pool<RedisConnectionManager>,
    set: String,
    node: String,
    clock: Arc<dyn Clock>,
}

impl Beat {
    async fn once(&self) -> Result<u32> {
        let mut conn = self.pool.get().await.map_err(|e| EngineError::Unavailable(format!("redis pool: {e}")))?;
        let mut beat = BEAT_SCRIPT.key(&self.set);
        beat.arg(self.clock.now_ms()).arg(&self.node).arg(NODE_SILENT_MS);
        beat.invoke_async(&mut *conn).await.map_err(redis_err)
    }
}

impl RedisLedger {
    /// A ledger on the Redis at `url` (already known to answer: the coordinator connected),
    /// beating as a live node until it is dropped.
    pub async fn connect(url: &str, namespace: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        // While Redis is down a lease tries it once a second and its callers wait for
        // that try, so it must fail fast.
        let pool = pool(url, 8, Duration::from_millis(250)).await?;
        let alive = Arc::new(());
        let ledger =
            RedisLedger { pool, namespace: namespace.to_string(), node: Uuid::now_v7(), clock, _alive: alive.clone() };
        let beat = Beat {
            pool: ledger.pool.clone(),
            set: ledger.node_set(),
            node: ledger.node.to_string(),
            clock: ledger.clock.clone(),
        };
        beat.once().await?;
        let alive = Arc::downgrade(&alive);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HEARTBEAT);
            while alive.strong_count() > 0 {
                ticks.tick().await;
                if let Err(e) = beat.once().await {
                    tracing::debug!(error = %e, "quota ledger heartbeat missed");
                }
            }
        });
        Ok(ledger)
    }

    fn node_set(&self) -> String {
        format!("{}:quota-nodes", self.namespace)
    }

    fn day_key(&self, org_id: Uuid, day: i64) -> String {
        format!("{}:quota:{org_id}:{day}", self.namespace)
    }

    async fn conn(&self) -> Result<bb8_redis::bb8::PooledConnection<'_, RedisConnectionManager>> {
        self.pool.get().await.map_err(|e| EngineError::Unavailable(format!("redis pool: {e}")))
    }
}

#[async_trait]
impl QuotaStore for RedisLedger {
    async fn grant_calls(&self, org_id: Uuid, day: i64, request: GrantRequest) -> Result<Grant> {
        let now = self.clock.now_ms();
        // The key outlives its day by a day, so yesterday's usage can still be read.
        let ttl = ((day + 2) * DAY_MS - now).max(1);
        let mut conn = self.conn().await?;
        let (granted, total, nodes): (u64, u64, u32) = GRANT_SCRIPT
            .key(self.day_key(org_id, day))
            .key(self.node_set())
            .arg(request.want)
            .arg(request.limit.map_or(-1, |l| l.min(i64::MAX as u64) as i64))
            .arg(request.owed)
            .arg(request.seen)
            .arg(ttl)
            .arg(now)
            .arg(self.node.to_string())
            .arg(NODE_SILENT_MS)
            .invoke_async(&mut *conn)
            .await
            .map_err(redis_err)?;
        Ok(Grant { granted, total, nodes: Some(nodes.max(1)) })
    }

    async fn calls_granted(&self, org_id: Uuid, day: i64) -> Result<u64> {
        let mut conn = self.conn().await?;
        let total: Option<u64> =
            redis::cmd("GET").arg(self.day_key(org_id, day)).query_async(&mut *conn).await.map_err(redis_err)?;
        Ok(total.unwrap_or(0))
    }
}
