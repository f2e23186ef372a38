//! Shuttle schedules over 2–3 fleet instances in memory: the real async `VersionedProxy` (and, in
//! unversioned mode, `CachedProxy`) and `Fleet::poll`, with every store call a scheduling point.
//!
//! Each iteration: shared in-memory OLD and NEW, a control record, and two or three instances
//! (a proxy and a fleet membership each). Every instance runs a worker (three random puts,
//! deletes and reads of two keys, each value unique) and a poller; an operator sets two goals
//! drawn from raise, lower and `Live`; sometimes one worker's call is aborted after a few yields,
//! so its future is dropped wherever it got to. Afterwards the history is checked
//! (`zddm_suite::history`: stale reads, phantoms) and NEW must serve nothing OLD does not hold.
//!
//! The control runs the same schedules with a plan that jumps to each goal instead of stepping,
//! and shuttle must find a violation.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use shuttle::future::{block_on, spawn, yield_now};
use shuttle::rand::{thread_rng, Rng};
use shuttle::scheduler::{PctScheduler, RandomScheduler, Scheduler};
use shuttle::{Config, Runner};
use zddm::cached::{Cache, CachedProxy, MemoryCache, Probe};
use zddm::fleet::{Control, Fleet, FleetConfig, Goal, MemoryControl, Plan};
use zddm::versioned::{Change, Filled, Lookup, MemorySource, MemoryTarget, Source, Target, Versioned, VersionedProxy};
use zddm::{MemoryStore, Store};
use zddm::{Phase, Rate};
use zddm_suite::fleet::Instance;
use zddm_suite::history::{Event, History, Kind};

const KEYS: u64 = 2;

/// What the iterations covered, summed: plan steps taken and calls recorded.
static STEPS: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);

/// A store handle that yields to shuttle before and after every call.
struct Yielding<S>(Arc<S>);

impl<S> Clone for Yielding<S> {
    fn clone(&self) -> Self {
        Yielding(Arc::clone(&self.0))
    }
}

async fn around<T>(call: impl Future<Output = T>) -> T {
    yield_now().await;
    let out = call.await;
    yield_now().await;
    out
}

impl<S: Source<u64, u64>> Source<u64, u64> for Yielding<S> {
    type Error = S::Error;
    async fn get(&self, key: &u64) -> Result<Option<Versioned<u64>>, S::Error> {
        around(self.0.get(key)).await
    }
    async fn put(&self, key: &u64, value: &u64) -> Result<u64, S::Error> {
        around(self.0.put(key, value)).await
    }
    async fn delete(&self, key: &u64) -> Result<u64, S::Error> {
        around(self.0.delete(key)).await
    }
    async fn next_version(&self, key: &u64) -> Result<u64, S::Error> {
        around(self.0.next_version(key)).await
    }
}

impl<S: Target<u64, u64>> Target<u64, u64> for Yielding<S> {
    type Error = S::Error;
    async fn lookup(&self, key: &u64) -> Result<Lookup<u64>, S::Error> {
        around(self.0.lookup(key)).await
    }
    async fn mark(&self, key: &u64, grace_ms: u64) -> Result<(), S::Error> {
        around(self.0.mark(key, grace_ms)).await
    }
    async fn apply(&self, key: &u64, change: Change<&u64>, version: u64, settle: bool) -> Result<(), S::Error> {
        around(self.0.apply(key, change, version, settle)).await
    }
    async fn fill(&self, key: &u64, value: Option<&u64>, version: u64, token: Option<u64>) -> Result<Filled, S::Error> {
        around(self.0.fill(key, value, version, token)).await
    }
    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, S::Error> {
        self.0.pending_keys(after, limit).await
    }
    async fn purge(&self, older_than_ms: u64) -> Result<usize, S::Error> {
        self.0.purge(older_than_ms).await
    }
}

impl<S: Store<u64, u64>> Store<u64, u64> for Yielding<S> {
    type Error = S::Error;
    async fn get(&self, key: &u64) -> Result<Option<u64>, S::Error> {
        around(self.0.get(key)).await
    }
    async fn put(&self, key: &u64, value: &u64) -> Result<(), S::Error> {
        around(self.0.put(key, value)).await
    }
    async fn insert_if_absent(&self, key: &u64, value: &u64) -> Result<bool, S::Error> {
        around(self.0.insert_if_absent(key, value)).await
    }
    async fn delete(&self, key: &u64) -> Result<(), S::Error> {
        around(self.0.delete(key)).await
    }
}

impl<C: Cache<u64, u64>> Cache<u64, u64> for Yielding<C> {
    type Error = C::Error;
    async fn probe(&self, key: &u64) -> Result<Probe<u64>, C::Error> {
        around(self.0.probe(key)).await
    }
    async fn mark(&self, key: &u64, grace_ms: u64) -> Result<(), C::Error> {
        around(self.0.mark(key, grace_ms)).await
    }
    async fn invalidate(&self, key: &u64, settle: bool) -> Result<(), C::Error> {
        around(self.0.invalidate(key, settle)).await
    }
    async fn fill(&self, key: &u64, value: Option<&u64>, token: u64) -> Result<bool, C::Error> {
        around(self.0.fill(key, value, token)).await
    }
    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, C::Error> {
        self.0.pending_keys(after, limit).await
    }
}

/// A mode under the schedules: its stores, its proxy in a fleet, and its final check.
trait Mode: 'static {
    type Old: Send + Sync + 'static;
    type New: Send + Sync + 'static;
    type Proxy: Instance + 'static;
    fn stores() -> (Arc<Self::Old>, Arc<Self::New>);
    fn proxy(old: &Arc<Self::Old>, new: &Arc<Self::New>, fleet: &Fleet<MemoryControl>) -> Self::Proxy;
    fn seed(old: &Self::Old, key: u64, value: u64) -> impl Future<Output = ()>;
    /// What NEW would serve for `key` that OLD does not hold.
    fn stale(old: &Self::Old, new: &Self::New, key: u64) -> impl Future<Output = Option<String>>;
}

struct VersionedMode;
struct CachedMode;

impl Mode for VersionedMode {
    type Old = MemorySource<u64, u64>;
    type New = MemoryTarget<u64, u64>;
    type Proxy = VersionedProxy<u64, u64, Yielding<Self::Old>, Yielding<Self::New>>;
    fn stores() -> (Arc<Self::Old>, Arc<Self::New>) {
        (Arc::new(MemorySource::new()), Arc::new(MemoryTarget::new()))
    }
    fn proxy(old: &Arc<Self::Old>, new: &Arc<Self::New>, fleet: &Fleet<MemoryControl>) -> Self::Proxy {
        VersionedProxy::in_fleet(Yielding(old.clone()), Yielding(new.clone()), fleet)
    }
    async fn seed(old: &Self::Old, key: u64, value: u64) {
        Source::put(old, &key, &value).await.unwrap();
    }
    async fn stale(old: &Self::Old, new: &Self::New, key: u64) -> Option<String> {
        let in_old = Source::get(old, &key).await.unwrap().map(|found| found.value);
        match new.lookup(&key).await.unwrap() {
            Lookup::Hit(value) if Some(value) != in_old => Some(format!("key {key}: NEW {value}, OLD {in_old:?}")),
            Lookup::Deleted if in_old.is_some() => Some(format!("key {key}: NEW deleted, OLD {in_old:?}")),
            _ => None,
        }
    }
}

impl Mode for CachedMode {
    type Old = MemoryStore<u64, u64>;
    type New = MemoryCache<u64, u64>;
    type Proxy = CachedProxy<u64, u64, Yielding<Self::Old>, Yielding<Self::New>>;
    fn stores() -> (Arc<Self::Old>, Arc<Self::New>) {
        (Arc::new(MemoryStore::new()), Arc::new(MemoryCache::new()))
    }
    fn proxy(old: &Arc<Self::Old>, new: &Arc<Self::New>, fleet: &Fleet<MemoryControl>) -> Self::Proxy {
        CachedProxy::in_fleet(Yielding(old.clone()), Yielding(new.clone()), fleet)
    }
    async fn seed(old: &Self::Old, key: u64, value: u64) {
        Store::put(old, &key, &value).await.unwrap();
    }
    async fn stale(old: &Self::Old, new: &Self::New, key: u64) -> Option<String> {
        let in_old = Store::get(old, &key).await.unwrap();
        let entry = new.entries().into_iter().find(|(k, _)| *k == key.to_be_bytes())?.1;
        let serves = if entry.pending > 0 {
            None
        } else if entry.absent {
            Some(None)
        } else {
            entry.value.map(Some)
        };
        serves.filter(|v| *v != in_old).map(|v| format!("key {key}: NEW cache {v:?}, OLD {in_old:?}"))
    }
}

struct Member<P> {
    proxy: P,
    fleet: Fleet<MemoryControl>,
}

/// One iteration; `jump` is the control's switch.
async fn iteration<M: Mode>(jump: bool) {
    let mut rng = thread_rng();
    let (old, new) = M::stores();
    let control = MemoryControl::new();
    let instances = rng.gen_range(2..=3);
    let mut members = Vec::new();
    for i in 0..instances {
        let fleet = Fleet::join(control.clone(), &format!("i{i}"), "schedules", FleetConfig::default()).await.unwrap();
        let proxy = M::proxy(&old, &new, &fleet);
        members.push(Arc::new(Member { proxy, fleet }));
    }
    // Something in OLD to begin with, for reads to copy and writes to replace (NEW holds nothing:
    // no key was ever covered).
    let history = Arc::new(History::default());
    let clock = Arc::new(AtomicU64::new(0));
    for key in 0..KEYS {
        M::seed(&old, key, 1000 + key).await;
        let at = clock.fetch_add(1, Ordering::SeqCst);
        history.record(Event {
            key,
            kind: Kind::Write(Some(1000 + key)),
            start: at,
            end: at,
            ok: true,
            dropped: false,
        });
    }
    let mut tasks = Vec::new();
    let cancel_one = rng.gen_bool(0.3);
    for (i, member) in members.iter().enumerate() {
        let script: Vec<(u8, u64)> = (0..3).map(|_| (rng.gen_range(0..3), rng.gen_range(0..KEYS))).collect();
        let (member, history, clock) = (member.clone(), history.clone(), clock.clone());
        let cancel = (cancel_one && i == 0).then(|| rng.gen_range(0..6));
        tasks.push(spawn(async move {
            for (n, (op, key)) in script.into_iter().enumerate() {
                let value = ((i as u64) << 8) | n as u64;
                let kind = match op {
                    0 => Kind::Write(Some(value)),
                    1 => Kind::Write(None),
                    _ => Kind::Read(None),
                };
                let start = clock.fetch_add(1, Ordering::SeqCst);
                let call = {
                    let member = member.clone();
                    async move {
                        match kind {
                            Kind::Write(Some(value)) => member.proxy.put(key, value).await.map(|()| None),
                            Kind::Write(None) => member.proxy.delete(key).await.map(|()| None),
                            Kind::Read(_) => member.proxy.get(key).await,
                        }
                    }
                };
                let outcome = match cancel.filter(|_| n == 0) {
                    Some(yields) => {
                        let handle = spawn(call);
                        for _ in 0..yields {
                            yield_now().await;
                        }
                        handle.abort();
                        None
                    }
                    None => Some(call.await),
                };
                let end = clock.fetch_add(1, Ordering::SeqCst);
                let (kind, ok, dropped) = match (kind, outcome) {
                    (Kind::Read(_), Some(Ok(got))) => (Kind::Read(got), true, false),
                    (Kind::Read(_), _) => continue,
                    (write, Some(result)) => (write, result.is_ok(), false),
                    (write, None) => (write, false, true),
                };
                history.record(Event { key, kind, start, end, ok, dropped });
            }
        }));
    }
    for member in &members {
        let member = member.clone();
        tasks.push(spawn(async move {
            for _ in 0..12 {
                member.fleet.poll().await.unwrap();
                yield_now().await;
            }
        }));
    }
    let goals: Vec<Goal> = (0..2)
        .map(|_| match rng.gen_range(0..3) {
            0 => Goal { phase: Phase::ReadThrough, rate: Rate::ALL },
            1 => Goal { phase: Phase::ReadThrough, rate: Rate::percent(50.0).unwrap() },
            _ => Goal { phase: Phase::Live, rate: Rate::ALL },
        })
        .collect();
    {
        let (member, control) = (members[0].clone(), control.clone());
        tasks.push(spawn(async move {
            for goal in goals {
                member.fleet.set_goal(goal).await.unwrap();
                if jump {
                    let record = control.load().await.unwrap();
                    let high = record.plan.invalidate.max(goal.rate);
                    let plan = Plan { phase: goal.phase, read: goal.rate, write: high, invalidate: high };
                    control.advance(record.epoch, &plan).await.unwrap();
                }
                yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let epoch = control.load().await.unwrap().epoch;
    STEPS.fetch_add(epoch, Ordering::Relaxed);
    CALLS.fetch_add(history.len() as u64, Ordering::Relaxed);
    let mut violations = history.violations();
    for key in 0..KEYS {
        violations.extend(M::stale(&old, &new, key).await);
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

fn runner<S: Scheduler + 'static>(scheduler: S) -> Runner<S> {
    let mut config = Config::new();
    config.stack_size = 1 << 20;
    Runner::new(scheduler, config)
}

fn explore<M: Mode, S: Scheduler + 'static>(scheduler: S, iterations: usize) {
    let (steps, calls) = (STEPS.load(Ordering::Relaxed), CALLS.load(Ordering::Relaxed));
    let runs = runner(scheduler).run(|| block_on(iteration::<M>(false)));
    assert_eq!(runs, iterations);
    let (steps, calls) = (STEPS.load(Ordering::Relaxed) - steps, CALLS.load(Ordering::Relaxed) - calls);
    eprintln!("{iterations} schedules: {steps} plan steps, {calls} calls");
    // Most iterations move the plan several steps while the calls run.
    assert!(steps > iterations as u64 && calls > 6 * iterations as u64, "{steps} steps, {calls} calls");
}

#[test]
fn random_schedules_of_a_fleet_keep_the_invariants() {
    explore::<VersionedMode, _>(RandomScheduler::new(3000), 3000);
}

#[test]
fn pct_schedules_of_a_fleet_keep_the_invariants() {
    explore::<VersionedMode, _>(PctScheduler::new(3, 3000), 3000);
}

#[test]
fn schedules_catch_a_plan_that_jumps() {
    let caught = std::panic::catch_unwind(|| {
        runner(RandomScheduler::new(3000)).run(|| block_on(iteration::<VersionedMode>(true)))
    });
    assert!(caught.is_err(), "3000 random schedules missed the jumping plan's races");
}

#[test]
fn random_schedules_of_an_unversioned_fleet_keep_the_invariants() {
    explore::<CachedMode, _>(RandomScheduler::new(3000), 3000);
}

#[test]
fn pct_schedules_of_an_unversioned_fleet_keep_the_invariants() {
    explore::<CachedMode, _>(PctScheduler::new(3, 3000), 3000);
}
