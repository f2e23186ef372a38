//! Fresh, empty stores of every kind for the tests that run the same checks over each: SQLite files
//! in a temporary directory, and tables (PostgreSQL) or key prefixes (Redis) of their own on a
//! server this value starts when first asked for one and stops when dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;
use zddm::{MemoryStore, MigrationKey, PostgresStore, RedisStore, SqliteStore, Store};

use crate::servers::{PostgresServer, RedisServer};

/// See the module docs.
pub struct Backends {
    dir: tempfile::TempDir,
    postgres: OnceLock<PostgresServer>,
    redis: OnceLock<RedisServer>,
    next: AtomicUsize,
}

impl Default for Backends {
    fn default() -> Self {
        Backends {
            dir: tempfile::tempdir().expect("a temporary directory for SQLite files"),
            postgres: OnceLock::new(),
            redis: OnceLock::new(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Backends {
    /// A name no other store of this value has.
    fn unique(&self, kind: &str) -> String {
        format!("{kind}_{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// A store in its own SQLite file (WAL, as `SqliteStore::open` sets up).
    pub fn sqlite<K: MigrationKey + ?Sized, V: Serialize + DeserializeOwned>(&self) -> SqliteStore<K, V> {
        let path = self.dir.path().join(format!("{}.db", self.unique("sqlite")));
        SqliteStore::open(path, "entries").expect("a SQLite file in a temporary directory opens")
    }

    /// A table of its own on this value's PostgreSQL server (started on first use).
    pub async fn postgres<K: MigrationKey + ?Sized, V: Serialize + DeserializeOwned>(&self) -> PostgresStore<K, V> {
        let server = self.postgres.get_or_init(PostgresServer::start);
        PostgresStore::connect(&server.url(), &self.unique("entries"), 2)
            .await
            .expect("the test server accepts a table")
    }

    /// A key prefix of its own on this value's Redis server (started on first use).
    pub async fn redis<K: MigrationKey + ?Sized, V: Serialize + DeserializeOwned>(&self) -> RedisStore<K, V> {
        let server = self.redis.get_or_init(RedisServer::start);
        RedisStore::connect(&server.url(), &self.unique("entries")).await.expect("the test server accepts a prefix")
    }
}

/// What a test needs to see of a store besides [`Store`]: how many entries it holds.
#[allow(async_fn_in_trait)]
pub trait Counted<K: ?Sized, V>: Store<K, V> {
    async fn count(&self) -> usize;
}

impl<K: MigrationKey + ?Sized + Sync, V: Clone + Send + Sync> Counted<K, V> for MemoryStore<K, V> {
    async fn count(&self) -> usize {
        self.len()
    }
}

impl<K, V> Counted<K, V> for SqliteStore<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    async fn count(&self) -> usize {
        self.len().await.expect("SQLite counts its entries")
    }
}

impl<K, V> Counted<K, V> for PostgresStore<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
    Self: Store<K, V>,
{
    async fn count(&self) -> usize {
        self.len().await.expect("PostgreSQL counts its entries")
    }
}

impl<K, V> Counted<K, V> for RedisStore<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
    Self: Store<K, V>,
{
    async fn count(&self) -> usize {
        self.len().await.expect("Redis counts its entries")
    }
}

impl<K: ?Sized, V, S: Counted<K, V>> Counted<K, V> for std::sync::Arc<S> {
    async fn count(&self) -> usize {
        (**self).count().await
    }
}
