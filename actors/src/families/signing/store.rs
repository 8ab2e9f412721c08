//! The signing family's store port: what it reads and writes, and its records.

use async_trait::async_trait;

use crate::kernel::error::Result;
use crate::kernel::model::Millis;

/// A signing key as stored. `private_key` is PKCS#8 DER sealed by the keystore (or
/// empty when `key_ref` points into Vault).
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: String,
    pub private_key: Vec<u8>,
    pub key_ref: Option<String>,
    pub created_at: Millis,
    pub activates_at: Millis,
}

/// The signing keys (the KeyManager's port).
#[async_trait]
pub trait SigningKeyStore: Send + Sync + 'static {
    async fn insert_signing_key(&self, key: &KeyRecord) -> Result<()>;
    async fn signing_keys(&self) -> Result<Vec<KeyRecord>>;
}
