//! KeyManager: owns the signing keys. On start (and restart) it re-hydrates the key ring
//! from the store — generating the first key on an empty store — and publishes it as a
//! snapshot that signing and verification read without a message round trip. Rotation
//! creates a key that is published at once but signs only after `key_preannounce`, so
//! verifiers caching the JWKS never meet an unknown `kid`.

use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::coord::ClusterEvent;
use crate::error::{EngineError, Result};
use crate::keys::{KeyRing, SigningAlg, SigningKey, LEEWAY_SECS};
use crate::store::KeyRecord;
use crate::Shared;

/// How often the ring is re-read from the store (keys rotated by another process, e.g.
/// `agentidp keys rotate`, without a coordinator to announce it) and the schedule checked.
const TICK: Duration = Duration::from_secs(30);

pub(crate) struct KeyManager;

pub(crate) enum Msg {
    /// Re-read the keys from the store and publish a fresh ring.
    Reload(RpcReplyPort<Result<()>>),
    /// Create the next key (pre-announced) and answer its kid.
    Rotate(RpcReplyPort<Result<String>>),
    /// Reload, and rotate if the schedule says so (periodic, and when another node
    /// announces a new key).
    Tick,
    /// Fail on purpose (fault injection): the supervisor must restart this actor.
    Crash,
}

pub(crate) struct State {
    shared: Arc<Shared>,
    ticker: JoinHandle<()>,
}

/// Load every key still needed (signing, pre-announced, or with live tokens) and publish
/// the ring. Generates the first key on an empty store.
async fn load_ring(shared: &Shared) -> Result<Arc<KeyRing>> {
    let mut records = shared.store.signing_keys().await?;
    if records.is_empty() {
        let now = shared.now_ms();
        create_key(shared, now, now).await?;
        records = shared.store.signing_keys().await?;
    }
    let now = shared.now_ms();
    let ttl_ms = shared.config.token_ttl.as_millis() as i64;
    // Records come ordered by activation; a key is needed until the one after it has
    // been active for longer than a token lives.
    let needed: Vec<&KeyRecord> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| match records.get(i + 1) {
            Some(next) if next.activates_at <= now => now < next.activates_at + ttl_ms + LEEWAY_SECS * 1000,
            _ => true,
        })
        .map(|(_, r)| r)
        .collect();
    let mut keys = Vec::with_capacity(needed.len());
    for record in needed {
        let alg = SigningAlg::parse(&record.alg)
            .ok_or_else(|| EngineError::internal(format!("unknown key algorithm {}", record.alg)))?;
        let pkcs8 = shared.keystore.unseal(record).await?;
        let key = SigningKey::from_pkcs8(alg, &pkcs8, record.created_at, record.activates_at)?;
        if key.kid != record.kid {
            return Err(EngineError::internal(format!("stored kid {} does not match its key", record.kid)));
        }
        keys.push(key);
    }
    let ring = Arc::new(KeyRing::new(keys, &shared.config.issuer, &shared.config.audience, ttl_ms)?);
    shared.ring.store(Some(ring.clone()));
    Ok(ring)
}

/// Generate, seal and store a key that signs from `activates_at`; returns its kid.
async fn create_key(shared: &Shared, now: i64, activates_at: i64) -> Result<String> {
    let (key, pkcs8) = SigningKey::generate(shared.config.signing_alg, now, activates_at)?;
    let sealed = shared.keystore.seal(&key.kid, &pkcs8).await?;
    let record = KeyRecord {
        kid: key.kid.clone(),
        alg: key.alg.as_str().to_string(),
        private_key: sealed.private_key,
        key_ref: sealed.key_ref,
        created_at: now,
        activates_at,
    };
    match shared.store.insert_signing_key(&record).await {
        // Another node generated the first key at the same time: both are kept.
        Ok(()) | Err(EngineError::Conflict(_)) => Ok(key.kid),
        Err(e) => Err(e),
    }
}

async fn rotate(shared: &Shared) -> Result<String> {
    let now = shared.now_ms();
    let kid = create_key(shared, now, now + shared.config.key_preannounce.as_millis() as i64).await?;
    load_ring(shared).await?;
    if let Err(e) = shared.coord.publish(&ClusterEvent::KeysChanged).await {
        // Other nodes still pick the key up on their next tick, well before it signs.
        tracing::warn!(error = %e, "could not announce the new signing key");
    }
    tracing::info!(kid = %kid, "signing key rotated (pre-announced)");
    Ok(kid)
}

/// Whether the ring needs a new key now: the configured algorithm changed, or the
/// rotation interval has passed — unless a successor is already announced.
fn rotation_due(shared: &Shared, ring: &KeyRing) -> bool {
    let now = shared.now_ms();
    if ring.keys().any(|k| k.activates_at > now) {
        return false;
    }
    let current = ring.signing_key(now);
    current.alg != shared.config.signing_alg
        || shared
            .config
            .key_rotation_interval
            .is_some_and(|every| now >= current.activates_at + every.as_millis() as i64)
}

impl Actor for KeyManager {
    type Msg = Msg;
    type State = State;
    type Arguments = Arc<Shared>;

    async fn pre_start(&self, myself: ActorRef<Msg>, shared: Arc<Shared>) -> Result<State, ActorProcessingErr> {
        let ring = load_ring(&shared).await?;
        if rotation_due(&shared, &ring) {
            rotate(&shared).await?;
        }
        let ticker = myself.send_interval(TICK, || Msg::Tick);
        Ok(State { shared, ticker })
    }

    async fn post_stop(&self, _: ActorRef<Msg>, state: &mut State) -> Result<(), ActorProcessingErr> {
        state.ticker.abort();
        Ok(())
    }

    async fn handle(&self, _: ActorRef<Msg>, msg: Msg, state: &mut State) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Reload(reply) => {
                let _ = reply.send(load_ring(&state.shared).await.map(|_| ()));
            }
            Msg::Rotate(reply) => {
                let _ = reply.send(rotate(&state.shared).await);
            }
            Msg::Tick => match load_ring(&state.shared).await {
                Ok(ring) if rotation_due(&state.shared, &ring) => {
                    if let Err(e) = rotate(&state.shared).await {
                        tracing::error!(error = %e, "scheduled key rotation failed");
                    }
                }
                Ok(_) => {}
                // Keep serving with the ring we have; the store may be back next tick.
                Err(e) => tracing::warn!(error = %e, "could not reload signing keys"),
            },
            Msg::Crash => panic!("key manager: fault injected"),
        }
        Ok(())
    }
}
