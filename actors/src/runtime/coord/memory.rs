//! The in-process coordinator for a single node: a broadcast channel.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use tokio::sync::{broadcast, mpsc};

use crate::kernel::error::Result;
use crate::runtime::coord::{Claim, Coordinator};
use crate::runtime::events::ClusterEvent;

pub struct MemoryCoordinator {
    tx: broadcast::Sender<ClusterEvent>,
    /// Claimed keys and when their claim lapses.
    claims: DashMap<String, Instant>,
    /// When this memory began (unix seconds, the process's start): claims made before
    /// it were lost with the previous process.
    memory_since: i64,
    /// Shared values and when they lapse.
    cache: DashMap<String, (Vec<u8>, Instant)>,
}

/// Claims kept before expired ones are swept.
const SWEEP_AT: usize = 100_000;

impl MemoryCoordinator {
    /// A coordinator whose memory begins at `now_ms` (the engine's clock at start).
    pub fn new(now_ms: i64) -> Self {
        MemoryCoordinator {
            tx: broadcast::channel(1024).0,
            claims: DashMap::new(),
            memory_since: now_ms.div_euclid(1000),
            cache: DashMap::new(),
        }
    }
}

#[async_trait]
impl Coordinator for MemoryCoordinator {
    async fn publish(&self, event: &ClusterEvent) -> Result<()> {
        // No receiver is fine: nobody has anything cached yet.
        let _ = self.tx.send(event.clone());
        Ok(())
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<ClusterEvent>> {
        let mut rx = self.tx.subscribe();
        let (out, events) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => ClusterEvent::everything(),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if out.send(event).await.is_err() {
                    return;
                }
            }
        });
        Ok(events)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn cache_put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let now = crate::kernel::clock::monotonic();
        if self.cache.len() >= SWEEP_AT {
            self.cache.retain(|_, (_, until)| *until > now);
        }
        self.cache.insert(key.to_string(), (value.to_vec(), now + ttl));
        Ok(())
    }

    async fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.cache.get(key).filter(|e| e.1 > crate::kernel::clock::monotonic()).map(|e| e.0.clone()))
    }

    async fn cache_drop(&self, key: &str) -> Result<()> {
        self.cache.remove(key);
        Ok(())
    }

    async fn claim_once(&self, key: &str, ttl: Duration, issued_at: i64, _now_ms: i64) -> Result<Claim> {
        if issued_at < self.memory_since {
            return Ok(Claim::PredatesMemory);
        }
        let now = crate::kernel::clock::monotonic();
        if self.claims.len() >= SWEEP_AT {
            self.claims.retain(|_, until| *until > now);
        }
        let mut fresh = false;
        self.claims
            .entry(key.to_string())
            .and_modify(|until| {
                if *until <= now {
                    *until = now + ttl;
                    fresh = true;
                }
            })
            .or_insert_with(|| {
                fresh = true;
                now + ttl
            });
        Ok(if fresh { Claim::First } else { Claim::Replayed })
    }
}
