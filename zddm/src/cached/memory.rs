use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::cached::{Cache, Entry, Probe};
use crate::key::{KeyError, MigrationKey};
use crate::versioned::now_ms;

/// An unversioned NEW in memory: [`Entry`]s by canonical key bytes, each operation under one lock.
/// Entries are kept once created: their lease counter is what keeps tokens from repeating.
pub struct MemoryCache<K: ?Sized, V> {
    entries: Mutex<BTreeMap<Vec<u8>, Entry<V>>>,
    key: PhantomData<fn(&K)>,
}

impl<K: ?Sized, V> MemoryCache<K, V> {
    /// An empty cache.
    pub fn new() -> Self {
        MemoryCache { entries: Mutex::new(BTreeMap::new()), key: PhantomData }
    }

    /// Every entry, by canonical key bytes.
    pub fn entries(&self) -> Vec<(Vec<u8>, Entry<V>)>
    where
        V: Clone,
    {
        self.lock().iter().map(|(k, e)| (k.clone(), e.clone())).collect()
    }

    // Every change is one map operation on an entry computed first, so a poisoned lock is sound.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, Entry<V>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with<T>(&self, key: &K, change: impl FnOnce(&mut Entry<V>, u64) -> T) -> Result<T, KeyError>
    where
        K: MigrationKey,
    {
        let key = key.try_key_bytes()?;
        Ok(change(self.lock().entry(key).or_default(), now_ms()))
    }
}

impl<K: ?Sized, V> Default for MemoryCache<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: ?Sized, V> fmt::Debug for MemoryCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache").field("entries", &self.lock().len()).finish()
    }
}

impl<K: MigrationKey + ?Sized + Sync, V: Clone + Send + Sync> Cache<K, V> for MemoryCache<K, V> {
    type Error = KeyError;

    async fn probe(&self, key: &K) -> Result<Probe<V>, KeyError> {
        self.with(key, |entry, now| entry.probe(now))
    }

    async fn mark(&self, key: &K, grace_ms: u64) -> Result<(), KeyError> {
        self.with(key, |entry, now| entry.mark(now, grace_ms))
    }

    async fn invalidate(&self, key: &K, settle: bool) -> Result<(), KeyError> {
        self.with(key, |entry, _| entry.invalidate(settle))
    }

    async fn fill(&self, key: &K, value: Option<&V>, token: u64) -> Result<bool, KeyError> {
        self.with(key, |entry, _| entry.fill(value.cloned(), token))
    }

    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KeyError> {
        let from = after.map_or(Bound::Unbounded, |after| Bound::Excluded(after.to_vec()));
        Ok(self
            .lock()
            .range((from, Bound::Unbounded))
            .filter(|(_, entry)| entry.pending > 0)
            .take(limit)
            .map(|(key, _)| key.clone())
            .collect())
    }
}
