//! Hot-path caches that families keep of what their store holds (the tokens family's
//! credential directory, the directory's agent records, the DIDs' rendered documents).
//! Reads are lock-free shard lookups; each family drops entries when its cluster events
//! say they changed (registered with [`crate::runtime::events::Listeners`]).
//!
//! A reader that misses loads from the store and inserts — but a mutation may land
//! between its load and its insert, and the stale row would then be cached until the
//! next change. Every invalidation bumps the shared [`Epoch`]; a fill only inserts if the
//! epoch it read before loading is still current, so a racing fill is simply not cached.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

/// The counter every invalidation bumps; one per engine, shared by its caches.
#[derive(Debug, Default)]
pub struct Epoch(AtomicU64);

impl Epoch {
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// Values by key under an [`Epoch`], cleared whole when `limit` entries are reached
/// (entries are cheap to load again).
pub struct EpochMap<K: Eq + Hash, V> {
    epoch: Arc<Epoch>,
    map: DashMap<K, Arc<V>>,
    limit: usize,
}

impl<K: Eq + Hash + Clone, V> EpochMap<K, V> {
    pub fn new(epoch: Arc<Epoch>, limit: usize) -> Self {
        EpochMap { epoch, map: DashMap::new(), limit }
    }

    /// The epoch to read before loading what a miss fills.
    pub fn epoch(&self) -> u64 {
        self.epoch.current()
    }

    pub fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
    {
        self.map.get(key).map(|v| v.clone())
    }

    /// Cache `value`, loaded after reading `epoch`, unless an invalidation happened since.
    pub fn fill(&self, epoch: u64, key: K, value: Arc<V>) -> Arc<V> {
        if self.epoch.current() == epoch {
            if self.map.len() >= self.limit {
                self.map.clear();
            }
            self.map.insert(key.clone(), value.clone());
            // An invalidation may have slipped in between the check and the insert.
            if self.epoch.current() != epoch {
                self.map.remove(&key);
            }
        }
        value
    }

    /// Drop one entry (it changed).
    pub fn forget<Q: Eq + Hash + ?Sized>(&self, key: &Q)
    where
        K: Borrow<Q>,
    {
        self.epoch.bump();
        self.map.remove(key);
    }

    /// Drop the entries `stale` picks.
    pub fn forget_where(&self, mut stale: impl FnMut(&K, &V) -> bool) {
        self.epoch.bump();
        self.map.retain(|k, v| !stale(k, v));
    }

    /// Drop every entry.
    pub fn forget_all(&self) {
        self.epoch.bump();
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_that_raced_an_invalidation_is_not_cached() {
        let epoch = Arc::new(Epoch::default());
        let map: EpochMap<u32, &str> = EpochMap::new(epoch.clone(), 10);
        let read = map.epoch();
        map.forget(&1);
        assert_eq!(*map.fill(read, 1, Arc::new("stale")), "stale", "the loaded value is still answered");
        assert!(map.get(&1).is_none(), "but not cached");
        let read = map.epoch();
        map.fill(read, 1, Arc::new("fresh"));
        assert_eq!(map.get(&1).as_deref(), Some(&"fresh"));
        // Another map's invalidation shares the epoch.
        let other: EpochMap<u32, &str> = EpochMap::new(epoch, 10);
        let read = map.epoch();
        other.forget_all();
        map.fill(read, 2, Arc::new("raced"));
        assert!(map.get(&2).is_none());
    }

    #[test]
    fn a_full_map_starts_over() {
        let map: EpochMap<u32, u32> = EpochMap::new(Arc::default(), 2);
        for k in 0..3 {
            map.fill(map.epoch(), k, Arc::new(k));
        }
        assert!(map.get(&0).is_none() && map.get(&1).is_none());
        assert_eq!(map.get(&2).as_deref(), Some(&2));
        map.forget_where(|k, _| *k == 2);
        assert!(map.get(&2).is_none());
    }
}
