//! A live migration you can watch: orders move from OLD to NEW while two tasks keep reading and
//! writing through the proxy. The gate ramps 0 → 1 → 10 → 50 → 100 %, drops to 20 % and comes back
//! (a ramp-down must never serve stale data); then the migration goes live, a backfill copies the
//! keys nobody read, a verification compares the two stores key by key, and the migration completes.
//!
//! `cargo run --release -p zddm-examples --bin demo` — SQLite to SQLite, embedded, in a temporary
//! directory removed at the end (`--keep` keeps it). `--help` lists the options; with servers of
//! your own, `--features postgres,redis` and `--old postgres://… --new redis://…`.

mod stores;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use zddm::backfill::{Backfill, MemoryCheckpoint};
use zddm::verify::Verify;
use zddm::{Gate, Phase, Proxy, Rate};

use crate::stores::{DemoStore, Location, OrderKey, StoreError};

/// Migrates orders from an OLD store to a NEW one under read and write traffic, and shows each step.
///
/// Without options both stores are SQLite files in a temporary directory (nothing to install), and
/// everything the demo creates is removed at the end unless `--keep` is given.
#[derive(Debug, Parser)]
#[command(name = "demo")]
struct Args {
    /// The OLD store: a postgres://user@host:port/db or redis://host:port/db URL (built with
    /// `--features postgres` / `redis`). Default: an SQLite file.
    // Checked after parsing: clap's own message would repeat the URL, password included.
    #[arg(long, value_name = "URL")]
    old: Option<String>,
    /// The NEW store, likewise.
    #[arg(long, value_name = "URL")]
    new: Option<String>,
    /// How many orders OLD holds at the start.
    #[arg(long, value_name = "N", default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(2..=10_000_000))]
    records: u32,
    /// How long traffic runs at each gate setting, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "1.5", value_parser = seconds)]
    step: Duration,
    /// Keep what the demo created (the SQLite directory, the PostgreSQL tables, the Redis keys).
    #[arg(long)]
    keep: bool,
}

fn seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 3600.0 => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(format!("`{text}` is not a number of seconds between 0 and 3600 (e.g. 1.5)")),
    }
}

/// Why the demo stopped.
enum Failure {
    /// A store could not be opened or failed outside the proxy.
    Store {
        side: &'static str,
        what: String,
        error: Box<StoreError>,
    },
    /// The proxy, a backfill or a verification failed; the message says which store and why.
    Migration(Box<dyn std::error::Error + Send + Sync>),
    /// The migration finished, but NEW does not match OLD or a reader saw stale data.
    Diverged(String),
    /// Standard output was closed (piped into `head`, say): stop quietly.
    ClosedPipe,
    Interrupted,
    Io(std::io::Error),
}

impl Failure {
    fn migration(error: impl std::error::Error + Send + Sync + 'static) -> Failure {
        Failure::Migration(Box::new(error))
    }

    fn report(&self) -> ExitCode {
        let mut message = match self {
            Failure::Store { side, what, error } => format!("the {side} store ({what}) failed: {error}"),
            Failure::Migration(error) => error.to_string(),
            Failure::Diverged(why) => format!("the migration did not converge: {why}"),
            Failure::ClosedPipe => return ExitCode::SUCCESS,
            Failure::Interrupted => return ExitCode::from(130),
            Failure::Io(error) => format!("cannot write the output: {error}"),
        };
        // The whole chain, each cause once.
        let mut source = match self {
            Failure::Store { error, .. } => std::error::Error::source(&**error),
            Failure::Migration(error) => error.source(),
            _ => None,
        };
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        eprintln!("demo: {message}");
        ExitCode::FAILURE
    }
}

/// Lines on standard output; a closed pipe stops the demo instead of panicking.
fn say(line: impl std::fmt::Display) -> Result<(), Failure> {
    writeln!(std::io::stdout().lock(), "{line}").map_err(|error| match error.kind() {
        std::io::ErrorKind::BrokenPipe => Failure::ClosedPipe,
        _ => Failure::Io(error),
    })
}

/// `--old` / `--new`, or the usage error clap would give, in words and without the password.
fn location(given: Option<&str>, option: &str) -> Location {
    match given.map(Location::parse) {
        None => Location::Sqlite,
        Some(Ok(location)) => location,
        Some(Err(why)) => {
            use clap::CommandFactory;
            Args::command().error(clap::error::ErrorKind::ValueValidation, format!("{option}: {why}")).exit()
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (old_at, new_at) = (location(args.old.as_deref(), "--old"), location(args.new.as_deref(), "--new"));
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return Failure::Io(error).report(),
    };
    let outcome = runtime.block_on(async {
        let dir = tempfile::Builder::new().prefix("zddm-demo-").tempdir().map_err(Failure::Io)?;
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        let run_name = format!("zddm_demo_{stamp}");
        let describe = |location: &Location, role: &str| match location {
            Location::Sqlite => format!("SQLite {}", dir.path().join(format!("{role}.db")).display()),
            #[cfg(feature = "postgres")]
            Location::Postgres(url) => format!("PostgreSQL {}, table {run_name}_{role}", stores::redact(url)),
            #[cfg(feature = "redis")]
            Location::Redis(url) => format!("Redis {}, keys {run_name}_{role}:…", stores::redact(url)),
        };
        let (old_what, new_what) = (describe(&old_at, "old"), describe(&new_at, "new"));
        let old = DemoStore::open(&old_at, "old", dir.path(), &run_name).await.map_err(|error| Failure::Store {
            side: "OLD",
            what: old_what.clone(),
            error: Box::new(error),
        })?;
        let new = DemoStore::open(&new_at, "new", dir.path(), &run_name).await.map_err(|error| Failure::Store {
            side: "NEW",
            what: new_what.clone(),
            error: Box::new(error),
        })?;
        let (old, new) = (Arc::new(old), Arc::new(new));
        let stop = Arc::new(AtomicBool::new(false));
        let outcome = tokio::select! {
            outcome = run(&args, &old, &new, (&old_what, &new_what), &stop) => outcome,
            _ = tokio::signal::ctrl_c() => Err(Failure::Interrupted),
        };
        // Whatever happened, the traffic stops (the tasks see this at their next call).
        stop.store(true, Ordering::Relaxed);
        let removed = clean_up(&old, &new, args.keep).await;
        let kept = if args.keep {
            Some(dir.keep())
        } else {
            drop(dir);
            None
        };
        match (&outcome, kept) {
            (Err(Failure::ClosedPipe), _) => {}
            (_, Some(path)) => {
                eprintln!("demo: kept {} (and any server tables or keys named {run_name}_…)", path.display())
            }
            (Err(Failure::Interrupted), None) => eprintln!("demo: interrupted; removed what it created"),
            _ => {}
        }
        if let Err(error) = removed {
            eprintln!("demo: could not remove everything it created: {error}");
        }
        outcome
    });
    // A store call may still be running on a worker thread: do not wait for it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

async fn clean_up(old: &DemoStore, new: &DemoStore, keep: bool) -> Result<(), StoreError> {
    if keep {
        return Ok(());
    }
    old.remove_all().await?;
    new.remove_all().await
}

/// Counters the traffic tasks share.
#[derive(Default)]
struct Traffic {
    ops: AtomicU64,
    errors: AtomicU64,
    stale: AtomicU64,
}

impl Traffic {
    fn snapshot(&self) -> [u64; 3] {
        [&self.ops, &self.errors, &self.stale].map(|counter| counter.load(Ordering::Relaxed))
    }
}

fn key(i: u32) -> OrderKey {
    OrderKey { tenant: i % 500, order: format!("ORD-{i:07}") }
}

fn bar(length: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    let style = ProgressStyle::with_template("{msg:>18} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}

async fn run(
    args: &Args,
    old: &Arc<DemoStore>,
    new: &Arc<DemoStore>,
    (old_what, new_what): (&str, &str),
    stop: &Arc<AtomicBool>,
) -> Result<(), Failure> {
    let records = args.records;
    let store_failed = |side: &'static str, what: &str| {
        let what = what.to_owned();
        move |error| Failure::Store { side, what, error: Box::new(error) }
    };

    // 1. OLD holds the application's data before the migration starts.
    let filling = bar(u64::from(records), "filling OLD");
    let started = Instant::now();
    for first in (0..records).step_by(10_000) {
        let rows: Vec<(OrderKey, String)> =
            (first..records.min(first + 10_000)).map(|i| (key(i), format!("order {i}: 1 item, 0 updates"))).collect();
        old.fill(&rows).await.map_err(store_failed("OLD", old_what))?;
        filling.inc(rows.len() as u64);
    }
    filling.finish_and_clear();
    say(format_args!("OLD: {old_what}, {records} orders written in {:.1}s.", started.elapsed().as_secs_f64()))?;
    say(format_args!("NEW: {new_what}, {} orders.", new.count().await.map_err(store_failed("NEW", new_what))?))?;
    say("Two tasks of traffic run through the proxy: 80% reads, 20% writes.\n")?;

    // 2. Traffic, while the gate ramps.
    let proxy = Proxy::new(old.clone(), new.clone(), Gate::new("orders-to-new", Rate::NONE));
    let traffic = Arc::new(Traffic::default());
    let workers: Vec<_> = (0..2u32)
        .map(|worker| tokio::spawn(load(proxy.clone(), worker, records, stop.clone(), traffic.clone())))
        .collect();
    say("gate: the share of keys migrating | NEW keys: what NEW holds at the end of the step (a running")?;
    say("total) | OLD reads: the share of the step's reads OLD answered | ops/s: the step's reads and")?;
    say("writes per second | errors, stale: the step's failed calls and reads older than the reader's own")?;
    say("last write (both must stay 0)\n")?;
    say(format_args!(
        "{:>6}  {:>9}  {:>9}  {:>9}  {:>6}  {:>5}",
        "gate", "NEW keys", "OLD reads", "ops/s", "errors", "stale"
    ))?;
    let steps = ["0%", "1%", "10%", "50%", "100%", "20%", "100%"];
    let ramping = bar(steps.len() as u64, "ramping the gate");
    for step in steps {
        let rate: Rate = step.parse().map_err(Failure::migration)?;
        proxy.gate().set_rate(rate).map_err(Failure::migration)?;
        let (stats_before, before, started) = (proxy.stats(), traffic.snapshot(), Instant::now());
        tokio::time::sleep(args.step).await;
        let window = proxy.stats().since(&stats_before);
        let after = traffic.snapshot();
        let ops_per_second = (after[0] - before[0]) as f64 / started.elapsed().as_secs_f64();
        let held = new.count().await.map_err(store_failed("NEW", new_what))?;
        let row = format!(
            "{step:>6}  {held:>9}  {:>8.1}%  {ops_per_second:>9.0}  {:>6}  {:>5}",
            100.0 * window.old_read_ratio(),
            after[1] - before[1],
            after[2] - before[2],
        );
        ramping.suspend(|| say(row))?;
        ramping.inc(1);
    }
    ramping.finish_and_clear();

    // 3. Live: NEW answers for every key. The keys nobody read are copied, then NEW is verified
    // against OLD key by key, which earns `Complete`.
    proxy.set_phase(Phase::Live).map_err(Failure::migration)?;
    let copying = bar(u64::from(records), "backfill");
    let checkpoint = MemoryCheckpoint::new();
    let copied = Backfill::new(&proxy)
        .run(&checkpoint, tokio::time::sleep, |progress| copying.set_position(progress.scanned))
        .await
        .map_err(Failure::migration)?;
    copying.finish_and_clear();
    say(format_args!(
        "\nbackfill: {} keys scanned, {} copied, {} already in NEW.",
        copied.scanned, copied.copied, copied.newer
    ))?;
    let checking = bar(u64::from(records), "verification");
    let report = Verify::new(&proxy)
        .run(tokio::time::sleep, |report| checking.set_position(report.checked))
        .await
        .map_err(Failure::migration)?;
    checking.finish_and_clear();
    say(format_args!("verification: {report}"))?;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.map_err(|error| Failure::Diverged(format!("a traffic task failed: {error}")))?;
    }
    let [ops, errors, stale] = traffic.snapshot();
    say(format_args!("traffic: {ops} calls, {errors} errors, {stale} stale reads."))?;
    if !report.earns_complete() || errors > 0 || stale > 0 {
        return Err(Failure::Diverged(format!("{report}; {errors} errors, {stale} stale reads")));
    }
    proxy.set_phase(Phase::Complete).map_err(Failure::migration)?;
    let stats = proxy.stats();
    say(format_args!(
        "complete: NEW holds {} orders and answers alone; {} copies into NEW and {} invalidations on the way.",
        new.count().await.map_err(store_failed("NEW", new_what))?,
        stats.backfills,
        stats.invalidations,
    ))
}

/// One task of traffic: reads and writes of its own half of the keys, checking that no read
/// returns a value older than the task's own last write.
async fn load(
    orders: Proxy<OrderKey, String, Arc<DemoStore>, Arc<DemoStore>>,
    worker: u32,
    records: u32,
    stop: Arc<AtomicBool>,
    traffic: Arc<Traffic>,
) {
    let mut written = vec![0u32; records as usize];
    let mut state = 0x9e37_79b9_u64 + u64::from(worker);
    let half = records / 2;
    while !stop.load(Ordering::Relaxed) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let i = ((state % u64::from(half)) as u32) * 2 + worker;
        let failed = if state % 10 < 2 {
            written[i as usize] += 1;
            let value = format!("order {i}: 1 item, {} updates", written[i as usize]);
            orders.put(&key(i), &value).await.is_err()
        } else {
            match orders.get(&key(i)).await {
                Ok(value) => {
                    let seen = value.and_then(|v| v.rsplit(", ").next()?.split(' ').next()?.parse().ok());
                    if seen < Some(written[i as usize]) {
                        traffic.stale.fetch_add(1, Ordering::Relaxed);
                    }
                    false
                }
                Err(_) => true,
            }
        };
        traffic.ops.fetch_add(1, Ordering::Relaxed);
        if failed {
            traffic.errors.fetch_add(1, Ordering::Relaxed);
        }
        // Lets the runtime stop this task (and shut down) whatever the stores do.
        tokio::task::yield_now().await;
    }
}
