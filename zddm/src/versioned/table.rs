//! An existing table of any schema as OLD, for backfill and verification: its key columns make
//! the key, its version column the version, and the rest of the row, as a JSON object, the value.
//! `PostgresTable` and `SqliteTable` differ only in their SQL.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::PostgresTable;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteTable;

use crate::key::{KeyError, KeyReader};

/// A key column's kind, and how it encodes in the canonical key (`docs/key-encoding.md`):
/// integers as `i64` (the same bytes as an unsigned field for values ≥ 0), text as `str`, bytes
/// as a byte string, booleans as `bool`. A key struct whose fields have these kinds, in the
/// columns' order, encodes to the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// PostgreSQL `smallint`, `integer`, `bigint`; a SQLite type with `INT` in its name.
    Integer,
    /// PostgreSQL `text`, `character varying`, `character`; a SQLite type with `CHAR`, `CLOB` or
    /// `TEXT` in its name.
    Text,
    /// PostgreSQL `bytea`; SQLite `BLOB`, or no type.
    Bytes,
    /// PostgreSQL `boolean`; a SQLite type with `BOOL` in its name (stored as 0 or 1).
    Boolean,
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
}

fn byte_string(bytes: &[u8], out: &mut Vec<u8>) {
    // Key columns longer than 4 GiB cannot exist in PostgreSQL (1 GiB per field) or SQLite (2 GiB
    // at most per value).
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The canonical bytes of a row's key values.
fn encode_key(values: &[KeyValue]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        value.encode(&mut out);
    }
    out
}

/// A key's canonical bytes read back as the key columns' values.
fn decode_key(keys: &[(String, KeyKind)], bytes: &[u8]) -> Result<Vec<KeyValue>, KeyError> {
    let mut reader = KeyReader::new(bytes);
    let values = keys.iter().map(|(_, kind)| KeyValue::read(*kind, &mut reader)).collect::<Result<_, _>>()?;
    reader.finish()?;
    Ok(values)
}

/// The table's key columns, checked against its columns (name and type, in the table's order),
/// and its version column: each must exist, and each key column's type must encode as a key.
fn key_columns(
    table: &str,
    columns: &[(String, String)],
    keys: &[&str],
    version: &str,
    kind: impl Fn(&str) -> Option<KeyKind>,
) -> Result<Vec<(String, KeyKind)>, TableError> {
    if keys.is_empty() {
        return Err(TableError::NoKey);
    }
    if columns.is_empty() {
        return Err(TableError::NoTable { table: table.to_owned() });
    }
    let find = |name: &str| {
        columns.iter().find(|(column, _)| column == name).ok_or_else(|| TableError::NoColumn {
            table: table.to_owned(),
            column: name.to_owned(),
            columns: columns.iter().map(|(c, t)| format!("{c} {t}")).collect::<Vec<_>>().join(", "),
        })
    };
    let mut key_columns = Vec::new();
    for key in keys {
        let (column, data_type) = find(key)?;
        let kind = kind(data_type)
            .ok_or_else(|| TableError::KeyType { column: column.clone(), data_type: data_type.clone() })?;
        key_columns.push((column.clone(), kind));
    }
    find(version)?;
    Ok(key_columns)
}

/// How a table's key and version columns were given wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// PostgreSQL failed.
    #[cfg(feature = "postgres")]
    #[error(transparent)]
    Postgres(#[from] crate::store::PostgresError),
    /// SQLite failed.
    #[cfg(feature = "sqlite")]
    #[error(transparent)]
    Sqlite(#[from] crate::store::SqliteError),
    /// The table does not exist.
    #[error("there is no table {table:?}: name an existing table (plain lowercase name) in the database given")]
    NoTable {
        /// The table.
        table: String,
    },
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
        "key column {column:?} is {data_type}, which zddm cannot encode as a key: use integer, text, bytes \
         (bytea, BLOB) or boolean key columns"
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
    /// A row whose key column holds a value of another kind than the column's declared type
    /// (SQLite lets a column hold any kind).
    #[error("a row's key column {column:?} holds {found}, not a value of kind {kind:?}: fix the row, or name other key columns")]
    KeyValue {
        /// The column.
        column: String,
        /// The column's kind.
        kind: KeyKind,
        /// What the row holds.
        found: String,
    },
    /// A key that does not decode as this table's key columns.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A value that does not decode.
    #[error(transparent)]
    Decode(#[from] crate::store::json::DecodeError),
}

#[cfg(feature = "postgres")]
impl From<tokio_postgres::Error> for TableError {
    fn from(error: tokio_postgres::Error) -> Self {
        TableError::Postgres(error.into())
    }
}

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for TableError {
    fn from(error: rusqlite::Error) -> Self {
        TableError::Sqlite(error.into())
    }
}
