use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cached::{Cache, Entry, Probe};
use crate::key::MigrationKey;
use crate::store::json::{decode, encode};
use crate::store::sqlite::{open_file, open_memory, prepare_table};
use crate::store::SqliteError;
use crate::store::{from_sql, to_sql};
use crate::versioned::now_ms;

/// An unversioned NEW in SQLite: one row per [`Entry`], `(key BLOB PRIMARY KEY, value TEXT,
/// absent, pending, pending_until, lease, leases)`. Each operation runs [`Entry`]'s own function
/// inside one `BEGIN IMMEDIATE` transaction, so it is atomic across every connection and process
/// on the file. Rows are kept once created: their lease counter keeps tokens from repeating.
pub struct SqliteCache<K: ?Sized, V> {
    connection: Mutex<Connection>,
    table: String,
    types: PhantomData<fn(&K) -> V>,
}

const TABLE: &str = "(key BLOB PRIMARY KEY, value TEXT, absent INTEGER NOT NULL, pending INTEGER NOT NULL, \
                     pending_until INTEGER NOT NULL, lease INTEGER NOT NULL, leases INTEGER NOT NULL) WITHOUT ROWID";
const COLUMNS: &[(&str, &str, i64)] = &[
    ("key", "BLOB", 1),
    ("value", "TEXT", 0),
    ("absent", "INTEGER", 0),
    ("pending", "INTEGER", 0),
    ("pending_until", "INTEGER", 0),
    ("lease", "INTEGER", 0),
    ("leases", "INTEGER", 0),
];

impl<K: ?Sized, V> SqliteCache<K, V> {
    /// Opens (or creates) the database file at `path` and the table `table` in it.
    pub fn open(path: impl AsRef<Path>, table: &str) -> Result<Self, SqliteError> {
        Self::with_connection(open_file(path.as_ref())?, table)
    }

    /// A private in-memory database with the table `table`.
    pub fn open_in_memory(table: &str) -> Result<Self, SqliteError> {
        Self::with_connection(open_memory()?, table)
    }

    /// The cache on an open connection: creates the table if it is missing.
    pub fn with_connection(connection: Connection, table: &str) -> Result<Self, SqliteError> {
        prepare_table(&connection, table, TABLE, COLUMNS)?;
        Ok(SqliteCache { connection: Mutex::new(connection), table: table.to_owned(), types: PhantomData })
    }

    // SQLite rolls back an unfinished transaction, so a poisoned lock is still sound to use.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One entry changed by `change` in one immediate transaction.
    fn change<T>(&self, key: &[u8], change: impl FnOnce(&mut Entry<String>, u64) -> T) -> Result<T, SqliteError> {
        let mut connection = self.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut entry = transaction
            .prepare_cached(&format!(
                "SELECT value, absent, pending, pending_until, lease, leases FROM {} WHERE key = ?1",
                self.table
            ))?
            .query_row([key], |row| {
                Ok(Entry {
                    value: row.get(0)?,
                    absent: row.get(1)?,
                    pending: row.get(2)?,
                    pending_until: from_sql(row.get(3)?),
                    lease: from_sql(row.get(4)?),
                    leases: from_sql(row.get(5)?),
                })
            })
            .optional()?
            .unwrap_or_default();
        let out = change(&mut entry, now_ms());
        transaction
            .prepare_cached(&format!(
                "INSERT INTO {} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(key) DO UPDATE SET \
                 value = excluded.value, absent = excluded.absent, pending = excluded.pending, \
                 pending_until = excluded.pending_until, lease = excluded.lease, leases = excluded.leases",
                self.table
            ))?
            .execute(params![
                key,
                entry.value,
                entry.absent,
                entry.pending,
                to_sql(entry.pending_until),
                to_sql(entry.lease),
                to_sql(entry.leases)
            ])?;
        transaction.commit()?;
        Ok(out)
    }
}

impl<K, V> Cache<K, V> for SqliteCache<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = SqliteError;

    fn timeout(&self) -> Option<std::time::Duration> {
        Some(crate::store::sqlite::BUSY)
    }

    async fn probe(&self, key: &K) -> Result<Probe<V>, SqliteError> {
        let key = key.try_key_bytes()?;
        // A settled copy is answered by a read alone; only a miss takes the write lock for a lease.
        let settled: Option<(Option<String>, bool)> = self
            .lock()
            .prepare_cached(&format!("SELECT value, absent FROM {} WHERE key = ?1 AND pending = 0", self.table))?
            .query_row([&key], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        match settled {
            Some((Some(text), _)) => return Ok(Probe::Hit(decode(&key, &text)?)),
            Some((None, true)) => return Ok(Probe::Absent),
            _ => {}
        }
        Ok(match self.change(&key, |entry, now| entry.probe(now))? {
            Probe::Hit(text) => Probe::Hit(decode(&key, &text)?),
            Probe::Absent => Probe::Absent,
            Probe::Leased(token) => Probe::Leased(token),
            Probe::Busy => Probe::Busy,
        })
    }

    async fn mark(&self, key: &K, grace_ms: u64) -> Result<(), SqliteError> {
        self.change(&key.try_key_bytes()?, |entry, now| entry.mark(now, grace_ms))
    }

    async fn invalidate(&self, key: &K, settle: bool) -> Result<(), SqliteError> {
        self.change(&key.try_key_bytes()?, |entry, _| entry.invalidate(settle))
    }

    async fn fill(&self, key: &K, value: Option<&V>, token: u64) -> Result<bool, SqliteError> {
        let value = value.map(encode).transpose()?;
        self.change(&key.try_key_bytes()?, |entry, _| entry.fill(value, token))
    }

    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, SqliteError> {
        let connection = self.lock();
        let after_key = crate::store::after_key(after, false);
        let mut statement = connection.prepare_cached(&format!(
            "SELECT key FROM {} WHERE pending > 0 AND {after_key} ORDER BY key LIMIT ?2",
            self.table
        ))?;
        let rows = statement.query_map(params![after, to_sql(limit as u64)], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl<K: ?Sized, V> fmt::Debug for SqliteCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteCache").field("table", &self.table).finish_non_exhaustive()
    }
}
