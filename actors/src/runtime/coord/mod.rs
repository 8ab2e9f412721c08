//! The coordinator port: hot state shared by every node of a cluster. It carries cache
//! invalidations (a credential rotated or revoked, an agent suspended on one node must
//! stop working on all of them), token revocations and key rotations, and the one-time
//! use of assertion and proof ids (`jti`) across nodes. In-process by default, Redis
//! (pub/sub and `SET NX`) when `REDIS_URL` is set.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::kernel::error::Result;

pub mod memory;
pub mod redis;

/// Something every node must apply to its local caches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClusterEvent {
    /// A credential's secret or status changed.
    ClientChanged { client_id: String },
    /// An agent's status or scopes changed, or it was deleted.
    AgentChanged { agent_id: Uuid },
    /// An access token was revoked; refuse it until it expires (`expires_at`, seconds).
    TokenRevoked { jti: String, org_id: Uuid, expires_at: i64 },
    /// A signing key was created: reload the key ring.
    KeysChanged,
    /// An organization changed (its tier, say): its quota reads it again.
    OrgChanged { org_id: Uuid },
    /// An organization's delegation chains changed (a link made or revoked) on the node
    /// `origin`: the other nodes read its index again (the origin already has it).
    DelegationsChanged { org_id: Uuid, origin: Uuid },
    /// A federation partner was created, changed or deleted: rebuild the partner index.
    PartnersChanged,
    /// Anything may have changed (an organization was deleted, or events were lost while
    /// a subscription was down): drop every cached entry.
    Everything,
}

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
    /// yields [`ClusterEvent::Everything`] once it is back, since events may have been missed.
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
