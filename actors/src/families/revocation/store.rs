//! The revocation family's store port: what it reads and writes, and its records.

use async_trait::async_trait;
use uuid::Uuid;

use crate::kernel::error::Result;

/// A revoked access token, remembered until it would have expired anyway.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Revocation {
    pub jti: String,
    pub org_id: Uuid,
    /// Unix seconds, as in the token's `exp`.
    pub expires_at: i64,
}

/// Revoked tokens (the RevocationActor's port).
#[async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// Revocations of tokens that have not expired by `now_secs`.
    async fn revocations(&self, now_secs: i64) -> Result<Vec<Revocation>>;
    /// Forget at most `limit` revocations of tokens expired by `now_secs` (the janitor's
    /// sweep); returns how many.
    async fn purge_revocations(&self, now_secs: i64, limit: usize) -> Result<u64>;
}

/// A revocation is announced to every node as itself: refuse the token until it expires.
impl crate::runtime::events::Event for Revocation {
    const KIND: &'static str = "token_revoked";
}
