//! HashiCorp Vault (or OpenBao) KV v2 through vaultrs: one secret per signing key at
//! `<mount>/<prefix>/signing-keys/<kid>`, holding the base64 PKCS#8 DER.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

use super::VaultConfig;
use crate::kernel::error::{EngineError, Result};

pub struct Vault {
    client: VaultClient,
    mount: String,
    prefix: String,
}

fn vault_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(format!("vault: {e}"))
}

impl Vault {
    pub async fn connect(config: &VaultConfig) -> Result<Vault> {
        let settings = VaultClientSettingsBuilder::default()
            .address(&config.addr)
            .token(&config.token)
            .build()
            .map_err(|e| EngineError::invalid("vault", e.to_string()))?;
        let client = VaultClient::new(settings).map_err(vault_err)?;
        let vault = Vault { client, mount: config.mount.clone(), prefix: config.prefix.clone() };
        // Fail at start, not at the first rotation, if Vault is unreachable or the token
        // cannot use the mount.
        vaultrs::kv2::list(&vault.client, &vault.mount, &vault.prefix).await.or_else(|e| match e {
            vaultrs::error::ClientError::APIError { code: 404, .. } => Ok(Vec::new()),
            e => Err(vault_err(e)),
        })?;
        Ok(vault)
    }

    /// Store a key; returns its path (under the mount).
    pub async fn put(&self, kid: &str, pkcs8: &[u8]) -> Result<String> {
        let path = format!("{}/signing-keys/{kid}", self.prefix);
        let data = HashMap::from([("pkcs8", STANDARD.encode(pkcs8))]);
        vaultrs::kv2::set(&self.client, &self.mount, &path, &data).await.map_err(vault_err)?;
        Ok(path)
    }

    pub async fn get(&self, path: &str) -> Result<Vec<u8>> {
        let data: HashMap<String, String> =
            vaultrs::kv2::read(&self.client, &self.mount, path).await.map_err(vault_err)?;
        let encoded = data.get("pkcs8").ok_or_else(|| vault_err(format!("{path} has no pkcs8")))?;
        STANDARD.decode(encoded).map_err(vault_err)
    }
}
