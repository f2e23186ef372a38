use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{PoisonError, RwLock};

use crate::key::{KeyError, MigrationKey};
use crate::store::Store;

/// An in-memory store keyed by the canonical key bytes: the embedded default for examples and
/// tests. Each operation is atomic.
///
/// It is a [`Store`] only — not also a [`BlockingStore`](crate::BlockingStore), whose methods have
/// the same names and would make every call ambiguous with both traits imported. Its futures
/// complete on their first poll, so synchronous code uses it as it is:
///
/// ```
/// use zddm::{block_on, Gate, MemoryStore, Proxy, Rate, Store};
///
/// let old = MemoryStore::<u64, String>::new();
/// block_on(old.put(&1, &"ada".to_string()))?;
/// let users = Proxy::new(old, MemoryStore::new(), Gate::new("users", Rate::ALL));
/// assert_eq!(users.blocking().get(&1)?, Some("ada".to_string()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MemoryStore<K: ?Sized, V> {
    map: RwLock<HashMap<Vec<u8>, V>>,
    key: PhantomData<fn(&K)>,
}

impl<K: ?Sized, V> MemoryStore<K, V> {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore { map: RwLock::new(HashMap::new()), key: PhantomData }
    }

    /// How many keys the store holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, by canonical key bytes, sorted: for tests and verification.
    pub fn entries(&self) -> Vec<(Vec<u8>, V)>
    where
        V: Clone,
    {
        let mut entries: Vec<_> = self.read().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
    }

    // A panic while holding the lock cannot leave the map half-updated (every write is one map
    // operation), so a poisoned lock is still sound to use.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Vec<u8>, V>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Vec<u8>, V>> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// In canonical key order; each page sorts the keys after the position (a store for tests and
/// demos, not for millions of keys).
impl<K: MigrationKey + Send + Sync, V: Send + Sync> crate::cached::ScanKeys<K> for MemoryStore<K, V> {
    type Error = KeyError;

    async fn scan_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<crate::versioned::Page<K, ()>, KeyError> {
        let mut keys: Vec<Vec<u8>> =
            self.read().keys().filter(|key| after.map_or(true, |after| key.as_slice() > after)).cloned().collect();
        keys.sort();
        keys.truncate(limit.max(1));
        crate::cached::key_page(keys.into_iter().map(|key| (key, ())).collect(), limit)
    }
}

impl<K: ?Sized, V> Default for MemoryStore<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: ?Sized, V> fmt::Debug for MemoryStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").field("len", &self.len()).finish()
    }
}

/// Every future completes on its first poll, so synchronous code can drive the store with
/// [`block_on`](crate::block_on), or a proxy over it with [`Proxy::blocking`](crate::Proxy::blocking).
impl<K: MigrationKey + ?Sized + Sync, V: Clone + Send + Sync> Store<K, V> for MemoryStore<K, V> {
    type Error = KeyError;

    async fn get(&self, key: &K) -> Result<Option<V>, KeyError> {
        let key = key.try_key_bytes()?;
        Ok(self.read().get(&key).cloned())
    }

    async fn put(&self, key: &K, value: &V) -> Result<(), KeyError> {
        let key = key.try_key_bytes()?;
        self.write().insert(key, value.clone());
        Ok(())
    }

    async fn insert_if_absent(&self, key: &K, value: &V) -> Result<bool, KeyError> {
        let key = key.try_key_bytes()?;
        match self.write().entry(key) {
            Entry::Occupied(_) => Ok(false),
            Entry::Vacant(slot) => {
                slot.insert(value.clone());
                Ok(true)
            }
        }
    }

    async fn delete(&self, key: &K) -> Result<(), KeyError> {
        let key = key.try_key_bytes()?;
        self.write().remove(&key);
        Ok(())
    }
}
