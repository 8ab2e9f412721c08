//! The signing keys as the engine publishes and rotates them (the KeyManager owns the
//! ring).

use std::sync::Arc;

use crate::engine::{Call, Engine};
use crate::families::signing::keys::KeyRing;
use crate::kernel::error::{EngineError, Result};

impl Engine {
    /// The published JWKS document (RFC 7517), serialized.
    pub fn jwks(&self) -> Result<String> {
        Ok(self.ring()?.jwks(self.shared.now_ms()))
    }

    /// Signature algorithms of the keys in the JWKS.
    pub fn signing_algorithms(&self) -> Result<Vec<&'static str>> {
        let mut algs: Vec<&'static str> = self.ring()?.keys().map(|k| k.alg.as_str()).collect();
        algs.sort();
        algs.dedup();
        Ok(algs)
    }

    pub(crate) fn ring(&self) -> Result<Arc<KeyRing>> {
        self.shared.keys.ring()
    }

    /// Reload signing keys from the store (e.g. after another node added one).
    pub async fn reload_keys(&self) -> Result<()> {
        self.shared.keys.reload().await
    }

    /// Create the next signing key: published now, signing after `key_preannounce`.
    /// `call` is the platform administrator's; `None` is the operator on the machine
    /// (the `agentidp keys rotate` command), who already holds the store.
    pub async fn rotate_keys(&self, call: Option<&Call>) -> Result<crate::kernel::model::KeyInfo> {
        if let Some(call) = call {
            self.shared.policy.authorize("keys.rotate", &call.caller.scope, false)?;
        }
        let kid = self.shared.keys.rotate().await?;
        let ring = self.ring()?;
        let key = ring
            .keys()
            .find(|k| k.kid == kid)
            .ok_or_else(|| EngineError::internal("the rotated key is not in the ring"))?;
        if let Some(call) = call {
            let detail = serde_json::json!({"alg": key.alg.as_str()});
            self.audit(self.call_event(call, call.caller.org_id, "keys.rotate", &kid, detail)).await?;
        }
        Ok(crate::kernel::model::KeyInfo {
            kid: kid.clone(),
            alg: key.alg.as_str(),
            created_at: key.created_at,
            activates_at: key.activates_at,
        })
    }
}
