//! Unversioned mode: a fleet over an OLD that cannot give versions.
//!
//! Without versions, NEW cannot tell which of two writes is the newer, so it never takes a
//! write's value: it is an invalidate-on-write cache of OLD, filled only by reads, with the two
//! guards of memcache's leases.
//!
//! - **A read** probes NEW: a cached value or "absent" is served; on a miss NEW issues a lease
//!   token, the read copies OLD's answer, and the copy lands only if the lease is still current.
//! - **A write** marks the key in NEW (voiding every lease, and hiding the key), writes OLD, then
//!   invalidates NEW's copy and withdraws its mark. A read whose lease was issued before the mark
//!   cannot land what it read; a read that probes while the key is marked goes to OLD without a
//!   lease. A mark left by a writer that failed, was cancelled or crashed expires after the grace
//!   period; the next read then gets a lease whose fill repairs the key.
//!
//! What it guarantees, against [versioned mode](crate::versioned): the same invariants across
//! instances and processes (no read older than an acknowledged write; NEW never serves what OLD
//! does not hold; an abandoned write leaves a mark everyone sees), under the same grace
//! assumption. What it costs: every write empties NEW's copy, so the next read of a written key
//! makes three calls (probe, OLD read, fill) where versioned mode serves it from NEW at once; writes
//! make the same three calls (mark, OLD write, invalidate). And it cannot finish a migration: NEW
//! only ever holds copies, so OLD stays the source of truth — in `Complete` this proxy keeps
//! behaving as in `Live`. Retiring OLD needs versioned mode.
//!
//! ```
//! use std::sync::Arc;
//! use zddm::cached::{CachedProxy, MemoryCache};
//! use zddm::{Gate, MemoryStore, Rate, Store};
//!
//! # zddm::block_on(async {
//! let old = Arc::new(MemoryStore::<u64, String>::new()); // any `zddm::Store`, no versions
//! let new = Arc::new(MemoryCache::<u64, String>::new());
//! old.put(&1, &"ada".to_string()).await?;
//! let a = CachedProxy::new(old.clone(), new.clone(), Gate::new("users", Rate::ALL));
//! let b = CachedProxy::new(old.clone(), new.clone(), Gate::new("users", Rate::ALL));
//! assert_eq!(a.get(&1).await?, Some("ada".to_string())); // leased, copied into NEW
//! b.put(&1, &"bob".to_string()).await?; // OLD, then NEW's copy invalidated
//! assert_eq!(a.get(&1).await?, Some("bob".to_string()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::sync::Arc;

mod entry;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod proxy;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "redis")]
pub use self::redis::RedisCache;
pub use entry::Entry;
pub use memory::MemoryCache;
#[cfg(feature = "postgres")]
pub use postgres::PostgresCache;
pub use proxy::CachedProxy;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteCache;

/// What a read's probe of NEW found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe<V> {
    /// A cached value: serve it.
    Hit(V),
    /// Cached: OLD holds nothing for the key.
    Absent,
    /// Nothing cached: read OLD and fill with this token.
    Leased(u64),
    /// A write is in flight: read OLD, do not fill.
    Busy,
}

/// NEW in unversioned mode: each operation one atomic step of [`Entry`]'s state machine, in one
/// round trip, on the store's own clock.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a leased cache of `{K}` → `{V}`",
    label = "NEW must be a `zddm::cached::Cache<{K}, {V}>`",
    note = "in `#[zddm::migrate(.., mode = cached)]`, implement `zddm::cached::Cache<{K}, {V}>` for NewStore, or register the impl with `#[zddm::backend]` so that only the migration reaches it"
)]
pub trait Cache<K: ?Sized, V>: Send + Sync {
    /// The store's own error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// [`Entry::probe`].
    fn probe(&self, key: &K) -> impl Future<Output = Result<Probe<V>, Self::Error>> + Send;

    /// [`Entry::mark`], with the grace period in milliseconds.
    fn mark(&self, key: &K, grace_ms: u64) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// [`Entry::invalidate`].
    fn invalidate(&self, key: &K, settle: bool) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// [`Entry::fill`]: whether the copy landed.
    fn fill(&self, key: &K, value: Option<&V>, token: u64) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Up to `limit` canonical keys after `after` whose writes have not settled.
    fn pending_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, Self::Error>> + Send;

    /// See [`Source::timeout`](crate::versioned::Source::timeout).
    fn timeout(&self) -> Option<std::time::Duration> {
        None
    }
}

/// OLD's keys in a stable order, batch by batch: what a backfill in unversioned mode walks. Each
/// key's value is read again under a lease before it is copied, so the scan's own values are not
/// needed. The plain stores (memory, SQLite, PostgreSQL, Redis) scan in canonical key order; a
/// position is the last key's canonical bytes.
pub trait ScanKeys<K>: Send + Sync {
    /// The store's own error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// About `limit` keys after `after` (from the start if `None`); `next` is `None` once the scan
    /// is over.
    fn scan_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<crate::versioned::Page<K, ()>, Self::Error>> + Send;
}

impl<K, S: ScanKeys<K> + ?Sized> ScanKeys<K> for Arc<S> {
    type Error = S::Error;

    fn scan_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<crate::versioned::Page<K, ()>, Self::Error>> + Send {
        (**self).scan_keys(after, limit)
    }
}

impl<K, S: ScanKeys<K> + ?Sized> ScanKeys<K> for &S {
    type Error = S::Error;

    fn scan_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<crate::versioned::Page<K, ()>, Self::Error>> + Send {
        (**self).scan_keys(after, limit)
    }
}

impl<K, S: ScanKeys<K>> ScanKeys<K> for crate::Blocking<S> {
    type Error = S::Error;

    fn scan_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<crate::versioned::Page<K, ()>, Self::Error>> + Send {
        self.0.scan_keys(after, limit)
    }
}

/// A page of keys from a scan that returned `(canonical bytes, value)` pairs, at most `limit`.
pub(crate) fn key_page<K: crate::MigrationKey, V, E: From<crate::KeyError>>(
    rows: Vec<(Vec<u8>, V)>,
    limit: usize,
) -> Result<crate::versioned::Page<K, ()>, E> {
    let full = rows.len() >= limit.max(1);
    let next = rows.last().filter(|_| full).map(|(key, _)| key.clone());
    let entries =
        rows.into_iter().map(|(key, _)| K::from_key_bytes(&key).map(|key| (key, ()))).collect::<Result<_, _>>()?;
    Ok(crate::versioned::Page { entries, next })
}

macro_rules! forward {
    ($($ty:ty),*) => {$(
        impl<K: ?Sized, V, C: Cache<K, V> + ?Sized> Cache<K, V> for $ty {
            type Error = C::Error;

            fn probe(&self, key: &K) -> impl Future<Output = Result<Probe<V>, Self::Error>> + Send {
                (**self).probe(key)
            }

            fn mark(&self, key: &K, grace_ms: u64) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).mark(key, grace_ms)
            }

            fn invalidate(&self, key: &K, settle: bool) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).invalidate(key, settle)
            }

            fn fill(&self, key: &K, value: Option<&V>, token: u64) -> impl Future<Output = Result<bool, Self::Error>> + Send {
                (**self).fill(key, value, token)
            }

            fn pending_keys(
                &self,
                after: Option<&[u8]>,
                limit: usize,
            ) -> impl Future<Output = Result<Vec<Vec<u8>>, Self::Error>> + Send {
                (**self).pending_keys(after, limit)
            }

            fn timeout(&self) -> Option<std::time::Duration> {
                (**self).timeout()
            }
        }
    )*};
}

forward!(Arc<C>, &C, Box<C>);
