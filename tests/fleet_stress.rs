//! A randomised multi-instance stress with a history checker.
//!
//! Three instances of a fleet (each with its own store handles and its own poller, polling at its
//! own pace, so their plans lag each other), four workers each, on sixteen hot keys, while the
//! fleet's rate ramps up and down and into `Live`. Every store call may fail before or after it
//! takes effect (an ambiguous timeout) or be held up, and callers drop some calls midway. Every
//! call is recorded with its start and end; the checker then looks for
//!
//! - **stale reads** and **phantoms** (`zddm_suite::history`);
//! - **stale NEW and resurrections**: once the writers stop, anything NEW would serve that OLD
//!   does not hold.
//!
//! A control run gives each instance its own gate instead of the fleet's plan; the same checker
//! must find violations there.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zddm::cached::{Cache, CachedProxy, MemoryCache, Probe, SqliteCache};
use zddm::fleet::{Control, Fleet, FleetConfig, Goal, MemoryControl, PostgresControl, SqliteControl};
use zddm::versioned::{Lookup, MemorySource, MemoryTarget, PostgresSource, RedisTarget, SqliteSource, SqliteTarget};
use zddm::versioned::{Source, Target, VersionedProxy};
use zddm::{Gate, MemoryStore, Phase, Rate, SqliteStore, Store};
use zddm_suite::fleet::Instance;
use zddm_suite::history::{Event, History, Kind};
use zddm_suite::servers::{PostgresServer, RedisServer};
use zddm_suite::stall::{Chaos, Stall};

const INSTANCES: usize = 3;
const WORKERS: usize = 4;
const KEYS: u64 = 16;
const GRACE: Duration = Duration::from_millis(150);

/// A mode under stress: how its proxy is made over fault-injecting handles, and how NEW is
/// checked against OLD at the end.
trait Mode<O, N>: 'static {
    type Proxy: Instance + 'static;
    fn local(old: Arc<Stall<O>>, new: Arc<Stall<N>>, gate: Gate) -> Self::Proxy;
    fn in_fleet<C: Control>(old: Arc<Stall<O>>, new: Arc<Stall<N>>, fleet: &Fleet<C>) -> Self::Proxy;
    fn set_phase(proxy: &Self::Proxy, phase: Phase);
    fn agree(old: &O, new: &N) -> impl Future<Output = Vec<String>>;
}

struct VersionedMode;
struct CachedMode;

impl<O: Source<u64, u64> + 'static, N: Target<u64, u64> + 'static> Mode<O, N> for VersionedMode {
    type Proxy = VersionedProxy<u64, u64, Arc<Stall<O>>, Arc<Stall<N>>>;
    fn local(old: Arc<Stall<O>>, new: Arc<Stall<N>>, gate: Gate) -> Self::Proxy {
        VersionedProxy::builder(old, new, gate).grace(GRACE).build().unwrap()
    }
    fn in_fleet<C: Control>(old: Arc<Stall<O>>, new: Arc<Stall<N>>, fleet: &Fleet<C>) -> Self::Proxy {
        VersionedProxy::fleet_builder(old, new, fleet).grace(GRACE).build().unwrap()
    }
    fn set_phase(proxy: &Self::Proxy, phase: Phase) {
        let _ = proxy.set_phase(phase);
    }
    async fn agree(old: &O, new: &N) -> Vec<String> {
        new_agrees_with_old(old, new).await
    }
}

impl<O: Store<u64, u64> + 'static, N: Cache<u64, u64> + 'static> Mode<O, N> for CachedMode {
    type Proxy = CachedProxy<u64, u64, Arc<Stall<O>>, Arc<Stall<N>>>;
    fn local(old: Arc<Stall<O>>, new: Arc<Stall<N>>, gate: Gate) -> Self::Proxy {
        CachedProxy::new(old, new, gate).with_grace(GRACE).unwrap()
    }
    fn in_fleet<C: Control>(old: Arc<Stall<O>>, new: Arc<Stall<N>>, fleet: &Fleet<C>) -> Self::Proxy {
        CachedProxy::in_fleet(old, new, fleet).with_grace(GRACE).unwrap()
    }
    fn set_phase(proxy: &Self::Proxy, phase: Phase) {
        let _ = proxy.set_phase(phase);
    }
    async fn agree(old: &O, new: &N) -> Vec<String> {
        let mut out = Vec::new();
        for key in 0..KEYS {
            let in_old = old.get(&key).await.unwrap();
            match new.probe(&key).await.unwrap() {
                Probe::Hit(value) if Some(value) != in_old => {
                    out.push(format!("stale NEW: key {key}: {value}, OLD {in_old:?}"))
                }
                Probe::Absent if in_old.is_some() => {
                    out.push(format!("stale NEW: key {key} cached absent, OLD {in_old:?}"))
                }
                _ => {}
            }
        }
        out
    }
}

/// One instance: its proxy, its fleet membership (if any), its stores' fault injectors.
struct Member<P, O, N, C> {
    proxy: P,
    fleet: Option<Fleet<C>>,
    gate: Gate,
    stalls: (Arc<Stall<O>>, Arc<Stall<N>>),
}

fn chaos(seed: u64) -> Chaos {
    Chaos {
        fail_before_ppm: 20_000,
        fail_after_ppm: 20_000,
        delay_ppm: 100_000,
        max_delay: Duration::from_millis(2),
        seed: seed | 1,
    }
}

/// A worker: random puts, deletes and reads, some of them dropped midway, until `stop`.
async fn worker<P: Instance, O, N, C>(
    member: Arc<Member<P, O, N, C>>,
    history: Arc<History>,
    id: u64,
    origin: Instant,
    stop: Instant,
) -> usize {
    let clock = || origin.elapsed().as_nanos() as u64;
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut seq = 0;
    while Instant::now() < stop {
        seq += 1;
        let key = next() % KEYS;
        let draw = next() % 10;
        let value = (id << 32) | seq;
        let kind = match draw {
            0 | 1 => Kind::Write(None),
            2..=5 => Kind::Write(Some(value)),
            _ => Kind::Read(None),
        };
        // One call in twenty is dropped after a short while, wherever it is by then.
        let budget = if next() % 20 == 0 { Duration::from_micros(next() % 1500) } else { Duration::from_secs(30) };
        let start = clock();
        let outcome = match kind {
            Kind::Write(Some(value)) => timed(budget, member.proxy.put(key, value)).await.map(|r| r.map(|()| None)),
            Kind::Write(None) => timed(budget, member.proxy.delete(key)).await.map(|r| r.map(|()| None)),
            Kind::Read(_) => timed(budget, member.proxy.get(key)).await,
        };
        let end = clock();
        let dropped = outcome.is_none();
        let (kind, ok) = match (kind, outcome) {
            (Kind::Read(_), Some(Ok(got))) => (Kind::Read(got), true),
            (Kind::Read(_), _) => continue,
            (write, Some(Ok(_))) => (write, true),
            (write, _) => (write, false),
        };
        history.record(Event { key, kind, start, end, ok, dropped });
    }
    usize::try_from(seq).unwrap()
}

/// The call's result, or `None` if it was dropped at `budget`.
async fn timed<T>(budget: Duration, call: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(budget, call).await.ok()
}

/// Whatever NEW would serve for any key is what OLD holds.
async fn new_agrees_with_old<O: Source<u64, u64>, N: Target<u64, u64>>(old: &O, new: &N) -> Vec<String> {
    let mut out = Vec::new();
    for key in 0..KEYS {
        let in_old = old.get(&key).await.unwrap().map(|found| found.value);
        match new.lookup(&key).await.unwrap() {
            Lookup::Hit(value) if Some(value) != in_old => {
                out.push(format!("stale NEW: key {key}: {value}, OLD {in_old:?}"))
            }
            Lookup::Deleted if in_old.is_some() => {
                out.push(format!("resurrection-to-be: key {key} deleted in NEW, OLD {in_old:?}"))
            }
            _ => {}
        }
    }
    out
}

struct Report {
    operations: usize,
    violations: Vec<String>,
}

/// Runs the stress for `duration` over the instances `open` makes (three handles on the same two
/// stores, and a control handle each), in a fleet or — the control — each on its own gate.
async fn stress<M, O, N, C, F, Fut>(open: F, in_fleet: bool, duration: Duration) -> Report
where
    M: Mode<O, N>,
    O: Send + Sync + 'static,
    N: Send + Sync + 'static,
    C: Control + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = (O, N, C)>,
{
    let config = FleetConfig { fence_after: Duration::from_secs(5), dead_after: Duration::from_secs(20) };
    let mut members = Vec::new();
    for i in 0..INSTANCES {
        let (old, new, control) = open(i).await;
        let stalls = (Arc::new(Stall::new(old)), Arc::new(Stall::new(new)));
        let (proxy, fleet, gate) = if in_fleet {
            let fleet = Fleet::join(control, &format!("i{i}"), "stress", config).await.unwrap();
            (M::in_fleet(stalls.0.clone(), stalls.1.clone(), &fleet), Some(fleet), Gate::new("stress", Rate::NONE))
        } else {
            let gate = Gate::new("stress", Rate::NONE);
            (M::local(stalls.0.clone(), stalls.1.clone(), gate.clone()), None, gate)
        };
        stalls.0.chaos(Some(chaos(i as u64 * 2 + 1)));
        stalls.1.chaos(Some(chaos(i as u64 * 2 + 2)));
        members.push(Arc::new(Member { proxy, fleet, gate, stalls }));
    }
    let history = Arc::new(History::default());
    let origin = Instant::now();
    let stop = origin + duration;
    let mut tasks = Vec::new();
    for (i, member) in members.iter().enumerate() {
        for w in 0..WORKERS {
            tasks.push(tokio::spawn(worker(
                member.clone(),
                history.clone(),
                (i * WORKERS + w + 1) as u64,
                origin,
                stop,
            )));
        }
    }
    // The operator: ramps up, down, up and into `Live`, one goal per fifth of the run. Each
    // instance polls at its own pace (or, on its own, follows a moment after the one before).
    let goals =
        [(Phase::ReadThrough, 50.0), (Phase::ReadThrough, 10.0), (Phase::ReadThrough, 100.0), (Phase::Live, 100.0)];
    let slice = duration / (goals.len() as u32 + 1);
    let operator = {
        let members = members.clone();
        tokio::spawn(async move {
            for (phase, percent) in goals {
                tokio::time::sleep(slice).await;
                let goal = Goal { phase, rate: Rate::percent(percent).unwrap() };
                if let Some(fleet) = &members[0].fleet {
                    fleet.set_goal(goal).await.unwrap();
                } else {
                    for member in &members {
                        member.gate.set_rate(goal.rate).unwrap();
                        M::set_phase(&member.proxy, goal.phase);
                        // Long enough for writes to land while instances disagree.
                        tokio::time::sleep(Duration::from_millis(25)).await;
                    }
                }
            }
        })
    };
    let pollers: Vec<_> = members
        .iter()
        .enumerate()
        .filter(|(_, member)| member.fleet.is_some())
        .map(|(i, member)| {
            let member = member.clone();
            tokio::spawn(async move {
                let pace = Duration::from_millis(5 + 7 * i as u64);
                while Instant::now() < stop {
                    member.fleet.as_ref().unwrap().poll().await.unwrap();
                    tokio::time::sleep(pace).await;
                }
            })
        })
        .collect();
    let mut operations = 0;
    for task in tasks {
        operations += task.await.unwrap();
    }
    operator.await.unwrap();
    for poller in pollers {
        poller.await.unwrap();
    }
    for member in &members {
        member.stalls.0.chaos(None);
        member.stalls.1.chaos(None);
    }
    let mut violations = history.violations();
    let (old, new) = (&members[0].stalls.0, &members[0].stalls.1);
    violations.extend(M::agree(old.inner(), new.inner()).await);
    Report { operations, violations }
}

fn summary(name: &str, report: &Report) {
    eprintln!("{name}: {} operations, {} violations", report.operations, report.violations.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_under_chaos_keeps_every_invariant_in_memory() {
    let (old, new, control) = (Arc::new(MemorySource::new()), Arc::new(MemoryTarget::new()), MemoryControl::new());
    let open = |_| {
        let (old, new, control) = (old.clone(), new.clone(), control.clone());
        async move { (old, new, control) }
    };
    let report = stress::<VersionedMode, _, _, _, _, _>(open, true, Duration::from_secs(6)).await;
    summary("memory fleet", &report);
    assert!(report.operations > 10_000, "{} operations", report.operations);
    assert_eq!(report.violations, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_their_own_gates_under_chaos_break_the_invariants() {
    let (old, new, control) = (Arc::new(MemorySource::new()), Arc::new(MemoryTarget::new()), MemoryControl::new());
    let open = |_| {
        let (old, new, control) = (old.clone(), new.clone(), control.clone());
        async move { (old, new, control) }
    };
    // The races are timing-dependent: a run may, rarely, miss them all; three in a row never has.
    let mut reports = Vec::new();
    for _ in 0..3 {
        let report = stress::<VersionedMode, _, _, _, _, _>(&open, false, Duration::from_secs(6)).await;
        summary("memory, own gates", &report);
        let caught = !report.violations.is_empty();
        reports.push(report);
        if caught {
            break;
        }
    }
    assert!(reports.iter().any(|r| !r.violations.is_empty()), "the checker must catch instances that disagree");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_under_chaos_keeps_every_invariant_over_sqlite_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let open = |_| {
        let handles = (
            SqliteSource::<u64, u64>::open(path("old.db"), "entries").unwrap(),
            SqliteTarget::<u64, u64>::open(path("new.db"), "entries").unwrap(),
            SqliteControl::open(path("control.db"), "stress").unwrap(),
        );
        async move { handles }
    };
    let report = stress::<VersionedMode, _, _, _, _, _>(open, true, Duration::from_secs(8)).await;
    summary("sqlite fleet", &report);
    assert!(report.operations > 1_000, "{} operations", report.operations);
    assert_eq!(report.violations, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_under_chaos_keeps_every_invariant_over_postgres_to_redis() {
    let (pg, redis) = (PostgresServer::start(), RedisServer::start());
    let (pg_url, redis_url) = (pg.url(), redis.url());
    let open = |_| {
        let (pg_url, redis_url) = (pg_url.clone(), redis_url.clone());
        async move {
            (
                PostgresSource::<u64, u64>::connect(&pg_url, "entries", 4).await.unwrap(),
                RedisTarget::<u64, u64>::connect(&redis_url, "entries").await.unwrap(),
                PostgresControl::connect(&pg_url, "stress").await.unwrap(),
            )
        }
    };
    let report = stress::<VersionedMode, _, _, _, _, _>(open, true, Duration::from_secs(10)).await;
    summary("postgres to redis fleet", &report);
    assert!(report.operations > 1_000, "{} operations", report.operations);
    assert_eq!(report.violations, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unversioned_fleet_under_chaos_keeps_every_invariant_in_memory() {
    let (old, new, control) = (Arc::new(MemoryStore::new()), Arc::new(MemoryCache::new()), MemoryControl::new());
    let open = |_| {
        let (old, new, control) = (old.clone(), new.clone(), control.clone());
        async move { (old, new, control) }
    };
    let report = stress::<CachedMode, _, _, _, _, _>(open, true, Duration::from_secs(6)).await;
    summary("memory unversioned fleet", &report);
    assert!(report.operations > 10_000, "{} operations", report.operations);
    assert_eq!(report.violations, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unversioned_fleet_under_chaos_keeps_every_invariant_over_sqlite_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let open = |_| {
        let handles = (
            SqliteStore::<u64, u64>::open(path("old.db"), "entries").unwrap(),
            SqliteCache::<u64, u64>::open(path("new.db"), "entries").unwrap(),
            SqliteControl::open(path("control.db"), "stress").unwrap(),
        );
        async move { handles }
    };
    let report = stress::<CachedMode, _, _, _, _, _>(open, true, Duration::from_secs(6)).await;
    summary("sqlite unversioned fleet", &report);
    assert!(report.operations > 1_000, "{} operations", report.operations);
    assert_eq!(report.violations, Vec::<String>::new());
}
