//! Unversioned mode on its own: every cache against the pure `Entry` state machine, and
//! `CachedProxy`'s behaviour under failures at each step, the grace period and its repair.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use zddm::cached::{Cache, CachedProxy, Entry, MemoryCache, PostgresCache, Probe, RedisCache, SqliteCache};
use zddm::{Gate, MemoryStore, Op, Phase, Rate, Side, Store};
use zddm_suite::faults::Fault;
use zddm_suite::servers::{PostgresServer, RedisServer};
use zddm_suite::stall::{Call, Stall};

/// Grace periods that make every answer independent of the clocks (see `versioned_stores.rs`).
const GRACES: [u64; 2] = [1, 10 * 24 * 3600 * 1000];

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Replays a pseudo-random run of operations on `cache` and on the model; they must agree.
async fn conforms<C: Cache<u64, u64>>(cache: C, name: &str, seed: u64) {
    let mut model: BTreeMap<u64, Entry<u64>> = BTreeMap::new();
    let mut tokens: BTreeMap<u64, u64> = BTreeMap::new();
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for step in 0..300 {
        let key = next(3);
        let entry = model.entry(key).or_default();
        match next(5) {
            0 | 1 => {
                let (got, expected) = (cache.probe(&key).await.unwrap(), entry.probe(now()));
                if let Probe::Leased(token) = expected {
                    tokens.insert(key, token);
                }
                assert_eq!(got, expected, "{name}, step {step}: probe of {key}");
            }
            2 => {
                let grace = GRACES[next(2) as usize];
                cache.mark(&key, grace).await.unwrap();
                entry.mark(now(), grace);
                std::thread::sleep(Duration::from_millis(2));
            }
            3 => {
                let settle = next(3) != 0;
                cache.invalidate(&key, settle).await.unwrap();
                entry.invalidate(settle);
            }
            _ => {
                let value = (next(2) == 0).then(|| next(1000));
                let token = match next(3) {
                    0 => next(5),
                    _ => tokens.get(&key).copied().unwrap_or(0),
                };
                let landed = cache.fill(&key, value.as_ref(), token).await.unwrap();
                assert_eq!(landed, entry.fill(value, token), "{name}, step {step}: fill of {key} with {token}");
            }
        }
    }
    let pending: Vec<Vec<u8>> =
        model.iter().filter(|(_, e)| e.pending > 0).map(|(k, _)| zddm::MigrationKey::key_bytes(k)).collect();
    assert_eq!(cache.pending_keys(None, 10).await.unwrap(), pending, "{name}: pending keys");
}

#[tokio::test(flavor = "current_thread")]
async fn every_cache_conforms_to_the_entry_model() {
    for seed in 0..6 {
        conforms(MemoryCache::new(), "memory", seed).await;
    }
    let dir = tempfile::tempdir().unwrap();
    for seed in 0..3 {
        conforms(SqliteCache::open(dir.path().join(format!("{seed}.db")), "cache").unwrap(), "sqlite", seed).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_networked_caches_conform_to_the_entry_model() {
    let (pg, redis) = (PostgresServer::start(), RedisServer::start());
    for seed in 0..3 {
        let cache = PostgresCache::connect(&pg.url(), &format!("cache{seed}"), 1).await.unwrap();
        conforms(cache, "postgres", seed).await;
        conforms(RedisCache::connect(&redis.url(), &format!("cache{seed}")).await.unwrap(), "redis", seed).await;
    }
}

type Old = Arc<Stall<Arc<MemoryStore<u64, u64>>>>;
type New = Arc<Stall<Arc<MemoryCache<u64, u64>>>>;

const GRACE: Duration = Duration::from_millis(200);

fn world() -> (CachedProxy<u64, u64, Old, New>, Old, New) {
    let old = Arc::new(Stall::new(Arc::new(MemoryStore::new())));
    let new = Arc::new(Stall::new(Arc::new(MemoryCache::new())));
    let proxy = CachedProxy::new(old.clone(), new.clone(), Gate::new("cached", Rate::ALL)).with_grace(GRACE).unwrap();
    (proxy, old, new)
}

#[tokio::test(flavor = "current_thread")]
async fn reads_fill_under_a_lease_and_writes_empty_the_copy() {
    let (proxy, old, new) = world();
    old.inner().put(&1, &10).await.unwrap();
    assert_eq!(proxy.get(&1).await.unwrap(), Some(10));
    assert_eq!((proxy.stats().backfills, proxy.stats().reads_from_old), (1, 1));
    assert_eq!(proxy.get(&1).await.unwrap(), Some(10));
    assert_eq!(proxy.stats().reads_from_new, 1, "the copy serves the second read");
    proxy.put(&1, &11).await.unwrap();
    assert!(matches!(new.inner().probe(&1).await.unwrap(), Probe::Leased(_)), "the write emptied it");
    assert_eq!(proxy.get(&1).await.unwrap(), Some(11));
    proxy.delete(&1).await.unwrap();
    assert_eq!(proxy.get(&1).await.unwrap(), None);
    assert_eq!(proxy.get(&1).await.unwrap(), None);
    assert_eq!(new.inner().probe(&1).await.unwrap(), Probe::Absent, "absence is cached too");
}

#[tokio::test(flavor = "current_thread")]
async fn a_read_racing_a_write_cannot_land_what_it_read() {
    let (proxy, old, new) = world();
    old.inner().put(&1, &10).await.unwrap();
    let pause = new.pause_next(Call::Fill);
    let (read, write) = tokio::join!(proxy.get(&1), async {
        pause.reached().await;
        let written = proxy.put(&1, &11).await;
        pause.release();
        written
    });
    assert_eq!(read.unwrap(), Some(10), "the read began before the write");
    write.unwrap();
    assert_eq!(proxy.stats().backfills_skipped, 1, "the write voided the read's lease");
    assert_eq!(proxy.get(&1).await.unwrap(), Some(11));
}

/// A backfill's copy takes its lease before it reads OLD, as a read does: a write that lands while
/// the backfill reads voids the lease, and the value read never lands.
#[tokio::test(flavor = "current_thread")]
async fn a_backfill_racing_a_write_cannot_land_what_it_read() {
    use zddm::backfill::{Backfill, MemoryCheckpoint};
    let (proxy, old, new) = world();
    for key in 0..4 {
        old.inner().put(&key, &10).await.unwrap();
    }
    proxy.set_phase(Phase::Live).unwrap();
    let pause = old.pause_next(Call::Get);
    let (backfill, checkpoint) = (Backfill::new(&proxy), MemoryCheckpoint::new());
    let (done, write) = tokio::join!(backfill.run(&checkpoint, tokio::time::sleep, |_| {}), async {
        pause.reached().await; // the backfill is reading key 0 from OLD
        let written = proxy.put(&0, &11).await;
        pause.release();
        written
    });
    write.unwrap();
    let done = done.unwrap();
    assert_eq!((done.copied, done.newer), (3, 1), "{done}");
    assert!(!matches!(new.inner().probe(&0).await.unwrap(), Probe::Hit(10)), "the stale read landed");
    assert_eq!(proxy.get(&0).await.unwrap(), Some(11));
    assert_eq!(new.inner().probe(&3).await.unwrap(), Probe::Hit(10), "the others were copied");
}

#[tokio::test(flavor = "current_thread")]
async fn a_write_abandoned_between_old_and_new_is_repaired_after_the_grace_period() {
    let (proxy, old, new) = world();
    proxy.put(&1, &1).await.unwrap();
    assert_eq!(proxy.get(&1).await.unwrap(), Some(1));
    new.fail_next(Call::Invalidate, Fault::Before);
    proxy.put(&1, &2).await.unwrap();
    assert_eq!(new.inner().probe(&1).await.unwrap(), Probe::Busy, "marked: nobody serves the old copy");
    assert_eq!(proxy.get(&1).await.unwrap(), Some(2));
    tokio::time::sleep(GRACE + Duration::from_millis(50)).await;
    assert_eq!(proxy.get(&1).await.unwrap(), Some(2));
    assert_eq!(proxy.get(&1).await.unwrap(), Some(2));
    assert_eq!(new.inner().pending_keys(None, 10).await.unwrap(), Vec::<Vec<u8>>::new(), "repaired");
    assert!(proxy.stats().reads_from_new >= 1);
    assert_eq!(old.inner().get(&1).await.unwrap(), Some(2));
}

#[tokio::test(flavor = "current_thread")]
async fn failures_on_either_side_leave_new_honest() {
    let (proxy, old, new) = world();
    proxy.put(&1, &1).await.unwrap();
    assert_eq!(proxy.get(&1).await.unwrap(), Some(1));
    new.fail_next(Call::Mark, Fault::Before);
    let error = proxy.put(&1, &2).await.unwrap_err();
    assert_eq!((error.side(), error.op()), (Side::New, Op::Mark));
    assert_eq!(old.inner().get(&1).await.unwrap(), Some(1), "OLD untouched");
    old.fail_next(Call::Put, Fault::After);
    let error = proxy.put(&1, &3).await.unwrap_err();
    assert_eq!(error.side(), Side::Old);
    assert_eq!(proxy.get(&1).await.unwrap(), Some(3), "OLD took it: the marked key is read from OLD");
    new.fail_next(Call::Probe, Fault::Before);
    assert_eq!(proxy.get(&1).await.unwrap(), Some(3), "a NEW outage never fails a read OLD can serve");
    proxy.set_phase(Phase::Live).unwrap();
    new.fail_next(Call::Probe, Fault::Before);
    assert_eq!(proxy.get(&1).await.unwrap_err().side(), Side::New, "in live, NEW serves reads");
}
