//! `SqliteStore`: the embedded store (feature `sqlite`; SQLite is bundled, nothing to install).

mod worker;

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::key::{KeyError, MigrationKey};
use crate::store::json::{decode, encode, DecodeError, EncodeError};
use crate::store::Store;

/// A key/value table in SQLite, keyed by the canonical key bytes.
///
/// The table is `(key BLOB PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`, created if missing;
/// values are stored as JSON (`serde_json`), so they stay readable in the `sqlite3` shell and from any
/// language. Every operation is one SQL statement, so each is atomic; the conditional insert is
/// `INSERT … ON CONFLICT(key) DO NOTHING`.
///
/// SQLite's calls block, so the connection lives on a thread of its own: the store's methods are
/// `async` and never block the caller's executor (as sqlx does for SQLite), on any executor.
/// Synchronous code waits for them with [`block_on`](crate::block_on), or uses a proxy's
/// [`blocking`](crate::Proxy::blocking) handle. A call whose future is dropped either never runs
/// or has finished when the drop returns.
///
/// ```
/// use zddm::{block_on, SqliteStore, Store};
///
/// let store = SqliteStore::<u64, String>::open_in_memory("users")?;
/// block_on(async {
///     store.put(&7, &"ada".to_string()).await?;
///     assert!(!store.insert_if_absent(&7, &"bob".to_string()).await?);
///     assert_eq!(store.get(&7).await?, Some("ada".to_string()));
///     Ok::<(), zddm::SqliteError>(())
/// })?;
/// # Ok::<(), zddm::SqliteError>(())
/// ```
pub struct SqliteStore<K: ?Sized, V> {
    worker: worker::Worker,
    sql: Arc<Sql>,
    types: PhantomData<fn(&K) -> V>,
}

/// The store's statements, built once from its table's name.
struct Sql {
    table: String,
    get: String,
    upsert: String,
    insert: String,
    delete: String,
    count: String,
    scan_from: String,
    scan_after: String,
}

impl Sql {
    fn new(table: &str) -> Sql {
        Sql {
            table: table.to_owned(),
            get: format!("SELECT value FROM {table} WHERE key = ?1"),
            upsert: format!(
                "INSERT INTO {table} (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            ),
            insert: format!("INSERT INTO {table} (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING"),
            delete: format!("DELETE FROM {table} WHERE key = ?1"),
            count: format!("SELECT count(*) FROM {table}"),
            scan_from: format!(
                "SELECT key, value FROM {table} WHERE {} ORDER BY key LIMIT ?2",
                crate::store::after_key(None, false)
            ),
            scan_after: format!(
                "SELECT key, value FROM {table} WHERE {} ORDER BY key LIMIT ?2",
                crate::store::after_key(Some(&[]), false)
            ),
        }
    }
}

/// Why a SQLite operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// The database could not be opened.
    #[error("cannot open SQLite database {path}: {error}")]
    Open {
        /// The path given.
        path: String,
        /// SQLite's error.
        error: rusqlite::Error,
    },
    /// A table name SQLite would have to quote.
    #[error(
        "table name {name:?} is not a plain identifier: use letters, digits and underscores, not starting with a digit"
    )]
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
    /// A SQL statement failed.
    #[error("SQLite failed: {0}")]
    Sql(rusqlite::Error),
    /// The thread that runs the connection's calls could not be started.
    #[error("cannot start the thread for SQLite's calls: {0}")]
    Thread(std::io::Error),
    /// A call panicked on the connection's thread, or that thread is gone.
    #[error("the SQLite call did not finish: it panicked on the connection's thread")]
    Stopped,
    /// A stored value is not valid for the value type.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A value could not be serialized.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The key cannot be encoded.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Every message carries its cause, so `source()` is `None` and nothing is said twice; the
/// driver's own error is [`SqliteError::driver_error`].
impl From<rusqlite::Error> for SqliteError {
    fn from(error: rusqlite::Error) -> Self {
        SqliteError::Sql(error)
    }
}

impl SqliteError {
    /// SQLite's own error behind this one, if any (its code, for instance).
    pub fn driver_error(&self) -> Option<&rusqlite::Error> {
        match self {
            SqliteError::Open { error, .. } | SqliteError::Sql(error) => Some(error),
            _ => None,
        }
    }
}

impl<K: ?Sized, V> SqliteStore<K, V> {
    /// Opens (or creates) the database file at `path` and the table `table` in it.
    pub fn open(path: impl AsRef<Path>, table: &str) -> Result<Self, SqliteError> {
        Self::with_connection(open_file(path.as_ref())?, table)
    }

    /// A private in-memory database with the table `table`.
    pub fn open_in_memory(table: &str) -> Result<Self, SqliteError> {
        Self::with_connection(open_memory()?, table)
    }

    /// The store on an open connection (of [`rusqlite`](crate::rusqlite), the version zddm links):
    /// creates the table if it is missing and checks its shape if it is not.
    pub fn with_connection(connection: Connection, table: &str) -> Result<Self, SqliteError> {
        prepare_table(
            &connection,
            table,
            "(key BLOB PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
            &[("key", "BLOB", 1), ("value", "TEXT", 0)],
        )?;
        let worker = worker::Worker::spawn(connection, table).map_err(SqliteError::Thread)?;
        Ok(SqliteStore { worker, sql: Arc::new(Sql::new(table)), types: PhantomData })
    }

    /// Runs `call` with the store's statements on the connection's thread.
    async fn call<T, F>(&self, call: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Sql) -> Result<T, SqliteError> + Send + 'static,
    {
        let sql = Arc::clone(&self.sql);
        self.worker.run(move |connection| call(connection, &sql)).await.unwrap_or(Err(SqliteError::Stopped))
    }

    /// How many keys the table holds.
    pub async fn len(&self) -> Result<usize, SqliteError> {
        self.call(|connection, sql| {
            let count: i64 = connection.prepare_cached(&sql.count)?.query_row([], |row| row.get(0))?;
            Ok(usize::try_from(count).unwrap_or(0))
        })
        .await
    }

    /// Whether the table holds no key.
    pub async fn is_empty(&self) -> Result<bool, SqliteError> {
        Ok(self.len().await? == 0)
    }
}

/// How long a statement waits for another connection's write lock before it fails.
pub(crate) const BUSY: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens the database file at `path` for use by several connections and processes at once.
pub(crate) fn open_file(path: &Path) -> Result<Connection, SqliteError> {
    let connection =
        Connection::open(path).map_err(|error| SqliteError::Open { path: path.display().to_string(), error })?;
    // Readers do not block the writer and a busy database is waited for, not failed at once.
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.busy_timeout(BUSY)?;
    Ok(connection)
}

/// Opens a private in-memory database.
pub(crate) fn open_memory() -> Result<Connection, SqliteError> {
    Connection::open_in_memory().map_err(|error| SqliteError::Open { path: ":memory:".into(), error })
}

/// Creates `table` with `definition` if it is missing, and checks that its columns are `columns`
/// (name, declared type, position in the primary key) if it is not.
pub(crate) fn prepare_table(
    connection: &Connection,
    table: &str,
    definition: &'static str,
    columns: &[(&str, &str, i64)],
) -> Result<(), SqliteError> {
    let plain = table.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        return Err(SqliteError::TableName { name: table.to_owned() });
    }
    connection.execute_batch(&format!("CREATE TABLE IF NOT EXISTS {table} {definition}"))?;
    let mut found = Vec::new();
    {
        let mut statement = connection.prepare(&format!("PRAGMA table_info({table})"))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let (name, kind, pk): (String, String, i64) = (row.get(1)?, row.get(2)?, row.get(5)?);
            found.push((name, kind.to_ascii_uppercase(), pk));
        }
    }
    let matches =
        found.len() == columns.len() && found.iter().zip(columns).all(|(f, c)| f.0 == c.0 && f.1 == c.1 && f.2 == c.2);
    if !matches {
        let found = found.iter().map(|(name, kind, _)| format!("{name} {kind}")).collect::<Vec<_>>().join(", ");
        let expected = definition.trim_end_matches(" WITHOUT ROWID");
        return Err(SqliteError::TableShape { table: table.to_owned(), found: format!("({found})"), expected });
    }
    Ok(())
}

impl<K: ?Sized, V: DeserializeOwned> SqliteStore<K, V> {
    /// Up to `limit` entries with keys after `after` (or from the first), in the order of their
    /// canonical key bytes: a stable order for a backfill to page through and resume from.
    pub async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, V)>, SqliteError> {
        let after = after.map(<[u8]>::to_vec);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .call(move |connection, sql| {
                let statement = if after.is_some() { &sql.scan_after } else { &sql.scan_from };
                let mut statement = connection.prepare_cached(statement)?;
                let mut rows = statement.query(params![after, limit])?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?));
                }
                Ok(out)
            })
            .await?;
        rows.into_iter()
            .map(|(key, text)| {
                let value = decode(&key, &text)?;
                Ok((key, value))
            })
            .collect()
    }
}

impl<K: MigrationKey + ?Sized, V: Serialize + DeserializeOwned> SqliteStore<K, V> {
    /// The values of several keys, read in one transaction.
    pub async fn get_many(&self, keys: &[&K]) -> Result<Vec<Option<V>>, SqliteError> {
        let keys = keys.iter().map(|key| key.try_key_bytes()).collect::<Result<Vec<_>, _>>()?;
        let (keys, texts) = self
            .call(move |connection, sql| {
                let transaction = connection.transaction()?;
                let mut texts = Vec::with_capacity(keys.len());
                {
                    let mut statement = transaction.prepare_cached(&sql.get)?;
                    for key in &keys {
                        texts.push(statement.query_row([key], |row| row.get::<_, String>(0)).optional()?);
                    }
                }
                transaction.commit()?;
                Ok((keys, texts))
            })
            .await?;
        keys.iter().zip(texts).map(|(key, text)| Ok(text.map(|text| decode(key, &text)).transpose()?)).collect()
    }

    /// Writes several entries in one transaction: all or none.
    pub async fn put_many(&self, entries: &[(&K, &V)]) -> Result<(), SqliteError> {
        let rows = entries
            .iter()
            .map(|(key, value)| Ok((key.try_key_bytes()?, encode(*value)?)))
            .collect::<Result<Vec<_>, SqliteError>>()?;
        self.call(move |connection, sql| {
            let transaction = connection.transaction()?;
            {
                let mut statement = transaction.prepare_cached(&sql.upsert)?;
                for (key, value) in &rows {
                    statement.execute(params![key, value])?;
                }
            }
            transaction.commit()?;
            Ok(())
        })
        .await
    }
}

impl<K, V> Store<K, V> for SqliteStore<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = SqliteError;

    async fn get(&self, key: &K) -> Result<Option<V>, SqliteError> {
        let key = key.try_key_bytes()?;
        let (key, text) = self
            .call(move |connection, sql| {
                let text = connection.prepare_cached(&sql.get)?.query_row([&key], |row| row.get::<_, String>(0));
                Ok((key, text.optional()?))
            })
            .await?;
        Ok(text.map(|text| decode(&key, &text)).transpose()?)
    }

    async fn put(&self, key: &K, value: &V) -> Result<(), SqliteError> {
        let (key, value) = (key.try_key_bytes()?, encode(value)?);
        self.call(move |connection, sql| {
            connection.prepare_cached(&sql.upsert)?.execute(params![key, value])?;
            Ok(())
        })
        .await
    }

    async fn insert_if_absent(&self, key: &K, value: &V) -> Result<bool, SqliteError> {
        let (key, value) = (key.try_key_bytes()?, encode(value)?);
        self.call(move |connection, sql| Ok(connection.prepare_cached(&sql.insert)?.execute(params![key, value])? == 1))
            .await
    }

    async fn delete(&self, key: &K) -> Result<(), SqliteError> {
        let key = key.try_key_bytes()?;
        self.call(move |connection, sql| {
            connection.prepare_cached(&sql.delete)?.execute([key])?;
            Ok(())
        })
        .await
    }
}

impl<K: ?Sized, V> fmt::Debug for SqliteStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("table", &self.sql.table).finish_non_exhaustive()
    }
}

/// In canonical key order, through [`SqliteStore::scan`].
impl<K, V> crate::cached::ScanKeys<K> for SqliteStore<K, V>
where
    K: MigrationKey + Send + Sync,
    V: serde::de::DeserializeOwned + Send + Sync,
{
    type Error = SqliteError;

    async fn scan_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<crate::versioned::Page<K, ()>, SqliteError> {
        crate::cached::key_page(self.scan(after, limit).await?, limit)
    }
}
