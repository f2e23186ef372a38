//! Backfill (`zddm::backfill`) over real stores: killed at random points and resumed it ends with
//! NEW equal to OLD and never overwrites a newer value; run while writers hammer the same keys it
//! leaves nothing stale; it copies only what the plan reads from NEW; and every store's scan pages
//! through OLD in canonical key order, resumable from any position.

use std::sync::Arc;

use zddm::backfill::{Backfill, Checkpoint, Checkpoints, FileCheckpoint, MemoryCheckpoint};
use zddm::versioned::{
    Lookup, MemorySource, MemoryTarget, PostgresSource, PostgresTarget, RedisSource, RedisTarget, Scan, Source,
    SqliteSource, SqliteTarget, Target, VersionedProxy,
};
use zddm::{Gate, MigrationKey, Phase, Rate};
use zddm_suite::resume::{kill_and_resume, with_writers};
use zddm_suite::servers::{PostgresServer, RedisServer};
use zddm_suite::stall::Stall;

const KEYS: u64 = 600;

fn value(key: u64, round: u64) -> String {
    format!("value {key} of round {round}")
}

/// NEW answers every key exactly as OLD does now: OLD's value as a settled hit, and no value for
/// a key OLD does not hold.
async fn assert_new_equals_old<O: Source<u64, String>, N: Target<u64, String>>(old: &O, new: &N, name: &str) {
    let mut stale = Vec::new();
    for key in 0..KEYS {
        let truth = old.get(&key).await.unwrap().map(|found| found.value);
        let seen = new.lookup(&key).await.unwrap();
        let agrees = match (&truth, &seen) {
            (Some(truth), Lookup::Hit(seen)) => truth == seen,
            (None, Lookup::Hit(_)) => false,
            (None, _) => true,
            (Some(_), _) => false,
        };
        if !agrees {
            stale.push(format!("key {key}: OLD {truth:?}, NEW {seen:?}"));
        }
    }
    assert!(stale.is_empty(), "{name}: {} keys differ, e.g. {:?}", stale.len(), &stale[..stale.len().min(5)]);
}

/// Seeds OLD, then runs the backfill killed at random moments under chaos, with keys written and
/// deleted through the proxy between runs, until one run finishes.
async fn killed_and_resumed<O, N>(old: O, new: N, checkpoints: &impl Checkpoints, name: &str)
where
    O: Scan<u64, String> + 'static,
    N: Target<u64, String> + 'static,
{
    for key in 0..KEYS {
        old.put(&key, &value(key, 0)).await.unwrap();
    }
    let (old, new) = (Arc::new(Stall::new(old)), Arc::new(Stall::new(new)));
    let proxy = VersionedProxy::new(old.clone(), new.clone(), Gate::new("backfill", Rate::ALL));
    proxy.set_phase(Phase::Live).unwrap();
    let write = zddm_suite::writes_through!(proxy);
    kill_and_resume(&proxy, (&old, &new), checkpoints, (KEYS, 40), write, name).await;
    assert_new_equals_old(old.inner(), new.inner(), name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_and_resumed_new_ends_equal_to_old_in_memory() {
    let checkpoint = MemoryCheckpoint::new();
    killed_and_resumed(MemorySource::new(), MemoryTarget::new(), &checkpoint, "memory").await;
    assert!(checkpoint.get().is_some_and(|c| c.done));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_and_resumed_new_ends_equal_to_old_over_sqlite_with_a_checkpoint_file() {
    let dir = tempfile::tempdir().unwrap();
    let old = SqliteSource::open(dir.path().join("old.db"), "orders").unwrap();
    let new = SqliteTarget::open(dir.path().join("new.db"), "orders").unwrap();
    let checkpoint = FileCheckpoint::new(dir.path().join("backfill.checkpoint"));
    killed_and_resumed(old, new, &checkpoint, "sqlite").await;
    let saved = std::fs::read_to_string(dir.path().join("backfill.checkpoint")).unwrap();
    assert!(saved.contains("done true"), "{saved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_and_resumed_new_ends_equal_to_old_over_postgres() {
    let server = PostgresServer::start();
    let old = PostgresSource::connect(&server.url(), "old_orders", 4).await.unwrap();
    let new = PostgresTarget::connect(&server.url(), "new_orders", 4).await.unwrap();
    killed_and_resumed(old, new, &MemoryCheckpoint::new(), "postgres").await;
}

/// Redis scans by `SCAN` cursor, in its hash order: the cursor is the checkpoint's position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_and_resumed_new_ends_equal_to_old_over_redis() {
    let server = RedisServer::start();
    let old = RedisSource::connect(&server.url(), "old_orders").await.unwrap();
    let new = RedisTarget::connect(&server.url(), "new_orders").await.unwrap();
    killed_and_resumed(old, new, &MemoryCheckpoint::new(), "redis").await;
}

/// Writers put and delete a few hot keys through the proxy while the backfill copies them.
async fn hammered<O, N>(old: O, new: N, name: &str)
where
    O: Scan<u64, String> + 'static,
    N: Target<u64, String> + 'static,
{
    for key in 0..KEYS {
        old.put(&key, &value(key, 0)).await.unwrap();
    }
    let (old, new) = (Arc::new(old), Arc::new(new));
    let proxy = VersionedProxy::new(old.clone(), new.clone(), Gate::new("backfill", Rate::ALL));
    proxy.set_phase(Phase::Live).unwrap();
    let write = zddm_suite::writes_through!(proxy);
    // Slowed down, so the writers overlap the whole pass even over memory.
    let (backfill, checkpoint) = (Backfill::new(&proxy).batch(16).rate(1_500.0), MemoryCheckpoint::new());
    let (done, writes) = with_writers((4, KEYS, 5), write, backfill.run(&checkpoint, tokio::time::sleep, |_| {})).await;
    let done = done.unwrap();
    eprintln!("{name}: {writes} writes during the backfill; {done}");
    assert!(writes > 30, "{name}: the writers must overlap the backfill ({writes} writes)");
    assert_new_equals_old(&*old, &*new, name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_while_writers_hammer_the_same_keys_leaves_nothing_stale_in_memory() {
    hammered(MemorySource::new(), MemoryTarget::new(), "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_while_writers_hammer_the_same_keys_leaves_nothing_stale_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let old = SqliteSource::open(dir.path().join("old.db"), "orders").unwrap();
    let new = SqliteTarget::open(dir.path().join("new.db"), "orders").unwrap();
    hammered(old, new, "sqlite").await;
}

#[tokio::test]
async fn a_backfill_copies_only_the_keys_the_plan_reads_from_new() {
    let (old, new) = (Arc::new(MemorySource::<u64, String>::new()), Arc::new(MemoryTarget::new()));
    for key in 0..KEYS {
        old.put(&key, &value(key, 0)).await.unwrap();
    }
    let gate = Gate::new("backfill", Rate::percent(30.0).unwrap());
    let proxy = VersionedProxy::new(old.clone(), new.clone(), gate.clone());
    let done = Backfill::new(&proxy).run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {}).await.unwrap();
    let admitted = (0..KEYS).filter(|key| gate.admits(key)).count() as u64;
    assert!(admitted > 100 && admitted < 250, "{admitted}");
    assert_eq!((done.scanned, done.copied, done.outside, done.newer), (KEYS, admitted, KEYS - admitted, 0));
    assert_eq!(new.values().len() as u64, admitted);
    assert!(new.values().iter().all(|(key, _)| gate.admits(&u64::from_key_bytes(key).unwrap())));
    // A second pass over the same checkpoint is done already; a fresh one skips what NEW holds.
    let checkpoint = MemoryCheckpoint::new();
    checkpoint.save(&Checkpoint::default()).await.unwrap();
    let again = Backfill::new(&proxy).run(&checkpoint, tokio::time::sleep, |_| {}).await.unwrap();
    assert_eq!((again.copied, again.newer), (0, admitted));
}

#[tokio::test]
async fn progress_is_reported_after_every_batch_with_an_eta_and_bad_options_are_refused() {
    let (old, new) = (MemorySource::<u64, String>::new(), MemoryTarget::new());
    for key in 0..100 {
        old.put(&key, &value(key, 0)).await.unwrap();
    }
    let proxy = VersionedProxy::new(&old, &new, Gate::new("backfill", Rate::ALL));
    let mut reports = Vec::new();
    let checkpoint = MemoryCheckpoint::new();
    Backfill::new(&proxy).batch(30).run(&checkpoint, tokio::time::sleep, |p| reports.push(p.clone())).await.unwrap();
    let scanned: Vec<u64> = reports.iter().map(|p| p.scanned).collect();
    assert_eq!(scanned, [30, 60, 90, 100]);
    assert!(reports.iter().all(|p| p.estimate == Some(100)));
    assert!(reports[0].eta.is_some() && reports[3].done);
    assert!(reports[3].to_string().starts_with("scanned 100 of about 100, copied 100"), "{}", reports[3]);
    // Run again: done already, one report, nothing copied twice.
    let mut again = Vec::new();
    let done = Backfill::new(&proxy).run(&checkpoint, tokio::time::sleep, |p| again.push(p.clone())).await.unwrap();
    assert_eq!((again.len(), done.copied), (1, 100));

    let options = [
        (Backfill::new(&proxy).batch(0), "at least 1 entry"),
        (Backfill::new(&proxy).rate(f64::NAN), "positive number of entries per second"),
        (Backfill::new(&proxy).attempts(0), "at least 1 attempt"),
    ];
    for (backfill, expected) in options {
        let error = backfill.run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {}).await.unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
    }
}

/// Every store's scan: pages of any size concatenate to all keys in canonical byte order, typed.
async fn scans_in_order<S: Scan<(u32, String), u64>>(old: S, name: &str) {
    let mut keys: Vec<(u32, String)> = (0..50).map(|i| (i % 7, format!("k{}", i * 37 % 50))).collect();
    for (i, key) in keys.iter().enumerate() {
        old.put(key, &(i as u64)).await.unwrap();
    }
    keys.sort_by_key(|key| key.key_bytes());
    for limit in [1, 7, 50, 64] {
        let (mut seen, mut after) = (Vec::new(), None::<Vec<u8>>);
        loop {
            let page = old.scan(after.as_deref(), limit).await.unwrap();
            assert!(page.entries.len() <= limit, "{name}: a page over its limit");
            seen.extend(page.entries.into_iter().map(|(key, found)| (key, found.version)));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let seen_keys: Vec<_> = seen.iter().map(|(key, _)| key.clone()).collect();
        assert_eq!(seen_keys, keys, "{name}: pages of {limit}");
        assert!(seen.iter().all(|(_, version)| *version > 0));
    }
    let estimate = old.estimate().await.unwrap();
    assert!(estimate.is_none() || estimate == Some(50), "{name}: estimate {estimate:?}");
}

#[tokio::test]
async fn every_store_scans_in_canonical_key_order_resumably() {
    scans_in_order(MemorySource::new(), "memory").await;
    let dir = tempfile::tempdir().unwrap();
    scans_in_order(SqliteSource::open(dir.path().join("old.db"), "orders").unwrap(), "sqlite").await;
    let server = PostgresServer::start();
    scans_in_order(PostgresSource::connect(&server.url(), "orders", 2).await.unwrap(), "postgres").await;
}

/// Unversioned mode: NEW is a cache with leased fills, OLD a plain store. A backfill reads each
/// key again under a lease, so writers hammering the same keys never leave a stale copy; the
/// failing control copies the scan's own values instead, which go stale.
async fn cached_hammered<O, N>(old: O, new: N, name: &str)
where
    O: zddm::Store<u64, String> + zddm::cached::ScanKeys<u64> + 'static,
    N: zddm::cached::Cache<u64, String> + 'static,
{
    use zddm::cached::{CachedProxy, Probe};
    for key in 0..KEYS {
        old.put(&key, &value(key, 0)).await.unwrap();
    }
    let (old, new) = (Arc::new(old), Arc::new(new));
    let proxy = CachedProxy::new(old.clone(), new.clone(), Gate::new("backfill", Rate::ALL));
    proxy.set_phase(Phase::Live).unwrap();
    proxy.get(&3).await.unwrap(); // one key cached already
    let write = zddm_suite::writes_through!(proxy);
    let (backfill, checkpoint) = (Backfill::new(&proxy).batch(16).rate(1_500.0), MemoryCheckpoint::new());
    let (done, writes) = with_writers((3, KEYS, 5), write, backfill.run(&checkpoint, tokio::time::sleep, |_| {})).await;
    let done = done.unwrap();
    eprintln!("{name}: {writes} writes during the backfill; {done}");
    assert!(writes > 30 && done.copied > KEYS / 2 && done.newer >= 1, "{name}: {done}");
    let mut stale = Vec::new();
    for key in 0..KEYS {
        let truth = old.get(&key).await.unwrap();
        match new.probe(&key).await.unwrap() {
            Probe::Hit(cached) if Some(&cached) != truth.as_ref() => stale.push(key),
            Probe::Absent if truth.is_some() => stale.push(key),
            _ => {}
        }
    }
    assert!(stale.is_empty(), "{name}: stale copies of {stale:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unversioned_backfill_while_writers_hammer_leaves_nothing_stale_in_memory() {
    cached_hammered(zddm::MemoryStore::new(), zddm::cached::MemoryCache::new(), "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unversioned_backfill_while_writers_hammer_leaves_nothing_stale_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let old = zddm::SqliteStore::open(dir.path().join("old.db"), "orders").unwrap();
    let new = zddm::cached::SqliteCache::open(dir.path().join("cache.db"), "orders").unwrap();
    cached_hammered(old, new, "sqlite").await;
}
