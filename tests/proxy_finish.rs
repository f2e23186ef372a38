//! Finishing a migration with the one-process [`Proxy`] over plain stores: `Complete` is refused
//! until a whole verification in `Live` finds NEW clean; a backfill copies the keys nobody read,
//! resumes after being killed at random points, and never leaves a stale copy while writers
//! hammer the same keys; a verification finds a planted difference of every kind and repairs it.
//! Over memory, SQLite, PostgreSQL and Redis.

use std::sync::Arc;
use std::time::Duration;

use zddm::backfill::{Backfill, MemoryCheckpoint};
use zddm::cached::ScanKeys;
use zddm::verify::Verify;
use zddm::{Gate, MemoryStore, Phase, PhaseError, PostgresStore, Proxy, Rate, RedisStore};
use zddm::{SqliteStore, Store};
use zddm_suite::faults::{Fault, Faulty};
use zddm_suite::planted::check_planted;
use zddm_suite::resume::{kill_and_resume, with_writers};
use zddm_suite::servers::{PostgresServer, RedisServer};
use zddm_suite::stall::{Chaos, Stall};

const KEYS: u64 = 300;

fn value(key: u64, round: u64) -> String {
    format!("value {key} of round {round}")
}

/// NEW holds exactly what OLD holds, key by key.
async fn assert_new_equals_old<O: Store<u64, String>, N: Store<u64, String>>(old: &O, new: &N, name: &str) {
    let mut differ = Vec::new();
    for key in 0..KEYS {
        let (truth, copy) = (old.get(&key).await.unwrap(), new.get(&key).await.unwrap());
        if truth != copy {
            differ.push(format!("key {key}: OLD {truth:?}, NEW {copy:?}"));
        }
    }
    assert!(differ.is_empty(), "{name}: {} keys differ, e.g. {:?}", differ.len(), &differ[..differ.len().min(5)]);
}

/// The issue's own example: 9 of 10 keys never read, so never copied. `Complete` would lose them.
#[tokio::test]
async fn complete_is_refused_until_a_backfill_and_a_clean_verification() {
    let (old, new) = (Arc::new(MemoryStore::<u64, String>::new()), Arc::new(MemoryStore::new()));
    for key in 0..10 {
        old.put(&key, &value(key, 0)).await.unwrap();
    }
    let proxy = Proxy::new(old.clone(), new.clone(), Gate::new("finish", Rate::ALL));
    proxy.get(&0).await.unwrap();
    proxy.set_phase(Phase::Live).unwrap();
    let refused = proxy.set_phase(Phase::Complete).unwrap_err();
    assert_eq!(refused, PhaseError::Unverified);
    assert!(refused.to_string().contains("zddm::backfill::Backfill"), "{refused}");

    let report = Verify::new(&proxy).repair(false).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert_eq!((report.checked, report.missing.count, report.repaired), (10, 9, 0), "{report}");
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::Unverified));

    let done = Backfill::new(&proxy).batch(4).run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {}).await.unwrap();
    assert_eq!((done.scanned, done.copied, done.newer), (10, 9, 1), "{done}");
    let report = Verify::new(&proxy).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(report.earns_complete(), "{report}");
    proxy.set_phase(Phase::Complete).unwrap();
    old.delete(&7).await.unwrap(); // OLD is no longer read
    for key in 0..10 {
        assert_eq!(proxy.get(&key).await.unwrap(), Some(value(key, 0)), "key {key} lost by completing");
    }
}

/// A backfill copies only what the plan reads from NEW: nothing outside the gate, nothing in
/// `Off`.
#[tokio::test]
async fn a_backfill_copies_only_admitted_keys() {
    let (old, new) = (Arc::new(MemoryStore::<u64, String>::new()), Arc::new(MemoryStore::new()));
    for key in 0..KEYS {
        old.put(&key, &value(key, 0)).await.unwrap();
    }
    let proxy = Proxy::new(old.clone(), new.clone(), Gate::new("finish", Rate::percent(30.0).unwrap()));
    let done = Backfill::new(&proxy).run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {}).await.unwrap();
    assert_eq!(done.copied + done.outside, KEYS, "{done}");
    assert!(done.copied > KEYS / 5 && done.copied < KEYS * 2 / 5, "{done}");
    for key in 0..KEYS {
        let copied = new.get(&key).await.unwrap().is_some();
        assert_eq!(copied, proxy.gate().admits(&key), "key {key}");
    }
    let (old, new) = (Arc::new(MemoryStore::<u64, String>::new()), Arc::new(MemoryStore::new()));
    old.put(&1, &value(1, 0)).await.unwrap();
    let off = Proxy::builder(old, new.clone(), Gate::new("finish", Rate::ALL)).phase(Phase::Off).build().unwrap();
    let done = Backfill::new(&off).run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {}).await.unwrap();
    assert_eq!((done.copied, done.outside, new.len()), (0, 1, 0), "{done}");
}

/// A copy and a write of the same key are serialised: a delete that arrives while the copy is
/// between its OLD read and its NEW insert waits, then removes the copy. Were it not to wait, the
/// insert would bring the deleted value back into NEW.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_during_a_copy_waits_for_it_and_wins() {
    let (old, new) =
        (Arc::new(Faulty::new(MemoryStore::<u64, String>::new())), Arc::new(Faulty::new(MemoryStore::new())));
    old.inner().put(&1, &value(1, 0)).await.unwrap();
    let proxy = Proxy::new(old.clone(), new.clone(), Gate::new("finish", Rate::ALL));
    proxy.set_phase(Phase::Live).unwrap();
    let pause = new.pause_next(zddm::Op::Insert);
    let backfill = tokio::spawn({
        let proxy = proxy.clone();
        async move { Backfill::new(&proxy).run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {}).await }
    });
    pause.reached().await;
    let delete = tokio::spawn({
        let proxy = proxy.clone();
        async move { proxy.delete(&1).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!delete.is_finished(), "the delete must wait for the copy of its key");
    pause.release();
    let done = backfill.await.unwrap().unwrap();
    delete.await.unwrap().unwrap();
    assert_eq!(done.copied, 1, "{done}");
    assert_eq!((old.inner().get(&1).await.unwrap(), new.inner().get(&1).await.unwrap()), (None, None));
}

/// Killed at random moments (and failing at random), with writes through the proxy between runs,
/// then resumed from its checkpoint until a run finishes: NEW ends equal to OLD.
async fn killed_and_resumed<O, N>(old: O, new: N, name: &str)
where
    O: Store<u64, String> + ScanKeys<u64> + 'static,
    N: Store<u64, String> + ScanKeys<u64> + 'static,
{
    for key in 0..KEYS {
        old.put(&key, &value(key, 0)).await.unwrap();
    }
    let (old, new) = (Arc::new(Stall::new(old)), Arc::new(Stall::new(new)));
    let proxy = Proxy::new(old.clone(), new.clone(), Gate::new("finish", Rate::ALL));
    proxy.set_phase(Phase::Live).unwrap();
    let write = zddm_suite::writes_through!(proxy);
    kill_and_resume(&proxy, (&old, &new), &MemoryCheckpoint::new(), (KEYS, 30), write, name).await;
    // A killed run may leave a key in doubt (its write was cut off); a read repairs it, as a
    // verification's does.
    let report = Verify::new(&proxy).recheck_after(Duration::ZERO).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert_eq!(report.missing.count + report.extra.count + report.differs.count, 0, "{name}: {report}");
    assert_new_equals_old(old.inner(), new.inner(), name).await;
}

/// Writers put and delete hot keys through the proxy while the backfill copies them.
async fn hammered<O, N>(old: O, new: N, name: &str)
where
    O: Store<u64, String> + ScanKeys<u64> + 'static,
    N: Store<u64, String> + 'static,
{
    for key in 0..KEYS {
        old.put(&key, &value(key, 0)).await.unwrap();
    }
    // Every other store call is delayed, so that writes land between a copy's steps.
    let (old, new) = (Arc::new(Stall::new(old)), Arc::new(Stall::new(new)));
    let delays = |seed| {
        Some(Chaos {
            fail_before_ppm: 0,
            fail_after_ppm: 0,
            delay_ppm: 500_000,
            max_delay: Duration::from_millis(1),
            seed,
        })
    };
    old.chaos(delays(3));
    new.chaos(delays(5));
    let proxy = Proxy::new(old.clone(), new.clone(), Gate::new("finish", Rate::ALL));
    proxy.set_phase(Phase::Live).unwrap();
    let write = zddm_suite::writes_through!(proxy);
    // Every other write a delete: a copy of a value read just before it would bring the key back.
    let (backfill, checkpoint) = (Backfill::new(&proxy).batch(16), MemoryCheckpoint::new());
    let (done, writes) = with_writers((3, KEYS, 2), write, backfill.run(&checkpoint, tokio::time::sleep, |_| {})).await;
    let done = done.unwrap();
    eprintln!("{name}: {writes} writes during the backfill; {done}");
    assert!(writes > 30 && done.newer >= 1, "{name}: the writers must overlap the backfill: {writes} writes; {done}");
    assert_new_equals_old(old.inner(), new.inner(), name).await;
}

/// A planted difference of every kind, on either side of a write that goes around the proxy.
async fn planted<O, N>(old: O, new: N, name: &str)
where
    O: Store<u64, String> + ScanKeys<u64> + 'static,
    N: Store<u64, String> + ScanKeys<u64> + 'static,
{
    let (old, new) = (Arc::new(Faulty::new(old)), Arc::new(Faulty::new(new)));
    for key in 0..40 {
        old.inner().put(&key, &value(key, 0)).await.unwrap();
    }
    let proxy = Proxy::new(old.clone(), new.clone(), Gate::new("finish", Rate::ALL));
    proxy.set_phase(Phase::Live).unwrap();
    Backfill::new(&proxy).run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {}).await.unwrap();
    let quick = || Verify::new(&proxy).recheck_after(Duration::from_millis(300));
    let first = quick().run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(first.clean() && first.checked == 40, "{name}: {first}");

    old.inner().put(&100, &value(100, 1)).await.unwrap(); // missing
    old.inner().delete(&1).await.unwrap(); // extra
    old.inner().put(&2, &value(2, 1)).await.unwrap(); // differs
    new.inner().put(&3, &value(3, 9)).await.unwrap(); // differs, the other way
                                                      // In doubt: NEW failed the write and its invalidation. The pass looks at it first, and its
                                                      // read repairs it.
    new.fail_next(Some(zddm::Op::Put), Fault::Before);
    new.fail_next(Some(zddm::Op::Delete), Fault::Before);
    assert!(matches!(proxy.put(&4, &value(4, 1)).await, Err(zddm::Error::Indeterminate { .. })));
    assert_eq!(proxy.keys_in_doubt(), 1);
    old.inner().put(&6, &value(6, 1)).await.unwrap(); // differs now, but a write fixes it during the delay
    let fixer = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            proxy.put(&6, &value(6, 2)).await.unwrap();
        })
    };
    let report = quick().run(tokio::time::sleep, |_| {}).await.unwrap();
    fixer.await.unwrap();
    check_planted(&report, &[], name);
    assert_eq!(proxy.keys_in_doubt(), 0, "{name}");
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::Unverified), "{name}");

    assert_eq!(new.inner().get(&100).await.unwrap(), Some(value(100, 1)), "{name}");
    assert_eq!(new.inner().get(&1).await.unwrap(), None, "{name}");
    assert_eq!(new.inner().get(&2).await.unwrap(), Some(value(2, 1)), "{name}");
    assert_eq!(new.inner().get(&3).await.unwrap(), Some(value(3, 0)), "{name}");
    assert_eq!(new.inner().get(&4).await.unwrap(), Some(value(4, 1)), "{name}");

    // A sample never earns `Complete`; a phase change since a clean pass voids it.
    let sample = quick().sample(Rate::percent(50.0).unwrap()).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(sample.clean() && !sample.earns_complete(), "{name}: {sample}");
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::Unverified), "{name}");
    assert!(quick().run(tokio::time::sleep, |_| {}).await.unwrap().earns_complete(), "{name}");
    proxy.set_phase(Phase::ReadThrough).unwrap();
    proxy.set_phase(Phase::Live).unwrap();
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::Unverified), "{name}");
    // A pass that finds NEW wrong withdraws an earlier clean one.
    assert!(quick().run(tokio::time::sleep, |_| {}).await.unwrap().earns_complete(), "{name}");
    new.inner().delete(&5).await.unwrap();
    assert!(!quick().repair(false).run(tokio::time::sleep, |_| {}).await.unwrap().clean(), "{name}");
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::Unverified), "{name}");
    assert!(!quick().run(tokio::time::sleep, |_| {}).await.unwrap().clean(), "{name}: repaired, so not clean");
    assert!(quick().run(tokio::time::sleep, |_| {}).await.unwrap().earns_complete(), "{name}");
    proxy.set_phase(Phase::Complete).unwrap();
    assert_eq!(proxy.get(&100).await.unwrap(), Some(value(100, 1)), "{name}: NEW answers alone");
}

fn sqlite(dir: &tempfile::TempDir, name: &str) -> SqliteStore<u64, String> {
    SqliteStore::open(dir.path().join(name), "orders").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory() {
    killed_and_resumed(MemoryStore::new(), MemoryStore::new(), "memory").await;
    hammered(MemoryStore::new(), MemoryStore::new(), "memory").await;
    planted(MemoryStore::new(), MemoryStore::new(), "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    killed_and_resumed(sqlite(&dir, "old1.db"), sqlite(&dir, "new1.db"), "sqlite").await;
    hammered(sqlite(&dir, "old2.db"), sqlite(&dir, "new2.db"), "sqlite").await;
    planted(sqlite(&dir, "old3.db"), sqlite(&dir, "new3.db"), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_postgres_to_redis() {
    let (pg_server, redis_server) = (PostgresServer::start(), RedisServer::start());
    let (pg, redis) = (pg_server.url(), redis_server.url());
    let old = |table: &'static str| PostgresStore::<u64, String>::connect(&pg, table, 2);
    let new = |prefix: &'static str| RedisStore::<u64, String>::connect(&redis, prefix);
    killed_and_resumed(old("old1").await.unwrap(), new("new1").await.unwrap(), "postgres → redis").await;
    hammered(old("old2").await.unwrap(), new("new2").await.unwrap(), "postgres → redis").await;
    planted(old("old3").await.unwrap(), new("new3").await.unwrap(), "postgres → redis").await;
    planted(new("new4").await.unwrap(), old("old4").await.unwrap(), "redis → postgres").await;
}
