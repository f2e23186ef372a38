//! Per-key serialisation within a process, and the record of keys whose NEW copy is in doubt.
//!
//! Keys map to a fixed table of stripes by their gate bucket (already computed, uniformly spread).
//! A stripe's mutex serialises every write and every read-through of its keys; its `abandoned` set
//! holds the keys a write left without settling NEW (the future was dropped, or NEW failed and so did
//! the invalidation). Readers repair such a key before trusting NEW for it. The lock-free read path
//! only needs the set's size, mirrored in an atomic, so a NEW hit takes no lock.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard};

use crate::key::MigrationKey;

pub(crate) struct Locks {
    stripes: Box<[Stripe]>,
}

pub(crate) struct Stripe {
    /// Keys in doubt in every stripe, shared by all of them: while it is zero, a read need not
    /// find (hash) its key's stripe at all.
    total: Arc<AtomicUsize>,
    abandoned_count: AtomicUsize,
    abandoned: Mutex<HashSet<Box<[u8]>>>,
}

impl Locks {
    /// `count` is a power of two.
    pub(crate) fn new(count: usize) -> Locks {
        let total = Arc::new(AtomicUsize::new(0));
        let stripes = (0..count)
            .map(|_| Stripe {
                total: Arc::clone(&total),
                abandoned_count: AtomicUsize::new(0),
                abandoned: Mutex::new(HashSet::new()),
            })
            .collect();
        Locks { stripes }
    }

    pub(crate) fn stripe(&self, bucket: u64) -> &Stripe {
        // Low bits: admitted keys have small buckets, so high bits would crowd them into few stripes.
        &self.stripes[bucket as usize & (self.stripes.len() - 1)]
    }

    /// How many keys are in doubt. Zero means no key was in doubt when the call began, up to the
    /// same guarantee as [`Stripe::maybe_abandoned`].
    pub(crate) fn abandoned(&self) -> usize {
        self.stripes[0].total.load(Ordering::Acquire)
    }
}

impl Stripe {
    /// Whether some key of this stripe may have a stale copy in NEW. False negatives are impossible
    /// for writes settled before the call began.
    pub(crate) fn maybe_abandoned(&self) -> bool {
        self.abandoned_count.load(Ordering::Acquire) != 0
    }

    /// Locks the stripe; `waited` says whether another operation held it, in which case NEW may have
    /// changed since the caller last looked.
    pub(crate) async fn lock(&self) -> (Guard<'_>, bool) {
        match self.abandoned.try_lock() {
            Ok(set) => (Guard { stripe: self, set }, false),
            Err(_) => (Guard { stripe: self, set: self.abandoned.lock().await }, true),
        }
    }
}

pub(crate) struct Guard<'a> {
    stripe: &'a Stripe,
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
                if self.set.remove(&bytes[..]) {
                    self.stripe.abandoned_count.fetch_sub(1, Ordering::AcqRel);
                    self.stripe.total.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
    }

    fn abandon<K: MigrationKey + ?Sized>(&mut self, key: &K) {
        // An unencodable key is never admitted, so it never has a copy in NEW to doubt.
        if let Ok(bytes) = key.try_key_bytes() {
            if self.set.insert(bytes.into_boxed_slice()) {
                self.stripe.total.fetch_add(1, Ordering::AcqRel);
                self.stripe.abandoned_count.fetch_add(1, Ordering::AcqRel);
            }
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
