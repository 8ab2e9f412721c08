//! KeyManager: owns the signing keys. On start (and restart) it re-hydrates the key ring
//! from the store — generating the first key on an empty store — and publishes it as a
//! snapshot that signing and verification read without a message round trip. Rotation
//! creates a key that is published at once but signs only after `key_preannounce`, so
//! verifiers caching the JWKS never meet an unknown `kid`.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::families::signing::keys::{KeyRing, SigningAlg, SigningKey, LEEWAY_SECS};
use crate::families::signing::{KeyRecord, SigningKeyStore};
use crate::kernel::clock::Clock;
use crate::kernel::error::{EngineError, Result};
use crate::runtime::actor::{ask, ChildSpec, Slot};
use crate::runtime::coord::Coordinator;
use crate::runtime::events::{ClusterEvent, Event, Listeners};
use crate::runtime::keystore::Keystore;

/// How often the ring is re-read from the store (keys rotated by another process, e.g.
/// `agentidp keys rotate`, without a coordinator to announce it) and the schedule checked.
const TICK: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub(crate) struct KeyManager;

/// The settings that shape the ring.
#[derive(Clone)]
pub(crate) struct KeySettings {
    pub issuer: String,
    pub token_ttl: Duration,
    pub signing_alg: SigningAlg,
    pub key_preannounce: Duration,
    pub key_rotation_interval: Option<Duration>,
}

/// What the KeyManager is started with.
#[derive(Clone)]
pub(crate) struct Deps {
    pub store: Arc<dyn SigningKeyStore>,
    pub keystore: Arc<Keystore>,
    pub coord: Arc<dyn Coordinator>,
    pub clock: Arc<dyn Clock>,
    pub settings: KeySettings,
}

/// The published ring: written only by this actor, read by every signature and check.
type RingCell = Arc<ArcSwapOption<KeyRing>>;

/// The engine's handle: the ring snapshot, and the actor for what changes it.
#[derive(Clone)]
pub(crate) struct Keys {
    ring: RingCell,
    slot: Arc<Slot<Msg>>,
    timeout: Duration,
}

impl Keys {
    /// The ring in force; `Unavailable` until the first one is loaded.
    pub fn ring(&self) -> Result<Arc<KeyRing>> {
        self.ring.load_full().ok_or_else(|| EngineError::Unavailable("signing keys are loading".into()))
    }

    pub async fn reload(&self) -> Result<()> {
        ask(&self.slot, self.timeout, Msg::Reload).await
    }

    /// Create the next key (pre-announced); returns its kid.
    pub async fn rotate(&self) -> Result<String> {
        ask(&self.slot, self.timeout, Msg::Rotate).await
    }

    /// Another node changed the keys: reload and check the schedule.
    pub fn changed_elsewhere(&self) {
        if let Some(k) = self.slot.load_full() {
            let _ = k.send_message(Msg::Tick);
        }
    }
}

/// Register the KeyManager: its child specification and the engine's handle.
/// A signing key was created on some node: reload the key ring.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KeysChanged {}

impl Event for KeysChanged {
    const KIND: &'static str = "keys_changed";
}

/// Every node reloads its key ring when another made a key, at once.
pub(crate) fn listen(keys: &Keys, listeners: &mut Listeners) {
    let keys = keys.clone();
    listeners.elsewhere(move |_: KeysChanged| keys.changed_elsewhere()).urgent::<KeysChanged>();
}

pub(crate) fn child(deps: Deps, call_timeout: Duration) -> (ChildSpec, Keys) {
    let handle = Keys { ring: RingCell::default(), slot: Arc::default(), timeout: call_timeout };
    let ring = handle.ring.clone();
    let spec = ChildSpec::singleton(
        "key_manager",
        KeyManager,
        move || Args { deps: deps.clone(), ring: ring.clone() },
        handle.slot.clone(),
        || Msg::Crash,
    );
    (spec, handle)
}

/// The actor's arguments (and state): its dependencies and the cell it publishes to.
pub(crate) struct Args {
    deps: Deps,
    ring: RingCell,
}

impl Args {
    fn now_ms(&self) -> i64 {
        self.deps.clock.now_ms()
    }
}

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
    shared: Args,
    ticker: JoinHandle<()>,
}

/// Load every key still needed (signing, pre-announced, or with live tokens) and publish
/// the ring. Generates the first key on an empty store.
async fn load_ring(shared: &Args) -> Result<Arc<KeyRing>> {
    let mut records = shared.deps.store.signing_keys().await?;
    if records.is_empty() {
        let now = shared.now_ms();
        create_key(shared, now, now).await?;
        records = shared.deps.store.signing_keys().await?;
    }
    let now = shared.now_ms();
    let ttl_ms = shared.deps.settings.token_ttl.as_millis() as i64;
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
        let pkcs8 =
            shared.deps.keystore.unseal_bytes(&record.kid, &record.private_key, record.key_ref.as_deref()).await?;
        let key = SigningKey::from_pkcs8(alg, &pkcs8, record.created_at, record.activates_at)?;
        if key.kid != record.kid {
            return Err(EngineError::internal(format!("stored kid {} does not match its key", record.kid)));
        }
        keys.push(key);
    }
    let ring = Arc::new(KeyRing::new(keys, &shared.deps.settings.issuer, ttl_ms)?);
    shared.ring.store(Some(ring.clone()));
    Ok(ring)
}

/// Generate, seal and store a key that signs from `activates_at`; returns its kid.
async fn create_key(shared: &Args, now: i64, activates_at: i64) -> Result<String> {
    let (key, pkcs8) = SigningKey::generate(shared.deps.settings.signing_alg, now, activates_at)?;
    let sealed = shared.deps.keystore.seal(&key.kid, &pkcs8).await?;
    let record = KeyRecord {
        kid: key.kid.clone(),
        alg: key.alg.as_str().to_string(),
        private_key: sealed.private_key,
        key_ref: sealed.key_ref,
        created_at: now,
        activates_at,
    };
    match shared.deps.store.insert_signing_key(&record).await {
        // Another node generated the first key at the same time: both are kept.
        Ok(()) | Err(EngineError::Conflict(_)) => Ok(key.kid),
        Err(e) => Err(e),
    }
}

async fn rotate(shared: &Args) -> Result<String> {
    let now = shared.now_ms();
    let kid = create_key(shared, now, now + shared.deps.settings.key_preannounce.as_millis() as i64).await?;
    load_ring(shared).await?;
    if let Err(e) = shared.deps.coord.publish(&ClusterEvent::of(&KeysChanged {})).await {
        // Other nodes still pick the key up on their next tick, well before it signs.
        tracing::warn!(error = %e, "could not announce the new signing key");
    }
    tracing::info!(kid = %kid, "signing key rotated (pre-announced)");
    Ok(kid)
}

/// Whether the ring needs a new key now: the configured algorithm changed, or the
/// rotation interval has passed — unless a successor is already announced.
fn rotation_due(shared: &Args, ring: &KeyRing) -> bool {
    let now = shared.now_ms();
    if ring.keys().any(|k| k.activates_at > now) {
        return false;
    }
    let current = ring.signing_key(now);
    current.alg != shared.deps.settings.signing_alg
        || shared
            .deps
            .settings
            .key_rotation_interval
            .is_some_and(|every| now >= current.activates_at + every.as_millis() as i64)
}

impl Actor for KeyManager {
    type Msg = Msg;
    type State = State;
    type Arguments = Args;

    async fn pre_start(&self, myself: ActorRef<Msg>, shared: Args) -> Result<State, ActorProcessingErr> {
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
