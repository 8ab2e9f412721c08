//! Engine configuration: plain data, passed explicitly to [`crate::Engine::start`].

use std::path::PathBuf;
use std::time::Duration;

/// Which durable store and coordinator to use, and the knobs of the identity core.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Folder of the embedded SQLite store (used when `database_url` is `None`).
    pub data_dir: PathBuf,
    /// `postgres://…` selects PostgreSQL.
    pub database_url: Option<String>,
    /// `redis://…` selects the Redis coordinator; otherwise it is in-process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel, so several deployments can share one Redis.
    pub redis_namespace: String,
    /// The `iss` claim and the base of discovery URLs, e.g. `http://127.0.0.1:8080`.
    pub issuer: String,
    /// Default `aud` of access tokens.
    pub audience: String,
    /// Lifetime of issued access tokens.
    pub token_ttl: Duration,
    /// Key of the HMAC that stores client secrets; generated and persisted in the store
    /// when `None`, so every node that shares the store agrees on it.
    pub secret_hash_key: Option<Vec<u8>>,
    /// Largest number of audit events written in one group commit.
    pub audit_batch_max: usize,
    /// How long a supervisor waits for a child to answer before giving up.
    pub call_timeout: Duration,
}

impl EngineConfig {
    /// An embedded (SQLite) configuration rooted at `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            database_url: None,
            redis_url: None,
            redis_namespace: "agentidp".into(),
            issuer: "http://127.0.0.1:8080".into(),
            audience: "http://127.0.0.1:8080".into(),
            token_ttl: Duration::from_secs(900),
            secret_hash_key: None,
            audit_batch_max: 512,
            call_timeout: Duration::from_secs(10),
        }
    }
}
