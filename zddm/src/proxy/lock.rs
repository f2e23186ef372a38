//! Per-key serialisation within a process, and the record of keys whose NEW copy is in doubt.
//!
//! Keys map to a fixed table of stripes by their gate bucket (already computed, uniformly spread).
//! A stripe's mutex serialises every write and every read-through of its keys; its `abandoned` set
//! holds the keys a write left without settling NEW (the future was dropped, or NEW failed and so did
//! the invalidation). Readers repair such a key before trusting NEW for it. The lock-free read path
//! only needs the sets' sizes, mirrored in atomics (per stripe, and in all), so a NEW hit takes no
//! lock.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, MutexGuard};

use crate::key::MigrationKey;

pub(crate) struct Locks {
    stripes: Box<[Stripe]>,
    /// Keys in doubt in all stripes: while it is zero, a read need not find (hash) its key's stripe.
    total: AtomicUsize,
}

pub(crate) struct Stripe {
    abandoned_count: AtomicUsize,
    abandoned: Mutex<HashSet<Box<[u8]>>>,
}

impl Locks {
    /// `count` is a power of two.
    pub(crate) fn new(count: usize) -> Locks {
        let stripes = (0..count)
            .map(|_| Stripe { abandoned_count: AtomicUsize::new(0), abandoned: Mutex::new(HashSet::new()) })
            .collect();
        Locks { stripes, total: AtomicUsize::new(0) }
    }

    pub(crate) fn stripe(&self, bucket: u64) -> &Stripe {
        // Low bits: admitted keys have small buckets, so high bits would crowd them into few stripes.
        &self.stripes[bucket as usize & (self.stripes.len() - 1)]
    }

    /// How many keys are in doubt. Zero means no key was in doubt when the call began, up to the
    /// same guarantee as [`Stripe::maybe_abandoned`].
    pub(crate) fn abandoned(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Every key in doubt now (none without taking a lock, while there are none).
    pub(crate) async fn abandoned_keys(&self) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        for stripe in self.stripes.iter().filter(|stripe| stripe.maybe_abandoned()) {
            keys.extend(stripe.abandoned.lock().await.iter().map(|key| key.to_vec()));
        }
        keys
    }

    /// Locks the bucket's stripe; `waited` says whether another operation held it, in which case
    /// NEW may have changed since the caller last looked.
    pub(crate) async fn lock(&self, bucket: u64) -> (Guard<'_>, bool) {
        let stripe = self.stripe(bucket);
        let guard = |set| Guard { stripe, total: &self.total, set };
        match stripe.abandoned.try_lock() {
            Ok(set) => (guard(set), false),
            Err(_) => (guard(stripe.abandoned.lock().await), true),
        }
    }
}

impl Locks {
    /// The stripes of all `buckets`, each once, locked in stripe order (as every caller that locks
    /// more than one does, so no two wait on each other), and for each bucket its guard's index.
    pub(crate) async fn lock_many(&self, buckets: &[u64]) -> (Vec<Guard<'_>>, Vec<usize>) {
        let index = |bucket: u64| bucket as usize & (self.stripes.len() - 1);
        let mut stripes: Vec<usize> = buckets.iter().map(|bucket| index(*bucket)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for stripe in &stripes {
            guards.push(self.lock(*stripe as u64).await.0);
        }
        let at = buckets.iter().map(|bucket| stripes.binary_search(&index(*bucket)).unwrap_or(0)).collect();
        (guards, at)
    }
}

/// A write in progress on several keys (see [`Intent`]): unless each key is settled, dropping it
/// records the key as abandoned before the stripes unlock.
pub(crate) struct Intents<'a> {
    guards: Vec<Guard<'a>>,
    /// Each key's guard, its canonical bytes, and whether it is settled.
    keys: Vec<(usize, Box<[u8]>, bool)>,
}

impl<'a> Intents<'a> {
    pub(crate) fn new(guards: Vec<Guard<'a>>, keys: Vec<(usize, Box<[u8]>)>) -> Self {
        Intents { guards, keys: keys.into_iter().map(|(at, bytes)| (at, bytes, false)).collect() }
    }

    pub(crate) fn settle(&mut self, index: usize) {
        if let Some((at, bytes, settled)) = self.keys.get_mut(index) {
            if let Some(guard) = self.guards.get_mut(*at) {
                guard.settle_bytes(bytes);
            }
            *settled = true;
        }
    }
}

impl Drop for Intents<'_> {
    fn drop(&mut self) {
        for (at, bytes, settled) in &self.keys {
            if !settled {
                if let Some(guard) = self.guards.get_mut(*at) {
                    guard.abandon_bytes(bytes);
                }
            }
        }
    }
}

impl Stripe {
    /// Whether some key of this stripe may have a stale copy in NEW. False negatives are impossible
    /// for writes settled before the call began.
    pub(crate) fn maybe_abandoned(&self) -> bool {
        self.abandoned_count.load(Ordering::Acquire) != 0
    }
}

pub(crate) struct Guard<'a> {
    stripe: &'a Stripe,
    total: &'a AtomicUsize,
    set: MutexGuard<'a, HashSet<Box<[u8]>>>,
}

impl Guard<'_> {
    /// Whether `key`'s NEW copy was left in doubt by an earlier write.
    pub(crate) fn is_abandoned<K: MigrationKey + ?Sized>(&self, key: &K) -> bool {
        !self.set.is_empty() && key.try_key_bytes().is_ok_and(|bytes| self.set.contains(&bytes[..]))
    }

    /// NEW's copy of `key` is settled (written or invalidated).
    pub(crate) fn settle<K: MigrationKey + ?Sized>(&mut self, key: &K) {
        if !self.set.is_empty() {
            if let Ok(bytes) = key.try_key_bytes() {
                self.settle_bytes(&bytes);
            }
        }
    }

    fn abandon<K: MigrationKey + ?Sized>(&mut self, key: &K) {
        // An unencodable key is never admitted, so it never has a copy in NEW to doubt.
        if let Ok(bytes) = key.try_key_bytes() {
            self.abandon_bytes(&bytes);
        }
    }

    fn abandon_bytes(&mut self, bytes: &[u8]) {
        if self.set.insert(bytes.into()) {
            self.total.fetch_add(1, Ordering::AcqRel);
            self.stripe.abandoned_count.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn settle_bytes(&mut self, bytes: &[u8]) {
        if self.set.remove(bytes) {
            self.stripe.abandoned_count.fetch_sub(1, Ordering::AcqRel);
            self.total.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A write in progress on a key whose copy in NEW it is about to make stale. Unless the write
/// settles NEW, dropping the intent — on an error path or because the caller dropped the future at
/// any `.await` — records the key as abandoned before the stripe unlocks.
pub(crate) struct Intent<'a, 'k, K: MigrationKey + ?Sized> {
    guard: Guard<'a>,
    key: &'k K,
    settled: bool,
}

impl<'a, 'k, K: MigrationKey + ?Sized> Intent<'a, 'k, K> {
    pub(crate) fn new(guard: Guard<'a>, key: &'k K) -> Self {
        Intent { guard, key, settled: false }
    }

    pub(crate) fn settle(mut self) {
        self.guard.settle(self.key);
        self.settled = true;
    }
}

impl<K: MigrationKey + ?Sized> Drop for Intent<'_, '_, K> {
    fn drop(&mut self) {
        if !self.settled {
            self.guard.abandon(self.key);
        }
    }
}
