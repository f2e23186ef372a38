//! One backfill pass split over three workers, each with its own connections, ranges handed out
//! by PostgreSQL advisory locks; one worker is killed midway. Every key ends in NEW, and no range is
//! ever worked by two workers at once. PostgreSQL → PostgreSQL and PostgreSQL → Redis.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zddm::backfill::{Backfill, PostgresRanges, Ranges};
use zddm::versioned::{Lookup, PostgresSource, PostgresTarget, RedisTarget, Source, Target, VersionedProxy};
use zddm::{Gate, Phase, Rate};
use zddm_suite::servers::{PostgresServer, RedisServer};

const KEYS: u64 = 3_000;
const PARTS: u32 = 9;

type Events = Arc<Mutex<Vec<(usize, u32, Instant)>>>;

/// The keys NEW does not hold as OLD has them: a PostgreSQL table, or Redis when a URL is given.
async fn missing(url: &str, redis: Option<&str>) -> Vec<u64> {
    async fn check<N: Target<u64, String>>(new: N) -> Vec<u64> {
        let mut missing = Vec::new();
        for key in 0..KEYS {
            if new.lookup(&key).await.unwrap() != Lookup::Hit(format!("order {key}")) {
                missing.push(key);
            }
        }
        missing
    }
    match redis {
        Some(redis) => check(RedisTarget::<u64, String>::connect(redis, "new_orders").await.unwrap()).await,
        None => check(PostgresTarget::<u64, String>::connect(url, "new_orders", 1).await.unwrap()).await,
    }
}

async fn worker(url: String, redis: Option<String>, id: usize, events: Events, started: Arc<tokio::sync::Notify>) {
    let old = PostgresSource::<u64, String>::connect(&url, "old_orders", 2).await.unwrap();
    match redis {
        Some(redis) => {
            let new = RedisTarget::<u64, String>::connect(&redis, "new_orders").await.unwrap();
            work(&url, old, new, id, events, started).await
        }
        None => {
            let new = PostgresTarget::<u64, String>::connect(&url, "new_orders", 2).await.unwrap();
            work(&url, old, new, id, events, started).await
        }
    }
}

async fn work<N: Target<u64, String>>(
    url: &str,
    old: PostgresSource<u64, String>,
    new: N,
    id: usize,
    events: Events,
    started: Arc<tokio::sync::Notify>,
) {
    let proxy = VersionedProxy::new(old, new, Gate::new("workers", Rate::ALL));
    proxy.set_phase(Phase::Live).unwrap();
    let ranges = PostgresRanges::connect(url, "orders").await.unwrap();
    let backfill = Backfill::new(&proxy).batch(50).rate(3_000.0);
    let report = |range: &zddm::backfill::Range, _: &zddm::backfill::Progress| {
        events.lock().unwrap().push((id, range.part, Instant::now()));
        started.notify_one();
    };
    backfill.work(&ranges, PARTS, Duration::from_millis(20), tokio::time::sleep, report).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_killed_copy_every_key_and_never_share_a_range() {
    three_workers(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_killed_copy_every_key_from_postgres_to_redis() {
    let redis = RedisServer::start();
    three_workers(Some(redis.url())).await;
}

async fn three_workers(redis: Option<String>) {
    let server = PostgresServer::start();
    let url = server.url();
    let old = PostgresSource::<u64, String>::connect(&url, "old_orders", 2).await.unwrap();
    for key in 0..KEYS {
        old.put(&key, &format!("order {key}")).await.unwrap();
    }
    let events: Events = Arc::default();
    let doomed_started = Arc::new(tokio::sync::Notify::new());
    let spawn = |id: usize, started: Arc<tokio::sync::Notify>| {
        tokio::spawn(worker(url.clone(), redis.clone(), id, events.clone(), started))
    };
    let doomed = spawn(0, doomed_started.clone());
    let others = [spawn(1, Arc::new(tokio::sync::Notify::new())), spawn(2, Arc::new(tokio::sync::Notify::new()))];
    // Killed once it has copied a batch or two: mid-range, its lock still held.
    doomed_started.notified().await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    doomed.abort();
    assert!(doomed.await.unwrap_err().is_cancelled(), "the worker was killed before it finished");
    for other in others {
        other.await.unwrap();
    }

    // Every key is in NEW, as OLD has it.
    let missing = missing(&url, redis.as_deref()).await;
    assert!(missing.is_empty(), "{} keys not copied, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    let ranges = PostgresRanges::connect(&url, "orders").await.unwrap();
    let checkpoints = ranges.checkpoints().await.unwrap();
    assert_eq!(checkpoints.len(), PARTS as usize);
    assert!(checkpoints.iter().all(|c| c.done));
    assert!(checkpoints.iter().map(|c| c.scanned).sum::<u64>() >= KEYS);

    // No range was worked by two workers at once: per range, each worker's reports span an
    // interval, and the intervals do not overlap.
    let events = events.lock().unwrap().clone();
    let mut spans: BTreeMap<(u32, usize), (Instant, Instant)> = BTreeMap::new();
    for (id, part, at) in &events {
        let span = spans.entry((*part, *id)).or_insert((*at, *at));
        span.0 = span.0.min(*at);
        span.1 = span.1.max(*at);
    }
    let mut shared = 0;
    for part in 0..PARTS {
        let by: Vec<_> = spans.iter().filter(|((p, _), _)| *p == part).map(|(_, span)| *span).collect();
        shared += usize::from(by.len() > 1);
        for (i, a) in by.iter().enumerate() {
            for b in &by[i + 1..] {
                assert!(a.1 < b.0 || b.1 < a.0, "range {part} was worked by two workers at once: {by:?}");
            }
        }
    }
    let workers: std::collections::BTreeSet<_> = events.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(workers.len(), 3, "every worker took part");
    assert!(shared >= 1, "the killed worker's range was taken over by another");
}
