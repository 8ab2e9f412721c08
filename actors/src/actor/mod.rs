//! The actor tree. Each module holds one actor: its struct (dependencies), a documented
//! `State`, a `Msg` enum and a `spawn` helper. Actor references never leave the engine
//! crate; the [`crate::Engine`] handle reaches actors through slots the supervisor
//! refills when it restarts a child.

pub mod audit_writer;
pub mod cache_keeper;
pub mod key_manager;
pub mod revocations;
pub mod supervisor;

use arc_swap::ArcSwapOption;
use ractor::ActorRef;

/// Where the engine finds the live instance of an actor; empty while it is restarting.
pub type Slot<M> = ArcSwapOption<ActorRef<M>>;

/// The supervised actors, named for fault injection and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorKind {
    KeyManager,
    AuditWriter,
    CacheKeeper,
    Revocations,
}

impl ActorKind {
    /// In start order: the CacheKeeper, which routes cluster events to the others,
    /// comes last.
    pub const ALL: [ActorKind; 4] =
        [ActorKind::KeyManager, ActorKind::AuditWriter, ActorKind::Revocations, ActorKind::CacheKeeper];

    pub fn name(self) -> &'static str {
        match self {
            ActorKind::KeyManager => "key_manager",
            ActorKind::AuditWriter => "audit_writer",
            ActorKind::CacheKeeper => "cache_keeper",
            ActorKind::Revocations => "revocations",
        }
    }
}
