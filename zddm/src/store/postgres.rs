//! `PostgresStore`: an async store on PostgreSQL (feature `postgres`).

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_postgres::NoTls;

use crate::key::{KeyError, MigrationKey};
use crate::store::json::{decode, encode, DecodeError, EncodeError};
use crate::store::Store;

/// A key/value table in PostgreSQL, keyed by the canonical key bytes.
///
/// The table is `(key BYTEA PRIMARY KEY, value TEXT NOT NULL)`, created if missing; values are JSON.
/// Every operation is one statement (`INSERT … ON CONFLICT (key) DO NOTHING` for the conditional
/// insert), on a connection from a pool; statements time out after 5 s on the server.
pub struct PostgresStore<K: ?Sized, V> {
    pool: Pool,
    table: String,
    types: PhantomData<fn(&K) -> V>,
}

/// Why a PostgreSQL operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The connection string is not valid.
    #[error("{url:?} is not a PostgreSQL connection string ({source}): write postgres://user@host:port/db")]
    Url {
        /// The string given.
        url: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No connection could be made or taken from the pool.
    #[error("cannot get a PostgreSQL connection: {0}")]
    Connect(String),
    /// A table name PostgreSQL would have to quote.
    #[error("table name {name:?} is not a plain identifier: use lowercase letters, digits and underscores, not starting with a digit")]
    TableName {
        /// The refused name.
        name: String,
    },
    /// The table exists with other columns than the store needs.
    #[error(
        "table {table} has columns {found}, but a zddm store needs (key bytea PRIMARY KEY, value text NOT NULL): \
         use another table name, or migrate the table to that shape"
    )]
    TableShape {
        /// The table.
        table: String,
        /// Its columns as found.
        found: String,
    },
    /// A statement failed or timed out.
    #[error("PostgreSQL failed: {0}")]
    Query(#[from] tokio_postgres::Error),
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

const TIMEOUT: Duration = Duration::from_secs(5);

impl<K: ?Sized, V> PostgresStore<K, V> {
    /// Connects to `url` with a pool of up to `connections` connections, and creates the table
    /// `table` if it is missing (checking its shape if it is not).
    pub async fn connect(url: &str, table: &str, connections: usize) -> Result<Self, PostgresError> {
        let plain = table.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && table.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            return Err(PostgresError::TableName { name: table.to_owned() });
        }
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|source| PostgresError::Url { url: url.to_owned(), source })?;
        config.connect_timeout(TIMEOUT);
        config.options(format!("-c statement_timeout={}", TIMEOUT.as_millis()));
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(connections.max(1))
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| PostgresError::Connect(error.to_string()))?;
        let store = PostgresStore { pool, table: table.to_owned(), types: PhantomData };
        store.prepare_table().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, PostgresError> {
        self.pool.get().await.map_err(|error| PostgresError::Connect(error.to_string()))
    }

    async fn prepare_table(&self) -> Result<(), PostgresError> {
        let client = self.client().await?;
        let table = &self.table;
        client
            .batch_execute(&format!("CREATE TABLE IF NOT EXISTS {table} (key bytea PRIMARY KEY, value text NOT NULL)"))
            .await?;
        let rows = client
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_name = $1 AND table_schema = current_schema() ORDER BY ordinal_position",
                &[table],
            )
            .await?;
        let columns: Vec<(String, String)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        let expected = [("key".to_owned(), "bytea".to_owned()), ("value".to_owned(), "text".to_owned())];
        if columns != expected {
            let found = columns.iter().map(|(name, kind)| format!("{name} {kind}")).collect::<Vec<_>>().join(", ");
            return Err(PostgresError::TableShape { table: table.clone(), found: format!("({found})") });
        }
        Ok(())
    }

    /// How many keys the table holds.
    pub async fn len(&self) -> Result<usize, PostgresError> {
        let row = self.client().await?.query_one(&format!("SELECT count(*) FROM {}", self.table), &[]).await?;
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
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
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT key, value FROM {} WHERE $1::bytea IS NULL OR key > $1 ORDER BY key LIMIT $2",
                    self.table
                ),
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
        f.debug_struct("PostgresStore").field("table", &self.table).finish_non_exhaustive()
    }
}
