//! KeyManager: owns the signing keys. On start (and restart) it re-hydrates the key ring
//! from the store, generating the first key on an empty store, and publishes the ring
//! as a snapshot that signing and verification read without a message round trip.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::error::{EngineError, Result};
use crate::keys::{KeyRing, SigningAlg, SigningKey};
use crate::Shared;

pub(crate) struct KeyManager;

pub(crate) enum Msg {
    /// Re-read the keys from the store and publish a fresh ring.
    Reload(RpcReplyPort<Result<()>>),
    /// Fail on purpose (fault injection): the supervisor must restart this actor.
    Crash,
}

/// The KeyManager keeps no state of its own: the ring it publishes lives in `Shared`.
pub(crate) struct State {
    shared: Arc<Shared>,
}

async fn load_ring(shared: &Shared) -> Result<()> {
    let mut records = shared.store.signing_keys().await?;
    if records.is_empty() {
        let (_, record) = SigningKey::generate(SigningAlg::Es256, shared.now_ms())?;
        match shared.store.insert_signing_key(&record).await {
            // Another node generated one at the same time: use whatever is stored.
            Ok(()) | Err(EngineError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        records = shared.store.signing_keys().await?;
    }
    let keys = records
        .iter()
        .map(SigningKey::from_record)
        .collect::<Result<Vec<_>>>()?;
    let ring = KeyRing::new(keys, &shared.config.issuer, &shared.config.audience)?;
    shared.ring.store(Some(Arc::new(ring)));
    Ok(())
}

impl Actor for KeyManager {
    type Msg = Msg;
    type State = State;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _: ActorRef<Msg>,
        shared: Arc<Shared>,
    ) -> Result<State, ActorProcessingErr> {
        load_ring(&shared).await?;
        Ok(State { shared })
    }

    async fn handle(
        &self,
        _: ActorRef<Msg>,
        msg: Msg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Reload(reply) => {
                let _ = reply.send(load_ring(&state.shared).await);
            }
            Msg::Crash => panic!("key manager: fault injected"),
        }
        Ok(())
    }
}
