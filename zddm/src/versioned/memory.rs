use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::key::{KeyError, MigrationKey};
use crate::versioned::{now_ms, Change, Filled, Lookup, Page, Scan, ScanSlots, Slot, Source, Target, Versioned};

/// A versioned OLD in memory: one counter, taken under the map's lock, versions every write.
pub struct MemorySource<K: ?Sized, V> {
    state: Mutex<SourceState<V>>,
    key: PhantomData<fn(&K)>,
}

struct SourceState<V> {
    entries: BTreeMap<Vec<u8>, Versioned<V>>,
    /// The last version given, to any key.
    last: u64,
}

/// A versioned NEW in memory: [`Slot`]s by canonical key bytes, each operation under one lock.
pub struct MemoryTarget<K: ?Sized, V> {
    slots: Mutex<BTreeMap<Vec<u8>, Slot<V>>>,
    key: PhantomData<fn(&K)>,
}

// A panic while holding either lock cannot leave a map half-updated (every change is one map
// operation on a slot already computed), so a poisoned lock is still sound to use.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: ?Sized, V> MemorySource<K, V> {
    /// An empty store.
    pub fn new() -> Self {
        MemorySource { state: Mutex::new(SourceState { entries: BTreeMap::new(), last: 0 }), key: PhantomData }
    }

    /// How many keys the store holds.
    pub fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, by canonical key bytes, sorted: for tests and verification.
    pub fn entries(&self) -> Vec<(Vec<u8>, Versioned<V>)>
    where
        V: Clone,
    {
        lock(&self.state).entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl<K: ?Sized, V> MemoryTarget<K, V> {
    /// An empty store.
    pub fn new() -> Self {
        MemoryTarget { slots: Mutex::new(BTreeMap::new()), key: PhantomData }
    }

    /// Every slot, by canonical key bytes, sorted: tombstones and pending keys included.
    pub fn slots(&self) -> Vec<(Vec<u8>, Slot<V>)>
    where
        V: Clone,
    {
        lock(&self.slots).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The keys that hold a value (settled or not), with it.
    pub fn values(&self) -> Vec<(Vec<u8>, V)>
    where
        V: Clone,
    {
        lock(&self.slots).iter().filter_map(|(k, s)| Some((k.clone(), s.value.clone()?))).collect()
    }

    fn with<T>(&self, key: &K, change: impl FnOnce(&mut Slot<V>, u64) -> T) -> Result<T, KeyError>
    where
        K: MigrationKey,
    {
        let key = key.try_key_bytes()?;
        let mut slots = lock(&self.slots);
        Ok(change(slots.entry(key).or_default(), now_ms()))
    }
}

impl<K: ?Sized, V> Default for MemorySource<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: ?Sized, V> Default for MemoryTarget<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: ?Sized, V> fmt::Debug for MemorySource<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySource").field("len", &self.len()).finish()
    }
}

impl<K: ?Sized, V> fmt::Debug for MemoryTarget<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTarget").field("slots", &lock(&self.slots).len()).finish()
    }
}

impl<K: MigrationKey + ?Sized + Sync, V: Clone + Send + Sync> Source<K, V> for MemorySource<K, V> {
    type Error = KeyError;

    async fn get(&self, key: &K) -> Result<Option<Versioned<V>>, KeyError> {
        let key = key.try_key_bytes()?;
        Ok(lock(&self.state).entries.get(&key).cloned())
    }

    async fn put(&self, key: &K, value: &V) -> Result<u64, KeyError> {
        let key = key.try_key_bytes()?;
        let mut state = lock(&self.state);
        state.last += 1;
        let version = state.last;
        state.entries.insert(key, Versioned { value: value.clone(), version });
        Ok(version)
    }

    async fn delete(&self, key: &K) -> Result<u64, KeyError> {
        let key = key.try_key_bytes()?;
        let mut state = lock(&self.state);
        state.last += 1;
        state.entries.remove(&key);
        Ok(state.last)
    }

    async fn next_version(&self, key: &K) -> Result<u64, KeyError> {
        key.try_key_bytes()?;
        let mut state = lock(&self.state);
        state.last += 1;
        Ok(state.last)
    }
}

/// In canonical key order; a position is the last key's bytes.
impl<K: MigrationKey + Send + Sync, V: Clone + Send + Sync> Scan<K, V> for MemorySource<K, V> {
    async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Versioned<V>>, KeyError> {
        let state = lock(&self.state);
        let from = after.map_or(Bound::Unbounded, |after| Bound::Excluded(after.to_vec()));
        let mut entries = Vec::new();
        let mut next = None;
        for (key, found) in state.entries.range((from, Bound::Unbounded)).take(limit.max(1)) {
            entries.push((K::from_key_bytes(key)?, found.clone()));
            next = Some(key);
        }
        let next = next.filter(|_| entries.len() == limit.max(1)).cloned();
        Ok(Page { entries, next })
    }

    async fn estimate(&self) -> Result<Option<u64>, KeyError> {
        Ok(u64::try_from(lock(&self.state).entries.len()).ok())
    }
}

impl<K: MigrationKey + Send + Sync, V: Clone + Send + Sync> ScanSlots<K, V> for MemoryTarget<K, V> {
    async fn scan_slots(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Lookup<V>>, KeyError> {
        let (slots, now) = (lock(&self.slots), now_ms());
        let from = after.map_or(Bound::Unbounded, |after| Bound::Excluded(after.to_vec()));
        let mut entries = Vec::new();
        let mut next = None;
        for (key, slot) in slots.range((from, Bound::Unbounded)).take(limit.max(1)) {
            entries.push((K::from_key_bytes(key)?, slot.lookup(now)));
            next = Some(key);
        }
        let next = next.filter(|_| entries.len() == limit.max(1)).cloned();
        Ok(Page { entries, next })
    }
}

impl<K: MigrationKey + ?Sized + Sync, V: Clone + Send + Sync> Target<K, V> for MemoryTarget<K, V> {
    type Error = KeyError;

    async fn lookup(&self, key: &K) -> Result<Lookup<V>, KeyError> {
        let key = key.try_key_bytes()?;
        let slots = lock(&self.slots);
        Ok(slots.get(&key).map_or(Lookup::Miss, |slot| slot.lookup(now_ms())))
    }

    async fn mark(&self, key: &K, grace_ms: u64) -> Result<(), KeyError> {
        self.with(key, |slot, now| slot.mark(now, grace_ms))
    }

    async fn apply(&self, key: &K, change: Change<&V>, version: u64, settle: bool) -> Result<(), KeyError> {
        self.with(key, |slot, now| {
            slot.apply(change.cloned(), version, settle, now);
        })
    }

    async fn fill(&self, key: &K, value: Option<&V>, version: u64, token: Option<u64>) -> Result<Filled, KeyError> {
        self.with(key, |slot, now| slot.fill(value.cloned(), version, token, now))
    }

    async fn fill_many(&self, entries: &[(&K, &V, u64)]) -> Result<Vec<Filled>, KeyError>
    where
        K: Sync,
        V: Sync,
    {
        let keys = entries.iter().map(|(key, _, _)| key.try_key_bytes()).collect::<Result<Vec<_>, _>>()?;
        let (mut slots, now) = (lock(&self.slots), now_ms());
        Ok(keys
            .into_iter()
            .zip(entries)
            .map(|(key, (_, value, version))| {
                let slot = slots.entry(key).or_default();
                slot.fill(Some((*value).clone()), *version, None, now)
            })
            .collect())
    }

    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KeyError> {
        let slots = lock(&self.slots);
        let from = after.map_or(Bound::Unbounded, |after| Bound::Excluded(after.to_vec()));
        Ok(slots
            .range((from, Bound::Unbounded))
            .filter(|(_, slot)| slot.pending > 0)
            .take(limit)
            .map(|(key, _)| key.clone())
            .collect())
    }

    async fn purge(&self, older_than_ms: u64) -> Result<usize, KeyError> {
        let mut slots = lock(&self.slots);
        let now = now_ms();
        let before = slots.len();
        slots.retain(|_, slot| !slot.purgeable(now, older_than_ms));
        Ok(before - slots.len())
    }
}
