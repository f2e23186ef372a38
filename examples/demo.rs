//! A live migration on the embedded default: 200,000 order records move from one SQLite database to
//! another while two load threads keep reading and writing through the proxy. The gate ramps
//! 0 → 1 → 10 → 50 → 100 %, drops to 20 % and comes back (a ramp-down must never serve stale data),
//! then a final pass reads everything and a verification compares the two databases key by key.
//! The databases live in a temporary directory that is removed at the end; nothing keeps running.
//!
//! `cargo run --release --example demo`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zddm::{Blocking, Gate, MigrationKey, Proxy, Rate, SqliteStore};

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

type Orders = Arc<SqliteStore<OrderKey, String>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let old: Orders = Arc::new(SqliteStore::with_connection(demo_connection(&dir.path().join("old.db"))?, "orders")?);
    let new: Orders = Arc::new(SqliteStore::with_connection(demo_connection(&dir.path().join("new.db"))?, "orders")?);
    let started = Instant::now();
    for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(10_000) {
        let rows: Vec<(OrderKey, String)> =
            chunk.iter().map(|&i| (key(i), format!("order {i}: 1 item, 0 updates"))).collect();
        old.put_many(&rows.iter().map(|(k, v)| (k, v)).collect::<Vec<_>>())?;
    }
    println!(
        "OLD ({}) holds {} orders, written in {:.1}s; NEW ({}) is empty.",
        dir.path().join("old.db").display(),
        old.len()?,
        started.elapsed().as_secs_f64(),
        dir.path().join("new.db").display(),
    );
    println!("Two threads of traffic run through the proxy: 80% reads, 20% writes.\n");
    let proxy = Proxy::new(Blocking(old.clone()), Blocking(new.clone()), Gate::new("orders-to-new", Rate::NONE));

    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stale = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..2u32)
        .map(|worker| {
            let (orders, stop, ops, errors, stale) =
                (proxy.blocking(), stop.clone(), ops.clone(), errors.clone(), stale.clone());
            std::thread::spawn(move || {
                // Each worker owns every other key for writes, so it knows the latest value it wrote
                // and can check that no read ever returns an older one.
                let mut written = vec![0u32; RECORDS as usize];
                let mut state = 0x9e37_79b9_u64 + u64::from(worker);
                while !stop.load(Ordering::Relaxed) {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let i = ((state % u64::from(RECORDS / 2)) as u32) * 2 + worker;
                    let result = if state % 10 < 2 {
                        written[i as usize] += 1;
                        orders.put(&key(i), &format!("order {i}: 1 item, {} updates", written[i as usize]))
                    } else {
                        orders.get(&key(i)).map(|value| {
                            let seen = value.and_then(|v| v.rsplit(", ").next()?.split(' ').next()?.parse().ok());
                            if seen < Some(written[i as usize]) {
                                stale.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                    };
                    ops.fetch_add(1, Ordering::Relaxed);
                    if result.is_err() {
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
        std::thread::sleep(STEP);
        let window = proxy.stats().since(&before);
        let rate = (ops.load(Ordering::Relaxed) - ops_before) as f64 / started.elapsed().as_secs_f64();
        println!(
            "{:>8}  {:>9}  {:>8.1}%  {:>9.0}  {:>6}  {:>5}",
            step,
            new.len()?,
            100.0 * window.old_read_ratio(),
            rate,
            errors.load(Ordering::Relaxed),
            stale.load(Ordering::Relaxed),
        );
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().map_err(|_| "a load thread panicked")?;
    }

    // Read everything once: the keys nobody touched are copied now (a backfill would do this).
    let orders = proxy.blocking();
    for i in 0..RECORDS {
        orders.get(&key(i))?;
    }
    let before = proxy.stats();
    for i in 0..RECORDS {
        orders.get(&key(i))?;
    }
    let last_pass = proxy.stats().since(&before);

    // Verification: both databases, page by page in key order, must hold the same entries.
    let (mut compared, mut differing, mut after) = (0usize, 0usize, None::<Vec<u8>>);
    loop {
        let (old_page, new_page) = (old.scan(after.as_deref(), 5_000)?, new.scan(after.as_deref(), 5_000)?);
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
        old.len()?,
        new.len()?,
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
