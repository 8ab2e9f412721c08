//! Cluster events: what every node must apply when something changes. Nothing here names
//! a family. A family declares its events (types implementing [`Event`]) and registers
//! what each does with [`Listeners`] — on the node that commits the change, before it is
//! answered, and on every node as the event arrives (the coordinator's announcement, or
//! the store's change feed). The wire form, in Redis and in `cluster_events`, is
//! `{"kind": "<KIND>", ...the event's fields}`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::kernel::error::Result;
use crate::kernel::model::Millis;

/// Something every node must apply: an event of some family, or [`ClusterEvent::everything`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterEvent {
    pub kind: String,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// A family's cluster event: its fields, and the `kind` that names it on the wire.
pub trait Event: Serialize + DeserializeOwned + Send + 'static {
    const KIND: &'static str;
}

impl ClusterEvent {
    /// The kind of [`ClusterEvent::everything`].
    pub const EVERYTHING: &'static str = "everything";

    /// Anything may have changed (an organization was deleted, or events were lost while
    /// a subscription was down): every family drops what it cached.
    pub fn everything() -> ClusterEvent {
        ClusterEvent { kind: Self::EVERYTHING.to_string(), fields: Map::new() }
    }

    pub fn of<E: Event>(event: &E) -> ClusterEvent {
        let fields = match serde_json::to_value(event) {
            Ok(Value::Object(fields)) => fields,
            _ => Map::new(),
        };
        ClusterEvent { kind: E::KIND.to_string(), fields }
    }

    /// The event as `E`, if it is one.
    pub fn decode<E: Event>(&self) -> Option<E> {
        if self.kind != E::KIND {
            return None;
        }
        match serde_json::from_value(Value::Object(self.fields.clone())) {
            Ok(event) => Some(event),
            Err(e) => {
                tracing::warn!(kind = %self.kind, error = %e, "a cluster event that does not parse is ignored");
                None
            }
        }
    }

    pub fn is_everything(&self) -> bool {
        self.kind == Self::EVERYTHING
    }
}

/// An entry of the cluster change feed (`cluster_events`).
#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub seq: i64,
    pub created_at: Millis,
    pub event: ClusterEvent,
}

/// The cluster change feed (the CacheKeeper's port).
#[async_trait]
pub trait FeedStore: Send + Sync + 'static {
    /// Change-feed entries created at or after `since`, oldest first.
    async fn cluster_events_since(&self, since: Millis) -> Result<Vec<FeedEntry>>;
    /// Forget at most `limit` change-feed entries created before `before` (the janitor's
    /// sweep); returns how many.
    async fn purge_cluster_events(&self, before: Millis, limit: usize) -> Result<u64>;
}

type Here = Arc<dyn Fn(&ClusterEvent) -> Option<BoxFuture<'static, Result<()>>> + Send + Sync>;
type Elsewhere = Arc<dyn Fn(&ClusterEvent) + Send + Sync>;
type Everything = Arc<dyn Fn() + Send + Sync>;

/// What the families do with cluster events, registered once at start.
#[derive(Default)]
pub struct Listeners {
    here: HashMap<&'static str, Vec<Here>>,
    elsewhere: HashMap<&'static str, Vec<Elsewhere>>,
    everything: Vec<Everything>,
    /// Kinds applied straight off the coordinator's subscription, ahead of the queue of
    /// announcements (a revocation, a new signing key: every millisecond counts).
    urgent: Vec<&'static str>,
}

impl Listeners {
    /// On the node that commits an `E`, after its commit and before it is answered:
    /// `reaction` runs and is awaited, so the change counts here once it is answered.
    pub fn here<E, F, Fut>(&mut self, reaction: F) -> &mut Self
    where
        E: Event,
        F: Fn(E) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let reaction = Arc::new(reaction);
        self.here.entry(E::KIND).or_default().push(Arc::new(move |event: &ClusterEvent| {
            let reaction = reaction.clone();
            event.decode::<E>().map(|e| Box::pin(async move { reaction(e).await }) as BoxFuture<'static, Result<()>>)
        }));
        self
    }

    /// On every node, as an `E` arrives from the cluster (this node's own announcements
    /// come back too): `reaction` must be idempotent and quick.
    pub fn elsewhere<E: Event>(&mut self, reaction: impl Fn(E) + Send + Sync + 'static) -> &mut Self {
        self.elsewhere.entry(E::KIND).or_default().push(Arc::new(move |event: &ClusterEvent| {
            if let Some(e) = event.decode::<E>() {
                reaction(e)
            }
        }));
        self
    }

    /// A quick, idempotent `reaction` to `E` on the committing node (before it answers)
    /// and on every node as it arrives: what a cache does to drop what changed.
    pub fn everywhere<E: Event>(&mut self, reaction: impl Fn(E) + Send + Sync + 'static) -> &mut Self {
        let reaction = Arc::new(reaction);
        let here = reaction.clone();
        self.here(move |e: E| {
            here(e);
            async { Ok(()) }
        })
        .elsewhere(move |e: E| reaction(e))
    }

    /// Apply `E` straight off the coordinator's subscription, ahead of other announcements.
    pub fn urgent<E: Event>(&mut self) -> &mut Self {
        self.urgent.push(E::KIND);
        self
    }

    /// When anything may have changed: drop what the family caches.
    pub fn everything(&mut self, reaction: impl Fn() + Send + Sync + 'static) -> &mut Self {
        self.everything.push(Arc::new(reaction));
        self
    }

    /// Run the reactions to `event` on the node that committed it, in registration order.
    pub async fn committed(&self, event: &ClusterEvent) -> Result<()> {
        if event.is_everything() {
            self.forget_everything();
            return Ok(());
        }
        for reaction in self.here.get(event.kind.as_str()).into_iter().flatten() {
            if let Some(done) = reaction(event) {
                done.await?;
            }
        }
        Ok(())
    }

    /// Run the reactions to `event` arriving from the cluster.
    pub fn arrived(&self, event: &ClusterEvent) {
        if event.is_everything() {
            return self.forget_everything();
        }
        match self.elsewhere.get(event.kind.as_str()) {
            Some(reactions) => reactions.iter().for_each(|reaction| reaction(event)),
            None => tracing::debug!(kind = %event.kind, "a cluster event no family listens to"),
        }
    }

    /// Every family drops what it cached.
    pub fn forget_everything(&self) {
        self.everything.iter().for_each(|reaction| reaction());
    }

    pub fn is_urgent(&self, event: &ClusterEvent) -> bool {
        self.urgent.iter().any(|kind| *kind == event.kind)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Bumped {
        by: u64,
    }

    impl Event for Bumped {
        const KIND: &'static str = "bumped";
    }

    #[test]
    fn the_wire_form_is_the_kind_beside_the_fields() {
        let event = ClusterEvent::of(&Bumped { by: 3 });
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(text, r#"{"kind":"bumped","by":3}"#);
        let back: ClusterEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back.decode::<Bumped>(), Some(Bumped { by: 3 }));
        assert_eq!(ClusterEvent::everything().decode::<Bumped>(), None);
    }

    #[tokio::test]
    async fn reactions_run_where_they_were_registered_for() {
        let (here, elsewhere, forgot) =
            (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut listeners = Listeners::default();
        let (h, e, f) = (here.clone(), elsewhere.clone(), forgot.clone());
        listeners
            .here(move |b: Bumped| {
                let h = h.clone();
                async move {
                    h.fetch_add(b.by, Ordering::SeqCst);
                    Ok(())
                }
            })
            .elsewhere(move |b: Bumped| {
                e.fetch_add(b.by, Ordering::SeqCst);
            })
            .everything(move || {
                f.fetch_add(1, Ordering::SeqCst);
            });
        listeners.committed(&ClusterEvent::of(&Bumped { by: 2 })).await.unwrap();
        listeners.arrived(&ClusterEvent::of(&Bumped { by: 5 }));
        listeners.arrived(&ClusterEvent { kind: "bumped".into(), fields: Map::new() }); // malformed: ignored
        listeners.arrived(&ClusterEvent::everything());
        assert_eq!((here.load(Ordering::SeqCst), elsewhere.load(Ordering::SeqCst)), (2, 5));
        assert_eq!(forgot.load(Ordering::SeqCst), 1);
        assert!(!listeners.is_urgent(&ClusterEvent::of(&Bumped { by: 1 })));
    }
}
