//! `SqliteStore`: the embedded store (feature `sqlite`; SQLite is bundled, nothing to install).

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::key::{KeyError, MigrationKey};
use crate::store::json::{decode, encode, DecodeError, EncodeError};
use crate::store::BlockingStore;

/// A key/value table in SQLite, keyed by the canonical key bytes.
///
/// The table is `(key BLOB PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`, created if missing;
/// values are stored as JSON (`serde_json`), so they stay readable in the `sqlite3` shell and from any
/// language. Every operation is one SQL statement, so each is atomic; the conditional insert is
/// `INSERT … ON CONFLICT(key) DO NOTHING`. It is a [`BlockingStore`]: wrap it in
/// [`Blocking`](crate::Blocking) to use it as a [`Store`](crate::Store).
///
/// ```
/// use zddm::{BlockingStore, SqliteStore};
///
/// let store = SqliteStore::<u64, String>::open_in_memory("users")?;
/// store.put(&7, &"ada".to_string())?;
/// assert!(!store.insert_if_absent(&7, &"bob".to_string())?);
/// assert_eq!(store.get(&7)?, Some("ada".to_string()));
/// # Ok::<(), zddm::SqliteError>(())
/// ```
pub struct SqliteStore<K: ?Sized, V> {
    connection: Mutex<Connection>,
    table: String,
    types: PhantomData<fn(&K) -> V>,
}

/// Why a SQLite operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// The database could not be opened.
    #[error("cannot open SQLite database {path}: {source}")]
    Open {
        /// The path given.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
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
    Sql(#[from] rusqlite::Error),
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

impl<K: ?Sized, V> SqliteStore<K, V> {
    /// Opens (or creates) the database file at `path` and the table `table` in it.
    pub fn open(path: impl AsRef<Path>, table: &str) -> Result<Self, SqliteError> {
        Self::with_connection(open_file(path.as_ref())?, table)
    }

    /// A private in-memory database with the table `table`.
    pub fn open_in_memory(table: &str) -> Result<Self, SqliteError> {
        Self::with_connection(open_memory()?, table)
    }

    /// The store on an open connection: creates the table if it is missing and checks its shape if
    /// it is not.
    pub fn with_connection(connection: Connection, table: &str) -> Result<Self, SqliteError> {
        prepare_table(
            &connection,
            table,
            "(key BLOB PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
            &[("key", "BLOB", 1), ("value", "TEXT", 0)],
        )?;
        Ok(SqliteStore { connection: Mutex::new(connection), table: table.to_owned(), types: PhantomData })
    }

    /// How many keys the table holds.
    pub fn len(&self) -> Result<usize, SqliteError> {
        let count: i64 =
            self.lock().query_row(&format!("SELECT count(*) FROM {}", self.table), [], |row| row.get(0))?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Whether the table holds no key.
    pub fn is_empty(&self) -> Result<bool, SqliteError> {
        Ok(self.len()? == 0)
    }

    // A panic while holding the connection cannot leave a statement half-applied: SQLite rolls back
    // an unfinished statement, so a poisoned lock is still sound to use.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How long a statement waits for another connection's write lock before it fails.
pub(crate) const BUSY: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens the database file at `path` for use by several connections and processes at once.
pub(crate) fn open_file(path: &Path) -> Result<Connection, SqliteError> {
    let connection =
        Connection::open(path).map_err(|source| SqliteError::Open { path: path.display().to_string(), source })?;
    // Readers do not block the writer and a busy database is waited for, not failed at once.
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.busy_timeout(BUSY)?;
    Ok(connection)
}

/// Opens a private in-memory database.
pub(crate) fn open_memory() -> Result<Connection, SqliteError> {
    Connection::open_in_memory().map_err(|source| SqliteError::Open { path: ":memory:".into(), source })
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
    pub fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, V)>, SqliteError> {
        let connection = self.lock();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after_key = crate::store::after_key(after, false);
        let mut statement = connection.prepare_cached(&format!(
            "SELECT key, value FROM {} WHERE {after_key} ORDER BY key LIMIT ?2",
            self.table
        ))?;
        let mut rows = statement.query(params![after, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let (key, text): (Vec<u8>, String) = (row.get(0)?, row.get(1)?);
            let value = decode(&key, &text)?;
            out.push((key, value));
        }
        Ok(out)
    }
}

impl<K: MigrationKey + ?Sized, V: Serialize + DeserializeOwned> SqliteStore<K, V> {
    /// The values of several keys, read in one transaction.
    pub fn get_many(&self, keys: &[&K]) -> Result<Vec<Option<V>>, SqliteError> {
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        let mut out = Vec::with_capacity(keys.len());
        {
            let mut statement =
                transaction.prepare_cached(&format!("SELECT value FROM {} WHERE key = ?1", self.table))?;
            for key in keys {
                let key = key.try_key_bytes()?;
                let text: Option<String> = statement.query_row([&key], |row| row.get(0)).optional()?;
                out.push(text.map(|text| decode(&key, &text)).transpose()?);
            }
        }
        transaction.commit()?;
        Ok(out)
    }

    /// Writes several entries in one transaction: all or none.
    pub fn put_many(&self, entries: &[(&K, &V)]) -> Result<(), SqliteError> {
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        {
            let mut statement = transaction.prepare_cached(&self.upsert())?;
            for (key, value) in entries {
                statement.execute(params![key.try_key_bytes()?, encode(*value)?])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    fn upsert(&self) -> String {
        format!(
            "INSERT INTO {} (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            self.table
        )
    }
}

impl<K, V> BlockingStore<K, V> for SqliteStore<K, V>
where
    K: MigrationKey + ?Sized,
    V: Serialize + DeserializeOwned,
{
    type Error = SqliteError;

    fn get(&self, key: &K) -> Result<Option<V>, SqliteError> {
        let key = key.try_key_bytes()?;
        let connection = self.lock();
        let mut statement = connection.prepare_cached(&format!("SELECT value FROM {} WHERE key = ?1", self.table))?;
        let text: Option<String> = statement.query_row([&key], |row| row.get(0)).optional()?;
        Ok(text.map(|text| decode(&key, &text)).transpose()?)
    }

    fn put(&self, key: &K, value: &V) -> Result<(), SqliteError> {
        let (key, value) = (key.try_key_bytes()?, encode(value)?);
        let connection = self.lock();
        connection.prepare_cached(&self.upsert())?.execute(params![key, value])?;
        Ok(())
    }

    fn insert_if_absent(&self, key: &K, value: &V) -> Result<bool, SqliteError> {
        let (key, value) = (key.try_key_bytes()?, encode(value)?);
        let connection = self.lock();
        let inserted = connection
            .prepare_cached(&format!(
                "INSERT INTO {} (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
                self.table
            ))?
            .execute(params![key, value])?;
        Ok(inserted == 1)
    }

    fn delete(&self, key: &K) -> Result<(), SqliteError> {
        let key = key.try_key_bytes()?;
        let connection = self.lock();
        connection.prepare_cached(&format!("DELETE FROM {} WHERE key = ?1", self.table))?.execute([key])?;
        Ok(())
    }
}

impl<K: ?Sized, V> fmt::Debug for SqliteStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("table", &self.table).finish_non_exhaustive()
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
        crate::cached::key_page(self.scan(after, limit)?, limit)
    }
}
