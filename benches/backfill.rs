//! What a backfill costs against the practical limit, a hand-written batched copy between the same
//! stores (read OLD in key order a batch at a time, write the batch in one statement or
//! transaction); how its memory grows with the key space; and what a second worker adds where the
//! stores are not the bottleneck.
//!
//! `cargo bench --bench backfill`. Under `cargo test` it runs each part once on a few keys, as a
//! check that it works.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zddm::backfill::{Backfill, MemoryCheckpoint, PostgresRanges};
use zddm::versioned::{
    Change, Filled, Lookup, MemorySource, MemoryTarget, Page, PostgresSource, PostgresTarget, Scan, Source,
    SqliteSource, SqliteTarget, Target, Versioned, VersionedProxy,
};
use zddm::{Gate, MigrationKey, Phase, Rate};
use zddm_suite::paired::median;
use zddm_suite::servers::PostgresServer;

/// Counts the heap in use, and its peak since the last reset.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The heap's peak above what was in use when `body` began.
fn peak_during<T>(body: impl FnOnce() -> T) -> (T, usize) {
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = body();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

const BATCH: usize = 500;

/// A value kept as its JSON text: what a copy that does not know the value's type moves (the
/// stores validate it, nothing is rebuilt).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct Json(Box<serde_json::value::RawValue>);

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

/// An application's value: a row of three columns, as its JSON object.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Order {
    order: u64,
    customer: String,
    total_cents: u64,
}

/// OLD's value of `key`, as its JSON text.
fn value(key: u64) -> String {
    format!("{{\"order\":{key},\"customer\":\"c-{}\",\"total_cents\":{}}}", key % 977, key * 37 % 100_000)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// OLD with `keys` orders, written straight into the table in one transaction.
fn seed_sqlite(path: &std::path::Path, keys: u64) {
    drop(SqliteSource::<u64, String>::open(path, "orders").unwrap());
    let mut connection = rusqlite::Connection::open(path).unwrap();
    let transaction = connection.transaction().unwrap();
    {
        let mut insert = transaction.prepare("INSERT INTO orders VALUES (?1, ?2, ?3)").unwrap();
        for key in 0..keys {
            insert.execute(rusqlite::params![key.key_bytes(), value(key), key as i64 + 1]).unwrap();
        }
    }
    transaction.commit().unwrap();
}

/// The limit: OLD read in key order a batch at a time, each batch written into the same NEW table
/// in one transaction, by hand.
fn copy_sqlite(old: &std::path::Path, new: &std::path::Path) -> u64 {
    drop(SqliteTarget::<u64, String>::open(new, "orders").unwrap());
    let source = rusqlite::Connection::open(old).unwrap();
    let mut target = rusqlite::Connection::open(new).unwrap();
    let mut first = source.prepare("SELECT key, value, version FROM orders ORDER BY key LIMIT ?1").unwrap();
    let mut next =
        source.prepare("SELECT key, value, version FROM orders WHERE key > ?1 ORDER BY key LIMIT ?2").unwrap();
    let (mut after, mut copied): (Option<Vec<u8>>, u64) = (None, 0);
    loop {
        let row = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?, row.get(2)?));
        let rows: Vec<(Vec<u8>, String, i64)> = match &after {
            None => first.query_map(rusqlite::params![BATCH as i64], row),
            Some(after) => next.query_map(rusqlite::params![after, BATCH as i64], row),
        }
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
        let transaction = target.transaction().unwrap();
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO orders VALUES (?1, ?2, 0, ?3, 0, 0, 0) ON CONFLICT(key) DO UPDATE \
                     SET value = excluded.value, version = excluded.version WHERE excluded.version > orders.version",
                )
                .unwrap();
            for (key, text, version) in &rows {
                insert.execute(rusqlite::params![key, text, version]).unwrap();
            }
        }
        transaction.commit().unwrap();
        copied += rows.len() as u64;
        if rows.len() < BATCH {
            return copied;
        }
        after = rows.last().map(|row| row.0.clone());
    }
}

fn backfill_sqlite<V>(old: &std::path::Path, new: &std::path::Path, on: &tokio::runtime::Runtime) -> u64
where
    V: serde::Serialize + serde::de::DeserializeOwned + Clone + PartialEq + Send + Sync,
{
    let source = SqliteSource::<u64, V>::open(old, "orders").unwrap();
    let target = SqliteTarget::<u64, V>::open(new, "orders").unwrap();
    let proxy = VersionedProxy::new(source, target, Gate::new("bench", Rate::ALL));
    proxy.set_phase(Phase::Live).unwrap();
    let backfill = Backfill::new(&proxy).batch(BATCH);
    on.block_on(backfill.run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {})).unwrap().copied
}

async fn seed_postgres(url: &str, table: &str, keys: u64) {
    let old = PostgresSource::<u64, String>::connect(url, table, 1).await.unwrap();
    drop(old);
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    for chunk in (0..keys).collect::<Vec<_>>().chunks(10_000) {
        let keys: Vec<Vec<u8>> = chunk.iter().map(|k| k.key_bytes()).collect();
        let values: Vec<String> = chunk.iter().map(|k| value(*k)).collect();
        let versions: Vec<i64> = chunk.iter().map(|k| *k as i64 + 1).collect();
        client
            .execute(
                &format!("INSERT INTO {table} SELECT * FROM unnest($1::bytea[], $2::text[], $3::bigint[])"),
                &[&keys, &values, &versions],
            )
            .await
            .unwrap();
    }
    client.execute(&format!("SELECT setval('{table}_version_seq', $1)"), &[&(keys as i64 + 1)]).await.unwrap();
    client.execute(&format!("ANALYZE {table}"), &[]).await.unwrap();
}

/// The limit on PostgreSQL: a batch read in key order, written into the same NEW table with one
/// `INSERT … SELECT unnest`, by hand.
async fn copy_postgres(url: &str, old: &str, new: &str) -> u64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute(&format!("DROP TABLE IF EXISTS {new}")).await.unwrap();
    drop(PostgresTarget::<u64, String>::connect(url, new, 1).await.unwrap());
    let first = client.prepare(&format!("SELECT key, value, version FROM {old} ORDER BY key LIMIT $1")).await.unwrap();
    let next = client
        .prepare(&format!("SELECT key, value, version FROM {old} WHERE key > $1 ORDER BY key LIMIT $2"))
        .await
        .unwrap();
    let write = client
        .prepare(&format!(
            "INSERT INTO {new} SELECT k, v, false, ver, 0, 0, 0 FROM unnest($1::bytea[], $2::text[], $3::bigint[]) \
             AS u(k, v, ver) ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version \
             WHERE excluded.version > {new}.version"
        ))
        .await
        .unwrap();
    let (mut after, mut copied): (Option<Vec<u8>>, u64) = (None, 0);
    loop {
        let rows = match &after {
            None => client.query(&first, &[&(BATCH as i64)]).await.unwrap(),
            Some(after) => client.query(&next, &[after, &(BATCH as i64)]).await.unwrap(),
        };
        let keys: Vec<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
        let values: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
        let versions: Vec<i64> = rows.iter().map(|r| r.get(2)).collect();
        client.execute(&write, &[&keys, &values, &versions]).await.unwrap();
        copied += rows.len() as u64;
        if rows.len() < BATCH {
            return copied;
        }
        after = keys.last().cloned();
    }
}

async fn backfill_postgres<V>(url: &str, old: &str, new: &str) -> u64
where
    V: serde::Serialize + serde::de::DeserializeOwned + Clone + PartialEq + Send + Sync,
{
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute(&format!("DROP TABLE IF EXISTS {new}")).await.unwrap();
    let source = PostgresSource::<u64, V>::connect(url, old, 1).await.unwrap();
    let target = PostgresTarget::<u64, V>::connect(url, new, 1).await.unwrap();
    let proxy = VersionedProxy::new(source, target, Gate::new("bench", Rate::ALL));
    proxy.set_phase(Phase::Live).unwrap();
    let backfill = Backfill::new(&proxy).batch(BATCH);
    backfill.run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {}).await.unwrap().copied
}

/// Memory stores behind a fixed delay per call: a store far away, not a busy one.
struct Far<S>(S, Duration);

impl<S: Source<u64, String>> Source<u64, String> for Far<S> {
    type Error = S::Error;
    async fn get(&self, key: &u64) -> Result<Option<Versioned<String>>, S::Error> {
        tokio::time::sleep(self.1).await;
        self.0.get(key).await
    }
    async fn put(&self, key: &u64, value: &String) -> Result<u64, S::Error> {
        self.0.put(key, value).await
    }
    async fn delete(&self, key: &u64) -> Result<u64, S::Error> {
        self.0.delete(key).await
    }
    async fn next_version(&self, key: &u64) -> Result<u64, S::Error> {
        self.0.next_version(key).await
    }
}

impl<S: Scan<u64, String>> Scan<u64, String> for Far<S> {
    async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<u64, Versioned<String>>, S::Error> {
        tokio::time::sleep(self.1).await;
        self.0.scan(after, limit).await
    }
    async fn estimate(&self) -> Result<Option<u64>, S::Error> {
        self.0.estimate().await
    }
}

impl<T: Target<u64, String>> Target<u64, String> for Far<T> {
    type Error = T::Error;
    async fn lookup(&self, key: &u64) -> Result<Lookup<String>, T::Error> {
        self.0.lookup(key).await
    }
    async fn mark(&self, key: &u64, grace_ms: u64) -> Result<(), T::Error> {
        self.0.mark(key, grace_ms).await
    }
    async fn apply(&self, key: &u64, change: Change<&String>, version: u64, settle: bool) -> Result<(), T::Error> {
        self.0.apply(key, change, version, settle).await
    }
    async fn fill(
        &self,
        key: &u64,
        value: Option<&String>,
        version: u64,
        token: Option<u64>,
    ) -> Result<Filled, T::Error> {
        self.0.fill(key, value, version, token).await
    }
    async fn fill_many(&self, entries: &[(&u64, &String, u64)]) -> Result<Vec<Filled>, T::Error> {
        tokio::time::sleep(self.1).await;
        self.0.fill_many(entries).await
    }
    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, T::Error> {
        self.0.pending_keys(after, limit).await
    }
    async fn purge(&self, older_than_ms: u64) -> Result<usize, T::Error> {
        self.0.purge(older_than_ms).await
    }
}

/// `workers` workers over the same far stores, ranges handed out by PostgreSQL; the wall time.
async fn workers(url: &str, pass: &str, keys: u64, workers: usize) -> Duration {
    let old = Arc::new(MemorySource::<u64, String>::new());
    for key in 0..keys {
        old.put(&key, &value(key)).await.unwrap();
    }
    let new = Arc::new(MemoryTarget::<u64, String>::new());
    let delay = Duration::from_millis(2);
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (old, new, url, pass) = (old.clone(), new.clone(), url.to_owned(), pass.to_owned());
            tokio::spawn(async move {
                let proxy = VersionedProxy::new(Far(old, delay), Far(new, delay), Gate::new("bench", Rate::ALL));
                proxy.set_phase(Phase::Live).unwrap();
                let ranges = PostgresRanges::connect(&url, &pass).await.unwrap();
                Backfill::new(&proxy)
                    .batch(100)
                    .work(&ranges, 16, Duration::from_millis(5), tokio::time::sleep, |_, _| {})
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(new.values().len() as u64, keys);
    elapsed
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let (keys, rounds) = if full { (100_000u64, 5) } else { (300, 1) };
    let on = runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);

    // SQLite → SQLite: the limit, then the backfill with typed values and with raw JSON.
    seed_sqlite(&path("old.db"), keys);
    let mut sqlite = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        for i in 0..3 {
            // A different order every round, so drift does not favour one side.
            let which = (i + round) % 3;
            let file = path(&format!("new{round}-{which}.db"));
            let started = Instant::now();
            let copied = match which {
                0 => copy_sqlite(&path("old.db"), &file),
                1 => backfill_sqlite::<Order>(&path("old.db"), &file, &on),
                _ => backfill_sqlite::<Json>(&path("old.db"), &file, &on),
            };
            assert_eq!(copied, keys);
            sqlite[which].push(started.elapsed().as_secs_f64());
        }
    }

    // PostgreSQL → PostgreSQL, the same three.
    let server = PostgresServer::start();
    let url = server.url();
    on.block_on(seed_postgres(&url, "old_orders", keys));
    let mut pg = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        for i in 0..3 {
            let which = (i + round) % 3;
            let started = Instant::now();
            let copied = on.block_on(async {
                match which {
                    0 => copy_postgres(&url, "old_orders", "new_orders").await,
                    1 => backfill_postgres::<Order>(&url, "old_orders", "new_orders").await,
                    _ => backfill_postgres::<Json>(&url, "old_orders", "new_orders").await,
                }
            });
            assert_eq!(copied, keys);
            pg[which].push(started.elapsed().as_secs_f64());
        }
    }

    // Memory: the heap's peak during a backfill of N and of 10 N keys (SQLite files, so the stores
    // hold nothing in the process).
    let small = if full { 100_000 } else { 200 };
    seed_sqlite(&path("small.db"), small);
    seed_sqlite(&path("large.db"), small * 10);
    let (_, peak_small) = peak_during(|| backfill_sqlite::<Order>(&path("small.db"), &path("small-new.db"), &on));
    let (_, peak_large) = peak_during(|| backfill_sqlite::<Order>(&path("large.db"), &path("large-new.db"), &on));

    // Two workers against one, over stores 2 ms away.
    let spread = if full { 20_000 } else { 200 };
    let one = on.block_on(workers(&url, "one", spread, 1));
    let two = on.block_on(workers(&url, "two", spread, 2));

    if !full {
        println!("backfill: smoke run done; `cargo bench --bench backfill` measures");
        return;
    }
    let rate = |times: &[f64]| keys as f64 / median(times);
    println!("{keys} keys, {rounds} rounds each, medians; batches of {BATCH}\n");
    println!("| copy | hand-written batched copy (the limit) | backfill, typed values | backfill, raw JSON values |");
    println!("|---|---|---|---|");
    for (name, times) in [("SQLite → SQLite", &sqlite), ("PostgreSQL → PostgreSQL", &pg)] {
        let limit = median(&times[0]);
        println!(
            "| {name} | {:.0} keys/s | {:.0} keys/s (**{:.2}×**) | {:.0} keys/s (**{:.2}×**) |",
            rate(&times[0]),
            rate(&times[1]),
            limit / median(&times[1]),
            rate(&times[2]),
            limit / median(&times[2])
        );
    }
    println!();
    println!(
        "heap peak during a backfill: {small} keys {:.1} KiB, {} keys {:.1} KiB: **{:.2}×**",
        peak_small as f64 / 1024.0,
        small * 10,
        peak_large as f64 / 1024.0,
        peak_large as f64 / peak_small as f64
    );
    println!(
        "{spread} keys over stores 2 ms away, 16 ranges: one worker {:.2} s, two workers {:.2} s: **{:.2}×**",
        one.as_secs_f64(),
        two.as_secs_f64(),
        one.as_secs_f64() / two.as_secs_f64()
    );
}
