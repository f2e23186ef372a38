//! `PostgresStore`: an async store on PostgreSQL (feature `postgres`).

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

use crate::error::{chain, redact};
use crate::key::{KeyError, MigrationKey};
use crate::store::json::{decode, encode, DecodeError, EncodeError};
use crate::store::Store;

/// A key/value table in PostgreSQL, keyed by the canonical key bytes.
///
/// The table is `(key BYTEA PRIMARY KEY, value TEXT NOT NULL)`, created if missing; values are JSON.
/// Many instances may connect at once to a table that does not exist yet: its creation is
/// serialised on the server (a transaction-scoped advisory lock on the table's name), so one
/// creates it and the others wait, then find it.
/// Every operation is one statement (`INSERT … ON CONFLICT (key) DO NOTHING` for the conditional
/// insert), on a connection from a pool; statements time out after 5 s on the server.
pub struct PostgresStore<K: ?Sized, V> {
    pool: Pooled,
    table: String,
    types: PhantomData<fn(&K) -> V>,
}

/// Why a PostgreSQL operation failed.
///
/// Every message carries its whole cause: for an error from the server, the server's message and
/// its SQLSTATE code (e.g. `database "x" does not exist (3D000)`); for a connection, the address,
/// database and user tried; for a connection string that does not parse, the string with its
/// password replaced by `***`. No message, and no `Debug` output, shows a password.
///
/// Because the cause is in the message, [`source`](std::error::Error::source) returns `None` (so a
/// reporter walking the chain says each cause once, as with [`zddm::Error`](crate::Error)). The
/// driver's [`tokio_postgres::Error`], for its `code()` and `as_db_error()`, is returned by
/// [`PostgresError::driver_error`]; [`PostgresError::code`] gives the SQLSTATE directly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The connection string is not valid.
    #[error(
        "{url:?} is not a PostgreSQL connection string ({}): write postgres://user:password@host:port/database",
        cause(error)
    )]
    Url {
        /// The string given, with any password replaced by `***`.
        url: String,
        /// The driver's error (in the message; not the `source()`).
        error: tokio_postgres::Error,
    },
    /// No connection could be made or taken from the pool.
    #[error(transparent)]
    Connect(PostgresConnectError),
    /// A table name PostgreSQL would have to quote.
    #[error("table name {name:?} is not a plain identifier: use lowercase letters, digits and underscores, not starting with a digit")]
    TableName {
        /// The refused name.
        name: String,
    },
    /// The table exists with other columns than the store needs.
    #[error(
        "table {table} has columns {found}, but this zddm store needs {expected}: \
         use another table name, or migrate the table to that shape"
    )]
    TableShape {
        /// The table.
        table: String,
        /// Its columns as found.
        found: String,
        /// The columns the store needs.
        expected: &'static str,
    },
    /// The fleet's control record holds a value zddm never writes.
    #[error("the fleet's control record holds {found:?}, which zddm never writes: restore the record or delete it")]
    Record {
        /// The value found.
        found: String,
    },
    /// A statement failed or timed out.
    #[error("PostgreSQL failed: {}", cause(.0))]
    Query(tokio_postgres::Error),
    /// A stored value is not valid for the value type.
    #[error("{}", chain(.0))]
    Decode(DecodeError),
    /// A value could not be serialized.
    #[error("{}", chain(.0))]
    Encode(EncodeError),
    /// The key cannot be encoded.
    #[error(transparent)]
    Key(#[from] KeyError),
}

// By hand rather than `#[from]`, which would make the field the `source()` as well.
impl From<tokio_postgres::Error> for PostgresError {
    fn from(error: tokio_postgres::Error) -> Self {
        PostgresError::Query(error)
    }
}

impl From<DecodeError> for PostgresError {
    fn from(error: DecodeError) -> Self {
        PostgresError::Decode(error)
    }
}

impl From<EncodeError> for PostgresError {
    fn from(error: EncodeError) -> Self {
        PostgresError::Encode(error)
    }
}

impl PostgresError {
    /// The driver's error behind this one, if the driver failed: for its `code()`, `as_db_error()`.
    pub fn driver_error(&self) -> Option<&tokio_postgres::Error> {
        match self {
            PostgresError::Url { error, .. } | PostgresError::Query(error) => Some(error),
            PostgresError::Connect(error) => error.driver_error(),
            _ => None,
        }
    }

    /// The SQLSTATE code of the server's error, if the server refused something (e.g.
    /// [`SqlState::INVALID_CATALOG_NAME`](tokio_postgres::error::SqlState::INVALID_CATALOG_NAME)
    /// for a missing database).
    pub fn code(&self) -> Option<&tokio_postgres::error::SqlState> {
        self.driver_error().and_then(tokio_postgres::Error::code)
    }
}

/// No PostgreSQL connection could be made, or none taken from the pool: where, and why.
///
/// Its message names the address tried (`host:port`), the database and the user (never the
/// password), the cause (the server's message and SQLSTATE, or the driver's and the operating
/// system's) and what to check. The cause is in the message, so
/// [`source`](std::error::Error::source) is `None`; the driver's [`tokio_postgres::Error`] is
/// returned by [`driver_error`](PostgresConnectError::driver_error).
#[derive(Debug)]
pub struct PostgresConnectError {
    target: String,
    database: Option<String>,
    user: Option<String>,
    cause: ConnectCause,
}

#[derive(Debug)]
enum ConnectCause {
    /// The driver failed: refused, unreachable, refused by the server (no such database,
    /// authentication), …
    Driver(tokio_postgres::Error),
    /// The pool gave up, e.g. on a timeout.
    Pool(String),
}

impl PostgresConnectError {
    fn new(pooled: &Pooled, error: PoolError) -> Self {
        let cause = match error {
            PoolError::Backend(error) => ConnectCause::Driver(error),
            PoolError::Timeout(TimeoutType::Wait) => ConnectCause::Pool(format!(
                "every connection of the pool stayed busy for {} s; give the store more connections",
                TIMEOUT.as_secs()
            )),
            PoolError::Timeout(TimeoutType::Create) => ConnectCause::Pool(format!(
                "no connection was made within {} s; check the host and port, and that no firewall drops the \
                 connection",
                TIMEOUT.as_secs()
            )),
            PoolError::Timeout(TimeoutType::Recycle) => {
                ConnectCause::Pool(format!("checking a pooled connection took over {} s", TIMEOUT.as_secs()))
            }
            other => ConnectCause::Pool(other.to_string()),
        };
        PostgresConnectError {
            target: pooled.target.clone(),
            database: pooled.database.clone(),
            user: pooled.user.clone(),
            cause,
        }
    }

    /// The address tried: `host:port` (several, comma-separated, for a multi-host connection
    /// string; the socket file for a Unix socket; empty when the connection string names no host).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The database asked for (by default, the user's name), if known.
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The driver's error, if the driver failed (`None` when the pool gave up waiting): for its
    /// `code()` and `as_db_error()`.
    pub fn driver_error(&self) -> Option<&tokio_postgres::Error> {
        match &self.cause {
            ConnectCause::Driver(error) => Some(error),
            ConnectCause::Pool(_) => None,
        }
    }
}

impl fmt::Display for PostgresConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot connect to PostgreSQL")?;
        if !self.target.is_empty() {
            write!(f, " at {}", self.target)?;
        }
        match (&self.database, &self.user) {
            (Some(database), Some(user)) => write!(f, " (database {database:?}, user {user:?})")?,
            (Some(database), None) => write!(f, " (database {database:?})")?,
            (None, Some(user)) => write!(f, " (user {user:?})")?,
            (None, None) => {}
        }
        match &self.cause {
            ConnectCause::Driver(error) => {
                write!(f, ": {}", cause(error))?;
                if let Some(hint) = connect_hint(error) {
                    write!(f, "; {hint}")?;
                }
                Ok(())
            }
            ConnectCause::Pool(reason) => write!(f, ": {reason}"),
        }
    }
}

/// No `source()`: the cause is in the message.
impl std::error::Error for PostgresConnectError {}

/// What to check, for a connection the driver or the server refused.
fn connect_hint(error: &tokio_postgres::Error) -> Option<&'static str> {
    use tokio_postgres::error::SqlState;
    if let Some(code) = error.code() {
        return match code {
            c if *c == SqlState::INVALID_CATALOG_NAME => {
                Some("create the database, or name an existing one in the connection string")
            }
            c if *c == SqlState::INVALID_PASSWORD => Some("check the user and password in the connection string"),
            c if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                Some("check the user in the connection string, and that pg_hba.conf lets it connect from here")
            }
            c if *c == SqlState::TOO_MANY_CONNECTIONS => {
                Some("the server is at its max_connections: use fewer connections or raise the limit")
            }
            _ => None,
        };
    }
    let mut source = std::error::Error::source(error);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return Some(match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "check that PostgreSQL is running and listens on that host and port"
                }
                std::io::ErrorKind::TimedOut => "check the host and port, and that no firewall drops the connection",
                _ => "check the host and port in the connection string, and that the server is reachable from here",
            });
        }
        source = error.source();
    }
    None
}

/// The advisory lock that serialises the creation of `table`: the first 8 bytes of a SHA-256 of
/// its name, so that every instance, of any process, computes the same key.
/// The planner's estimate of `table`'s rows (`reltuples`), which `ANALYZE` and autovacuum keep
/// current; `None` for a table never analysed.
pub(crate) async fn estimate(pool: &Pooled, table: &str) -> Result<Option<u64>, PostgresError> {
    let client = pool.client().await?;
    let statement = client.prepare_cached("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass($1)").await?;
    let row = client.query_opt(&statement, &[&table]).await?;
    Ok(row.map(|row| row.get::<_, i64>(0)).and_then(|n| u64::try_from(n).ok()))
}

/// `table`'s columns in the current schema, in order: name and `information_schema` data type.
pub(crate) async fn columns(
    client: &impl tokio_postgres::GenericClient,
    table: &str,
) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_name = $1 AND table_schema = current_schema() ORDER BY ordinal_position",
            &[&table],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

pub(crate) fn lock_key(table: &str) -> i64 {
    let digest = Sha256::digest(format!("zddm table {table}").as_bytes());
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// What went wrong, from a driver error whose own message is often just "db error": the server's
/// message and SQLSTATE code (then its detail and hint), or the driver's message followed by each
/// underlying cause not already said.
fn cause(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} ({})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str("; ");
            text.push_str(detail);
        }
        if let Some(hint) = db.hint() {
            text.push_str("; hint: ");
            text.push_str(hint);
        }
        return text;
    }
    chain(error)
}

/// The addresses a configuration connects to, as `host:port`, comma-separated (as the driver picks
/// them: `hostaddr` before `host`, one port for all hosts or one each, 5432 by default); empty
/// when there is no host.
fn target(config: &tokio_postgres::Config) -> String {
    let (hosts, addresses, ports) = (config.get_hosts(), config.get_hostaddrs(), config.get_ports());
    let count = hosts.len().max(addresses.len());
    if count == 0 {
        return String::new();
    }
    (0..count)
        .map(|i| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match (addresses.get(i), hosts.get(i)) {
                (Some(std::net::IpAddr::V6(address)), _) => format!("[{address}]:{port}"),
                (Some(address), _) => format!("{address}:{port}"),
                (None, Some(Host::Tcp(host))) if host.contains(':') => format!("[{host}]:{port}"),
                (None, Some(Host::Tcp(host))) => format!("{host}:{port}"),
                #[cfg(unix)]
                (None, Some(Host::Unix(path))) => format!("{}/.s.PGSQL.{port}", path.display()),
                (None, None) => format!("(no host):{port}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of connections to one server, and where it connects (for errors, never the password):
/// what every PostgreSQL store of the crate stands on.
pub(crate) struct Pooled {
    pool: Pool,
    target: String,
    database: Option<String>,
    user: Option<String>,
}

impl Pooled {
    /// A pool of up to `connections` connections to `url`, once `table` is known to be a plain name.
    pub(crate) fn new(url: &str, table: &str, connections: usize) -> Result<Pooled, PostgresError> {
        let plain = table.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && table.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            return Err(PostgresError::TableName { name: table.to_owned() });
        }
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|error| PostgresError::Url { url: redact(url), error })?;
        let target = target(&config);
        let user = config.get_user().map(str::to_owned);
        let database = config.get_dbname().map(str::to_owned).or_else(|| user.clone());
        config.connect_timeout(TIMEOUT);
        config.options(format!("-c statement_timeout={}", TIMEOUT.as_millis()));
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(connections.max(1))
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| {
                let cause = ConnectCause::Pool(error.to_string());
                let (target, database, user) = (target.clone(), database.clone(), user.clone());
                PostgresError::Connect(PostgresConnectError { target, database, user, cause })
            })?;
        Ok(Pooled { pool, target, database, user })
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Client, PostgresError> {
        self.pool.get().await.map_err(|error| PostgresError::Connect(PostgresConnectError::new(self, error)))
    }

    /// Runs `create` (a `CREATE TABLE IF NOT EXISTS` of `table`), checks that the table's columns
    /// are `expected` (name, type), described as `shape` in the error if not, then runs `extra`
    /// (indexes, functions: each `IF NOT EXISTS` or `OR REPLACE`).
    ///
    /// `CREATE … IF NOT EXISTS` is not safe against itself: two sessions creating the same new
    /// table at once can both pass the "not exists" check, and the later fails on the catalog's
    /// unique indexes (SQLSTATE 23505 or 42P07). So it all runs in one transaction holding an
    /// advisory lock keyed on the table's name: a concurrent creator waits for the first one's
    /// commit, then sees the table.
    pub(crate) async fn prepare(
        &self,
        table: &str,
        create: &str,
        expected: &[(&str, &str)],
        shape: &'static str,
        extra: &str,
    ) -> Result<(), PostgresError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(table)]).await?;
        transaction.batch_execute(create).await?;
        let columns = columns(&*transaction, table).await?;
        let matches = columns.len() == expected.len()
            && columns.iter().zip(expected).all(|(found, want)| found.0 == want.0 && found.1 == want.1);
        if !matches {
            let found = columns.iter().map(|(name, kind)| format!("{name} {kind}")).collect::<Vec<_>>().join(", ");
            return Err(PostgresError::TableShape {
                table: table.to_owned(),
                found: format!("({found})"),
                expected: shape,
            });
        }
        if !extra.is_empty() {
            transaction.batch_execute(extra).await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// The longest an operation can go on: a wait for a pooled connection, then the statement
    /// (`statement_timeout` on the server).
    pub(crate) fn longest(&self) -> Duration {
        TIMEOUT * 2
    }
}

impl<K: ?Sized, V> PostgresStore<K, V> {
    /// Connects to `url` with a pool of up to `connections` connections, and creates the table
    /// `table` if it is missing (checking its shape if it is not).
    pub async fn connect(url: &str, table: &str, connections: usize) -> Result<Self, PostgresError> {
        let pool = Pooled::new(url, table, connections)?;
        pool.prepare(
            table,
            &format!("CREATE TABLE IF NOT EXISTS {table} (key bytea PRIMARY KEY, value text NOT NULL)"),
            &[("key", "bytea"), ("value", "text")],
            "(key bytea PRIMARY KEY, value text NOT NULL)",
            "",
        )
        .await?;
        Ok(PostgresStore { pool, table: table.to_owned(), types: PhantomData })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, PostgresError> {
        self.pool.client().await
    }

    /// How many keys the table holds.
    pub async fn len(&self) -> Result<usize, PostgresError> {
        let row = self.client().await?.query_one(&format!("SELECT count(*) FROM {}", self.table), &[]).await?;
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// Drops the store's table, rows and all: for a store made for a trial run (the demo's), not
    /// for a table an application still needs.
    pub async fn drop_table(&self) -> Result<(), PostgresError> {
        self.client().await?.batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table)).await?;
        Ok(())
    }

    /// Whether the table holds no key.
    pub async fn is_empty(&self) -> Result<bool, PostgresError> {
        Ok(self.len().await? == 0)
    }
}

impl<K: ?Sized, V: DeserializeOwned> PostgresStore<K, V> {
    /// Up to `limit` entries with keys after `after` (or from the first), in the order of their
    /// canonical key bytes.
    pub async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, V)>, PostgresError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after_key = crate::store::after_key(after, true);
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT key, value FROM {} WHERE {after_key} ORDER BY key LIMIT $2", self.table),
                &[&after, &limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let (key, text): (Vec<u8>, String) = (row.get(0), row.get(1));
                let value = decode(&key, &text)?;
                Ok((key, value))
            })
            .collect()
    }
}

impl<K: MigrationKey + ?Sized, V: Serialize + DeserializeOwned> PostgresStore<K, V> {
    /// The values of several keys, in the order given, read with one statement.
    pub async fn get_many(&self, keys: &[&K]) -> Result<Vec<Option<V>>, PostgresError> {
        let keys = keys.iter().map(|key| key.try_key_bytes()).collect::<Result<Vec<_>, _>>()?;
        let client = self.client().await?;
        let statement =
            client.prepare_cached(&format!("SELECT key, value FROM {} WHERE key = ANY($1)", self.table)).await?;
        let rows = client.query(&statement, &[&keys]).await?;
        let found: HashMap<Vec<u8>, String> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        keys.iter().map(|key| Ok(found.get(key).map(|text| decode(key, text)).transpose()?)).collect()
    }

    /// Writes several entries with one statement: all or none. Where a key appears more than once,
    /// the last entry wins, as with one put after another.
    pub async fn put_many(&self, entries: &[(&K, &V)]) -> Result<(), PostgresError> {
        let mut position = HashMap::with_capacity(entries.len());
        let (mut keys, mut values) = (Vec::with_capacity(entries.len()), Vec::with_capacity(entries.len()));
        for (key, value) in entries {
            let (key, value) = (key.try_key_bytes()?, encode(*value)?);
            // One statement may not update a row twice.
            match position.get(&key) {
                Some(&at) => values[at] = value,
                None => {
                    position.insert(key.clone(), keys.len());
                    keys.push(key);
                    values.push(value);
                }
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO {} (key, value) SELECT * FROM unnest($1::bytea[], $2::text[]) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                self.table
            ))
            .await?;
        client.execute(&statement, &[&keys, &values]).await?;
        Ok(())
    }
}

impl<K, V> Store<K, V> for PostgresStore<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = PostgresError;

    async fn get(&self, key: &K) -> Result<Option<V>, PostgresError> {
        let key = key.try_key_bytes()?;
        let client = self.client().await?;
        let statement = client.prepare_cached(&format!("SELECT value FROM {} WHERE key = $1", self.table)).await?;
        let row = client.query_opt(&statement, &[&key]).await?;
        Ok(row.map(|row| decode(&key, row.get::<_, &str>(0))).transpose()?)
    }

    async fn put(&self, key: &K, value: &V) -> Result<(), PostgresError> {
        let (key, value) = (key.try_key_bytes()?, encode(value)?);
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO {} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                self.table
            ))
            .await?;
        client.execute(&statement, &[&key, &value]).await?;
        Ok(())
    }

    async fn insert_if_absent(&self, key: &K, value: &V) -> Result<bool, PostgresError> {
        let (key, value) = (key.try_key_bytes()?, encode(value)?);
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO {} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                self.table
            ))
            .await?;
        Ok(client.execute(&statement, &[&key, &value]).await? == 1)
    }

    async fn delete(&self, key: &K) -> Result<(), PostgresError> {
        let key = key.try_key_bytes()?;
        let client = self.client().await?;
        let statement = client.prepare_cached(&format!("DELETE FROM {} WHERE key = $1", self.table)).await?;
        client.execute(&statement, &[&key]).await?;
        Ok(())
    }
}

impl<K: ?Sized, V> fmt::Debug for PostgresStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("server", &self.pool.target)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// In canonical key order, through [`PostgresStore::scan`].
impl<K, V> crate::cached::ScanKeys<K> for PostgresStore<K, V>
where
    K: MigrationKey + Send + Sync,
    V: serde::de::DeserializeOwned + Send + Sync,
{
    type Error = PostgresError;

    async fn scan_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<crate::versioned::Page<K, ()>, PostgresError> {
        crate::cached::key_page(self.scan(after, limit).await?, limit)
    }
}
