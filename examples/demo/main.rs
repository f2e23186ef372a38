//! A live migration: 200,000 order records move from OLD to NEW while two load tasks keep reading and
//! writing through the proxy. The gate ramps 0 → 1 → 10 → 50 → 100 %, drops to 20 % and comes back
//! (a ramp-down must never serve stale data), then a final pass reads everything and a verification
//! compares the two stores key by key.
//!
//! `cargo run --release --example demo` — SQLite to SQLite, embedded, in a temporary directory that is
//! removed at the end.
//!
//! `cargo run --release --example demo -- --old postgres://user@host/db --new redis://host/0` —
//! PostgreSQL to Redis, into a table and key prefix named for this run (`zddm_demo_<time>`), which
//! are left in place.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zddm::{Blocking, BoxError, Gate, MigrationKey, PostgresStore, Proxy, Rate, RedisStore, SqliteStore, Store};

#[derive(MigrationKey, Clone, Debug)]
struct OrderKey {
    tenant: u32,
    order: String,
}

const RECORDS: u32 = 200_000;
const STEP: Duration = Duration::from_millis(1_500);

fn key(i: u32) -> OrderKey {
    OrderKey { tenant: i % 500, order: format!("ORD-{i:07}") }
}

/// What the demo needs of a store beyond `Store`: filling it, counting it, and paging through it
/// in key order for the verification.
trait Table: Store<OrderKey, String> + 'static {
    async fn fill(&self, rows: &[(OrderKey, String)]) -> Result<(), BoxError>;
    async fn count(&self) -> Result<usize, BoxError>;
    async fn page(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, String)>, BoxError>;
}

type Sqlite = Blocking<Arc<SqliteStore<OrderKey, String>>>;

impl Table for Sqlite {
    async fn fill(&self, rows: &[(OrderKey, String)]) -> Result<(), BoxError> {
        Ok(self.0.put_many(&rows.iter().map(|(k, v)| (k, v)).collect::<Vec<_>>())?)
    }
    async fn count(&self) -> Result<usize, BoxError> {
        Ok(self.0.len()?)
    }
    async fn page(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, String)>, BoxError> {
        Ok(self.0.scan(after, limit)?)
    }
}

/// The server stores fill, count and page with their own (async) methods.
macro_rules! server_table {
    ($($store:ident),*) => {$(
        impl Table for $store<OrderKey, String> {
            async fn fill(&self, rows: &[(OrderKey, String)]) -> Result<(), BoxError> {
                Ok(self.put_many(&rows.iter().map(|(k, v)| (k, v)).collect::<Vec<_>>()).await?)
            }
            async fn count(&self) -> Result<usize, BoxError> {
                Ok(self.len().await?)
            }
            async fn page(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, String)>, BoxError> {
                Ok(self.scan(after, limit).await?)
            }
        }
    )*};
}

server_table!(PostgresStore, RedisStore);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|arg| arg == name).and_then(|i| args.get(i + 1)).cloned();
    match (flag("--old"), flag("--new")) {
        (None, None) => {
            let dir = tempfile::tempdir()?;
            let open = |name: &str| -> Result<Sqlite, BoxError> {
                let connection = demo_connection(&dir.path().join(name))?;
                Ok(Blocking(Arc::new(SqliteStore::with_connection(connection, "orders")?)))
            };
            let (old, new) = (open("old.db")?, open("new.db")?);
            let labels = (format!("SQLite {}", dir.path().join("old.db").display()), "SQLite new.db".to_owned());
            run(Arc::new(old), Arc::new(new), labels).await
        }
        (Some(old_url), Some(new_url)) => {
            let name = format!("zddm_demo_{}", SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs());
            let old = PostgresStore::connect(&old_url, &name, 4).await?;
            let new = RedisStore::connect(&new_url, &name).await?;
            let labels = (format!("PostgreSQL table {name}"), format!("Redis prefix {name}"));
            run(Arc::new(old), Arc::new(new), labels).await
        }
        _ => Err("give both --old postgres://… and --new redis://…, or neither for the SQLite demo".into()),
    }
}

async fn run<O: Table, N: Table>(old: Arc<O>, new: Arc<N>, labels: (String, String)) -> Result<(), BoxError> {
    let started = Instant::now();
    let keys: Vec<u32> = (0..RECORDS).collect();
    for chunk in keys.chunks(10_000) {
        let rows: Vec<(OrderKey, String)> =
            chunk.iter().map(|&i| (key(i), format!("order {i}: 1 item, 0 updates"))).collect();
        old.fill(&rows).await?;
    }
    println!(
        "OLD ({}) holds {} orders, written in {:.1}s; NEW ({}) holds {}.",
        labels.0,
        old.count().await?,
        started.elapsed().as_secs_f64(),
        labels.1,
        new.count().await?,
    );
    println!("Two tasks of traffic run through the proxy: 80% reads, 20% writes.\n");
    let proxy = Proxy::new(old.clone(), new.clone(), Gate::new("orders-to-new", Rate::NONE));

    let stop = Arc::new(AtomicBool::new(false));
    let (ops, errors, stale) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..2u32)
        .map(|worker| {
            let (orders, stop, ops, errors, stale) =
                (proxy.clone(), stop.clone(), ops.clone(), errors.clone(), stale.clone());
            tokio::spawn(async move {
                // Each worker owns every other key for writes, so it knows the latest value it wrote
                // and can check that no read ever returns an older one.
                let mut written = vec![0u32; RECORDS as usize];
                let mut state = 0x9e37_79b9_u64 + u64::from(worker);
                while !stop.load(Ordering::Relaxed) {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let i = ((state % u64::from(RECORDS / 2)) as u32) * 2 + worker;
                    let failed = if state % 10 < 2 {
                        written[i as usize] += 1;
                        let value = format!("order {i}: 1 item, {} updates", written[i as usize]);
                        orders.put(&key(i), &value).await.is_err()
                    } else {
                        match orders.get(&key(i)).await {
                            Ok(value) => {
                                let seen = value.and_then(|v| v.rsplit(", ").next()?.split(' ').next()?.parse().ok());
                                if seen < Some(written[i as usize]) {
                                    stale.fetch_add(1, Ordering::Relaxed);
                                }
                                false
                            }
                            Err(_) => true,
                        }
                    };
                    ops.fetch_add(1, Ordering::Relaxed);
                    if failed {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    println!("{:>8}  {:>9}  {:>9}  {:>9}  {:>6}  {:>5}", "gate", "NEW keys", "OLD reads", "ops/s", "errors", "stale");
    for step in ["0%", "1%", "10%", "50%", "100%", "20%", "100%"] {
        proxy.gate().set_rate(step.parse()?);
        let (before, ops_before, started) = (proxy.stats(), ops.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(STEP).await;
        let window = proxy.stats().since(&before);
        let rate = (ops.load(Ordering::Relaxed) - ops_before) as f64 / started.elapsed().as_secs_f64();
        println!(
            "{:>8}  {:>9}  {:>8.1}%  {:>9.0}  {:>6}  {:>5}",
            step,
            new.count().await?,
            100.0 * window.old_read_ratio(),
            rate,
            errors.load(Ordering::Relaxed),
            stale.load(Ordering::Relaxed),
        );
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await?;
    }

    // Read everything once: the keys nobody touched are copied now (a backfill would do this).
    for i in 0..RECORDS {
        proxy.get(&key(i)).await?;
    }
    let before = proxy.stats();
    for i in 0..RECORDS {
        proxy.get(&key(i)).await?;
    }
    let last_pass = proxy.stats().since(&before);

    // Verification: both stores, page by page in key order, must hold the same entries.
    let (mut compared, mut differing, mut after) = (0usize, 0usize, None::<Vec<u8>>);
    loop {
        let (old_page, new_page) = (old.page(after.as_deref(), 5_000).await?, new.page(after.as_deref(), 5_000).await?);
        if old_page.is_empty() && new_page.is_empty() {
            break;
        }
        differing += old_page.iter().zip(&new_page).filter(|(a, b)| a != b).count();
        differing += old_page.len().abs_diff(new_page.len());
        compared += old_page.len().max(new_page.len());
        after = old_page.last().max(new_page.last()).map(|(k, _)| k.clone());
    }
    let agree = differing == 0;
    println!(
        "\nfinal pass: {} reads, {:.1}% from OLD. verification: {} keys compared, OLD {} / NEW {} keys, {}.",
        last_pass.reads_from_old + last_pass.reads_from_new,
        100.0 * last_pass.old_read_ratio(),
        compared,
        old.count().await?,
        new.count().await?,
        if agree { "identical".to_string() } else { format!("{differing} DIFFERENT") }
    );
    let stats = proxy.stats();
    println!(
        "totals: {} copies into NEW, {} invalidations, {} stale reads, {} errors.",
        stats.backfills,
        stats.invalidations,
        stale.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
    if !agree || stale.load(Ordering::Relaxed) > 0 || errors.load(Ordering::Relaxed) > 0 {
        return Err("the migration did not converge".into());
    }
    Ok(())
}

/// `SqliteStore::open` keeps SQLite's fully synchronous default (an fsync per write). A demo on a
/// throwaway database trades that for speed, as an application may: WAL with `synchronous=NORMAL`
/// stays consistent and loses at most the last commits on a power cut.
fn demo_connection(path: &std::path::Path) -> Result<rusqlite::Connection, rusqlite::Error> {
    let connection = rusqlite::Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.busy_timeout(Duration::from_secs(5))?;
    Ok(connection)
}
