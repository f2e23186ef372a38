//! The stores a migration moves data between.

use std::future::Future;
use std::sync::Arc;

#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
pub(crate) mod json;
mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

#[cfg(feature = "redis")]
pub use self::redis::{RedisError, RedisStore};
#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
pub use json::{DecodeError, EncodeError};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresConnectError, PostgresError, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteError, SqliteStore};

/// A count, version or time (ms) as the SQL stores keep it: an `i64`. Real ones stay far below
/// `i64::MAX`; the conversion saturates rather than wrap.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The condition of a scan that goes on after the key in parameter 1, or starts (`None`). Two
/// statements rather than `$1 IS NULL OR key > $1`: a cached plan of that cannot seek the index to
/// the position, so every page would read the table from its start.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn after_key(after: Option<&[u8]>, postgres: bool) -> &'static str {
    match (after.is_some(), postgres) {
        (true, true) => "key > $1",
        (false, true) => "$1::bytea IS NULL",
        (true, false) => "key > ?1",
        (false, false) => "?1 IS NULL",
    }
}

/// The reverse of [`to_sql`]; a negative value can only come from outside zddm and reads as 0.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// An async key/value store: the OLD or the NEW side of a migration.
///
/// The proxy calls each method at most once per logical step and never retries, so an
/// implementation should do its own retrying only where a retry cannot apply a write twice.
/// `insert_if_absent` must be atomic in the store (e.g. `INSERT … ON CONFLICT DO NOTHING`,
/// `SET NX`): it is what keeps a read-through copy from overwriting a newer write.
///
/// Implementations may write `async fn`; the futures must be `Send`.
///
/// # Cancellation: nothing may take effect after the future is dropped
///
/// The proxy's callers may drop its futures at any `.await` (a timeout, `select!`, a client that
/// went away), and the proxy then drops the store's future it was awaiting. **An operation must not
/// take effect after its future is dropped, unless it already had when it was dropped**; likewise
/// after its future returned an error. The proxy treats such a write as *in doubt* — it may or may
/// not have happened — and, before it releases the key's lock, removes NEW's copy or records the
/// key so that its next read or write repairs NEW from OLD. That is only right if the abandoned
/// write cannot land afterwards: landing late, it would put an older value back over a newer one,
/// or leave NEW and OLD apart (invariants 1 and 2 of `docs/consistency.md`).
///
/// So an implementation must:
/// - do the work inside the future it returns: never hand a write to a task spawned to finish it
///   in the background (`tokio::spawn`), to a write-behind buffer, or to a queue that sends it
///   later — once the future is dropped, a write not yet sent must never be sent;
/// - make each operation take effect in one atomic step (one statement, one command, one
///   transaction), so that a dropped future leaves it either committed or not at all, never half;
/// - for a network store, where a request already sent can still commit on the server after the
///   client gave up, keep that window short and bounded on the server (a statement timeout, as
///   `PostgresStore` sets), and send nothing more once the future is dropped.
///
/// [`MemoryStore`] meets this trivially: each operation is done before its future first returns.
///
/// ```
/// use zddm::{MemoryStore, Store};
///
/// # zddm::block_on(async {
/// let store = MemoryStore::<u64, String>::new();
/// store.put(&1, &"one".to_string()).await?;
/// assert!(!store.insert_if_absent(&1, &"uno".to_string()).await?);
/// assert_eq!(store.get(&1).await?, Some("one".to_string()));
/// # Ok::<(), zddm::KeyError>(())
/// # }).unwrap();
/// ```
pub trait Store<K: ?Sized, V>: Send + Sync {
    /// The store's own error type; the proxy reports it as the cause of a [`zddm::Error`](crate::Error).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The value stored under `key`, if any.
    fn get(&self, key: &K) -> impl Future<Output = Result<Option<V>, Self::Error>> + Send;

    /// Stores `value` under `key`, replacing any value there.
    fn put(&self, key: &K, value: &V) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Stores `value` under `key` only if the key holds nothing, atomically; `true` if it stored it.
    fn insert_if_absent(&self, key: &K, value: &V) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Removes `key`. Removing an absent key succeeds.
    fn delete(&self, key: &K) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

macro_rules! forward {
    ($($ty:ty),*) => {$(
        impl<K: ?Sized, V, S: Store<K, V> + ?Sized> Store<K, V> for $ty {
            type Error = S::Error;

            fn get(&self, key: &K) -> impl Future<Output = Result<Option<V>, Self::Error>> + Send {
                (**self).get(key)
            }

            fn put(&self, key: &K, value: &V) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).put(key, value)
            }

            fn insert_if_absent(&self, key: &K, value: &V) -> impl Future<Output = Result<bool, Self::Error>> + Send {
                (**self).insert_if_absent(key, value)
            }

            fn delete(&self, key: &K) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).delete(key)
            }
        }
    )*};
}

forward!(Arc<S>, &S, Box<S>);

/// A store whose operations block the calling thread (rusqlite, a blocking client).
///
/// Wrap it in [`Blocking`] to use it as a [`Store`]: the proxy then runs the same protocol over it,
/// and [`Proxy::blocking`](crate::Proxy::blocking) drives it from synchronous code without a
/// runtime. There is no second copy of the migration logic for blocking stores.
///
/// The rules of [`Store`] apply, cancellation included: **when a call returns, its operation has
/// taken effect or never will**, whether it returned `Ok` or an error. Do not leave work to a
/// background thread, a write-behind buffer or a connection that sends it later, and make each
/// operation one atomic step (one statement or transaction). An error means "may or may not have
/// happened" — the proxy then holds the key in doubt and repairs NEW from OLD — but never "will
/// happen later".
pub trait BlockingStore<K: ?Sized, V>: Send + Sync {
    /// The store's own error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// See [`Store::get`].
    fn get(&self, key: &K) -> Result<Option<V>, Self::Error>;
    /// See [`Store::put`].
    fn put(&self, key: &K, value: &V) -> Result<(), Self::Error>;
    /// See [`Store::insert_if_absent`].
    fn insert_if_absent(&self, key: &K, value: &V) -> Result<bool, Self::Error>;
    /// See [`Store::delete`].
    fn delete(&self, key: &K) -> Result<(), Self::Error>;
}

macro_rules! forward_blocking {
    ($($ty:ty),*) => {$(
        impl<K: ?Sized, V, S: BlockingStore<K, V> + ?Sized> BlockingStore<K, V> for $ty {
            type Error = S::Error;

            fn get(&self, key: &K) -> Result<Option<V>, Self::Error> {
                (**self).get(key)
            }

            fn put(&self, key: &K, value: &V) -> Result<(), Self::Error> {
                (**self).put(key, value)
            }

            fn insert_if_absent(&self, key: &K, value: &V) -> Result<bool, Self::Error> {
                (**self).insert_if_absent(key, value)
            }

            fn delete(&self, key: &K) -> Result<(), Self::Error> {
                (**self).delete(key)
            }
        }
    )*};
}

forward_blocking!(Arc<S>, &S, Box<S>);

/// Adapts a [`BlockingStore`] into a [`Store`] whose futures complete on their first poll.
///
/// Each call blocks the thread that polls it: use it through [`Proxy::blocking`](crate::Proxy::blocking)
/// from plain threads, or from async code only where blocking is allowed (e.g. inside
/// `tokio::task::spawn_blocking`).
#[derive(Debug, Clone, Default)]
pub struct Blocking<S>(pub S);

impl<K: ?Sized + Sync, V: Send + Sync, S: BlockingStore<K, V>> Store<K, V> for Blocking<S> {
    type Error = S::Error;

    async fn get(&self, key: &K) -> Result<Option<V>, Self::Error> {
        self.0.get(key)
    }

    async fn put(&self, key: &K, value: &V) -> Result<(), Self::Error> {
        self.0.put(key, value)
    }

    async fn insert_if_absent(&self, key: &K, value: &V) -> Result<bool, Self::Error> {
        self.0.insert_if_absent(key, value)
    }

    async fn delete(&self, key: &K) -> Result<(), Self::Error> {
        self.0.delete(key)
    }
}
