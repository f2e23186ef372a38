//! Verification (`zddm::verify`) over real stores: a planted difference of every kind is found,
//! told apart from a write in flight, repaired through the safe path, and `Complete` is refused
//! until a whole pass in `Live` finds NEW clean.

use std::sync::Arc;
use std::time::Duration;

use zddm::backfill::{Backfill, MemoryCheckpoint};
use zddm::verify::Verify;
use zddm::versioned::{
    Change, Lookup, MemorySource, MemoryTarget, PostgresSource, PostgresTarget, RedisSource, RedisTarget, Scan,
    ScanSlots, Source, SqliteSource, SqliteTarget, Target, VersionedProxy,
};
use zddm::{Gate, Phase, PhaseError, Rate};
use zddm_suite::planted::check_planted;
use zddm_suite::servers::{PostgresServer, RedisServer};

fn value(key: u64, round: u64) -> String {
    format!("value {key} of round {round}")
}

async fn planted<O, N>(old: O, new: N, name: &str)
where
    O: Scan<u64, String> + 'static,
    N: ScanSlots<u64, String> + 'static,
{
    let (old, new) = (Arc::new(old), Arc::new(new));
    for key in 0..40 {
        old.put(&key, &value(key, 0)).await.unwrap();
    }
    let proxy = VersionedProxy::new(old.clone(), new.clone(), Gate::new("verify", Rate::ALL));
    proxy.set_phase(Phase::Live).unwrap();
    Backfill::new(&proxy).run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {}).await.unwrap();
    let quick = || Verify::new(&proxy).recheck_after(Duration::from_millis(300));
    let first = quick().run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(first.clean() && first.checked == 40, "{name}: {first}");

    // Writers that bypass zddm, and a NEW that was tampered with.
    old.put(&100, &value(100, 1)).await.unwrap(); // missing: OLD has it, NEW never heard of it
    old.delete(&1).await.unwrap(); // extra: NEW still answers it
    old.put(&2, &value(2, 1)).await.unwrap(); // differs: NEW answers the older value
    let three = old.get(&3).await.unwrap().unwrap().version;
    new.apply(&3, Change::Delete, three + 1, false).await.unwrap(); // differs: NEW says deleted
    new.mark(&4, 60_000).await.unwrap(); // in doubt, for a minute
    new.mark(&5, 1).await.unwrap(); // in doubt, expired by the second look: the read repairs it
    old.put(&6, &value(6, 1)).await.unwrap(); // differs now, but a write fixes it during the delay
    let fixer = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            proxy.put(&6, &value(6, 2)).await.unwrap();
        })
    };
    let report = quick().run(tokio::time::sleep, |_| {}).await.unwrap();
    fixer.await.unwrap();
    check_planted(&report, &[4], name);
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::Unverified), "{name}");

    // Repaired through versions from OLD's counter: NEW answers what OLD holds.
    assert_eq!(new.lookup(&100).await.unwrap(), Lookup::Hit(value(100, 1)));
    assert_eq!(new.lookup(&1).await.unwrap(), Lookup::Deleted);
    assert_eq!(new.lookup(&2).await.unwrap(), Lookup::Hit(value(2, 1)));
    assert_eq!(new.lookup(&3).await.unwrap(), Lookup::Hit(value(3, 0)));
    assert_eq!(new.lookup(&5).await.unwrap(), Lookup::Hit(value(5, 0)));
    // A later write of a repaired key still wins: the repair did not take a version from the future.
    proxy.put(&2, &value(2, 3)).await.unwrap();
    assert_eq!(new.lookup(&2).await.unwrap(), Lookup::Hit(value(2, 3)), "{name}");

    // Key 4 stays in doubt until its writer's grace runs out; a sample never earns `Complete`.
    let sample = quick().sample(Rate::percent(50.0).unwrap()).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(!sample.whole && sample.checked > 5 && sample.checked < 36, "{name}: {sample}");
    let again = quick().run(tokio::time::sleep, |_| {}).await.unwrap();
    assert_eq!((again.in_doubt.count, again.missing.count + again.extra.count + again.differs.count), (1, 0));
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::Unverified), "{name}");
    // Abandoned: its mark expires (here: replaced by a short one), the pass's read repairs it.
    new.apply(&4, Change::Invalidate, 0, true).await.unwrap();
    new.mark(&4, 1).await.unwrap();
    let clean = quick().run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(clean.clean(), "{name}: {clean}");
    // A phase change since the pass began voids it.
    proxy.set_phase(Phase::ReadThrough).unwrap();
    proxy.set_phase(Phase::Live).unwrap();
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::Unverified), "{name}");
    let clean = quick().run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(clean.earns_complete(), "{name}: {clean}");
    proxy.set_phase(Phase::Complete).unwrap();
    assert_eq!(proxy.get(&100).await.unwrap(), Some(value(100, 1)), "{name}: NEW answers alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_differences_are_found_repaired_and_complete_is_earned_in_memory() {
    planted(MemorySource::new(), MemoryTarget::new(), "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_differences_are_found_repaired_and_complete_is_earned_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let old = SqliteSource::open(dir.path().join("old.db"), "orders").unwrap();
    let new = SqliteTarget::open(dir.path().join("new.db"), "orders").unwrap();
    planted(old, new, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_differences_are_found_repaired_and_complete_is_earned_over_postgres() {
    let server = PostgresServer::start();
    let old = PostgresSource::connect(&server.url(), "old_orders", 2).await.unwrap();
    let new = PostgresTarget::connect(&server.url(), "new_orders", 2).await.unwrap();
    planted(old, new, "postgres").await;
}

/// Redis scans in its hash order: the verifier looks keys up instead of walking side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_differences_are_found_repaired_and_complete_is_earned_over_redis() {
    let server = RedisServer::start();
    let old = RedisSource::connect(&server.url(), "old_orders").await.unwrap();
    let new = RedisTarget::connect(&server.url(), "new_orders").await.unwrap();
    assert!(!Scan::<u64, String>::canonical(&old) && !ScanSlots::<u64, String>::canonical(&new));
    planted(old, new, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_differences_are_found_repaired_and_complete_is_earned_from_postgres_to_redis() {
    let (pg, redis) = (PostgresServer::start(), RedisServer::start());
    let old = PostgresSource::connect(&pg.url(), "old_orders", 2).await.unwrap();
    let new = RedisTarget::connect(&redis.url(), "new_orders").await.unwrap();
    planted(old, new, "postgres → redis").await;
}

#[tokio::test]
async fn without_a_backfill_verification_finds_every_uncopied_key_and_complete_stays_refused() {
    let (old, new) = (MemorySource::<u64, String>::new(), MemoryTarget::new());
    for key in 0..10 {
        old.put(&key, &value(key, 0)).await.unwrap();
    }
    let proxy = VersionedProxy::new(&old, &new, Gate::new("verify", Rate::ALL));
    proxy.get(&0).await.unwrap(); // one key read through
    proxy.set_phase(Phase::Live).unwrap();
    let error = proxy.set_phase(Phase::Complete).unwrap_err();
    assert!(error.to_string().contains("run a whole verification in live"), "{error}");
    let report = Verify::new(&proxy).repair(false).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert_eq!((report.missing.count, report.unresolved.count, report.repaired), (9, 9, 0), "{report}");
    assert!(report.to_string().contains("9 missing") && report.to_string().ends_with("NOT clean"), "{report}");
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::Unverified));
}
