//! Delegations as biscuit tokens: attenuable offline. AgentIdP signs the authority block
//! with its biscuit root key (Ed25519, published at `/.well-known/biscuit-public-key`);
//! the holder may append blocks that only narrow — checks on the scope asked for, the
//! time, the audience — without calling AgentIdP, and any service holding the public
//! key verifies the token offline.
//!
//! The authority block states the link and what it grants:
//!
//! ```text
//! delegation("<link id>"); chain("<chain id>"); organization("<org id>");
//! delegator("<agent id>"); delegatee("<agent id>"); audience("<aud>");
//! scope("agents:read"); scope("search:query");
//! check if time($t), $t <= <expires_at>;
//! ```
//!
//! A verifier states the request: `time(<now>)`, `scope_requested("<scope>")` for the
//! scope it wants to use, and `audience_requested("<aud>")` if it has one; then
//! `allow if scope($s), scope_requested($s)`. Holders narrow with checks on those facts,
//! e.g. `check if scope_requested($s), ["search:query"].contains($s);`. Facts of
//! appended blocks are never trusted by the verifier's policy, so a block cannot add a
//! scope. AgentIdP's own verification finds the effective scope by asking for each of
//! the authority's scopes in turn.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::builder::{date, fact, string, Algorithm};
use biscuit_auth::{AuthorizerLimits, Biscuit, KeyPair, PrivateKey};
use uuid::Uuid;

use crate::families::delegation::rules::Delegation;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::Millis;

/// The largest biscuit accepted for verification, and the most blocks.
pub const MAX_BISCUIT_LEN: usize = 16 * 1024;
pub const MAX_BLOCKS: usize = 16;

/// Limits of every authorizer run on a holder's blocks: set explicitly (biscuit's 1 ms
/// default time limit fails at random on a loaded machine), small enough that a hostile
/// block cannot cost much.
fn limits() -> AuthorizerLimits {
    AuthorizerLimits { max_facts: 1000, max_iterations: 100, max_time: Duration::from_millis(50) }
}

fn biscuit_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::internal(format!("biscuit: {e}"))
}

fn system_time(ms: Millis) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// What a biscuit delegation says, once its signature and checks are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiscuitGrant {
    pub delegation_id: Uuid,
    pub org_id: Uuid,
    pub delegatee_id: Uuid,
    /// The authority's scopes that every block's checks allow now.
    pub scopes: Vec<String>,
    pub blocks: usize,
}

/// Why a biscuit does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiscuitFault {
    Malformed,
    BadSignature,
    /// The authority's expiry has passed.
    Expired,
    /// The holder's blocks allow none of its scopes now (or for this audience).
    Attenuated,
}

/// The root key and what it signs and verifies.
pub struct BiscuitKeys {
    keypair: KeyPair,
}

impl BiscuitKeys {
    /// A new Ed25519 root key, as the 32 bytes to keep.
    pub fn generate() -> Vec<u8> {
        KeyPair::new_with_algorithm(Algorithm::Ed25519).private().to_bytes().to_vec()
    }

    pub fn from_private(bytes: &[u8]) -> Result<BiscuitKeys> {
        let private = PrivateKey::from_bytes(bytes, Algorithm::Ed25519).map_err(biscuit_err)?;
        Ok(BiscuitKeys { keypair: KeyPair::from(&private) })
    }

    /// The public key as biscuit tools print it: `ed25519/<hex>`.
    pub fn public_key(&self) -> String {
        self.keypair.public().to_string()
    }

    /// The biscuit of `link`, and the hex revocation id of its authority block — which
    /// every attenuated descendant carries too.
    pub fn issue(&self, link: &Delegation) -> Result<(String, String)> {
        let mut builder = Biscuit::builder();
        let id = |u: Uuid| string(&u.to_string());
        for f in [
            fact("delegation", &[id(link.id)]),
            fact("chain", &[id(link.chain_id)]),
            fact("organization", &[id(link.org_id)]),
            fact("delegator", &[id(link.delegator_id)]),
            fact("delegatee", &[id(link.delegatee_id)]),
            fact("audience", &[string(&link.audience)]),
        ]
        .into_iter()
        .chain(link.scopes().map(|s| fact("scope", &[string(s)])))
        {
            builder = builder.fact(f).map_err(biscuit_err)?;
        }
        let expiry = time::OffsetDateTime::from_unix_timestamp(link.expires_at.div_euclid(1000))
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .ok_or_else(|| biscuit_err("expiry out of range"))?;
        builder = builder.code(format!("check if time($t), $t <= {expiry};")).map_err(biscuit_err)?;
        let token = builder.build(&self.keypair).map_err(biscuit_err)?;
        let revocation = token
            .revocation_identifiers()
            .first()
            .map(|id| id.iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_default();
        Ok((token.to_base64().map_err(biscuit_err)?, revocation))
    }

    /// Verify a biscuit delegation at `now` (the engine's clock), for `audience` if the
    /// verifier has one: the signatures, the authority's facts, and which of its scopes
    /// the holder's blocks leave.
    pub fn verify(
        &self,
        token: &str,
        now: Millis,
        audience: Option<&str>,
    ) -> std::result::Result<BiscuitGrant, BiscuitFault> {
        if token.len() > MAX_BISCUIT_LEN {
            return Err(BiscuitFault::Malformed);
        }
        let biscuit = Biscuit::from_base64(token, self.keypair.public()).map_err(|e| match e {
            biscuit_auth::error::Token::Format(biscuit_auth::error::Format::Signature(_)) => BiscuitFault::BadSignature,
            biscuit_auth::error::Token::Format(biscuit_auth::error::Format::InvalidSignatureSize(_)) => {
                BiscuitFault::BadSignature
            }
            _ => BiscuitFault::Malformed,
        })?;
        if biscuit.block_count() > MAX_BLOCKS {
            return Err(BiscuitFault::Malformed);
        }
        let now = date(&system_time(now));
        let authorizer = |requested: Option<&str>| -> std::result::Result<biscuit_auth::Authorizer, BiscuitFault> {
            let mut b = biscuit_auth::builder::AuthorizerBuilder::new()
                .set_limits(limits())
                .fact(fact("time", std::slice::from_ref(&now)))
                .map_err(|_| BiscuitFault::Malformed)?;
            if let Some(s) = requested {
                b = b.fact(fact("scope_requested", &[string(s)])).map_err(|_| BiscuitFault::Malformed)?;
            }
            if let Some(a) = audience {
                b = b.fact(fact("audience_requested", &[string(a)])).map_err(|_| BiscuitFault::Malformed)?;
            }
            let b = b.code("allow if scope($s), scope_requested($s);").map_err(|_| BiscuitFault::Malformed)?;
            b.build(&biscuit).map_err(|_| BiscuitFault::Malformed)
        };
        // The authority's facts (only the authority block is trusted for them).
        let mut reader = authorizer(None)?;
        let one = |reader: &mut biscuit_auth::Authorizer, name: &str| -> std::result::Result<Uuid, BiscuitFault> {
            let rule = format!("data($x) <- {name}($x)");
            let found: Vec<(String,)> = reader.query(rule.as_str()).map_err(|_| BiscuitFault::Malformed)?;
            match &found[..] {
                [(x,)] => Uuid::parse_str(x).map_err(|_| BiscuitFault::Malformed),
                _ => Err(BiscuitFault::Malformed),
            }
        };
        let delegation_id = one(&mut reader, "delegation")?;
        let org_id = one(&mut reader, "organization")?;
        let delegatee_id = one(&mut reader, "delegatee")?;
        let scopes: Vec<(String,)> = reader.query("data($s) <- scope($s)").map_err(|_| BiscuitFault::Malformed)?;
        let mut allowed = Vec::new();
        let mut expired = false;
        for (scope,) in &scopes {
            let mut run = authorizer(Some(scope))?;
            match run.authorize() {
                Ok(_) => allowed.push(scope.clone()),
                Err(biscuit_auth::error::Token::FailedLogic(
                    biscuit_auth::error::Logic::Unauthorized { checks, .. }
                    | biscuit_auth::error::Logic::NoMatchingPolicy { checks },
                )) => {
                    // A failed check of the authority block is its expiry.
                    expired |= checks
                        .iter()
                        .any(|c| matches!(c, biscuit_auth::error::FailedCheck::Block(b) if b.block_id == 0));
                }
                Err(_) => {}
            }
        }
        if allowed.is_empty() {
            return Err(if expired { BiscuitFault::Expired } else { BiscuitFault::Attenuated });
        }
        allowed.sort();
        Ok(BiscuitGrant { delegation_id, org_id, delegatee_id, scopes: allowed, blocks: biscuit.block_count() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::delegation::rules::{DelegationStatus, TokenFormat};

    fn link(expires_at: Millis) -> Delegation {
        let id = Uuid::now_v7();
        Delegation {
            id,
            org_id: Uuid::now_v7(),
            chain_id: id,
            parent_id: None,
            delegator_id: Uuid::now_v7(),
            delegatee_id: Uuid::now_v7(),
            scope: "a b".into(),
            audience: "svc".into(),
            depth: 1,
            max_depth: 3,
            token_format: TokenFormat::Biscuit,
            token_id: String::new(),
            created_at: 0,
            expires_at,
            status: DelegationStatus::Active,
            revoked_at: None,
        }
    }

    #[test]
    fn a_biscuit_verifies_until_it_expires_and_blocks_only_narrow() {
        let keys = BiscuitKeys::from_private(&BiscuitKeys::generate()).unwrap();
        let l = link(1_800_000_600_000);
        let (token, revocation) = keys.issue(&l).unwrap();
        assert_eq!(revocation.len(), 128, "an Ed25519 signature, hex");
        let grant = keys.verify(&token, 1_800_000_000_000, None).unwrap();
        assert_eq!((grant.delegation_id, grant.scopes.clone()), (l.id, vec!["a".to_string(), "b".to_string()]));
        assert_eq!(keys.verify(&token, 1_800_000_601_000, None), Err(BiscuitFault::Expired));

        let parsed = Biscuit::from_base64(&token, keys.keypair.public()).unwrap();
        // A block that tries to add a scope adds nothing; one that narrows, narrows.
        let widened = parsed.append(biscuit_auth::builder::BlockBuilder::new().code("scope(\"z\");").unwrap()).unwrap();
        let grant = keys.verify(&widened.to_base64().unwrap(), 1_800_000_000_000, None).unwrap();
        assert_eq!(grant.scopes, vec!["a".to_string(), "b".to_string()]);
        let narrowed = parsed
            .append(
                biscuit_auth::builder::BlockBuilder::new()
                    .code("check if scope_requested($s), [\"b\"].contains($s); check if audience_requested(\"svc\");")
                    .unwrap(),
            )
            .unwrap()
            .to_base64()
            .unwrap();
        assert_eq!(keys.verify(&narrowed, 1_800_000_000_000, Some("svc")).unwrap().scopes, vec!["b".to_string()]);
        assert_eq!(keys.verify(&narrowed, 1_800_000_000_000, Some("other")), Err(BiscuitFault::Attenuated));
        assert_eq!(keys.verify(&narrowed, 1_800_000_000_000, None), Err(BiscuitFault::Attenuated));

        let other = BiscuitKeys::from_private(&BiscuitKeys::generate()).unwrap();
        assert_eq!(other.verify(&token, 1_800_000_000_000, None), Err(BiscuitFault::BadSignature));
        assert_eq!(keys.verify("not-a-biscuit", 1_800_000_000_000, None), Err(BiscuitFault::Malformed));
    }
}
