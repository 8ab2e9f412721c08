//! The coordinator port: hot state shared by every node of a cluster. It carries cache
//! invalidations (a credential rotated or revoked, an agent suspended on one node must
//! stop working on all of them), token revocations and key rotations, and the one-time
//! use of assertion and proof ids (`jti`) across nodes. In-process by default, Redis
//! (pub/sub and `SET NX`) when `REDIS_URL` is set.

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::kernel::error::Result;
use crate::runtime::events::ClusterEvent;

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

/// The answer of [`Coordinator::claim_once`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    First,
    Replayed,
    PredatesMemory,
}

#[async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// Announce `event` to every node, this one included.
    async fn publish(&self, event: &ClusterEvent) -> Result<()>;
    /// Events published by any node from now on. After a lost connection the stream
    /// yields [`ClusterEvent::everything`] once it is back, since events may have been missed.
    async fn subscribe(&self) -> Result<mpsc::Receiver<ClusterEvent>>;
    /// One cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<()>;
    /// Record `key` (the id of something made at `issued_at`, unix seconds) as used for
    /// `ttl`: [`Claim::First`] only for the first caller, cluster-wide. Replay protection
    /// for client assertions and DPoP proofs. The coordinator's memory of claims can be
    /// lost (a Redis without persistence restarts, a single node restarts), so it fails
    /// closed: anything made before its memory began (`now_ms` of the first claim after
    /// the loss) is [`Claim::PredatesMemory`], since it might have been used before.
    async fn claim_once(&self, key: &str, ttl: std::time::Duration, issued_at: i64, now_ms: i64) -> Result<Claim>;
    /// A value every node shares for `ttl` (a computed report), until dropped.
    async fn cache_put(&self, key: &str, value: &[u8], ttl: std::time::Duration) -> Result<()>;
    async fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn cache_drop(&self, key: &str) -> Result<()>;
}
