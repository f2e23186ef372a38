//! An existing PostgreSQL table of any schema as OLD, for backfill and verification: its key
//! columns make the key, its version column the version, and the rest of the row, as a JSON
//! object, the value.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::key::{KeyError, KeyReader, MigrationKey};
use crate::store::json::decode;
use crate::store::postgres::Pooled;
use crate::store::{from_sql, PostgresError};
use crate::versioned::{Page, Scan, Source, Versioned};

/// A key column's kind, and how it encodes in the canonical key (`docs/key-encoding.md`):
/// integers as `i64` (the same bytes as an unsigned field for values ≥ 0), text as `str`, `bytea`
/// as a byte string, booleans as `bool`. A key struct whose fields have these kinds, in the
/// columns' order, encodes to the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `smallint`, `integer`, `bigint`.
    Integer,
    /// `text`, `character varying`, `character`.
    Text,
    /// `bytea`.
    Bytes,
    /// `boolean`.
    Boolean,
}

impl KeyKind {
    fn of(data_type: &str) -> Option<KeyKind> {
        Some(match data_type {
            "smallint" | "integer" | "bigint" => KeyKind::Integer,
            "text" | "character varying" | "character" => KeyKind::Text,
            "bytea" => KeyKind::Bytes,
            "boolean" => KeyKind::Boolean,
            _ => return None,
        })
    }

    fn cast(self) -> &'static str {
        match self {
            KeyKind::Integer => "bigint",
            KeyKind::Text => "text",
            KeyKind::Bytes => "bytea",
            KeyKind::Boolean => "boolean",
        }
    }
}

/// One key column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyValue {
    Integer(i64),
    Text(String),
    Bytes(Vec<u8>),
    Boolean(bool),
}

impl KeyValue {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            KeyValue::Integer(n) => out.extend_from_slice(&n.to_be_bytes()),
            KeyValue::Text(text) => byte_string(text.as_bytes(), out),
            KeyValue::Bytes(bytes) => byte_string(bytes, out),
            KeyValue::Boolean(b) => out.push(u8::from(*b)),
        }
    }

    fn read(kind: KeyKind, reader: &mut KeyReader<'_>) -> Result<KeyValue, KeyError> {
        Ok(match kind {
            KeyKind::Integer => KeyValue::Integer(reader.read_i64()?),
            KeyKind::Text => KeyValue::Text(reader.read_str()?.to_owned()),
            KeyKind::Bytes => KeyValue::Bytes(reader.read_byte_string()?.to_vec()),
            KeyKind::Boolean => KeyValue::Boolean(reader.read_bool()?),
        })
    }

    fn param(&self) -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
        match self {
            KeyValue::Integer(n) => Box::new(*n),
            KeyValue::Text(text) => Box::new(text.clone()),
            KeyValue::Bytes(bytes) => Box::new(bytes.clone()),
            KeyValue::Boolean(b) => Box::new(*b),
        }
    }
}

fn byte_string(bytes: &[u8], out: &mut Vec<u8>) {
    // Key columns longer than 4 GiB cannot exist in PostgreSQL (1 GiB per field).
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// How a table's key and version columns were given wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// PostgreSQL failed.
    #[error(transparent)]
    Store(#[from] PostgresError),
    /// A named column is not in the table.
    #[error("table {table:?} has no column {column:?}; its columns are: {columns}")]
    NoColumn {
        /// The table.
        table: String,
        /// The missing column.
        column: String,
        /// What it has.
        columns: String,
    },
    /// A key column's type cannot be part of a key.
    #[error(
        "key column {column:?} is {data_type}, which zddm cannot encode as a key: use integer, text, bytea or \
         boolean key columns"
    )]
    KeyType {
        /// The column.
        column: String,
        /// Its type.
        data_type: String,
    },
    /// A name that is not a plain identifier.
    #[error(
        "{name:?} is not a plain identifier: use lowercase letters, digits and underscores, not starting with a digit"
    )]
    Name {
        /// The name.
        name: String,
    },
    /// No key columns were given.
    #[error("a table source needs at least one key column")]
    NoKey,
    /// The table is only read: backfill and verification never write OLD.
    #[error("{table:?} is read as OLD for a backfill or verification only: write it with the application")]
    ReadOnly {
        /// The table.
        table: String,
    },
    /// A key that does not decode as this table's key columns.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A value that does not decode.
    #[error(transparent)]
    Decode(#[from] crate::store::json::DecodeError),
}

impl From<tokio_postgres::Error> for TableError {
    fn from(error: tokio_postgres::Error) -> Self {
        TableError::Store(error.into())
    }
}

fn plain(name: &str) -> Result<&str, TableError> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(TableError::Name { name: name.to_owned() })
    }
}

/// An existing table as a read-only versioned OLD (see the module docs): scanned in its key
/// columns' order, each row's value the row as a JSON object without its version column.
///
/// Versions come from the version column, which the table's writers bump from a sequence
/// (`docs/consistency.md` shows the column and a trigger); [`Source::next_version`] draws from that
/// sequence, so a verifier's repairs order with the writers'. `put` and `delete` fail: the
/// application writes OLD.
pub struct PostgresTable<K: ?Sized, V> {
    pool: Pooled,
    table: String,
    keys: Vec<(String, KeyKind)>,
    version: String,
    sequence: String,
    types: PhantomData<fn(&K) -> V>,
}

impl<K: ?Sized, V> PostgresTable<K, V> {
    /// Reads `table` through a pool of `connections` connections to `url`; `keys` are its key
    /// columns (in key order), `version` its version column, `sequence` the sequence its versions
    /// come from. Checks that the columns exist and the key columns' types can be encoded.
    pub async fn connect(
        url: &str,
        table: &str,
        keys: &[&str],
        version: &str,
        sequence: &str,
        connections: usize,
    ) -> Result<Self, TableError> {
        if keys.is_empty() {
            return Err(TableError::NoKey);
        }
        let pool = Pooled::new(url, table, connections)?;
        let client = pool.client().await.map_err(TableError::Store)?;
        let columns = crate::store::postgres::columns(&**client, table).await?;
        let find = |name: &str| {
            columns.iter().find(|(column, _)| column == name).ok_or_else(|| TableError::NoColumn {
                table: table.to_owned(),
                column: name.to_owned(),
                columns: columns.iter().map(|(c, t)| format!("{c} {t}")).collect::<Vec<_>>().join(", "),
            })
        };
        let mut key_columns = Vec::new();
        for key in keys {
            let (column, data_type) = find(plain(key)?)?;
            let kind = KeyKind::of(data_type)
                .ok_or_else(|| TableError::KeyType { column: column.clone(), data_type: data_type.clone() })?;
            key_columns.push((column.clone(), kind));
        }
        find(plain(version)?)?;
        drop(client);
        Ok(PostgresTable {
            pool,
            table: table.to_owned(),
            keys: key_columns,
            version: version.to_owned(),
            sequence: sequence.to_owned(),
            types: PhantomData,
        })
    }

    fn key_list(&self) -> String {
        self.keys.iter().map(|(name, kind)| format!("t.{name}::{}", kind.cast())).collect::<Vec<_>>().join(", ")
    }

    fn select(&self) -> String {
        format!(
            "SELECT {}, (to_jsonb(t) - '{v}')::text, t.{v} FROM {} t",
            self.key_list(),
            self.table,
            v = self.version
        )
    }

    fn decode_key(&self, bytes: &[u8]) -> Result<Vec<KeyValue>, KeyError> {
        let mut reader = KeyReader::new(bytes);
        let values = self.keys.iter().map(|(_, kind)| KeyValue::read(*kind, &mut reader)).collect::<Result<_, _>>()?;
        reader.finish()?;
        Ok(values)
    }

    fn row_key(&self, row: &tokio_postgres::Row) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (_, kind)) in self.keys.iter().enumerate() {
            let value = match kind {
                KeyKind::Integer => KeyValue::Integer(row.get(i)),
                KeyKind::Text => KeyValue::Text(row.get(i)),
                KeyKind::Bytes => KeyValue::Bytes(row.get(i)),
                KeyKind::Boolean => KeyValue::Boolean(row.get(i)),
            };
            value.encode(&mut out);
        }
        out
    }
}

impl<K, V> Source<K, V> for PostgresTable<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = TableError;

    fn timeout(&self) -> Option<std::time::Duration> {
        Some(self.pool.longest())
    }

    async fn get(&self, key: &K) -> Result<Option<Versioned<V>>, TableError> {
        let bytes = key.try_key_bytes()?;
        let values = self.decode_key(&bytes)?;
        let condition = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, (name, kind))| format!("t.{name} = ${}::{}", i + 1, kind.cast()))
            .collect::<Vec<_>>()
            .join(" AND ");
        let params: Vec<_> = values.iter().map(KeyValue::param).collect();
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
        let client = self.pool.client().await?;
        let statement = client.prepare_cached(&format!("{} WHERE {condition}", self.select())).await?;
        let n = self.keys.len();
        match client.query_opt(&statement, &refs).await? {
            Some(row) => Ok(Some(Versioned { value: decode(&bytes, row.get(n))?, version: from_sql(row.get(n + 1)) })),
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
        let client = self.pool.client().await?;
        let row = client.query_one("SELECT nextval($1::text::regclass)", &[&self.sequence]).await?;
        Ok(from_sql(row.get(0)))
    }
}

/// In the key columns' order (not canonical key order: verification then looks keys up one by
/// one); a position is the last row's key, canonically encoded.
impl<K, V> Scan<K, V> for PostgresTable<K, V>
where
    K: MigrationKey + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Versioned<V>>, TableError> {
        let limit = limit.max(1);
        let names = self.keys.iter().map(|(name, _)| format!("t.{name}")).collect::<Vec<_>>().join(", ");
        let n = self.keys.len();
        let mut params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = Vec::new();
        let condition = match after {
            Some(after) => {
                params.extend(self.decode_key(after)?.iter().map(KeyValue::param));
                let placeholders = self
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| format!("${}::{}", i + 1, kind.cast()))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("WHERE ({names}) > ({placeholders})")
            }
            None => String::new(),
        };
        params.push(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
        let sql = format!("{} {condition} ORDER BY {names} LIMIT ${}", self.select(), params.len());
        let client = self.pool.client().await?;
        let statement = client.prepare_cached(&sql).await?;
        let rows = client.query(&statement, &refs).await?;
        let mut entries = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in &rows {
            let bytes = self.row_key(row);
            let value = decode(&bytes, row.get(n))?;
            entries.push((K::from_key_bytes(&bytes)?, Versioned { value, version: from_sql(row.get(n + 1)) }));
            last = Some(bytes);
        }
        let next = last.filter(|_| entries.len() == limit);
        Ok(Page { entries, next })
    }

    async fn estimate(&self) -> Result<Option<u64>, TableError> {
        Ok(crate::store::postgres::estimate(&self.pool, &self.table).await?)
    }

    fn canonical(&self) -> bool {
        false
    }
}

impl<K: ?Sized, V> fmt::Debug for PostgresTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTable")
            .field("server", &self.pool.target())
            .field("table", &self.table)
            .field("keys", &self.keys)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}
