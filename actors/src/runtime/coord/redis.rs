//! The Redis coordinator: commands over a bb8 pool, events over pub/sub on one channel
//! per deployment (`{namespace}:events`). A subscription survives Redis restarts: it
//! reconnects with backoff and then tells its listener to drop everything it cached.

use std::time::Duration;

use async_trait::async_trait;
use bb8_redis::bb8::Pool;
use bb8_redis::RedisConnectionManager;
use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::mpsc;

use crate::kernel::error::{EngineError, Result};
use crate::runtime::coord::{Claim, Coordinator};
use crate::runtime::events::ClusterEvent;

/// One round trip: the start of Redis's memory of claims (a key that vanishes with that
/// memory, re-set by the first claim after), then the claim itself. 1 first, 0 replayed,
/// -1 made before the memory began.
static CLAIM_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"local since = redis.call('GET', KEYS[2])
          if not since then redis.call('SET', KEYS[2], ARGV[3]); since = ARGV[3] end
          if tonumber(ARGV[2]) < tonumber(since) then return -1 end
          if redis.call('SET', KEYS[1], 1, 'NX', 'PX', ARGV[1]) then return 1 end
          return 0",
    )
});

pub struct RedisCoordinator {
    client: redis::Client,
    pool: Pool<RedisConnectionManager>,
    channel: String,
    namespace: String,
}

pub(crate) fn redis_err(e: redis::RedisError) -> EngineError {
    EngineError::Unavailable(format!("redis: {e}"))
}

/// A connection pool on `url` of `size` connections, giving up on a connection after
/// `timeout` (a 503 for the caller).
pub(crate) async fn pool(url: &str, size: u32, timeout: Duration) -> Result<Pool<RedisConnectionManager>> {
    let manager = RedisConnectionManager::new(url).map_err(|e| EngineError::invalid("redis_url", e.to_string()))?;
    Pool::builder().max_size(size).connection_timeout(timeout).build(manager).await.map_err(redis_err)
}

impl RedisCoordinator {
    /// Where `url` points, without credentials.
    pub fn describe(url: &str) -> String {
        match redis::Client::open(url) {
            Ok(c) => match c.get_connection_info().addr() {
                redis::ConnectionAddr::Tcp(h, p) => format!("{h}:{p}"),
                other => other.to_string(),
            },
            Err(_) => "an unparsable URL".into(),
        }
    }

    pub async fn connect(url: &str, namespace: &str) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| EngineError::invalid("redis_url", e.to_string()))?;
        // One direct connection first: its error says why (refused, unknown host, auth),
        // where the pool would only report that it timed out.
        match tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(redis_err(e)),
            Err(_) => return Err(EngineError::Unavailable("redis: no answer within 2 s".into())),
        }
        // Redis answers in well under a millisecond: a second without a connection means
        // it is down, and callers should hear so (503) rather than wait.
        let pool = pool(url, 16, Duration::from_secs(1)).await?;
        let coordinator =
            RedisCoordinator { client, pool, channel: format!("{namespace}:events"), namespace: namespace.to_string() };
        coordinator.ping().await?;
        Ok(coordinator)
    }
}

#[async_trait]
impl Coordinator for RedisCoordinator {
    async fn publish(&self, event: &ClusterEvent) -> Result<()> {
        let payload = serde_json::to_string(event).map_err(EngineError::internal)?;
        let mut conn = self.pool.get().await.map_err(|e| EngineError::Unavailable(format!("redis pool: {e}")))?;
        let _: i64 = conn.publish(&self.channel, payload).await.map_err(redis_err)?;
        Ok(())
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<ClusterEvent>> {
        // The first subscription is made here so a caller learns at once if Redis is
        // unreachable; later ones are made by the task after a lost connection.
        let mut pubsub = self.client.get_async_pubsub().await.map_err(redis_err)?;
        pubsub.subscribe(&self.channel).await.map_err(redis_err)?;
        let (out, events) = mpsc::channel(1024);
        let (client, channel) = (self.client.clone(), self.channel.clone());
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(50);
            loop {
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    let event =
                        msg.get_payload::<String>().ok().and_then(|p| serde_json::from_str::<ClusterEvent>(&p).ok());
                    match event {
                        Some(event) => {
                            if out.send(event).await.is_err() {
                                return;
                            }
                        }
                        None => tracing::warn!("ignoring malformed cluster event"),
                    }
                }
                tracing::warn!("redis subscription lost; reconnecting");
                pubsub = loop {
                    if out.is_closed() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if let Ok(mut p) = client.get_async_pubsub().await {
                        if p.subscribe(&channel).await.is_ok() {
                            break p;
                        }
                    }
                };
                backoff = Duration::from_millis(50);
                if out.send(ClusterEvent::everything()).await.is_err() {
                    return;
                }
            }
        });
        Ok(events)
    }

    async fn claim_once(&self, key: &str, ttl: Duration, issued_at: i64, now_ms: i64) -> Result<Claim> {
        let mut conn = self.pool.get().await.map_err(|e| EngineError::Unavailable(format!("redis pool: {e}")))?;
        let answer: i64 = CLAIM_SCRIPT
            .key(format!("{}:once:{key}", self.namespace))
            .key(format!("{}:once-memory-since", self.namespace))
            .arg(ttl.as_millis().max(1) as u64)
            .arg(issued_at)
            .arg(now_ms.div_euclid(1000))
            .invoke_async(&mut *conn)
            .await
            .map_err(redis_err)?;
        Ok(match answer {
            1 => Claim::First,
            0 => Claim::Replayed,
            _ => Claim::PredatesMemory,
        })
    }

    async fn cache_put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let mut conn = self.pool.get().await.map_err(|e| EngineError::Unavailable(format!("redis pool: {e}")))?;
        let _: () = redis::cmd("SET")
            .arg(format!("{}:cache:{key}", self.namespace))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut *conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    async fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut conn = self.pool.get().await.map_err(|e| EngineError::Unavailable(format!("redis pool: {e}")))?;
        redis::cmd("GET")
            .arg(format!("{}:cache:{key}", self.namespace))
            .query_async(&mut *conn)
            .await
            .map_err(redis_err)
    }

    async fn cache_drop(&self, key: &str) -> Result<()> {
        let mut conn = self.pool.get().await.map_err(|e| EngineError::Unavailable(format!("redis pool: {e}")))?;
        let _: i64 = redis::cmd("DEL")
            .arg(format!("{}:cache:{key}", self.namespace))
            .query_async(&mut *conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.pool.get().await.map_err(|e| EngineError::Unavailable(format!("redis pool: {e}")))?;
        let _: String = redis::cmd("PING").query_async(&mut *conn).await.map_err(redis_err)?;
        Ok(())
    }
}
