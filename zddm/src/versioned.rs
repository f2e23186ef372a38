//! Versioned mode: the migration stays consistent across every instance of a fleet.
//!
//! One [`Proxy`](crate::Proxy) per process serialises the keys it touches, but instances of a service
//! do not see each other's locks: two writers can reach NEW in the opposite order to OLD, a
//! read-through can copy a value another instance has just deleted, and a write abandoned between
//! the two stores leaves NEW stale for everyone. Versioned mode removes all three without any lock
//! shared between instances:
//!
//! - OLD is a [`Source`]: it returns a version with every value it reads and every write it commits,
//!   increasing in its commit order for each key (a sequence, a counter under its lock).
//! - NEW is a [`Target`]: every change is "apply if newer" in one atomic step, and a delete leaves a
//!   versioned tombstone. Whatever order the instances' calls arrive in, NEW ends in OLD's order.
//! - A write first marks the key pending in NEW, then writes OLD, then applies OLD's version to NEW
//!   and withdraws its mark. A pending key is served by nobody: if the writer dies, errs or is
//!   cancelled in between, readers go to OLD, and once the grace period has passed the next read
//!   repairs NEW from OLD. Pending keys can be listed ([`Target::pending_keys`]).
//!
//! [`VersionedProxy`] runs this protocol; its gate and phases are those of the [`Proxy`](crate::Proxy).
//! The state NEW keeps per key and every change to it is the pure [`Slot`]: a target in another
//! store implements the same table in one statement or script per operation.
//!
//! ```
//! use std::sync::Arc;
//! use zddm::versioned::{MemorySource, MemoryTarget, Source, Target, VersionedProxy};
//! use zddm::{Gate, Rate};
//!
//! # zddm::block_on(async {
//! let old = Arc::new(MemorySource::<u64, String>::new());
//! let new = Arc::new(MemoryTarget::<u64, String>::new());
//! old.put(&1, &"ada".to_string()).await?;
//!
//! // Two instances of a service, each with its own proxy over the same stores.
//! let a = VersionedProxy::new(old.clone(), new.clone(), Gate::new("users", Rate::ALL));
//! let b = VersionedProxy::new(old.clone(), new.clone(), Gate::new("users", Rate::ALL));
//! assert_eq!(a.get(&1).await?, Some("ada".to_string())); // copied into NEW at OLD's version
//! b.delete(&1).await?; // a versioned tombstone: no read-through can bring the key back
//! assert_eq!(a.get(&1).await?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::sync::Arc;

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod proxy;
#[cfg(feature = "redis")]
mod redis;
mod slot;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod table;

#[cfg(feature = "redis")]
pub use self::redis::{RedisSource, RedisTarget};
pub use memory::{MemorySource, MemoryTarget};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresSource, PostgresTarget};
pub use proxy::{Copied, VersionedProxy, VersionedProxyBuilder, DEFAULT_GRACE};
pub use slot::Slot;
#[cfg(feature = "sqlite")]
pub use sqlite::{KeyedSlot, SqliteSource, SqliteTarget};
#[cfg(feature = "postgres")]
pub use table::PostgresTable;
#[cfg(feature = "sqlite")]
pub use table::SqliteTable;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use table::{KeyKind, TableError};

/// A value with the version OLD gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<V> {
    /// The value.
    pub value: V,
    /// OLD's version of it: larger for every later write of the same key.
    pub version: u64,
}

/// What a read finds in NEW.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<V> {
    /// A settled value: serve it.
    Hit(V),
    /// A settled delete: the key is gone, no need to ask OLD.
    Deleted,
    /// Nothing known: never copied, or invalidated by a write NEW was not given. OLD answers.
    Miss,
    /// A write is in flight or was abandoned: OLD answers. `token` names the marks seen; once they
    /// have all `expired`, a read may repair the key with [`Target::fill`].
    Pending {
        /// The marks' deadline, passed back to [`Target::fill`].
        token: u64,
        /// Whether every mark is past its deadline.
        expired: bool,
    },
}

impl<V> Lookup<V> {
    /// The same answer with the value, if any, converted.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn try_map<U, E>(self, convert: impl FnOnce(V) -> Result<U, E>) -> Result<Lookup<U>, E> {
        Ok(match self {
            Lookup::Hit(value) => Lookup::Hit(convert(value)?),
            Lookup::Deleted => Lookup::Deleted,
            Lookup::Miss => Lookup::Miss,
            Lookup::Pending { token, expired } => Lookup::Pending { token, expired },
        })
    }
}

/// A write's effect on NEW, at OLD's version of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<V> {
    /// The key now holds this value.
    Put(V),
    /// The key was deleted: NEW keeps a tombstone that reads answer from.
    Delete,
    /// The key was written with a value NEW is not given (its writer only keeps NEW honest for
    /// it): reads ask OLD, and a copy of this version may fill it.
    Invalidate,
}

impl<V> Change<V> {
    /// The same change over a borrowed value.
    pub fn as_ref(&self) -> Change<&V> {
        match self {
            Change::Put(value) => Change::Put(value),
            Change::Delete => Change::Delete,
            Change::Invalidate => Change::Invalidate,
        }
    }
}

impl<V: Clone> Change<&V> {
    /// The same change over an owned value.
    pub fn cloned(self) -> Change<V> {
        match self {
            Change::Put(value) => Change::Put(value.clone()),
            Change::Delete => Change::Delete,
            Change::Invalidate => Change::Invalidate,
        }
    }
}

/// What a [`Target::fill`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// The value was copied into NEW.
    Copied,
    /// An abandoned write's mark was cleared and NEW took OLD's state.
    Repaired,
    /// NEW already holds something as new, or a write is in flight: nothing changed.
    Refused,
}

/// OLD in versioned mode: every value read and every write committed comes with OLD's version.
///
/// Versions of one key increase in OLD's commit order, deletes included (a delete leaves no row, so
/// take versions from a sequence or counter, not from the row). `docs/consistency.md` shows how to
/// give an existing table a version column and a trigger for writers that do not go through zddm.
///
/// The futures must be `Send`, and an operation must not take effect after its future is dropped
/// unless it already had when it was dropped (the proxy treats a dropped write as in doubt).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a versioned OLD store of `{K}` → `{V}`",
    label = "OLD must be a `zddm::versioned::Source<{K}, {V}>`",
    note = "in `#[zddm::migrate(.., mode = versioned)]`, implement `zddm::versioned::Source<{K}, {V}>` for OldStore, or register the impl with `#[zddm::backend]` so that only the migration reaches it"
)]
pub trait Source<K: ?Sized, V>: Send + Sync {
    /// The store's own error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The value under `key` with its version, if any.
    fn get(&self, key: &K) -> impl Future<Output = Result<Option<Versioned<V>>, Self::Error>> + Send;

    /// Stores `value` under `key`; returns the version it committed.
    fn put(&self, key: &K, value: &V) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// Removes `key` (absent is fine); returns the delete's version.
    fn delete(&self, key: &K) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// A version for a write of `key` that goes to NEW only (the `Complete` phase), ordered with
    /// every write of the key through [`put`](Source::put) and [`delete`](Source::delete), which
    /// instances still in `Live` may be making: OLD's data is no longer needed, its counter is.
    fn next_version(&self, key: &K) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// The longest an operation can go on after it was sent — on the server too — if the store
    /// bounds it (a statement or lock timeout). A proxy's grace period must outlast it twice.
    fn timeout(&self) -> Option<std::time::Duration> {
        None
    }
}

/// NEW in versioned mode: each operation is one atomic step of [`Slot`]'s state machine, in one
/// round trip, on the store's own clock.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a versioned NEW store of `{K}` → `{V}`",
    label = "NEW must be a `zddm::versioned::Target<{K}, {V}>`",
    note = "in `#[zddm::migrate(.., mode = versioned)]`, implement `zddm::versioned::Target<{K}, {V}>` for NewStore, or register the impl with `#[zddm::backend]` so that only the migration reaches it"
)]
pub trait Target<K: ?Sized, V>: Send + Sync {
    /// The store's own error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// [`Slot::lookup`].
    fn lookup(&self, key: &K) -> impl Future<Output = Result<Lookup<V>, Self::Error>> + Send;

    /// [`Slot::mark`], with the grace period in milliseconds.
    fn mark(&self, key: &K, grace_ms: u64) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// [`Slot::apply`]. It reports nothing: no caller acts on whether NEW took the change, and on
    /// PostgreSQL telling would cost a second lookup of the row on every write.
    fn apply(
        &self,
        key: &K,
        change: Change<&V>,
        version: u64,
        settle: bool,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// [`Slot::fill`].
    fn fill(
        &self,
        key: &K,
        value: Option<&V>,
        version: u64,
        token: Option<u64>,
    ) -> impl Future<Output = Result<Filled, Self::Error>> + Send;

    /// [`fill`](Target::fill) for many keys at once, without tokens (a backfill's batch of OLD's
    /// entries, keys distinct); each key's fill is atomic on its own, and the outcomes come back in
    /// order. The default fills one key after another; a store overrides it to take the batch in
    /// one round trip or transaction.
    fn fill_many(&self, entries: &[(&K, &V, u64)]) -> impl Future<Output = Result<Vec<Filled>, Self::Error>> + Send
    where
        K: Sync,
        V: Sync,
    {
        async move {
            let mut out = Vec::with_capacity(entries.len());
            for (key, value, version) in entries {
                out.push(self.fill(key, Some(value), *version, None).await?);
            }
            Ok(out)
        }
    }

    /// Up to `limit` canonical keys after `after` (in byte order) whose writes have not settled: for
    /// a verifier to check first.
    fn pending_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, Self::Error>> + Send;

    /// Forgets tombstones settled for at least `older_than_ms` ([`Slot::purgeable`]); returns how
    /// many. A tombstone is what stops a slow read-through from bringing a deleted key back, so
    /// `older_than_ms` must be longer than any operation or backfill pass can take.
    fn purge(&self, older_than_ms: u64) -> impl Future<Output = Result<usize, Self::Error>> + Send;

    /// See [`Source::timeout`].
    fn timeout(&self) -> Option<std::time::Duration> {
        None
    }
}

/// A batch of a store's entries in scan order, and where the scan goes on: OLD's values with their
/// versions ([`Scan`]), or what NEW holds ([`ScanSlots`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<K, E> {
    /// Keys with what the store holds for them, in the scan's order.
    pub entries: Vec<(K, E)>,
    /// The position after the last entry, to pass to the next [`Scan::scan`]; `None` once the
    /// scan has passed the last key.
    pub next: Option<Vec<u8>>,
}

/// OLD read in a stable order, batch by batch, for a backfill or a verifier.
///
/// A position is opaque bytes the scan gave out (the last key's canonical bytes for the stores
/// zddm lays out); passing it back goes on after it, in a later process too, so a checkpoint holding
/// it makes a backfill resumable. Keys written after the scan passed their position are not seen
/// again; they reached NEW through the proxy, which is why a backfill needs no snapshot.
pub trait Scan<K, V>: Source<K, V> {
    /// About `limit` entries after `after` (from the start if `None`; a `limit` of 0 counts as 1):
    /// at most `limit` for the stores zddm lays out in SQL, where a shorter page ends the scan;
    /// `next` is `None` once the scan is over.
    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<K, Versioned<V>>, Self::Error>> + Send;

    /// About how many keys OLD holds, for progress and an ETA; `None` if the store cannot say
    /// cheaply.
    fn estimate(&self) -> impl Future<Output = Result<Option<u64>, Self::Error>> + Send {
        std::future::ready(Ok(None))
    }

    /// Whether the scan runs in canonical key order (each position the last key's canonical
    /// bytes), so that a verifier can walk it side by side with NEW; otherwise it looks each key up.
    fn canonical(&self) -> bool {
        true
    }
}

/// NEW read in canonical key order, batch by batch, for a verifier: every key NEW has a slot for,
/// with what a read would find there.
pub trait ScanSlots<K, V>: Target<K, V> {
    /// About `limit` slots after the position `after` (from the start if `None`; a `limit` of 0
    /// counts as 1); `next` is `None` once the scan is over. In canonical order, a position is the
    /// last key's canonical bytes.
    fn scan_slots(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<K, Lookup<V>>, Self::Error>> + Send;

    /// Whether the scan runs in canonical key order; see [`Scan::canonical`].
    fn canonical(&self) -> bool {
        true
    }
}

macro_rules! forward {
    ($($ty:ty),*) => {$(
        impl<K: ?Sized, V, S: Source<K, V> + ?Sized> Source<K, V> for $ty {
            type Error = S::Error;

            fn get(&self, key: &K) -> impl Future<Output = Result<Option<Versioned<V>>, Self::Error>> + Send {
                (**self).get(key)
            }

            fn put(&self, key: &K, value: &V) -> impl Future<Output = Result<u64, Self::Error>> + Send {
                (**self).put(key, value)
            }

            fn delete(&self, key: &K) -> impl Future<Output = Result<u64, Self::Error>> + Send {
                (**self).delete(key)
            }

            fn next_version(&self, key: &K) -> impl Future<Output = Result<u64, Self::Error>> + Send {
                (**self).next_version(key)
            }

            fn timeout(&self) -> Option<std::time::Duration> {
                Source::timeout(&**self)
            }
        }

        impl<K, V, S: Scan<K, V> + ?Sized> Scan<K, V> for $ty {
            fn scan(
                &self,
                after: Option<&[u8]>,
                limit: usize,
            ) -> impl Future<Output = Result<Page<K, Versioned<V>>, Self::Error>> + Send {
                (**self).scan(after, limit)
            }

            fn estimate(&self) -> impl Future<Output = Result<Option<u64>, Self::Error>> + Send {
                (**self).estimate()
            }

            fn canonical(&self) -> bool {
                Scan::canonical(&**self)
            }
        }

        impl<K, V, S: ScanSlots<K, V> + ?Sized> ScanSlots<K, V> for $ty {
            fn scan_slots(
                &self,
                after: Option<&[u8]>,
                limit: usize,
            ) -> impl Future<Output = Result<Page<K, Lookup<V>>, Self::Error>> + Send {
                (**self).scan_slots(after, limit)
            }

            fn canonical(&self) -> bool {
                ScanSlots::canonical(&**self)
            }
        }

        impl<K: ?Sized, V, S: Target<K, V> + ?Sized> Target<K, V> for $ty {
            type Error = S::Error;

            fn lookup(&self, key: &K) -> impl Future<Output = Result<Lookup<V>, Self::Error>> + Send {
                (**self).lookup(key)
            }

            fn mark(&self, key: &K, grace_ms: u64) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).mark(key, grace_ms)
            }

            fn apply(
                &self,
                key: &K,
                change: Change<&V>,
                version: u64,
                settle: bool,
            ) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).apply(key, change, version, settle)
            }

            fn fill(
                &self,
                key: &K,
                value: Option<&V>,
                version: u64,
                token: Option<u64>,
            ) -> impl Future<Output = Result<Filled, Self::Error>> + Send {
                (**self).fill(key, value, version, token)
            }

            fn fill_many(
                &self,
                entries: &[(&K, &V, u64)],
            ) -> impl Future<Output = Result<Vec<Filled>, Self::Error>> + Send
            where
                K: Sync,
                V: Sync,
            {
                (**self).fill_many(entries)
            }

            fn pending_keys(
                &self,
                after: Option<&[u8]>,
                limit: usize,
            ) -> impl Future<Output = Result<Vec<Vec<u8>>, Self::Error>> + Send {
                (**self).pending_keys(after, limit)
            }

            fn purge(&self, older_than_ms: u64) -> impl Future<Output = Result<usize, Self::Error>> + Send {
                (**self).purge(older_than_ms)
            }

            fn timeout(&self) -> Option<std::time::Duration> {
                Target::timeout(&**self)
            }
        }
    )*};
}

forward!(Arc<S>, &S, Box<S>);

/// Milliseconds since the Unix epoch: the clock of the embedded targets (one machine shares it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}
