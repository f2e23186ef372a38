use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{decode_key, encode_key, key_columns, KeyKind, KeyValue, TableError};
use crate::key::MigrationKey;
use crate::store::from_sql;
use crate::store::json::decode;
use crate::versioned::{Page, Scan, Source, Versioned};

/// SQLite's type affinity rules (<https://www.sqlite.org/datatype3.html>), for the kinds a key can
/// hold; a `BOOL…` column stores 0 or 1.
fn kind(declared: &str) -> Option<KeyKind> {
    let declared = declared.to_ascii_uppercase();
    Some(if declared.contains("INT") {
        KeyKind::Integer
    } else if declared.contains("BOOL") {
        KeyKind::Boolean
    } else if ["CHAR", "CLOB", "TEXT"].iter().any(|text| declared.contains(text)) {
        KeyKind::Text
    } else if declared.is_empty() || declared.contains("BLOB") {
        KeyKind::Bytes
    } else {
        return None;
    })
}

/// `name` as a quoted SQLite identifier: any name a table or column has.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn param(value: &KeyValue) -> Value {
    match value {
        KeyValue::Integer(n) => Value::Integer(*n),
        KeyValue::Text(text) => Value::Text(text.clone()),
        KeyValue::Bytes(bytes) => Value::Blob(bytes.clone()),
        KeyValue::Boolean(b) => Value::Integer(i64::from(*b)),
    }
}

/// A row's column as JSON: as PostgreSQL's `to_jsonb` writes it, so one NEW value type fits both
/// (bytes as `"\x…"` hex; a real that is not finite as `null`).
fn json(value: ValueRef<'_>) -> serde_json::Value {
    match value {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(n) => n.into(),
        ValueRef::Real(x) => serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, Into::into),
        ValueRef::Text(text) => String::from_utf8_lossy(text).into_owned().into(),
        ValueRef::Blob(bytes) => {
            let mut hex = String::with_capacity(2 + bytes.len() * 2);
            hex.push_str("\\x");
            for byte in bytes {
                hex.push_str(&format!("{byte:02x}"));
            }
            hex.into()
        }
    }
}

/// An existing SQLite table as a read-only versioned OLD (see [`PostgresTable`] for the rules):
/// scanned in its key columns' order, each row's value the row as a JSON object without its version
/// column.
///
/// SQLite has no sequences: versions come from the row named after the table in `zddm_versions`
/// (`name TEXT PRIMARY KEY, last INTEGER`, the counter [`SqliteSource`] keeps), which the table's
/// writers bump into the version column (`docs/backfill.md` shows triggers that do it);
/// [`Source::next_version`] draws from it, so a verifier's repairs order with the writers'. Opening
/// creates the counter at the table's highest version if it is missing. Its calls block the thread
/// that polls them, as [`SqliteSource`]'s do. `put` and `delete` fail: the application writes OLD.
///
/// [`PostgresTable`]: crate::versioned::PostgresTable
/// [`SqliteSource`]: crate::versioned::SqliteSource
pub struct SqliteTable<K: ?Sized, V> {
    connection: Mutex<Connection>,
    table: String,
    keys: Vec<(String, KeyKind)>,
    /// Every column but the version column, in the table's order, and where each key column is.
    columns: Vec<String>,
    key_at: Vec<usize>,
    version: String,
    types: PhantomData<fn(&K) -> V>,
}

impl<K: ?Sized, V> SqliteTable<K, V> {
    /// Reads `table` in the database file at `path` (which must exist); `keys` are its key
    /// columns (in key order), `version` its version column. Checks that the table and the columns
    /// exist and the key columns' types can be encoded.
    pub fn open(path: impl AsRef<Path>, table: &str, keys: &[&str], version: &str) -> Result<Self, TableError> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(TableError::NoTable { table: format!("{table} (no database file {})", path.display()) });
        }
        Self::with_connection(crate::store::sqlite::open_file(path)?, table, keys, version)
    }

    /// The same on an open connection.
    pub fn with_connection(
        connection: Connection,
        table: &str,
        keys: &[&str],
        version: &str,
    ) -> Result<Self, TableError> {
        let columns: Vec<(String, String)> = connection
            .prepare("SELECT name, type FROM pragma_table_info(?1)")?
            .query_map([table], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let keys = key_columns(table, &columns, keys, version, kind)?;
        let columns: Vec<String> = columns.into_iter().map(|(name, _)| name).filter(|name| name != version).collect();
        let key_at = keys.iter().map(|(key, _)| columns.iter().position(|name| name == key).unwrap_or(0)).collect();
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS zddm_versions (name TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID",
        )?;
        connection.execute(
            &format!(
                "INSERT OR IGNORE INTO zddm_versions (name, last) SELECT ?1, coalesce(max({}), 0) FROM {}",
                quote(version),
                quote(table)
            ),
            [table],
        )?;
        Ok(SqliteTable {
            connection: Mutex::new(connection),
            table: table.to_owned(),
            keys,
            columns,
            key_at,
            version: version.to_owned(),
            types: PhantomData,
        })
    }

    // A panic while holding the connection leaves nothing half-applied: the table is only read.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn select(&self) -> String {
        let columns = self.columns.iter().map(|name| quote(name)).collect::<Vec<_>>().join(", ");
        format!("SELECT {columns}, {} FROM {}", quote(&self.version), quote(&self.table))
    }

    fn key_names(&self) -> String {
        self.keys.iter().map(|(name, _)| quote(name)).collect::<Vec<_>>().join(", ")
    }

    /// A row as its key's canonical bytes and its entry.
    fn entry<W: DeserializeOwned>(&self, row: &rusqlite::Row<'_>) -> Result<(Vec<u8>, Versioned<W>), TableError> {
        let mut values = Vec::with_capacity(self.keys.len());
        for ((name, kind), at) in self.keys.iter().zip(&self.key_at) {
            let wrong =
                |found: &str| TableError::KeyValue { column: name.clone(), kind: *kind, found: found.to_owned() };
            values.push(match (kind, row.get_ref(*at)?) {
                (KeyKind::Integer, ValueRef::Integer(n)) => KeyValue::Integer(n),
                (KeyKind::Boolean, ValueRef::Integer(n @ (0 | 1))) => KeyValue::Boolean(n == 1),
                (KeyKind::Text, ValueRef::Text(text)) => {
                    KeyValue::Text(std::str::from_utf8(text).map_err(|_| wrong("text that is not UTF-8"))?.to_owned())
                }
                (KeyKind::Bytes, ValueRef::Blob(bytes)) => KeyValue::Bytes(bytes.to_vec()),
                (_, ValueRef::Null) => return Err(wrong("NULL")),
                (_, other) => return Err(wrong(&format!("{:?}", other.data_type()))),
            });
        }
        let bytes = encode_key(&values);
        let mut object = serde_json::Map::with_capacity(self.columns.len());
        for (i, name) in self.columns.iter().enumerate() {
            object.insert(name.clone(), json(row.get_ref(i)?));
        }
        let version: i64 = row.get(self.columns.len())?;
        let value = decode(&bytes, &serde_json::Value::Object(object).to_string())?;
        Ok((bytes, Versioned { value, version: from_sql(version) }))
    }
}

impl<K, V> Source<K, V> for SqliteTable<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = TableError;

    fn timeout(&self) -> Option<std::time::Duration> {
        Some(crate::store::sqlite::BUSY)
    }

    async fn get(&self, key: &K) -> Result<Option<Versioned<V>>, TableError> {
        let bytes = key.try_key_bytes()?;
        let values = decode_key(&self.keys, &bytes)?;
        let condition = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, (name, _))| format!("{} = ?{}", quote(name), i + 1))
            .collect::<Vec<_>>()
            .join(" AND ");
        let connection = self.lock();
        let mut statement = connection.prepare_cached(&format!("{} WHERE {condition}", self.select()))?;
        let params: Vec<Value> = values.iter().map(param).collect();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        match rows.next()? {
            Some(row) => Ok(Some(self.entry(row)?.1)),
            None => Ok(None),
        }
    }

    async fn put(&self, _key: &K, _value: &V) -> Result<u64, TableError> {
        Err(TableError::ReadOnly { table: self.table.clone() })
    }

    async fn delete(&self, _key: &K) -> Result<u64, TableError> {
        Err(TableError::ReadOnly { table: self.table.clone() })
    }

    async fn next_version(&self, _key: &K) -> Result<u64, TableError> {
        let connection = self.lock();
        let version: Option<i64> = connection
            .prepare_cached("UPDATE zddm_versions SET last = last + 1 WHERE name = ?1 RETURNING last")?
            .query_row([&self.table], |row| row.get(0))
            .optional()?;
        version
            .map(from_sql)
            .ok_or_else(|| TableError::NoTable { table: format!("zddm_versions row {:?}", self.table) })
    }
}

/// In the key columns' order (not canonical key order: verification then looks keys up one by
/// one); a position is the last row's key, canonically encoded.
impl<K, V> Scan<K, V> for SqliteTable<K, V>
where
    K: MigrationKey + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Versioned<V>>, TableError> {
        let limit = limit.max(1);
        let names = self.key_names();
        let mut params: Vec<Value> = Vec::new();
        let condition = match after {
            Some(after) => {
                params.extend(decode_key(&self.keys, after)?.iter().map(param));
                let placeholders = (1..=self.keys.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
                format!("WHERE ({names}) > ({placeholders})")
            }
            None => String::new(),
        };
        params.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let sql = format!("{} {condition} ORDER BY {names} LIMIT ?{}", self.select(), params.len());
        let connection = self.lock();
        let mut statement = connection.prepare_cached(&sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut entries = Vec::with_capacity(limit);
        let mut last = None;
        while let Some(row) = rows.next()? {
            let (bytes, entry) = self.entry(row)?;
            entries.push((K::from_key_bytes(&bytes)?, entry));
            last = Some(bytes);
        }
        let next = last.filter(|_| entries.len() == limit);
        Ok(Page { entries, next })
    }

    async fn estimate(&self) -> Result<Option<u64>, TableError> {
        let connection = self.lock();
        let count: i64 = connection
            .prepare_cached(&format!("SELECT count(*) FROM {}", quote(&self.table)))?
            .query_row([], |row| row.get(0))?;
        Ok(Some(from_sql(count)))
    }

    fn canonical(&self) -> bool {
        false
    }
}

impl<K: ?Sized, V> fmt::Debug for SqliteTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTable")
            .field("table", &self.table)
            .field("keys", &self.keys)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}
