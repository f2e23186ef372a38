//! The interleavings that break a fleet, each forced between two instances that share OLD and NEW
//! but nothing else (separate handles; over SQLite, separate connections to the same files).
//! Versioned mode and unversioned mode (leased fills) must show no violation; today's per-process
//! `Proxy` on each instance is the control, and must show the race — so each scenario is shown to
//! exercise it.

use std::path::Path;
use std::sync::Arc;

use zddm::cached::{MemoryCache, PostgresCache, RedisCache, SqliteCache};
use zddm::versioned::{MemorySource, MemoryTarget, SqliteSource, SqliteTarget};
use zddm::versioned::{PostgresSource, PostgresTarget, RedisTarget};
use zddm::{MemoryStore, PostgresStore, RedisStore, SqliteStore};
use zddm_suite::fleet::{self, Cached, Fleet, Unversioned, Versioned};
use zddm_suite::servers::{PostgresServer, RedisServer};

type MemV = Versioned<Arc<MemorySource<u64, u64>>, Arc<MemoryTarget<u64, u64>>>;
type MemC = Unversioned<Arc<MemoryStore<u64, u64>>, Arc<MemoryStore<u64, u64>>>;
type SqlV = Versioned<SqliteSource<u64, u64>, SqliteTarget<u64, u64>>;
type SqlC = Unversioned<SqliteStore<u64, u64>, SqliteStore<u64, u64>>;
type MemCached = Cached<Arc<MemoryStore<u64, u64>>, Arc<MemoryCache<u64, u64>>>;
type SqlCached = Cached<SqliteStore<u64, u64>, SqliteCache<u64, u64>>;
type PgCached = Cached<PostgresStore<u64, u64>, PostgresCache<u64, u64>>;
type PgRedisCached = Cached<PostgresStore<u64, u64>, RedisCache<u64, u64>>;
type PgV = Versioned<PostgresSource<u64, u64>, PostgresTarget<u64, u64>>;
type PgC = Unversioned<PostgresStore<u64, u64>, PostgresStore<u64, u64>>;
type PgRedisV = Versioned<PostgresSource<u64, u64>, RedisTarget<u64, u64>>;
type PgRedisC = Unversioned<PostgresStore<u64, u64>, RedisStore<u64, u64>>;

fn memory_versioned() -> Fleet<MemV> {
    let (old, new) = (Arc::new(MemorySource::new()), Arc::new(MemoryTarget::new()));
    let pair = || (old.clone(), new.clone());
    Fleet::new(pair(), pair(), pair())
}

fn memory_cached() -> Fleet<MemCached> {
    let (old, new) = (Arc::new(MemoryStore::new()), Arc::new(MemoryCache::new()));
    let pair = || (old.clone(), new.clone());
    Fleet::new(pair(), pair(), pair())
}

fn sqlite_cached(dir: &Path, name: &str) -> Fleet<SqlCached> {
    let pair = || {
        (
            SqliteStore::open(dir.join(format!("{name}-old-u.db")), "entries").unwrap(),
            SqliteCache::open(dir.join(format!("{name}-new-u.db")), "entries").unwrap(),
        )
    };
    Fleet::new(pair(), pair(), pair())
}

fn memory_control() -> Fleet<MemC> {
    let (old, new) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
    let pair = || (old.clone(), new.clone());
    Fleet::new(pair(), pair(), pair())
}

/// Three connections to each of two SQLite files in `dir`, named after `name`.
fn sqlite_versioned(dir: &Path, name: &str) -> Fleet<SqlV> {
    let pair = || {
        (
            SqliteSource::open(dir.join(format!("{name}-old.db")), "entries").unwrap(),
            SqliteTarget::open(dir.join(format!("{name}-new.db")), "entries").unwrap(),
        )
    };
    Fleet::new(pair(), pair(), pair())
}

fn sqlite_control(dir: &Path, name: &str) -> Fleet<SqlC> {
    let pair = || {
        (
            SqliteStore::open(dir.join(format!("{name}-old-c.db")), "entries").unwrap(),
            SqliteStore::open(dir.join(format!("{name}-new-c.db")), "entries").unwrap(),
        )
    };
    Fleet::new(pair(), pair(), pair())
}

/// Three pools on each of two tables of `server`, named after `name`.
async fn postgres_versioned(server: &PostgresServer, name: &str) -> Fleet<PgV> {
    let mut pairs = Vec::new();
    for _ in 0..3 {
        pairs.push((
            PostgresSource::connect(&server.url(), &format!("{name}_old"), 1).await.unwrap(),
            PostgresTarget::connect(&server.url(), &format!("{name}_new"), 1).await.unwrap(),
        ));
    }
    let [a, b, observer] = <[_; 3]>::try_from(pairs).ok().unwrap();
    Fleet::new(a, b, observer)
}

async fn postgres_control(server: &PostgresServer, name: &str) -> Fleet<PgC> {
    let mut pairs = Vec::new();
    for _ in 0..3 {
        pairs.push((
            PostgresStore::connect(&server.url(), &format!("{name}_old_c"), 1).await.unwrap(),
            PostgresStore::connect(&server.url(), &format!("{name}_new_c"), 1).await.unwrap(),
        ));
    }
    let [a, b, observer] = <[_; 3]>::try_from(pairs).ok().unwrap();
    Fleet::new(a, b, observer)
}

async fn postgres_cached(server: &PostgresServer, name: &str) -> Fleet<PgCached> {
    let mut pairs = Vec::new();
    for _ in 0..3 {
        pairs.push((
            PostgresStore::connect(&server.url(), &format!("{name}_old_u"), 1).await.unwrap(),
            PostgresCache::connect(&server.url(), &format!("{name}_new_u"), 1).await.unwrap(),
        ));
    }
    let [a, b, observer] = <[_; 3]>::try_from(pairs).ok().unwrap();
    Fleet::new(a, b, observer)
}

async fn postgres_redis_cached(pg: &PostgresServer, redis: &RedisServer, name: &str) -> Fleet<PgRedisCached> {
    let mut pairs = Vec::new();
    for _ in 0..3 {
        pairs.push((
            PostgresStore::connect(&pg.url(), &format!("{name}_old_u"), 1).await.unwrap(),
            RedisCache::connect(&redis.url(), &format!("{name}_new_u")).await.unwrap(),
        ));
    }
    let [a, b, observer] = <[_; 3]>::try_from(pairs).ok().unwrap();
    Fleet::new(a, b, observer)
}

async fn postgres_redis_versioned(pg: &PostgresServer, redis: &RedisServer, name: &str) -> Fleet<PgRedisV> {
    let mut pairs = Vec::new();
    for _ in 0..3 {
        pairs.push((
            PostgresSource::connect(&pg.url(), &format!("{name}_old"), 1).await.unwrap(),
            RedisTarget::connect(&redis.url(), &format!("{name}_new")).await.unwrap(),
        ));
    }
    let [a, b, observer] = <[_; 3]>::try_from(pairs).ok().unwrap();
    Fleet::new(a, b, observer)
}

async fn postgres_redis_control(pg: &PostgresServer, redis: &RedisServer, name: &str) -> Fleet<PgRedisC> {
    let mut pairs = Vec::new();
    for _ in 0..3 {
        pairs.push((
            PostgresStore::connect(&pg.url(), &format!("{name}_old_c"), 1).await.unwrap(),
            RedisStore::connect(&redis.url(), &format!("{name}_new_c")).await.unwrap(),
        ));
    }
    let [a, b, observer] = <[_; 3]>::try_from(pairs).ok().unwrap();
    Fleet::new(a, b, observer)
}

/// The scenario holds in versioned mode (and in unversioned mode, where given) and breaks the
/// control.
macro_rules! check {
    ($scenario:ident, $versioned:expr, $control:expr) => {
        check!($scenario, $versioned, $control, )
    };
    ($scenario:ident, $versioned:expr, $control:expr, $($cached:expr)?) => {{
        let versioned = fleet::$scenario(&$versioned).await;
        assert_eq!(versioned.violations(), Vec::<String>::new(), "versioned mode: {versioned:?}");
        $(
            let cached = fleet::$scenario(&$cached).await;
            assert_eq!(cached.violations(), Vec::<String>::new(), "unversioned mode: {cached:?}");
        )?
        let control = fleet::$scenario(&$control).await;
        assert!(!control.violations().is_empty(), "the control must show the race: {control:?}");
    }};
}

macro_rules! races {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "current_thread")]
                async fn $scenario() {
                    check!($scenario, memory_versioned(), memory_control(), memory_cached());
                }
            )*
        }

        #[tokio::test(flavor = "current_thread")]
        async fn every_race_over_sqlite_files() {
            let dir = tempfile::tempdir().unwrap();
            $( check!(
                $scenario,
                sqlite_versioned(dir.path(), stringify!($scenario)),
                sqlite_control(dir.path(), stringify!($scenario)),
                sqlite_cached(dir.path(), stringify!($scenario))
            ); )*
        }

        #[tokio::test(flavor = "current_thread")]
        async fn every_race_over_postgres() {
            let server = PostgresServer::start();
            $( check!(
                $scenario,
                postgres_versioned(&server, stringify!($scenario)).await,
                postgres_control(&server, stringify!($scenario)).await,
                postgres_cached(&server, stringify!($scenario)).await
            ); )*
        }

        #[tokio::test(flavor = "current_thread")]
        async fn every_race_over_postgres_to_redis() {
            let (pg, redis) = (PostgresServer::start(), RedisServer::start());
            $( check!(
                $scenario,
                postgres_redis_versioned(&pg, &redis, stringify!($scenario)).await,
                postgres_redis_control(&pg, &redis, stringify!($scenario)).await,
                postgres_redis_cached(&pg, &redis, stringify!($scenario)).await
            ); )*
        }
    };
}

races!(put_vs_put, put_vs_delete, read_through_vs_delete, abandoned_write);
