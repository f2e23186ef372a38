use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{decode_key, encode_key, key_columns, KeyKind, KeyValue, TableError};
use crate::key::MigrationKey;
use crate::store::from_sql;
use crate::store::json::decode;
use crate::store::postgres::Pooled;
use crate::versioned::{Page, Scan, Source, Versioned};

fn kind(data_type: &str) -> Option<KeyKind> {
    Some(match data_type {
        "smallint" | "integer" | "bigint" => KeyKind::Integer,
        "text" | "character varying" | "character" => KeyKind::Text,
        "bytea" => KeyKind::Bytes,
        "boolean" => KeyKind::Boolean,
        _ => return None,
    })
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

fn cast(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Integer => "bigint",
        KeyKind::Text => "text",
        KeyKind::Bytes => "bytea",
        KeyKind::Boolean => "boolean",
    }
}

fn param(value: &KeyValue) -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
    match value {
        KeyValue::Integer(n) => Box::new(*n),
        KeyValue::Text(text) => Box::new(text.clone()),
        KeyValue::Bytes(bytes) => Box::new(bytes.clone()),
        KeyValue::Boolean(b) => Box::new(*b),
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
        for name in keys.iter().chain([&version]) {
            plain(name)?;
        }
        let pool = Pooled::new(url, table, connections)?;
        let client = pool.client().await.map_err(TableError::Postgres)?;
        let columns = crate::store::postgres::columns(&**client, table).await?;
        let key_columns = key_columns(table, &columns, keys, version, kind)?;
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
        self.keys.iter().map(|(name, kind)| format!("t.{name}::{}", cast(*kind))).collect::<Vec<_>>().join(", ")
    }

    fn select(&self) -> String {
        format!(
            "SELECT {}, (to_jsonb(t) - '{v}')::text, t.{v} FROM {} t",
            self.key_list(),
            self.table,
            v = self.version
        )
    }

    fn row_key(&self, row: &tokio_postgres::Row) -> Vec<u8> {
        let values: Vec<_> = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| match kind {
                KeyKind::Integer => KeyValue::Integer(row.get(i)),
                KeyKind::Text => KeyValue::Text(row.get(i)),
                KeyKind::Bytes => KeyValue::Bytes(row.get(i)),
                KeyKind::Boolean => KeyValue::Boolean(row.get(i)),
            })
            .collect();
        encode_key(&values)
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
        let values = decode_key(&self.keys, &bytes)?;
        let condition = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, (name, kind))| format!("t.{name} = ${}::{}", i + 1, cast(*kind)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let params: Vec<_> = values.iter().map(param).collect();
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
                params.extend(decode_key(&self.keys, after)?.iter().map(param));
                let placeholders = self
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| format!("${}::{}", i + 1, cast(*kind)))
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
