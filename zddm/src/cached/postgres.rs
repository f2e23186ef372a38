use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cached::{Cache, Probe};
use crate::key::MigrationKey;
use crate::store::json::{decode, encode};
use crate::store::postgres::Pooled;
use crate::store::to_sql;
use crate::store::PostgresError;

/// An unversioned NEW on PostgreSQL: one row per [`Entry`](crate::cached::Entry), `(key bytea
/// PRIMARY KEY, value text, absent boolean, pending integer, pending_until bigint, lease bigint,
/// leases bigint)`, on the server's clock. A probe is one call of the PL/pgSQL function
/// `<table>_probe`, which answers a settled copy without a lock and otherwise locks the row to
/// issue a lease; marks, invalidations and fills are single statements.
pub struct PostgresCache<K: ?Sized, V> {
    pool: Pooled,
    table: String,
    types: PhantomData<fn(&K) -> V>,
}

const NOW: &str = "(extract(epoch from now()) * 1000)::bigint";

impl<K: ?Sized, V> PostgresCache<K, V> {
    /// Connects to `url` with a pool of up to `connections` connections, and creates the table
    /// and its function if missing (checking the table's shape if it is not).
    pub async fn connect(url: &str, table: &str, connections: usize) -> Result<Self, PostgresError> {
        let pool = Pooled::new(url, table, connections)?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (key bytea PRIMARY KEY, value text, absent boolean NOT NULL, \
               pending integer NOT NULL, pending_until bigint NOT NULL, lease bigint NOT NULL, \
               leases bigint NOT NULL) WITH (fillfactor = 70)"
        );
        // Kinds: 0 hit, 1 absent, 2 leased, 3 busy.
        let probe = format!(
            "CREATE OR REPLACE FUNCTION {t}_probe(k bytea, OUT kind integer, OUT val text, OUT token bigint) \
             LANGUAGE plpgsql AS $$ \
             DECLARE s {t}%ROWTYPE; now_ms bigint := {NOW}; \
             BEGIN \
               SELECT * INTO s FROM {t} WHERE key = k; \
               IF FOUND AND s.pending = 0 AND s.value IS NOT NULL THEN kind := 0; val := s.value; RETURN; END IF; \
               IF FOUND AND s.pending = 0 AND s.absent THEN kind := 1; RETURN; END IF; \
               INSERT INTO {t} VALUES (k, NULL, false, 0, 0, 0, 0) ON CONFLICT (key) DO NOTHING; \
               SELECT * INTO s FROM {t} WHERE key = k FOR UPDATE; \
               IF s.pending > 0 AND now_ms < s.pending_until THEN kind := 3; RETURN; END IF; \
               IF s.pending = 0 AND s.value IS NOT NULL THEN kind := 0; val := s.value; RETURN; END IF; \
               IF s.pending = 0 AND s.absent THEN kind := 1; RETURN; END IF; \
               UPDATE {t} SET leases = s.leases + 1, lease = s.leases + 1 WHERE key = k; \
               kind := 2; token := s.leases + 1; \
             END $$",
            t = table
        );
        pool.prepare(
            table,
            &create,
            &[
                ("key", "bytea"),
                ("value", "text"),
                ("absent", "boolean"),
                ("pending", "integer"),
                ("pending_until", "bigint"),
                ("lease", "bigint"),
                ("leases", "bigint"),
            ],
            "(key bytea PRIMARY KEY, value text, absent boolean NOT NULL, pending integer NOT NULL, \
             pending_until bigint NOT NULL, lease bigint NOT NULL, leases bigint NOT NULL)",
            &probe,
        )
        .await?;
        Ok(PostgresCache { pool, table: table.to_owned(), types: PhantomData })
    }
}

impl<K, V> Cache<K, V> for PostgresCache<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = PostgresError;

    fn timeout(&self) -> Option<std::time::Duration> {
        Some(self.pool.longest())
    }

    async fn probe(&self, key: &K) -> Result<Probe<V>, PostgresError> {
        let key = key.try_key_bytes()?;
        let client = self.pool.client().await?;
        let statement = client.prepare_cached(&format!("SELECT * FROM {}_probe($1)", self.table)).await?;
        let row = client.query_one(&statement, &[&key]).await?;
        Ok(match row.get::<_, i32>(0) {
            0 => Probe::Hit(decode(&key, row.get::<_, &str>(1))?),
            1 => Probe::Absent,
            2 => Probe::Leased(u64::try_from(row.get::<_, i64>(2)).unwrap_or(0)),
            _ => Probe::Busy,
        })
    }

    async fn mark(&self, key: &K, grace_ms: u64) -> Result<(), PostgresError> {
        let key = key.try_key_bytes()?;
        let client = self.pool.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO {t} AS s VALUES ($1, NULL, false, 1, {NOW} + $2, 0, 0) ON CONFLICT (key) DO UPDATE \
                 SET pending = s.pending + 1, pending_until = greatest(s.pending_until, {NOW} + $2), lease = 0",
                t = self.table
            ))
            .await?;
        client.execute(&statement, &[&key, &to_sql(grace_ms)]).await?;
        Ok(())
    }

    async fn invalidate(&self, key: &K, settle: bool) -> Result<(), PostgresError> {
        let key = key.try_key_bytes()?;
        let client = self.pool.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO {t} AS s VALUES ($1, NULL, false, 0, 0, 0, 0) ON CONFLICT (key) DO UPDATE \
                 SET value = NULL, absent = false, lease = 0, \
                 pending = CASE WHEN $2::boolean THEN greatest(s.pending - 1, 0) ELSE s.pending END, \
                 pending_until = CASE WHEN $2::boolean AND s.pending <= 1 THEN 0 ELSE s.pending_until END",
                t = self.table
            ))
            .await?;
        client.execute(&statement, &[&key, &settle]).await?;
        Ok(())
    }

    async fn fill(&self, key: &K, value: Option<&V>, token: u64) -> Result<bool, PostgresError> {
        let (key, value) = (key.try_key_bytes()?, value.map(encode).transpose()?);
        let client = self.pool.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "UPDATE {} SET value = $2::text, absent = $2::text IS NULL, lease = 0, pending = 0, pending_until = 0 \
                 WHERE key = $1 AND lease = $3 AND $3 <> 0",
                self.table
            ))
            .await?;
        Ok(client.execute(&statement, &[&key, &value, &to_sql(token)]).await? == 1)
    }

    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, PostgresError> {
        let client = self.pool.client().await?;
        let after_key = crate::store::after_key(after, true);
        let statement = client
            .prepare_cached(&format!(
                "SELECT key FROM {} WHERE pending > 0 AND {after_key} ORDER BY key LIMIT $2",
                self.table
            ))
            .await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(client.query(&statement, &[&after, &limit]).await?.iter().map(|row| row.get(0)).collect())
    }
}

impl<K: ?Sized, V> fmt::Debug for PostgresCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresCache").field("table", &self.table).finish_non_exhaustive()
    }
}
