//! Where private signing keys live: sealed (AES-256-GCM under a master key) in the store,
//! or in HashiCorp Vault KV v2 when Vault is configured. A stored key record says which,
//! so keys written under one setting stay readable after switching to the other.

use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::kernel::error::{EngineError, Result};

#[cfg(feature = "vault")]
mod vault;

/// A build without the `vault` feature refuses a Vault configuration, and a key stored
/// in Vault, with a clear error.
#[cfg(not(feature = "vault"))]
mod vault {
    use super::VaultConfig;
    use crate::kernel::error::{EngineError, Result};

    pub enum Vault {}

    fn not_built() -> EngineError {
        EngineError::Unavailable("this build has no Vault support (the engine's `vault` feature)".into())
    }

    impl Vault {
        pub async fn connect(_: &VaultConfig) -> Result<Vault> {
            Err(not_built())
        }

        pub async fn put(&self, _: &str, _: &[u8]) -> Result<String> {
            match *self {}
        }

        pub async fn get(&self, _: &str) -> Result<Vec<u8>> {
            match *self {}
        }
    }
}

const SEALED_V1: &[u8] = b"v1";
const PLAIN_REF: &str = "plain";
const VAULT_PREFIX: &str = "vault:";

pub struct Keystore {
    master: LessSafeKey,
    vault: Option<vault::Vault>,
}

/// A private key, ready to be stored.
pub struct Sealed {
    pub private_key: Vec<u8>,
    pub key_ref: Option<String>,
}

fn seal_err(what: impl std::fmt::Display) -> EngineError {
    EngineError::internal(format!("keystore: {what}"))
}

/// Read the master key from `dir/master.key`, creating it (mode 0600) if absent. An
/// operator-placed file that group or others may read is made owner-only first, with a
/// warning: the key unseals every signing key and secret of the store.
fn master_key_file(dir: &Path) -> Result<Vec<u8>> {
    let path = dir.join("master.key");
    match crate::runtime::private_fs::tighten(&path) {
        Ok(Some(mode)) => tracing::warn!(
            path = %path.display(),
            was = %format!("{mode:o}"),
            "master.key was open to group or others: their permissions are removed (owner-only now); if \
             anyone else could read it, treat the key as exposed"
        ),
        Ok(None) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(seal_err(format!(
                "making {} owner-only (group or others may read it): {e}; chmod 600 it",
                path.display()
            )))
        }
    }
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => return Ok(bytes),
        Ok(_) => return Err(seal_err(format!("{} must hold exactly 32 bytes", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(seal_err(format!("reading {}: {e}", path.display()))),
    }
    crate::runtime::private_fs::private_dir(dir).map_err(|e| seal_err(format!("creating {}: {e}", dir.display())))?;
    let mut key = vec![0u8; 32];
    SystemRandom::new().fill(&mut key).map_err(|_| seal_err("random"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(|e| seal_err(format!("creating {}: {e}", path.display())))?;
    std::io::Write::write_all(&mut file, &key).map_err(seal_err)?;
    Ok(key)
}

/// Where Vault is and where our secrets live in it.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub addr: String,
    pub token: String,
    /// KV v2 mount, e.g. `secret`.
    pub mount: String,
    /// Path prefix under the mount, e.g. `agentidp`.
    pub prefix: String,
}

impl Keystore {
    /// The master key given, or the one in `data_dir` (made on first use); Vault when
    /// configured.
    pub async fn open(data_dir: &Path, master_key: Option<&[u8]>, vault: Option<&VaultConfig>) -> Result<Keystore> {
        let master = match master_key {
            Some(k) => k.to_vec(),
            None => master_key_file(data_dir)?,
        };
        let unbound = UnboundKey::new(&AES_256_GCM, &master).map_err(|_| seal_err("master key must be 32 bytes"))?;
        let vault = match vault {
            Some(v) => Some(vault::Vault::connect(v).await?),
            None => None,
        };
        Ok(Keystore { master: LessSafeKey::new(unbound), vault })
    }

    /// Protect a private key (PKCS#8 DER) of key `kid`.
    pub async fn seal(&self, kid: &str, pkcs8: &[u8]) -> Result<Sealed> {
        if let Some(vault) = &self.vault {
            let path = vault.put(kid, pkcs8).await?;
            return Ok(Sealed { private_key: Vec::new(), key_ref: Some(format!("{VAULT_PREFIX}{path}")) });
        }
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| seal_err("random"))?;
        let mut data = pkcs8.to_vec();
        self.master
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(kid.as_bytes()), &mut data)
            .map_err(|_| seal_err("seal"))?;
        let mut out = Vec::with_capacity(SEALED_V1.len() + NONCE_LEN + data.len());
        out.extend_from_slice(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Ok(Sealed { private_key: out, key_ref: None })
    }

    /// Recover the bytes [`Keystore::seal`] protected under `kid` (a signing key, a
    /// webhook secret): `sealed` as stored, or the Vault reference in `key_ref`.
    pub async fn unseal_bytes(&self, kid: &str, sealed: &[u8], key_ref: Option<&str>) -> Result<Vec<u8>> {
        match key_ref {
            Some(PLAIN_REF) => Ok(sealed.to_vec()),
            Some(r) if r.starts_with(VAULT_PREFIX) => {
                let vault = self.vault.as_ref().ok_or_else(|| {
                    EngineError::Unavailable(format!("key {kid} is in Vault, but VAULT_ADDR is not set"))
                })?;
                vault.get(&r[VAULT_PREFIX.len()..]).await
            }
            Some(other) => Err(seal_err(format!("unknown key reference {other:?}"))),
            None => {
                let body = sealed
                    .strip_prefix(SEALED_V1)
                    .filter(|b| b.len() > NONCE_LEN)
                    .ok_or_else(|| seal_err("sealed key is malformed"))?;
                let (nonce, ciphertext) = body.split_at(NONCE_LEN);
                let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| seal_err("nonce"))?;
                let mut data = ciphertext.to_vec();
                let plain = self.master.open_in_place(nonce, Aad::from(kid.as_bytes()), &mut data).map_err(|_| {
                    EngineError::Unavailable(format!(
                        "cannot decrypt key {kid}: every node must use the same master key \
                         (AGENTIDP_MASTER_KEY or data_dir/master.key)"
                    ))
                })?;
                Ok(plain.to_vec())
            }
        }
    }
}

/// Vault settings from the standard environment (`VAULT_ADDR`, `VAULT_TOKEN`) plus ours.
pub fn vault_from_env() -> Option<VaultConfig> {
    let addr = std::env::var("VAULT_ADDR").ok().filter(|s| !s.is_empty())?;
    Some(VaultConfig {
        addr,
        token: std::env::var("VAULT_TOKEN").unwrap_or_default(),
        mount: std::env::var("AGENTIDP_VAULT_MOUNT").unwrap_or_else(|_| "secret".into()),
        prefix: std::env::var("AGENTIDP_VAULT_PREFIX").unwrap_or_else(|_| "agentidp".into()),
    })
}
