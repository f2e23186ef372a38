use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::key::MigrationKey;
use crate::store::json::{decode, encode};
use crate::store::postgres::{lock_key, Pooled};
use crate::store::PostgresError;
use crate::store::{from_sql, to_sql};
use crate::versioned::{Change, Filled, Lookup, Page, Scan, ScanSlots, Slot, Source, Target, Versioned};

/// A versioned OLD on PostgreSQL: `(key bytea PRIMARY KEY, value text NOT NULL, version bigint NOT
/// NULL)`, values as JSON, and a sequence `<table>_version_seq` for versions.
///
/// Each write is one statement (a put) or one call of a PL/pgSQL function (`<table>_delete`,
/// `<table>_next_version`) that first takes a transaction-scoped advisory lock on the key and only
/// then draws the version and writes: the lock is held until commit, so writes of one key are
/// versioned in the order they commit — inserts racing deletes included, which a version drawn in
/// an `INSERT`'s `VALUES` would get wrong. `docs/consistency.md` shows how to give an existing table
/// the column and a trigger for writers that do not go through zddm.
pub struct PostgresSource<K: ?Sized, V> {
    pool: Pooled,
    table: String,
    types: PhantomData<fn(&K) -> V>,
}

/// A versioned NEW on PostgreSQL: one row per [`Slot`], `(key bytea PRIMARY KEY, value text,
/// deleted boolean, version bigint, pending integer, pending_until bigint, changed_at bigint)`, on
/// the server's clock. The table leaves room in its pages (`fillfactor = 70`) and has no index but
/// its key, so the updates a write makes stay heap-only (HOT) and lookups do not wade through dead
/// index entries; listing pending keys scans the table. Marks, applies, listing and purging are
/// single statements; `fill`, which must say what it did, is one call of a PL/pgSQL function
/// (`<table>_fill`) that locks the row and runs [`Slot`]'s rule.
pub struct PostgresTarget<K: ?Sized, V> {
    pool: Pooled,
    table: String,
    types: PhantomData<fn(&K) -> V>,
}

/// The server's clock in ms: the transaction's start, the same for every use in one statement.
const NOW: &str = "(extract(epoch from now()) * 1000)::bigint";

impl<K: ?Sized, V> PostgresSource<K, V> {
    /// Connects to `url` with a pool of up to `connections` connections, and creates the table and
    /// its sequence if missing (checking the table's shape if it is not).
    pub async fn connect(url: &str, table: &str, connections: usize) -> Result<Self, PostgresError> {
        let pool = Pooled::new(url, table, connections)?;
        pool.prepare(
            table,
            &format!(
                "CREATE TABLE IF NOT EXISTS {table} (key bytea PRIMARY KEY, value text NOT NULL, version bigint NOT NULL)"
            ),
            &[("key", "bytea"), ("value", "text"), ("version", "bigint")],
            "(key bytea PRIMARY KEY, value text NOT NULL, version bigint NOT NULL)",
            &source_functions(table),
        )
        .await?;
        Ok(PostgresSource { pool, table: table.to_owned(), types: PhantomData })
    }
}

/// The sequence and the three write functions of a source table: lock the key, then version.
fn source_functions(t: &str) -> String {
    let seed = lock_key(t);
    let lock = format!("PERFORM pg_advisory_xact_lock(hashtextextended(encode(k, 'hex'), {seed}))");
    format!(
        "CREATE SEQUENCE IF NOT EXISTS {t}_version_seq; \
         CREATE OR REPLACE FUNCTION {t}_delete(k bytea) RETURNS bigint LANGUAGE plpgsql AS $$ \
         BEGIN \
           {lock}; \
           DELETE FROM {t} WHERE key = k; \
           RETURN nextval('{t}_version_seq'); \
         END $$; \
         CREATE OR REPLACE FUNCTION {t}_next_version(k bytea) RETURNS bigint LANGUAGE plpgsql AS $$ \
         BEGIN \
           {lock}; \
           RETURN nextval('{t}_version_seq'); \
         END $$"
    )
}

impl<K, V> Source<K, V> for PostgresSource<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = PostgresError;

    fn timeout(&self) -> Option<std::time::Duration> {
        Some(self.pool.longest())
    }

    async fn get(&self, key: &K) -> Result<Option<Versioned<V>>, PostgresError> {
        let key = key.try_key_bytes()?;
        let client = self.pool.client().await?;
        let statement =
            client.prepare_cached(&format!("SELECT value, version FROM {} WHERE key = $1", self.table)).await?;
        match client.query_opt(&statement, &[&key]).await? {
            Some(row) => {
                let value = decode(&key, row.get::<_, &str>(0))?;
                Ok(Some(Versioned { value, version: from_sql(row.get(1)) }))
            }
            None => Ok(None),
        }
    }

    async fn put(&self, key: &K, value: &V) -> Result<u64, PostgresError> {
        let (key, value) = (key.try_key_bytes()?, encode(value)?);
        let client = self.pool.client().await?;
        // The lock is taken before the row the insert writes is produced, so the version is drawn
        // under it; an insert's conflict check sees the latest commit, not the statement's snapshot.
        let statement = client
            .prepare_cached(&format!(
                "WITH locked AS (SELECT pg_advisory_xact_lock(hashtextextended(encode($1, 'hex'), {seed}))) \
                 INSERT INTO {t} (key, value, version) SELECT $1, $2, nextval('{t}_version_seq') FROM locked \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version RETURNING version",
                t = self.table,
                seed = lock_key(&self.table)
            ))
            .await?;
        Ok(from_sql(client.query_one(&statement, &[&key, &value]).await?.get(0)))
    }

    async fn delete(&self, key: &K) -> Result<u64, PostgresError> {
        let key = key.try_key_bytes()?;
        let client = self.pool.client().await?;
        let statement = client.prepare_cached(&format!("SELECT {}_delete($1)", self.table)).await?;
        Ok(from_sql(client.query_one(&statement, &[&key]).await?.get(0)))
    }

    async fn next_version(&self, key: &K) -> Result<u64, PostgresError> {
        let key = key.try_key_bytes()?;
        let client = self.pool.client().await?;
        let statement = client.prepare_cached(&format!("SELECT {}_next_version($1)", self.table)).await?;
        Ok(from_sql(client.query_one(&statement, &[&key]).await?.get(0)))
    }
}

/// In canonical key order (`bytea` compares bytewise); a position is the last key's bytes.
impl<K, V> Scan<K, V> for PostgresSource<K, V>
where
    K: MigrationKey + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Versioned<V>>, PostgresError> {
        let limit = limit.max(1);
        let client = self.pool.client().await?;
        let after_key = crate::store::after_key(after, true);
        let statement = client
            .prepare_cached(&format!(
                "SELECT key, value, version FROM {} WHERE {after_key} ORDER BY key LIMIT $2",
                self.table
            ))
            .await?;
        let rows = client.query(&statement, &[&after, &i64::try_from(limit).unwrap_or(i64::MAX)]).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: &[u8] = row.get(0);
            let value = decode(key, row.get::<_, &str>(1))?;
            entries.push((K::from_key_bytes(key)?, Versioned { value, version: from_sql(row.get(2)) }));
        }
        let next = rows.last().filter(|_| entries.len() == limit).map(|row| row.get::<_, Vec<u8>>(0));
        Ok(Page { entries, next })
    }

    /// The planner's estimate (`reltuples`); `None` until the table was analysed.
    async fn estimate(&self) -> Result<Option<u64>, PostgresError> {
        crate::store::postgres::estimate(&self.pool, &self.table).await
    }
}

impl<K: ?Sized, V> PostgresTarget<K, V> {
    /// Connects to `url` with a pool of up to `connections` connections, and creates the table, its
    /// two functions if missing (checking the table's shape if not).
    pub async fn connect(url: &str, table: &str, connections: usize) -> Result<Self, PostgresError> {
        let pool = Pooled::new(url, table, connections)?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (key bytea PRIMARY KEY, value text, deleted boolean NOT NULL, \
               version bigint NOT NULL, pending integer NOT NULL, pending_until bigint NOT NULL, \
               changed_at bigint NOT NULL) WITH (fillfactor = 70)"
        );
        let extra = format!(
            "CREATE OR REPLACE FUNCTION {t}_fill(k bytea, val text, ver bigint, token bigint) RETURNS integer \
             LANGUAGE plpgsql AS $$ \
             DECLARE s {t}%ROWTYPE; now_ms bigint := {NOW}; \
             BEGIN \
               SELECT * INTO s FROM {t} WHERE key = k FOR UPDATE; \
               IF NOT FOUND THEN \
                 IF val IS NULL OR ver <= 0 THEN RETURN 0; END IF; \
                 INSERT INTO {t} VALUES (k, val, false, ver, 0, 0, now_ms) ON CONFLICT (key) DO NOTHING; \
                 IF FOUND THEN RETURN 1; END IF; \
                 SELECT * INTO s FROM {t} WHERE key = k FOR UPDATE; \
               END IF; \
               IF s.pending > 0 THEN \
                 IF token IS NULL OR token <> s.pending_until OR now_ms < s.pending_until THEN RETURN 0; END IF; \
                 UPDATE {t} SET value = val, deleted = val IS NULL, version = greatest(s.version, ver), \
                   pending = 0, pending_until = 0, changed_at = now_ms WHERE key = k; \
                 RETURN 2; \
               END IF; \
               IF val IS NOT NULL AND (ver > s.version \
                   OR (s.value IS NULL AND NOT s.deleted AND ver = s.version AND ver > 0)) THEN \
                 UPDATE {t} SET value = val, deleted = false, version = ver, changed_at = now_ms WHERE key = k; \
                 RETURN 1; \
               END IF; \
               RETURN 0; \
             END $$",
            t = table
        );
        pool.prepare(
            table,
            &create,
            &[
                ("key", "bytea"),
                ("value", "text"),
                ("deleted", "boolean"),
                ("version", "bigint"),
                ("pending", "integer"),
                ("pending_until", "bigint"),
                ("changed_at", "bigint"),
            ],
            "(key bytea PRIMARY KEY, value text, deleted boolean NOT NULL, version bigint NOT NULL, \
             pending integer NOT NULL, pending_until bigint NOT NULL, changed_at bigint NOT NULL)",
            &extra,
        )
        .await?;
        Ok(PostgresTarget { pool, table: table.to_owned(), types: PhantomData })
    }
}

impl<K, V> Target<K, V> for PostgresTarget<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = PostgresError;

    fn timeout(&self) -> Option<std::time::Duration> {
        Some(self.pool.longest())
    }

    async fn lookup(&self, key: &K) -> Result<Lookup<V>, PostgresError> {
        let key = key.try_key_bytes()?;
        let client = self.pool.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT value, deleted, version, pending, pending_until, {NOW} FROM {} WHERE key = $1",
                self.table
            ))
            .await?;
        let Some(row) = client.query_opt(&statement, &[&key]).await? else { return Ok(Lookup::Miss) };
        let slot = Slot {
            value: row.get::<_, Option<String>>(0),
            deleted: row.get(1),
            version: from_sql(row.get(2)),
            pending: u32::try_from(row.get::<_, i32>(3)).unwrap_or(0),
            pending_until: from_sql(row.get(4)),
            changed_at: 0,
        };
        Ok(match slot.lookup(from_sql(row.get(5))) {
            Lookup::Hit(text) => Lookup::Hit(decode(&key, &text)?),
            Lookup::Deleted => Lookup::Deleted,
            Lookup::Miss => Lookup::Miss,
            Lookup::Pending { token, expired } => Lookup::Pending { token, expired },
        })
    }

    async fn mark(&self, key: &K, grace_ms: u64) -> Result<(), PostgresError> {
        let key = key.try_key_bytes()?;
        let client = self.pool.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO {t} AS s VALUES ($1, NULL, false, 0, 1, {NOW} + $2, 0) ON CONFLICT (key) DO UPDATE \
                 SET pending = s.pending + 1, pending_until = greatest(s.pending_until, {NOW} + $2)",
                t = self.table
            ))
            .await?;
        client.execute(&statement, &[&key, &to_sql(grace_ms)]).await?;
        Ok(())
    }

    async fn apply(&self, key: &K, change: Change<&V>, version: u64, settle: bool) -> Result<(), PostgresError> {
        let key = key.try_key_bytes()?;
        let (value, deleted) = match change {
            Change::Put(value) => (Some(encode(value)?), false),
            Change::Delete => (None, true),
            Change::Invalidate => (None, false),
        };
        let client = self.pool.client().await?;
        // One statement, `Slot::apply` in SQL.
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO {t} AS s VALUES ($1, CASE WHEN $4::bigint > 0 THEN $2::text END, \
                   $4::bigint > 0 AND $3::boolean, $4::bigint, 0, 0, CASE WHEN $4::bigint > 0 THEN {NOW} ELSE 0 END) \
                 ON CONFLICT (key) DO UPDATE SET \
                   value = CASE WHEN $4 > s.version THEN $2 ELSE s.value END, \
                   deleted = CASE WHEN $4 > s.version THEN $3 ELSE s.deleted END, \
                   changed_at = CASE WHEN $4 > s.version THEN {NOW} ELSE s.changed_at END, \
                   version = greatest(s.version, $4), \
                   pending = CASE WHEN $5::boolean THEN greatest(s.pending - 1, 0) ELSE s.pending END, \
                   pending_until = CASE WHEN $5::boolean AND s.pending <= 1 THEN 0 ELSE s.pending_until END \
                 ",
                t = self.table
            ))
            .await?;
        client.execute(&statement, &[&key, &value, &deleted, &to_sql(version), &settle]).await?;
        Ok(())
    }

    async fn fill(
        &self,
        key: &K,
        value: Option<&V>,
        version: u64,
        token: Option<u64>,
    ) -> Result<Filled, PostgresError> {
        let (key, value) = (key.try_key_bytes()?, value.map(encode).transpose()?);
        let client = self.pool.client().await?;
        let statement = client.prepare_cached(&format!("SELECT {}_fill($1, $2, $3, $4)", self.table)).await?;
        let token = token.map(to_sql);
        let filled: i32 = client.query_one(&statement, &[&key, &value, &to_sql(version), &token]).await?.get(0);
        Ok(match filled {
            1 => Filled::Copied,
            2 => Filled::Repaired,
            _ => Filled::Refused,
        })
    }

    /// One statement: [`Slot::fill`] without a token, in SQL, for the whole batch; the keys it
    /// took come back.
    async fn fill_many(&self, entries: &[(&K, &V, u64)]) -> Result<Vec<Filled>, PostgresError>
    where
        K: Sync,
        V: Sync,
    {
        let (mut keys, mut values, mut versions) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value, version) in entries {
            keys.push(key.try_key_bytes()?);
            values.push(encode(*value)?);
            versions.push(to_sql(*version));
        }
        let client = self.pool.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO {t} AS s (key, value, deleted, version, pending, pending_until, changed_at) \
                 SELECT k, v, false, ver, 0, 0, {NOW} FROM unnest($1::bytea[], $2::text[], $3::bigint[]) AS u(k, v, ver) \
                 WHERE ver > 0 \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, deleted = false, version = excluded.version, \
                   changed_at = excluded.changed_at \
                 WHERE s.pending = 0 AND (excluded.version > s.version \
                   OR (s.value IS NULL AND NOT s.deleted AND excluded.version = s.version)) \
                 RETURNING key",
                t = self.table
            ))
            .await?;
        let taken: std::collections::HashSet<Vec<u8>> =
            client.query(&statement, &[&keys, &values, &versions]).await?.iter().map(|row| row.get(0)).collect();
        Ok(keys.iter().map(|key| if taken.contains(key) { Filled::Copied } else { Filled::Refused }).collect())
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

    async fn purge(&self, older_than_ms: u64) -> Result<usize, PostgresError> {
        let client = self.pool.client().await?;
        // The SQL form of `Slot::purgeable`.
        let statement = client
            .prepare_cached(&format!(
                "DELETE FROM {} WHERE value IS NULL AND pending = 0 AND changed_at <= {NOW} - $1",
                self.table
            ))
            .await?;
        let purged = client.execute(&statement, &[&to_sql(older_than_ms)]).await?;
        Ok(usize::try_from(purged).unwrap_or(usize::MAX))
    }
}

impl<K, V> ScanSlots<K, V> for PostgresTarget<K, V>
where
    K: MigrationKey + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    async fn scan_slots(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Lookup<V>>, PostgresError> {
        let limit = limit.max(1);
        let client = self.pool.client().await?;
        let after_key = crate::store::after_key(after, true);
        let statement = client
            .prepare_cached(&format!(
                "SELECT key, value, deleted, version, pending, pending_until, {NOW} FROM {} \
                 WHERE {after_key} ORDER BY key LIMIT $2",
                self.table
            ))
            .await?;
        let rows = client.query(&statement, &[&after, &i64::try_from(limit).unwrap_or(i64::MAX)]).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: &[u8] = row.get(0);
            let slot = Slot {
                value: row.get::<_, Option<String>>(1),
                deleted: row.get(2),
                version: from_sql(row.get(3)),
                pending: u32::try_from(row.get::<_, i32>(4)).unwrap_or(0),
                pending_until: from_sql(row.get(5)),
                changed_at: 0,
            };
            let found = slot.lookup(from_sql(row.get(6))).try_map(|text| decode(key, &text))?;
            entries.push((K::from_key_bytes(key)?, found));
        }
        let next = rows.last().filter(|_| entries.len() == limit).map(|row| row.get::<_, Vec<u8>>(0));
        Ok(Page { entries, next })
    }
}

impl<K: ?Sized, V> fmt::Debug for PostgresSource<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSource")
            .field("server", &self.pool.target())
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl<K: ?Sized, V> fmt::Debug for PostgresTarget<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("server", &self.pool.target())
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}
