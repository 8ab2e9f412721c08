//! The checkpointer: every audit chain whose head has moved gets a signed checkpoint —
//! its `seq`, its head's hash, the time — once `every_events` new events are in it or
//! `every` has passed since its last one. The JWT (typ `audit-checkpoint+jwt`) is signed
//! by the issuer's signing key, so anyone with the JWKS verifies it offline; a chain
//! that later lacks the checkpointed event, or holds another one there, fails
//! verification, the newest events included. Every node checkpoints; a checkpoint
//! another node recorded first for the same `seq` stands.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AuditStore, Checkpoint};
use crate::families::signing::actor::Keys;
use crate::kernel::clock::Clock;
use crate::kernel::error::Result;
use crate::runtime::actor::ChildSpec;
use crate::runtime::outbound::{check_destination, Destinations, HttpClient, OutboundRequest, Resolver};
use crate::store::UNATTRIBUTED_CHAIN;

/// The JWT `typ` of a checkpoint: never taken for an access token (`at+jwt`).
pub const CHECKPOINT_TYP: &str = "audit-checkpoint+jwt";

/// When a chain is checkpointed.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointSettings {
    /// At least this often while the chain moves.
    pub every: Duration,
    /// And whenever this many events have joined it since the last checkpoint.
    pub every_events: i64,
}

impl Default for CheckpointSettings {
    fn default() -> Self {
        CheckpointSettings { every: Duration::from_secs(60), every_events: 10_000 }
    }
}

/// What a checkpoint's JWT says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointClaims {
    pub iss: String,
    /// The chain: its organization's id (the nil id: events of no organization).
    pub sub: String,
    /// Events in the chain, the last of them at this `seq`.
    pub seq: i64,
    /// The hash of the event at `seq`.
    pub hash: String,
    /// When the checkpoint was made (seconds).
    pub iat: i64,
}

#[derive(Clone)]
pub(crate) struct Deps {
    pub store: Arc<dyn AuditStore>,
    pub keys: Keys,
    pub clock: Arc<dyn Clock>,
    pub issuer: String,
    pub settings: CheckpointSettings,
    /// Where each new checkpoint is also sent, if anywhere.
    pub push: Option<Push>,
}

/// Each new checkpoint POSTed as JSON (`chain`, `seq`, `hash`, `created_at`, `jwt`) to
/// `url`: a copy outside the store and its operators' reach. The JWT vouches for itself,
/// so the receiver needs no other secret. Best effort, once: every checkpoint is also
/// published at `GET /api/v1/audit-events/checkpoints`, and the next one supersedes it.
#[derive(Clone)]
pub(crate) struct Push {
    pub url: String,
    pub http: Arc<dyn HttpClient>,
    pub resolver: Arc<dyn Resolver>,
    pub destinations: Destinations,
    /// `agentidp_audit_checkpoint_pushes_total{outcome}`.
    pub pushes: prometheus::IntCounterVec,
}

impl Push {
    async fn send(self, checkpoint: Checkpoint) {
        let body = serde_json::json!({
            "chain": checkpoint.chain,
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
            "created_at": crate::kernel::model::rfc3339::format(checkpoint.created_at),
            "jwt": checkpoint.jwt,
        });
        let mut request =
            OutboundRequest::post(&self.url, body.to_string().into_bytes()).header("content-type", "application/json");
        request.timeout = Duration::from_secs(10);
        let sent = match check_destination(self.destinations, self.resolver.as_ref(), &self.url).await {
            Ok(()) => self.http.send(request).await.map_err(|e| e.to_string()),
            Err(why) => Err(why),
        };
        let outcome = match sent {
            Ok(response) if (200..300).contains(&response.status) => "delivered",
            Ok(response) => {
                tracing::warn!(url = %self.url, status = response.status, "the checkpoint receiver refused a checkpoint");
                "refused"
            }
            Err(why) => {
                tracing::warn!(url = %self.url, error = %why, "a checkpoint could not be sent to its receiver");
                "failed"
            }
        };
        self.pushes.with_label_values(&[outcome]).inc();
    }
}

/// Checkpoint every chain that is due; how many were made.
pub(crate) async fn checkpoint_due(deps: &Deps) -> Result<usize> {
    let now = deps.clock.now_ms();
    let every = i64::try_from(deps.settings.every.as_millis()).unwrap_or(i64::MAX);
    let mut made = 0;
    for head in deps.store.chain_heads().await? {
        let due = match head.checkpoint {
            _ if head.seq == 0 => false,
            None => true,
            Some((seq, at)) => {
                head.seq > seq && (head.seq - seq >= deps.settings.every_events.max(1) || now - at >= every)
            }
        };
        if !due {
            continue;
        }
        let claims = CheckpointClaims {
            iss: deps.issuer.clone(),
            sub: head.chain.to_string(),
            seq: head.seq,
            hash: head.hash.clone(),
            iat: now / 1000,
        };
        let jwt = deps.keys.ring()?.signing_key(now).sign_typed(CHECKPOINT_TYP, &claims)?;
        let checkpoint = Checkpoint { chain: head.chain, seq: head.seq, hash: head.hash, created_at: now, jwt };
        deps.store.insert_checkpoint(&checkpoint).await?;
        if let Some(push) = &deps.push {
            // Its own task: a slow receiver delays no other chain's checkpoint.
            tokio::spawn(push.clone().send(checkpoint));
        }
        made += 1;
    }
    Ok(made)
}

/// The chain key of an organization (`None`: events of no organization).
pub(crate) fn chain_of(org_id: Option<Uuid>) -> Uuid {
    org_id.unwrap_or(UNATTRIBUTED_CHAIN)
}

/// Register the checkpointer; it has no handle (it only ticks). It looks every second
/// (or every `every`, when shorter), so `every_events` is kept within a second's worth of
/// events.
pub(crate) fn child(deps: Deps) -> (ChildSpec, ()) {
    let tick = deps.settings.every.min(Duration::from_secs(1));
    crate::runtime::ticker::child("audit_checkpointer", tick, deps, round)
}

fn round(deps: &Deps) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        if let Err(e) = checkpoint_due(deps).await {
            tracing::warn!(error = %e, "audit checkpoints not made; trying again next tick");
        }
    })
}
