//! `backfill` and `verify`: passes over OLD and NEW, with a progress bar.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use zddm::backfill::{Backfill, FileCheckpoint, PostgresRanges};
use zddm::fleet::{record_verification, Control};
use zddm::verify::Verify;
use zddm::versioned::{Scan, ScanSlots, Target, VersionedProxy};
use zddm::{Gate, Phase, Rate, RawKey};

use crate::fail::{say, Failure};
use crate::json::Json;
use crate::open::{self, with_control, with_stores, New, Old, Url};

/// OLD, NEW and where the fleet stands.
#[derive(Debug, Args)]
pub struct Stores {
    /// OLD: sqlite:PATH, postgres://… or redis://… (zddm's versioned source; on PostgreSQL and
    /// SQLite, any table with --key-columns).
    #[arg(long, value_name = "URL")]
    old: String,
    /// NEW: sqlite:PATH, postgres://… or redis://… (zddm's versioned target).
    #[arg(long, value_name = "URL")]
    new: String,
    /// The table (on Redis: the key prefix), on both sides unless --new-table says otherwise.
    #[arg(long, value_name = "NAME")]
    table: String,
    /// NEW's table, if it is not named as OLD's.
    #[arg(long, value_name = "NAME")]
    new_table: Option<String>,
    /// OLD is an existing PostgreSQL or SQLite table of any schema: these columns (comma-separated,
    /// in key order) make the key, the rest of the row (a JSON object) the value.
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',', requires = "version_column")]
    key_columns: Vec<String>,
    /// The existing table's version column, which its writers bump from a sequence (PostgreSQL) or
    /// from the table's row in zddm_versions (SQLite).
    #[arg(long, value_name = "COLUMN", requires = "key_columns")]
    version_column: Option<String>,
    /// PostgreSQL: the sequence the versions come from (default TABLE_COLUMN_seq).
    #[arg(long, value_name = "NAME", requires = "key_columns")]
    version_sequence: Option<String>,
    /// The fleet's control record (sqlite:PATH, postgres://…, redis://…); the fleet must be in live.
    #[arg(long, value_name = "URL", requires = "fleet", conflicts_with = "live")]
    control: Option<String>,
    /// The fleet's name in the control store.
    #[arg(long, value_name = "NAME", requires = "control")]
    fleet: Option<String>,
    /// No control record: every instance runs in live on its own (the operator says so).
    #[arg(long)]
    live: bool,
    /// Connections per PostgreSQL store.
    #[arg(long, default_value_t = 2, value_name = "N")]
    connections: usize,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    stores: Stores,
    /// Entries per batch, and per checkpoint.
    #[arg(long, default_value_t = 500, value_name = "N")]
    batch: usize,
    /// At most this many entries per second.
    #[arg(long, value_name = "N")]
    rate: Option<f64>,
    /// Where the pass keeps its checkpoint (default: zddm-backfill-TABLE-HASH.checkpoint here, HASH
    /// naming OLD, NEW and the table).
    #[arg(long, value_name = "FILE", conflicts_with = "ranges")]
    checkpoint: Option<PathBuf>,
    /// Work as one of several workers: PostgreSQL hands out ranges of the key space.
    #[arg(long, value_name = "URL")]
    ranges: Option<String>,
    /// How many ranges to split the key space into, when this worker is the first.
    #[arg(long, default_value_t = 16, value_name = "N", requires = "ranges")]
    parts: u32,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    stores: Stores,
    /// Entries per batch on each side.
    #[arg(long, default_value_t = 500, value_name = "N")]
    batch: usize,
    /// Compare only this share of the keys (e.g. 1%): quicker, never enough for complete.
    #[arg(long, value_name = "RATE")]
    sample: Option<String>,
    /// Seconds before a second look at a difference (writes in flight settle meanwhile).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    recheck_after: f64,
    /// Report differences, do not repair them.
    #[arg(long)]
    no_repair: bool,
}

/// The gate's salt and the fleet's epoch, once the fleet is known to be in live.
struct Fleet {
    control: Option<open::Control>,
    salt: String,
    epoch: u64,
}

async fn fleet(stores: &Stores) -> Result<Fleet, Failure> {
    let (Some(url), Some(name)) = (&stores.control, &stores.fleet) else {
        if stores.live {
            return Ok(Fleet { control: None, salt: String::new(), epoch: 0 });
        }
        return Err(Failure::Input(
            "say where the fleet's control record is (--control URL --fleet NAME), or pass --live if every \
             instance runs in live on its own: a pass may copy a key only where every instance writes it through"
                .into(),
        ));
    };
    let control = open::control(&Url::parse(url, "control")?, name).await?;
    let record = with_control!(&control, c => c.load().await.map_err(Failure::store)?);
    if record.plan.phase != Phase::Live {
        return Err(Failure::Input(format!(
            "the fleet {name:?} is in {}, not live: a pass may copy a key only where every instance writes it \
             through; run `zddm phase live --control {url} --fleet {name}` and wait until `zddm status` shows the \
             plan in live",
            record.plan.phase
        )));
    }
    Ok(Fleet { salt: record.salt.clone(), epoch: record.epoch, control: Some(control) })
}

async fn open_stores(stores: &Stores) -> Result<(Old, New), Failure> {
    let columns = stores.version_column.as_deref().map(|version| open::Columns {
        keys: &stores.key_columns,
        version,
        sequence: stores.version_sequence.as_deref(),
    });
    let old = open::old(&Url::parse(&stores.old, "old")?, &stores.table, columns, stores.connections).await?;
    let new_table = stores.new_table.as_deref().unwrap_or(&stores.table);
    let new = open::new(&Url::parse(&stores.new, "new")?, new_table, stores.connections).await?;
    Ok((old, new))
}

fn proxy<O: Scan<RawKey, Json>, N: Target<RawKey, Json>>(
    old: O,
    new: N,
    salt: &str,
) -> Result<VersionedProxy<RawKey, Json, O, N>, Failure> {
    let proxy = VersionedProxy::new(old, new, Gate::new(salt, Rate::ALL));
    proxy.set_phase(Phase::Live).map_err(|error| Failure::Other(Box::new(error)))?;
    Ok(proxy)
}

fn bar(estimate: Option<u64>) -> ProgressBar {
    let bar = match estimate {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::new_spinner(),
    };
    let template = if estimate.is_some() {
        "{spinner} {prefix} [{bar:30}] {pos}/{len} keys, {per_sec}, {eta} left  {msg}"
    } else {
        "{spinner} {prefix} {pos} keys, {per_sec}  {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

pub async fn backfill(args: BackfillArgs) -> Result<ExitCode, Failure> {
    let stores = &args.stores;
    let fleet = fleet(stores).await?;
    let (old, new) = open_stores(stores).await?;
    with_stores!(old, new, o, n => run_backfill(&args, proxy(o, n, &fleet.salt)?).await)
}

async fn run_backfill<O: Scan<RawKey, Json>, N: Target<RawKey, Json>>(
    args: &BackfillArgs,
    proxy: VersionedProxy<RawKey, Json, O, N>,
) -> Result<ExitCode, Failure> {
    let mut backfill = Backfill::new(&proxy).batch(args.batch);
    if let Some(rate) = args.rate {
        backfill = backfill.rate(rate);
    }
    let bar = bar(None);
    bar.set_prefix("backfill");
    if let Some(url) = &args.ranges {
        let Url::Postgres(url) = Url::parse(url, "ranges")? else {
            return Err(Failure::Input("--ranges must be a postgres://… URL: PostgreSQL hands out the ranges".into()));
        };
        let ranges = PostgresRanges::connect(&url, &args.stores.table).await.map_err(Failure::store)?;
        let report = |range: &zddm::backfill::Range, progress: &zddm::backfill::Progress| {
            bar.set_message(format!("range {}: {progress}", range.part));
            bar.inc(0);
        };
        let checkpoints = backfill
            .work(&ranges, args.parts, Duration::from_secs(1), tokio::time::sleep, report)
            .await
            .map_err(Failure::store)?;
        bar.finish_and_clear();
        let scanned: u64 = checkpoints.iter().map(|c| c.scanned).sum();
        let copied: u64 = checkpoints.iter().map(|c| c.copied).sum();
        say!("backfill done: {} ranges, scanned {scanned}, copied {copied} (all workers)", checkpoints.len());
        return Ok(ExitCode::SUCCESS);
    }
    let path = args.checkpoint.clone().unwrap_or_else(|| {
        // Named after the pass, so that another migration run here never resumes this one's.
        let stores = &args.stores;
        let pass = Gate::new("zddm checkpoint", Rate::ALL).bucket(&(&stores.old, &stores.new, &stores.table));
        PathBuf::from(format!("zddm-backfill-{}-{:08x}.checkpoint", stores.table, pass >> 32))
    });
    let checkpoint = FileCheckpoint::new(&path);
    let done = backfill
        .run(&checkpoint, tokio::time::sleep, |progress| {
            if let Some(estimate) = progress.estimate {
                bar.set_length(estimate);
            }
            bar.set_position(progress.scanned);
            bar.set_message(format!("copied {}, newer {}", progress.copied, progress.newer));
        })
        .await
        .map_err(Failure::store)?;
    bar.finish_and_clear();
    say!("backfill done: {done}");
    say!("checkpoint: {} (delete it to run a new pass)", path.display());
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(args: VerifyArgs) -> Result<ExitCode, Failure> {
    let stores = &args.stores;
    let fleet = fleet(stores).await?;
    let (old, new) = open_stores(stores).await?;
    with_stores!(old, new, o, n => run_verify(&args, &fleet, proxy(o, n, &fleet.salt)?).await)
}

async fn run_verify<O: Scan<RawKey, Json>, N: ScanSlots<RawKey, Json>>(
    args: &VerifyArgs,
    fleet: &Fleet,
    proxy: VersionedProxy<RawKey, Json, O, N>,
) -> Result<ExitCode, Failure> {
    if !(args.recheck_after.is_finite() && args.recheck_after >= 0.0) {
        return Err(Failure::Input(format!("--recheck-after {} is not a number of seconds", args.recheck_after)));
    }
    let mut verify = Verify::new(&proxy)
        .batch(args.batch)
        .recheck_after(Duration::from_secs_f64(args.recheck_after))
        .repair(!args.no_repair);
    if let Some(sample) = &args.sample {
        let rate: Rate = sample.parse().map_err(|error| Failure::Input(format!("--sample {sample:?}: {error}")))?;
        verify = verify.sample(rate);
    }
    let bar = bar(None);
    bar.set_prefix("verify");
    let mut report = verify
        .run(tokio::time::sleep, |report| {
            bar.set_position(report.checked);
            bar.set_message(format!(
                "{} missing, {} extra, {} differing, {} in doubt",
                report.missing.count, report.extra.count, report.differs.count, report.in_doubt.count
            ));
        })
        .await
        .map_err(Failure::store)?;
    bar.finish_and_clear();
    say!("verify: {report}");
    for (kind, keys) in [
        ("missing", &report.missing),
        ("extra", &report.extra),
        ("differing", &report.differs),
        ("in doubt", &report.in_doubt),
    ] {
        for key in &keys.examples {
            say!("  {kind}: key {}", RawKey(key.clone()));
        }
    }
    if let (Some(control), Some(name)) = (&fleet.control, &args.stores.fleet) {
        // Counted at the epoch the pass began under, if the fleet is still there.
        report.epoch = fleet.epoch;
        let complete = with_control!(control, c => record_verification(c, &report).await.map_err(Failure::store)?);
        if complete {
            say!("recorded with fleet {name:?}: complete may be set (zddm phase complete)");
        } else if report.clean() && report.earns_complete() {
            say!("not recorded: the fleet moved on while the pass ran; verify again");
        }
    }
    Ok(if report.clean() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}
