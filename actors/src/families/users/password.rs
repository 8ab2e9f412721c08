//! Password hashing: argon2id (RFC 9106), its parameters recorded in each hash (the PHC
//! string), so that a hash made under older parameters still verifies and is replaced
//! at the next successful sign-in. Hashing is deliberately slow (tens of milliseconds
//! and ~19 MiB): it runs on the blocking pool, at most one per core at a time, so a
//! flood of sign-ins queues instead of starving the token endpoint.

use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::kernel::error::{EngineError, Result};

/// The cost of a new hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordSettings {
    /// Memory, KiB.
    pub memory_kib: u32,
    /// Passes over it.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordSettings {
    /// OWASP's first argon2id setting (m = 19 MiB, t = 2, p = 1).
    fn default() -> Self {
        PasswordSettings { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

/// Hashes and verifies, a bounded number at a time.
#[derive(Clone)]
pub struct Hasher {
    settings: PasswordSettings,
    slots: Arc<Semaphore>,
    /// A hash of nothing anyone knows: verified against when there is no account, so a
    /// sign-in for an unknown email costs what one for a known email costs.
    decoy: Arc<String>,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Wrong,
    /// Right; `Some(new hash)` if the stored one was made under other parameters.
    Right(Option<String>),
}

impl Hasher {
    pub fn new(settings: PasswordSettings) -> Result<Hasher> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let decoy = hash_with(settings, "a password no one has: the decoy's")?;
        Ok(Hasher { settings, slots: Arc::new(Semaphore::new(cores)), decoy: Arc::new(decoy) })
    }

    pub fn settings(&self) -> PasswordSettings {
        self.settings
    }

    /// A new hash of `password` (a PHC string).
    pub async fn hash(&self, password: String) -> Result<String> {
        let settings = self.settings;
        self.blocking(move || hash_with(settings, &password)).await?
    }

    /// Check `password` against `stored` (or, with none, against the decoy — always
    /// `Wrong`, in the same time).
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<Verdict> {
        let (settings, decoy) = (self.settings, self.decoy.clone());
        self.blocking(move || {
            let known = stored.is_some();
            let stored = stored.unwrap_or_else(|| decoy.as_ref().clone());
            let hash = PasswordHash::new(&stored).map_err(|e| EngineError::internal(format!("a stored hash: {e}")))?;
            if Argon2::default().verify_password(password.as_bytes(), &hash).is_err() || !known {
                return Ok(Verdict::Wrong);
            }
            let current = params(settings)?;
            let same = hash.algorithm.as_str() == "argon2id"
                && Params::try_from(&hash).is_ok_and(|p| {
                    (p.m_cost(), p.t_cost(), p.p_cost()) == (current.m_cost(), current.t_cost(), current.p_cost())
                });
            Ok(Verdict::Right(if same { None } else { Some(hash_with(settings, &password)?) }))
        })
        .await?
    }

    async fn blocking<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _slot = self.slots.acquire().await.map_err(|_| EngineError::internal("the password hasher is closed"))?;
        tokio::task::spawn_blocking(job).await.map_err(|e| EngineError::internal(format!("password hashing: {e}")))
    }
}

fn params(s: PasswordSettings) -> Result<Params> {
    Params::new(s.memory_kib, s.iterations, s.parallelism, None)
        .map_err(|e| EngineError::internal(format!("argon2 parameters: {e}")))
}

fn hash_with(settings: PasswordSettings, password: &str) -> Result<String> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params(settings)?);
    let salt = SaltString::generate(&mut OsRng);
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| EngineError::internal(format!("argon2: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: PasswordSettings = PasswordSettings { memory_kib: 1024, iterations: 1, parallelism: 1 };

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_records_its_parameters() {
        let hasher = Hasher::new(CHEAP).unwrap();
        let hash = hasher.hash("correct horse battery staple".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        let right = hasher.verify("correct horse battery staple".into(), Some(hash.clone())).await.unwrap();
        assert_eq!(right, Verdict::Right(None));
        let wrong = hasher.verify("correct horse battery stapler".into(), Some(hash.clone())).await.unwrap();
        assert_eq!(wrong, Verdict::Wrong);
        // No account: the decoy never verifies, whatever the password.
        let none = hasher.verify("a password no one has: the decoy's".into(), None).await.unwrap();
        assert_eq!(none, Verdict::Wrong);

        // New parameters: the old hash still verifies, and a new one is made.
        let stronger = Hasher::new(PasswordSettings { memory_kib: 2048, ..CHEAP }).unwrap();
        let Verdict::Right(Some(rehashed)) =
            stronger.verify("correct horse battery staple".into(), Some(hash)).await.unwrap()
        else {
            panic!("not rehashed")
        };
        assert!(rehashed.starts_with("$argon2id$v=19$m=2048,t=1,p=1$"), "{rehashed}");
        assert_eq!(
            stronger.verify("correct horse battery staple".into(), Some(rehashed)).await.unwrap(),
            Verdict::Right(None)
        );
    }
}
