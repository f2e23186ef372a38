//! Every versioned store against the protocol's own definition: each target replays a long
//! pseudo-random run of operations next to the pure `Slot` state machine and must answer exactly as
//! it does; each source must version writes in commit order, deletes included. Over memory, SQLite
//! files, and real PostgreSQL and Redis servers.

use std::collections::BTreeMap;

use zddm::versioned::{
    Change, Filled, Lookup, MemorySource, MemoryTarget, RedisSource, RedisTarget, Slot, Source, Target,
};
use zddm::versioned::{PostgresSource, PostgresTarget};
use zddm::versioned::{SqliteSource, SqliteTarget};
use zddm::MigrationKey;
use zddm_suite::servers::{PostgresServer, RedisServer};

/// A deterministic stream of choices (splitmix64).
struct Choices(u64);

impl Choices {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (x ^ (x >> 31)) % n
    }
}

/// Grace periods that make every answer independent of the clocks: a mark of 1 ms has expired by
/// the next call (the test waits 2 ms after it), one of ten days has not; and either changes the
/// token of every earlier lookup that saw the marks expired.
const GRACES: [u64; 2] = [1, 10 * 24 * 3600 * 1000];

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Replays `steps` operations over three keys on `target` and on the model; they must agree.
async fn conforms<T: Target<u64, u64>>(target: T, name: &str, seed: u64, steps: usize) {
    let mut model: BTreeMap<u64, Slot<u64>> = BTreeMap::new();
    // The token each side saw in its last lookup of a key: each side's own clock names its marks.
    let mut tokens: BTreeMap<u64, (Option<u64>, Option<u64>)> = BTreeMap::new();
    let mut choices = Choices(seed);
    let mut version: u64 = 10;
    for step in 0..steps {
        let key = choices.below(3);
        let slot = model.entry(key).or_default();
        let value = (choices.below(2) == 0).then(|| choices.below(1000));
        // Versions mostly rise, sometimes repeat or fall back: writes arriving out of order.
        let v = match choices.below(5) {
            0 => slot.version,
            1 => slot.version.saturating_sub(1 + choices.below(3)),
            _ => {
                version += 1 + choices.below(3);
                version
            }
        };
        let what = match choices.below(8) {
            0 | 1 => {
                let seen = target.lookup(&key).await.unwrap();
                let expected = slot.lookup(now());
                let store_token = match &seen {
                    Lookup::Pending { token, .. } => Some(*token),
                    _ => None,
                };
                let model_token = match &expected {
                    Lookup::Pending { token, .. } => Some(*token),
                    _ => None,
                };
                tokens.insert(key, (store_token, model_token));
                let shape = |l: &Lookup<u64>| match l {
                    Lookup::Pending { expired, .. } => format!("pending(expired={expired})"),
                    other => format!("{other:?}"),
                };
                assert_eq!(shape(&seen), shape(&expected), "{name}, step {step}: lookup of {key}");
                "lookup"
            }
            2 => {
                let grace = GRACES[choices.below(2) as usize];
                target.mark(&key, grace).await.unwrap();
                slot.mark(now(), grace);
                std::thread::sleep(std::time::Duration::from_millis(2));
                "mark"
            }
            3 | 6 => {
                let settle = choices.below(3) != 0;
                let change = match (value, choices.below(3)) {
                    (Some(value), 0 | 1) => Change::Put(value),
                    (_, 2) => Change::Invalidate,
                    _ => Change::Delete,
                };
                // What it did shows in the lookups and fills that follow.
                target.apply(&key, change.as_ref(), v, settle).await.unwrap();
                slot.apply(change, v, settle, now());
                "apply"
            }
            4 | 5 => {
                // The last lookup's token, or none, or a wrong one.
                let (store_token, model_token) = tokens.get(&key).copied().unwrap_or_default();
                let (store_token, model_token) = match choices.below(4) {
                    0 => (None, None),
                    1 => (Some(1), Some(1)),
                    _ => (store_token, model_token),
                };
                let filled = target.fill(&key, value.as_ref(), v, store_token).await.unwrap();
                assert_eq!(filled, slot.fill(value, v, model_token, now()), "{name}, step {step}: fill of {key}");
                "fill"
            }
            7 => {
                // A backfill's batch: every key, each at a version near its own.
                let batch: Vec<(u64, u64, u64)> = (0..3)
                    .map(|k| {
                        let current = model.get(&k).map_or(0, |slot| slot.version);
                        (k, choices.below(1000), (current + choices.below(3)).saturating_sub(1))
                    })
                    .collect();
                let entries: Vec<(&u64, &u64, u64)> = batch.iter().map(|(k, v, ver)| (k, v, *ver)).collect();
                let filled = target.fill_many(&entries).await.unwrap();
                let expected: Vec<Filled> = batch
                    .iter()
                    .map(|(k, v, ver)| model.entry(*k).or_default().fill(Some(*v), *ver, None, now()))
                    .collect();
                assert_eq!(filled, expected, "{name}, step {step}: fill_many {batch:?}");
                "fill_many"
            }
            _ => unreachable!("eight choices"),
        };
        let _ = what;
    }
    let pending: Vec<Vec<u8>> =
        model.iter().filter(|(_, slot)| slot.pending > 0).map(|(key, _)| key.key_bytes()).collect::<Vec<_>>();
    let mut sorted = pending.clone();
    sorted.sort();
    assert_eq!(target.pending_keys(None, 100).await.unwrap(), sorted, "{name}: pending keys");
    if let Some(first) = sorted.first() {
        assert_eq!(target.pending_keys(Some(first), 100).await.unwrap(), sorted[1..].to_vec(), "{name}: paging");
        assert_eq!(target.pending_keys(None, 1).await.unwrap(), sorted[..1].to_vec(), "{name}: limit");
    }
}

/// A settled tombstone is purged once old enough, a value or a pending key never.
async fn purges<T: Target<u64, u64>>(target: T, name: &str) {
    target.mark(&1, GRACES[1]).await.unwrap();
    target.apply(&1, Change::Delete, 5, false).await.unwrap(); // tombstone, still pending
    target.apply(&2, Change::Delete, 5, false).await.unwrap(); // settled tombstone
    target.apply(&3, Change::Put(&9), 5, false).await.unwrap(); // value
    target.apply(&4, Change::Invalidate, 5, false).await.unwrap(); // settled invalidation
    assert_eq!(target.purge(60_000).await.unwrap(), 0, "{name}: nothing is a minute old");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(target.purge(10).await.unwrap(), 2, "{name}: only the settled tombstones go");
    assert_eq!(target.fill(&2, Some(&1), 1, None).await.unwrap(), Filled::Copied, "{name}: purged means forgotten");
    assert_eq!(target.lookup(&3).await.unwrap(), Lookup::Hit(9));
    assert!(matches!(target.lookup(&1).await.unwrap(), Lookup::Pending { expired: false, .. }));
}

/// Versions rise with every write of a key, through deletes and re-creation.
async fn versions_rise<S: Source<u64, u64>>(source: S, name: &str) {
    assert_eq!(source.get(&1).await.unwrap(), None);
    let mut last = 0;
    for round in 0..20u64 {
        let put = source.put(&1, &round).await.unwrap();
        assert!(put > last, "{name}: put version {put} after {last}");
        let found = source.get(&1).await.unwrap().expect("the value just written");
        assert_eq!((found.value, found.version), (round, put), "{name}: read back");
        last = put;
        if round % 3 == 0 {
            let deleted = source.delete(&1).await.unwrap();
            assert!(deleted > last, "{name}: delete version {deleted} after {last}");
            assert_eq!(source.get(&1).await.unwrap(), None, "{name}: deleted");
            last = deleted;
        }
        if round % 4 == 1 {
            let next = source.next_version(&1).await.unwrap();
            assert!(next > last, "{name}: next version {next} after {last}");
            last = next;
        }
    }
    // Other keys have versions of their own that also rise.
    let other = source.put(&2, &0).await.unwrap();
    assert!(source.put(&2, &1).await.unwrap() > other);
}

#[tokio::test(flavor = "current_thread")]
async fn memory_stores_conform() {
    for seed in 0..8 {
        conforms(MemoryTarget::new(), "memory", seed, 400).await;
    }
    purges(MemoryTarget::new(), "memory").await;
    versions_rise(MemorySource::new(), "memory").await;
}

#[tokio::test(flavor = "current_thread")]
async fn sqlite_stores_conform() {
    let dir = tempfile::tempdir().unwrap();
    for seed in 0..4 {
        conforms(SqliteTarget::open(dir.path().join(format!("{seed}.db")), "slots").unwrap(), "sqlite", seed, 300)
            .await;
    }
    purges(SqliteTarget::open(dir.path().join("purge.db"), "slots").unwrap(), "sqlite").await;
    versions_rise(SqliteSource::open(dir.path().join("old.db"), "entries").unwrap(), "sqlite").await;
}

#[tokio::test(flavor = "current_thread")]
async fn redis_stores_conform() {
    let server = RedisServer::start();
    for seed in 0..4 {
        conforms(RedisTarget::connect(&server.url(), &format!("t{seed}")).await.unwrap(), "redis", seed, 300).await;
    }
    purges(RedisTarget::connect(&server.url(), "purge").await.unwrap(), "redis").await;
    versions_rise(RedisSource::<u64, u64>::connect(&server.url(), "old").await.unwrap(), "redis").await;
}

#[tokio::test(flavor = "current_thread")]
async fn postgres_stores_conform() {
    let server = PostgresServer::start();
    for seed in 0..4 {
        let target = PostgresTarget::connect(&server.url(), &format!("t{seed}"), 2).await.unwrap();
        conforms(target, "postgres", seed, 300).await;
    }
    purges(PostgresTarget::connect(&server.url(), "purge", 1).await.unwrap(), "postgres").await;
    versions_rise(PostgresSource::<u64, u64>::connect(&server.url(), "old", 1).await.unwrap(), "postgres").await;
    let error = PostgresTarget::<u64, u64>::connect(&server.url(), "old", 1).await.unwrap_err();
    assert!(error.to_string().contains("pending integer NOT NULL"), "{error}");
}

#[test]
fn sqlite_refuses_a_table_of_another_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shape.db");
    zddm::SqliteStore::<u64, u64>::open(&path, "entries").unwrap();
    let error = SqliteTarget::<u64, u64>::open(&path, "entries").unwrap_err();
    let message = error.to_string();
    assert!(message.contains("(key BLOB, value TEXT)") && message.contains("pending"), "{message}");
    let error = SqliteSource::<u64, u64>::open(&path, "entries").unwrap_err();
    assert!(error.to_string().contains("version INTEGER NOT NULL"), "{error}");
}

#[test]
fn a_grace_period_shorter_than_twice_the_stores_timeouts_is_refused() {
    let (old, new) = (
        SqliteSource::<u64, u64>::open_in_memory("o").unwrap(),
        SqliteTarget::<u64, u64>::open_in_memory("n").unwrap(),
    );
    let gate = zddm::Gate::new("g", zddm::Rate::ALL);
    let error = zddm::versioned::VersionedProxy::builder(old, new, gate.clone())
        .grace(std::time::Duration::from_secs(9))
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        zddm::ConfigError::GraceBelowTimeout {
            grace: std::time::Duration::from_secs(9),
            timeout: std::time::Duration::from_secs(5)
        }
    );
    assert!(error.to_string().contains("at least twice"), "{error}");
    let (old, new) = (
        SqliteSource::<u64, u64>::open_in_memory("o").unwrap(),
        SqliteTarget::<u64, u64>::open_in_memory("n").unwrap(),
    );
    assert!(zddm::versioned::VersionedProxy::builder(old, new, gate)
        .grace(std::time::Duration::from_secs(10))
        .build()
        .is_ok());
}
