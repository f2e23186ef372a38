//! The demo's stores: SQLite files in a temporary directory by default, or servers of your own.

use std::path::Path;
use std::time::Duration;

use zddm::cached::ScanKeys;
use zddm::versioned::Page;
use zddm::{MigrationKey, SqliteError, SqliteStore, Store};

#[derive(MigrationKey, Clone, Debug)]
pub struct OrderKey {
    pub tenant: u32,
    pub order: String,
}

/// Where a store is, as given on the command line.
#[derive(Clone, Debug)]
pub enum Location {
    /// A file in the demo's temporary directory.
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres(String),
    #[cfg(feature = "redis")]
    Redis(String),
}

impl Location {
    /// A `--old` / `--new` value: a PostgreSQL or Redis URL.
    pub fn parse(text: &str) -> Result<Location, String> {
        let scheme = text.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            #[cfg(feature = "postgres")]
            Some("postgres" | "postgresql") => Ok(Location::Postgres(text.to_owned())),
            #[cfg(feature = "redis")]
            Some("redis" | "rediss") => Ok(Location::Redis(text.to_owned())),
            #[cfg(not(feature = "postgres"))]
            Some("postgres" | "postgresql") => Err(built_without("PostgreSQL", "postgres")),
            #[cfg(not(feature = "redis"))]
            Some("redis" | "rediss") => Err(built_without("Redis", "redis")),
            _ => Err(format!(
                "`{}` is not a store the demo knows: give a postgres://user@host:port/db or redis://host:port/db \
                 URL, or leave the option out for an SQLite file",
                redact(text)
            )),
        }
    }
}

#[cfg(not(all(feature = "postgres", feature = "redis")))]
fn built_without(name: &str, feature: &str) -> String {
    format!(
        "this demo was built without {name}: run it with `cargo run --release -p zddm-examples --features {feature} \
         --bin demo -- …`"
    )
}

/// `text` with the password of a `scheme://user:password@host` URL replaced.
pub fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else { return text.to_owned() };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => text.to_owned(),
        },
        None => text.to_owned(),
    }
}

/// One of the demo's stores.
pub enum DemoStore {
    Sqlite(SqliteStore<OrderKey, String>),
    #[cfg(feature = "postgres")]
    Postgres(zddm::PostgresStore<OrderKey, String>),
    #[cfg(feature = "redis")]
    Redis(zddm::RedisStore<OrderKey, String>),
}

/// A store's failure.
#[derive(Debug)]
pub enum StoreError {
    /// The SQLite file could not be opened.
    Connection(zddm::rusqlite::Error),
    Sqlite(SqliteError),
    #[cfg(feature = "postgres")]
    Postgres(zddm::PostgresError),
    #[cfg(feature = "redis")]
    Redis(zddm::RedisError),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Connection(error) => write!(f, "cannot open the SQLite file: {error}"),
            StoreError::Sqlite(error) => error.fmt(f),
            #[cfg(feature = "postgres")]
            StoreError::Postgres(error) => error.fmt(f),
            #[cfg(feature = "redis")]
            StoreError::Redis(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Connection(_) => None,
            StoreError::Sqlite(error) => error.source(),
            #[cfg(feature = "postgres")]
            StoreError::Postgres(error) => error.source(),
            #[cfg(feature = "redis")]
            StoreError::Redis(error) => error.source(),
        }
    }
}

/// Runs `$call` on whichever store `$store` is, with its error made a `StoreError`.
macro_rules! each {
    ($store:expr, $inner:ident => $call:expr) => {
        match $store {
            DemoStore::Sqlite($inner) => $call.map_err(StoreError::Sqlite),
            #[cfg(feature = "postgres")]
            DemoStore::Postgres($inner) => $call.map_err(StoreError::Postgres),
            #[cfg(feature = "redis")]
            DemoStore::Redis($inner) => $call.map_err(StoreError::Redis),
        }
    };
}

impl DemoStore {
    /// Opens (creating it) the store for `role` ("old" or "new"), named for this run.
    pub async fn open(location: &Location, role: &str, dir: &Path, run: &str) -> Result<DemoStore, StoreError> {
        let _ = run;
        match location {
            Location::Sqlite => {
                let path = dir.join(format!("{role}.db"));
                let connection = demo_connection(&path).map_err(StoreError::Connection)?;
                let store = SqliteStore::with_connection(connection, "orders").map_err(StoreError::Sqlite)?;
                Ok(DemoStore::Sqlite(store))
            }
            #[cfg(feature = "postgres")]
            Location::Postgres(url) => Ok(DemoStore::Postgres(
                zddm::PostgresStore::connect(url, &format!("{run}_{role}"), 4).await.map_err(StoreError::Postgres)?,
            )),
            #[cfg(feature = "redis")]
            Location::Redis(url) => Ok(DemoStore::Redis(
                zddm::RedisStore::connect(url, &format!("{run}_{role}")).await.map_err(StoreError::Redis)?,
            )),
        }
    }

    /// Writes `rows` directly: the data OLD holds before the migration starts.
    pub async fn fill(&self, rows: &[(OrderKey, String)]) -> Result<(), StoreError> {
        let rows: Vec<(&OrderKey, &String)> = rows.iter().map(|(key, value)| (key, value)).collect();
        each!(self, store => store.put_many(&rows).await)
    }

    /// Removes what the demo created: a server's table or keys (the SQLite files go with their
    /// temporary directory).
    pub async fn remove_all(&self) -> Result<(), StoreError> {
        match self {
            DemoStore::Sqlite(_) => Ok(()),
            #[cfg(feature = "postgres")]
            DemoStore::Postgres(store) => store.drop_table().await.map_err(StoreError::Postgres),
            #[cfg(feature = "redis")]
            DemoStore::Redis(store) => store.clear().await.map_err(StoreError::Redis),
        }
    }

    /// How many keys the store holds.
    pub async fn count(&self) -> Result<usize, StoreError> {
        each!(self, store => store.len().await)
    }
}

impl Store<OrderKey, String> for DemoStore {
    type Error = StoreError;

    async fn get(&self, key: &OrderKey) -> Result<Option<String>, StoreError> {
        each!(self, store => store.get(key).await)
    }

    async fn put(&self, key: &OrderKey, value: &String) -> Result<(), StoreError> {
        each!(self, store => store.put(key, value).await)
    }

    async fn insert_if_absent(&self, key: &OrderKey, value: &String) -> Result<bool, StoreError> {
        each!(self, store => store.insert_if_absent(key, value).await)
    }

    async fn delete(&self, key: &OrderKey) -> Result<(), StoreError> {
        each!(self, store => store.delete(key).await)
    }
}

impl ScanKeys<OrderKey> for DemoStore {
    type Error = StoreError;

    async fn scan_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<OrderKey, ()>, StoreError> {
        each!(self, store => store.scan_keys(after, limit).await)
    }
}

/// `SqliteStore::open` keeps SQLite's fully synchronous default (an fsync per write). A demo on a
/// throwaway database trades that for speed, as an application may: WAL with `synchronous=NORMAL`
/// stays consistent and loses at most the last commits on a power cut.
fn demo_connection(path: &Path) -> Result<zddm::rusqlite::Connection, zddm::rusqlite::Error> {
    let connection = zddm::rusqlite::Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.busy_timeout(Duration::from_secs(5))?;
    Ok(connection)
}
