use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::key::MigrationKey;
use crate::store::json::{decode, encode};
use crate::store::sqlite::{open_file, open_memory, prepare_table};
use crate::store::SqliteError;
use crate::store::{from_sql, to_sql};
use crate::versioned::{now_ms, Change, Filled, Lookup, Page, Scan, ScanSlots, Slot, Source, Target, Versioned};

/// A versioned OLD in SQLite: `(key BLOB PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT
/// NULL)`, values as JSON, and one counter per table in `zddm_versions` that every write (deletes
/// included) advances in the same transaction. SQLite has one writer at a time, across processes
/// too, so versions follow commit order. Its calls block the thread that polls them, as the
/// [`SqliteStore`](crate::SqliteStore)'s do.
///
/// ```
/// use zddm::versioned::{Source, SqliteSource};
///
/// # zddm::block_on(async {
/// let orders = SqliteSource::<u64, String>::open_in_memory("orders")?;
/// let first = orders.put(&1, &"new".to_string()).await?;
/// let second = orders.put(&1, &"paid".to_string()).await?;
/// assert!(second > first);
/// assert_eq!(orders.get(&1).await?.map(|found| found.version), Some(second));
/// # Ok::<(), zddm::SqliteError>(())
/// # }).unwrap();
/// ```
pub struct SqliteSource<K: ?Sized, V> {
    connection: Mutex<Connection>,
    table: String,
    types: PhantomData<fn(&K) -> V>,
}

/// A versioned NEW in SQLite: one row per [`Slot`], `(key BLOB PRIMARY KEY, value TEXT, deleted,
/// version, pending, pending_until, changed_at)`. Each operation runs
/// [`Slot`]'s own function inside one `BEGIN IMMEDIATE` transaction, so it is atomic across every
/// connection and process on the file.
pub struct SqliteTarget<K: ?Sized, V> {
    connection: Mutex<Connection>,
    table: String,
    types: PhantomData<fn(&K) -> V>,
}

const SOURCE: &str = "(key BLOB PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID";
const SOURCE_COLUMNS: &[(&str, &str, i64)] = &[("key", "BLOB", 1), ("value", "TEXT", 0), ("version", "INTEGER", 0)];
const TARGET: &str = "(key BLOB PRIMARY KEY, value TEXT, deleted INTEGER NOT NULL, version INTEGER NOT NULL, \
                      pending INTEGER NOT NULL, pending_until INTEGER NOT NULL, changed_at INTEGER NOT NULL) WITHOUT ROWID";
const TARGET_COLUMNS: &[(&str, &str, i64)] = &[
    ("key", "BLOB", 1),
    ("value", "TEXT", 0),
    ("deleted", "INTEGER", 0),
    ("version", "INTEGER", 0),
    ("pending", "INTEGER", 0),
    ("pending_until", "INTEGER", 0),
    ("changed_at", "INTEGER", 0),
];

/// A slot with its canonical key bytes, the value as its JSON text.
pub type KeyedSlot = (Vec<u8>, Slot<String>);

/// A column of the wrong type, as rusqlite's `get` reports it.
fn column(index: usize, error: rusqlite::types::FromSqlError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Null, Box::new(error))
}

// A panic while holding the connection cannot leave a transaction half-applied: SQLite rolls back
// an unfinished one, so a poisoned lock is still sound to use.
fn lock(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    connection.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: ?Sized, V> SqliteSource<K, V> {
    /// Opens (or creates) the database file at `path` and the table `table` in it.
    pub fn open(path: impl AsRef<Path>, table: &str) -> Result<Self, SqliteError> {
        Self::with_connection(open_file(path.as_ref())?, table)
    }

    /// A private in-memory database with the table `table`.
    pub fn open_in_memory(table: &str) -> Result<Self, SqliteError> {
        Self::with_connection(open_memory()?, table)
    }

    /// The store on an open connection: creates the table and the version counter if missing.
    pub fn with_connection(connection: Connection, table: &str) -> Result<Self, SqliteError> {
        prepare_table(&connection, table, SOURCE, SOURCE_COLUMNS)?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS zddm_versions (name TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID",
        )?;
        Ok(SqliteSource { connection: Mutex::new(connection), table: table.to_owned(), types: PhantomData })
    }

    /// A write in one immediate transaction: the next version, then `change` with it.
    fn write(&self, change: impl FnOnce(&Connection, i64) -> rusqlite::Result<()>) -> Result<u64, SqliteError> {
        let mut connection = lock(&self.connection);
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = transaction
            .prepare_cached(
                "INSERT INTO zddm_versions (name, last) VALUES (?1, 1) \
                 ON CONFLICT(name) DO UPDATE SET last = last + 1 RETURNING last",
            )?
            .query_row([&self.table], |row| row.get(0))?;
        change(&transaction, version)?;
        transaction.commit()?;
        Ok(from_sql(version))
    }
}

/// In canonical key order (SQLite compares BLOBs with `memcmp`); a position is the last key's bytes.
impl<K, V> Scan<K, V> for SqliteSource<K, V>
where
    K: MigrationKey + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Versioned<V>>, SqliteError> {
        let limit = limit.max(1);
        let connection = lock(&self.connection);
        let after_key = crate::store::after_key(after, false);
        let mut statement = connection.prepare_cached(&format!(
            "SELECT key, value, version FROM {} WHERE {after_key} ORDER BY key LIMIT ?2",
            self.table
        ))?;
        let mut rows = statement.query(rusqlite::params![after, i64::try_from(limit).unwrap_or(i64::MAX)])?;
        let mut entries = Vec::with_capacity(limit.min(4096));
        let mut last: Option<Vec<u8>> = None;
        // Borrowed from the row: a backfill scans every row, so no copy it does not need.
        while let Some(row) = rows.next()? {
            let key = row.get_ref(0)?.as_blob().map_err(|e| column(0, e))?;
            let text = row.get_ref(1)?.as_str().map_err(|e| column(1, e))?;
            let version: i64 = row.get(2)?;
            let value = decode(key, text)?;
            entries.push((K::from_key_bytes(key)?, Versioned { value, version: from_sql(version) }));
            if entries.len() == limit {
                last = Some(key.to_vec());
            }
        }
        let next = last;
        Ok(Page { entries, next })
    }

    async fn estimate(&self) -> Result<Option<u64>, SqliteError> {
        let connection = lock(&self.connection);
        let count: i64 = connection
            .prepare_cached(&format!("SELECT count(*) FROM {}", self.table))?
            .query_row([], |row| row.get(0))?;
        Ok(Some(from_sql(count)))
    }
}

impl<K, V> Source<K, V> for SqliteSource<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = SqliteError;

    fn timeout(&self) -> Option<std::time::Duration> {
        Some(crate::store::sqlite::BUSY)
    }

    async fn get(&self, key: &K) -> Result<Option<Versioned<V>>, SqliteError> {
        let key = key.try_key_bytes()?;
        let connection = lock(&self.connection);
        let row: Option<(String, i64)> = connection
            .prepare_cached(&format!("SELECT value, version FROM {} WHERE key = ?1", self.table))?
            .query_row([&key], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        match row {
            Some((text, version)) => Ok(Some(Versioned { value: decode(&key, &text)?, version: from_sql(version) })),
            None => Ok(None),
        }
    }

    async fn put(&self, key: &K, value: &V) -> Result<u64, SqliteError> {
        let (key, value) = (key.try_key_bytes()?, encode(value)?);
        let upsert = format!(
            "INSERT INTO {} (key, value, version) VALUES (?1, ?2, ?3) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, version = excluded.version",
            self.table
        );
        self.write(|c, version| c.prepare_cached(&upsert)?.execute(params![key, value, version]).map(drop))
    }

    async fn delete(&self, key: &K) -> Result<u64, SqliteError> {
        let key = key.try_key_bytes()?;
        let delete = format!("DELETE FROM {} WHERE key = ?1", self.table);
        self.write(|c, _| c.prepare_cached(&delete)?.execute([&key]).map(drop))
    }

    async fn next_version(&self, key: &K) -> Result<u64, SqliteError> {
        key.try_key_bytes()?;
        self.write(|_, _| Ok(()))
    }
}

impl<K: ?Sized, V> SqliteTarget<K, V> {
    /// Opens (or creates) the database file at `path` and the table `table` in it.
    pub fn open(path: impl AsRef<Path>, table: &str) -> Result<Self, SqliteError> {
        Self::with_connection(open_file(path.as_ref())?, table)
    }

    /// A private in-memory database with the table `table`.
    pub fn open_in_memory(table: &str) -> Result<Self, SqliteError> {
        Self::with_connection(open_memory()?, table)
    }

    /// The store on an open connection: creates the table if it is missing.
    pub fn with_connection(connection: Connection, table: &str) -> Result<Self, SqliteError> {
        prepare_table(&connection, table, TARGET, TARGET_COLUMNS)?;
        connection
            .execute_batch(&format!("CREATE INDEX IF NOT EXISTS {table}_pending ON {table} (key) WHERE pending > 0"))?;
        Ok(SqliteTarget { connection: Mutex::new(connection), table: table.to_owned(), types: PhantomData })
    }

    /// Every slot, values as their JSON text, by canonical key bytes: for tests and verification.
    pub fn slots(&self) -> Result<Vec<KeyedSlot>, SqliteError> {
        let connection = lock(&self.connection);
        let mut statement = connection.prepare(&format!(
            "SELECT key, value, deleted, version, pending, pending_until, changed_at FROM {} ORDER BY key",
            self.table
        ))?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, slot(row, 1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One slot changed by `change` in one immediate transaction; written back only if it changed.
    fn change<T>(&self, key: &[u8], change: impl FnOnce(&mut Slot<String>, u64) -> T) -> Result<T, SqliteError> {
        let mut connection = lock(&self.connection);
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut current = transaction
            .prepare_cached(&format!(
                "SELECT value, deleted, version, pending, pending_until, changed_at FROM {} WHERE key = ?1",
                self.table
            ))?
            .query_row([key], |row| slot(row, 0))
            .optional()?
            .unwrap_or_default();
        let before = current.clone();
        let out = change(&mut current, now_ms());
        if current != before {
            transaction
                .prepare_cached(&format!(
                    "INSERT INTO {} (key, value, deleted, version, pending, pending_until, changed_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(key) DO UPDATE SET value = excluded.value, \
                     deleted = excluded.deleted, version = excluded.version, pending = excluded.pending, \
                     pending_until = excluded.pending_until, changed_at = excluded.changed_at",
                    self.table
                ))?
                .execute(params![
                    key,
                    current.value,
                    current.deleted,
                    to_sql(current.version),
                    current.pending,
                    to_sql(current.pending_until),
                    to_sql(current.changed_at)
                ])?;
        }
        transaction.commit()?;
        Ok(out)
    }
}

impl<K, V> ScanSlots<K, V> for SqliteTarget<K, V>
where
    K: MigrationKey + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    async fn scan_slots(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Lookup<V>>, SqliteError> {
        let limit = limit.max(1);
        let connection = lock(&self.connection);
        let after_key = crate::store::after_key(after, false);
        let mut statement = connection.prepare_cached(&format!(
            "SELECT key, value, deleted, version, pending, pending_until, changed_at FROM {} \
             WHERE {after_key} ORDER BY key LIMIT ?2",
            self.table
        ))?;
        let mut rows = statement.query(params![after, i64::try_from(limit).unwrap_or(i64::MAX)])?;
        let (mut entries, mut last, now) = (Vec::new(), None, now_ms());
        while let Some(row) = rows.next()? {
            let key: Vec<u8> = row.get(0)?;
            let found = slot(row, 1)?.lookup(now).try_map(|text| decode(&key, &text))?;
            entries.push((K::from_key_bytes(&key)?, found));
            last = Some(key);
        }
        let next = last.filter(|_| entries.len() == limit);
        Ok(Page { entries, next })
    }
}

fn slot(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Slot<String>> {
    Ok(Slot {
        value: row.get(at)?,
        deleted: row.get(at + 1)?,
        version: from_sql(row.get(at + 2)?),
        pending: row.get(at + 3)?,
        pending_until: from_sql(row.get(at + 4)?),
        changed_at: from_sql(row.get(at + 5)?),
    })
}

impl<K, V> Target<K, V> for SqliteTarget<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = SqliteError;

    fn timeout(&self) -> Option<std::time::Duration> {
        Some(crate::store::sqlite::BUSY)
    }

    async fn lookup(&self, key: &K) -> Result<Lookup<V>, SqliteError> {
        let key = key.try_key_bytes()?;
        let found = {
            let connection = lock(&self.connection);
            let found = connection
                .prepare_cached(&format!(
                    "SELECT value, deleted, version, pending, pending_until, changed_at FROM {} WHERE key = ?1",
                    self.table
                ))?
                .query_row([&key], |row| slot(row, 0))
                .optional()?;
            found
        };
        Ok(match found.map(|slot| slot.lookup(now_ms())) {
            Some(Lookup::Hit(text)) => Lookup::Hit(decode(&key, &text)?),
            Some(Lookup::Pending { token, expired }) => Lookup::Pending { token, expired },
            Some(Lookup::Deleted) => Lookup::Deleted,
            Some(Lookup::Miss) | None => Lookup::Miss,
        })
    }

    async fn mark(&self, key: &K, grace_ms: u64) -> Result<(), SqliteError> {
        self.change(&key.try_key_bytes()?, |slot, now| slot.mark(now, grace_ms))
    }

    async fn apply(&self, key: &K, change: Change<&V>, version: u64, settle: bool) -> Result<(), SqliteError> {
        let change = match change {
            Change::Put(value) => Change::Put(encode(value)?),
            Change::Delete => Change::Delete,
            Change::Invalidate => Change::Invalidate,
        };
        self.change(&key.try_key_bytes()?, |slot, now| {
            slot.apply(change, version, settle, now);
        })
    }

    async fn fill(&self, key: &K, value: Option<&V>, version: u64, token: Option<u64>) -> Result<Filled, SqliteError> {
        let value = value.map(encode).transpose()?;
        self.change(&key.try_key_bytes()?, |slot, now| slot.fill(value, version, token, now))
    }

    async fn fill_many(&self, entries: &[(&K, &V, u64)]) -> Result<Vec<Filled>, SqliteError>
    where
        K: Sync,
        V: Sync,
    {
        let mut rows = Vec::with_capacity(entries.len());
        for (key, value, version) in entries {
            rows.push((key.try_key_bytes()?, *value, *version));
        }
        // `Slot::fill` without a token, in SQL: one statement per key and no read, one commit.
        let mut connection = lock(&self.connection);
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(rows.len());
        {
            let mut fill = transaction.prepare_cached(&format!(
                "INSERT INTO {} (key, value, deleted, version, pending, pending_until, changed_at) \
                 VALUES (?1, ?2, 0, ?3, 0, 0, ?4) ON CONFLICT(key) DO UPDATE SET value = excluded.value, deleted = 0, \
                 version = excluded.version, changed_at = excluded.changed_at \
                 WHERE pending = 0 AND (excluded.version > version \
                   OR (value IS NULL AND deleted = 0 AND excluded.version = version))",
                self.table
            ))?;
            let now = to_sql(now_ms());
            // One buffer for every value's JSON.
            let mut text = Vec::new();
            for (key, value, version) in &rows {
                text.clear();
                serde_json::to_writer(&mut text, value).map_err(crate::store::json::EncodeError)?;
                // serde_json writes UTF-8 only.
                let text = std::str::from_utf8(&text).unwrap_or_default();
                let taken = *version > 0 && fill.execute(params![key, text, to_sql(*version), now])? == 1;
                out.push(if taken { Filled::Copied } else { Filled::Refused });
            }
        }
        transaction.commit()?;
        Ok(out)
    }

    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, SqliteError> {
        let connection = lock(&self.connection);
        let after_key = crate::store::after_key(after, false);
        let mut statement = connection.prepare_cached(&format!(
            "SELECT key FROM {} WHERE pending > 0 AND {after_key} ORDER BY key LIMIT ?2",
            self.table
        ))?;
        let rows = statement.query_map(params![after, to_sql(limit as u64)], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    async fn purge(&self, older_than_ms: u64) -> Result<usize, SqliteError> {
        let connection = lock(&self.connection);
        let cutoff = now_ms().saturating_sub(older_than_ms);
        // The SQL form of `Slot::purgeable`.
        let purged = connection
            .prepare_cached(&format!(
                "DELETE FROM {} WHERE value IS NULL AND pending = 0 AND changed_at <= ?1",
                self.table
            ))?
            .execute([to_sql(cutoff)])?;
        Ok(purged)
    }
}

impl<K: ?Sized, V> fmt::Debug for SqliteSource<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSource").field("table", &self.table).finish_non_exhaustive()
    }
}

impl<K: ?Sized, V> fmt::Debug for SqliteTarget<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTarget").field("table", &self.table).finish_non_exhaustive()
    }
}
