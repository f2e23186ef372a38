//! Two instances whose coverage changes out of step: interleavings 1 (gates disagree, put), 2
//! (gates disagree, delete), 7 (phases disagree) and 8 (a restart forgets the high-water mark).
//!
//! In a fleet, every change of rate or phase goes through the control record, and each instance
//! applies it at its own poll: between two polls the instances run different plans. The scenario
//! writes and reads through both instances at every such moment, sequentially, so the value every
//! read must return is known. The control is today's: a `Proxy` per instance with its own gate and
//! phase, changed the same way, one instance ahead of the other.

use std::sync::Arc;
use zddm::cached::ScanKeys;
use zddm::verify::Verify;

use zddm::cached::{CachedProxy, SqliteCache};
use zddm::fleet::{
    Control, Fleet, FleetConfig, Goal, MemoryControl, Plan, PostgresControl, RedisControl, SqliteControl,
};
use zddm::versioned::{MemorySource, MemoryTarget, PostgresSource, RedisTarget, SqliteSource, SqliteTarget};
use zddm::versioned::{Source, Target, VersionedProxy};
use zddm::{Gate, MemoryStore, Phase, PostgresStore, Proxy, Rate, RedisStore, SqliteStore, Store};
use zddm_suite::fleet::Instance;
use zddm_suite::servers::{PostgresServer, RedisServer};

const KEYS: u64 = 12;

type MemOld = Arc<MemorySource<u64, u64>>;
type MemNew = Arc<MemoryTarget<u64, u64>>;

/// Two instances whose plans move one after the other.
#[allow(async_fn_in_trait)]
trait Lagged {
    type P: Instance;
    fn a(&self) -> &Self::P;
    fn b(&self) -> &Self::P;
    async fn set_goal(&self, goal: Goal);
    /// A moves (applies the next plan); whether the fleet is still on its way.
    async fn step_a(&self) -> bool;
    /// B moves.
    async fn step_b(&self);
}

/// A's and B's proxies (of either fleet mode) in one fleet, and the operator's handle on the
/// record.
struct InFleet<C: Control, P> {
    a: (P, Fleet<C>),
    b: (P, Fleet<C>),
    operator: C,
}

impl<C: Control, P: Instance> Lagged for InFleet<C, P> {
    type P = P;
    fn a(&self) -> &P {
        &self.a.0
    }
    fn b(&self) -> &P {
        &self.b.0
    }
    async fn set_goal(&self, goal: Goal) {
        if goal.phase == Phase::Complete {
            // `Complete` is earned by a verification (tests/verify.rs, tests/fleet_fencing.rs); here
            // the operator records one, as if it had run, to test the steps around it.
            let record = self.operator.load().await.unwrap();
            self.operator.set_verified(Some(record.epoch)).await.unwrap();
        }
        self.a.1.set_goal(goal).await.unwrap();
    }
    async fn step_a(&self) -> bool {
        self.a.1.poll().await.unwrap().moving
    }
    async fn step_b(&self) {
        self.b.1.poll().await.unwrap();
    }
}

/// A fleet whose plan jumps straight to each goal — read, write and invalidate coverage and the
/// phase at once — instead of the acknowledged steps: the switch that re-introduces the race the
/// steps exist for.
struct Jumping {
    fleet: InFleet<MemoryControl, VersionedProxy<u64, u64, MemOld, MemNew>>,
    control: MemoryControl,
}

impl Lagged for Jumping {
    type P = VersionedProxy<u64, u64, MemOld, MemNew>;
    fn a(&self) -> &Self::P {
        self.fleet.a()
    }
    fn b(&self) -> &Self::P {
        self.fleet.b()
    }
    async fn set_goal(&self, goal: Goal) {
        self.fleet.set_goal(goal).await;
        let record = self.control.load().await.unwrap();
        let high = record.plan.invalidate.max(goal.rate);
        let jump = Plan { phase: goal.phase, read: goal.rate, write: high, invalidate: high };
        self.control.advance(record.epoch, &jump).await.unwrap();
    }
    async fn step_a(&self) -> bool {
        self.fleet.step_a().await
    }
    async fn step_b(&self) {
        self.fleet.step_b().await;
    }
}

/// The control: a `Proxy` each, with its own gate and phase. A jumps to the goal, B follows.
struct OnTheirOwn<O, N> {
    a: (Proxy<u64, u64, O, N>, Gate),
    b: (Proxy<u64, u64, O, N>, Gate),
    goal: std::sync::Mutex<Goal>,
}

impl<O: Store<u64, u64> + ScanKeys<u64>, N: Store<u64, u64> + ScanKeys<u64>> OnTheirOwn<O, N> {
    /// Two instances over their own handles (`a` and `b`) on the same two stores.
    fn new(a: (O, N), b: (O, N)) -> Self {
        let member = |(old, new): (O, N)| {
            let gate = Gate::new("fleet", Rate::NONE);
            (Proxy::new(old, new, gate.clone()), gate)
        };
        OnTheirOwn {
            a: member(a),
            b: member(b),
            goal: std::sync::Mutex::new(Goal { phase: Phase::ReadThrough, rate: Rate::NONE }),
        }
    }

    async fn go(member: &(Proxy<u64, u64, O, N>, Gate), goal: Goal) {
        member.1.set_rate(goal.rate).unwrap();
        // Step by step, as an operator would; a refused step (not allowed from here) is skipped.
        while member.0.phase() < goal.phase {
            let next = Phase::ALL[Phase::ALL.iter().position(|p| *p == member.0.phase()).unwrap() + 1];
            if next == Phase::Complete {
                // Earned as an operator would: verify (repairing) until a pass finds NEW clean.
                for _ in 0..3 {
                    let verify = Verify::new(&member.0).recheck_after(std::time::Duration::ZERO);
                    if verify.run(|_| async {}, |_| {}).await.unwrap().earns_complete() {
                        break;
                    }
                }
            }
            if member.0.set_phase(next).is_err() {
                break;
            }
        }
        while member.0.phase() > goal.phase && member.0.set_phase(goal.phase).is_ok() {}
    }
}

impl<O: Store<u64, u64> + ScanKeys<u64>, N: Store<u64, u64> + ScanKeys<u64>> Lagged for OnTheirOwn<O, N> {
    type P = Proxy<u64, u64, O, N>;
    fn a(&self) -> &Self::P {
        &self.a.0
    }
    fn b(&self) -> &Self::P {
        &self.b.0
    }
    async fn set_goal(&self, goal: Goal) {
        *self.goal.lock().unwrap() = goal;
    }
    async fn step_a(&self) -> bool {
        let goal = *self.goal.lock().unwrap();
        Self::go(&self.a, goal).await;
        self.b.0.phase() != goal.phase || self.b.1.rate() != goal.rate
    }
    async fn step_b(&self) {
        let goal = *self.goal.lock().unwrap();
        Self::go(&self.b, goal).await;
    }
}

/// Writes and reads every key through both instances, each read checked against the write just
/// acknowledged; returns the violations.
async fn exercise<L: Lagged>(lagged: &L, round: u64, stage: &str) -> Vec<String> {
    let mut violations = Vec::new();
    for key in 0..KEYS {
        let value = round * 100 + key;
        let (writer, reader) = if (round + key) % 2 == 0 { (lagged.a(), lagged.b()) } else { (lagged.b(), lagged.a()) };
        // 1: one instance puts, the other reads. 2: one deletes, the other reads.
        let steps: [(bool, Option<u64>); 3] = [(true, Some(value)), (false, Some(value + 1)), (true, None)];
        for (by_writer, expected) in steps {
            let (w, r) = if by_writer { (writer, reader) } else { (reader, writer) };
            match expected {
                Some(v) => w.put(key, v).await.unwrap(),
                None => w.delete(key).await.unwrap(),
            }
            for (name, instance) in [("other", r), ("writer", w)] {
                let got = instance.get(key).await.unwrap();
                if got != expected {
                    violations
                        .push(format!("{stage}, round {round}, key {key}: {name} read {got:?}, expected {expected:?}"));
                }
            }
        }
        // Leave a value behind, for the next plan to find in NEW.
        writer.put(key, value).await.unwrap();
    }
    violations
}

/// Raises, lowers and raises the rate, then goes `Live` and `Complete`, with the instances one
/// step apart all along; every read checked at every step.
async fn ramps<L: Lagged>(lagged: &L) -> Vec<String> {
    let mut violations = Vec::new();
    let rate = |percent| Rate::percent(percent).unwrap();
    let goals = [
        ("raise", Goal { phase: Phase::ReadThrough, rate: rate(60.0) }),
        ("lower", Goal { phase: Phase::ReadThrough, rate: rate(10.0) }),
        ("raise again", Goal { phase: Phase::ReadThrough, rate: Rate::ALL }),
        ("live", Goal { phase: Phase::Live, rate: Rate::ALL }),
        ("complete", Goal { phase: Phase::Complete, rate: Rate::ALL }),
    ];
    let mut round = 0;
    for (stage, goal) in goals {
        lagged.set_goal(goal).await;
        for _ in 0..40 {
            round += 1;
            let moving = lagged.step_a().await;
            violations.extend(exercise(lagged, round, stage).await);
            lagged.step_b().await;
            violations.extend(exercise(lagged, round, stage).await);
            if !moving {
                break;
            }
        }
    }
    violations
}

async fn in_fleet<C: Control, O: Source<u64, u64>, N: Target<u64, u64>>(
    controls: (C, C, C),
    stores: [(O, N); 2],
) -> InFleet<C, VersionedProxy<u64, u64, O, N>> {
    let config = FleetConfig::default();
    let [(old_a, new_a), (old_b, new_b)] = stores;
    let fleet_a = Fleet::join(controls.0, "a", "fleet", config).await.unwrap();
    let fleet_b = Fleet::join(controls.1, "b", "fleet", config).await.unwrap();
    InFleet {
        a: (VersionedProxy::in_fleet(old_a, new_a, &fleet_a), fleet_a),
        b: (VersionedProxy::in_fleet(old_b, new_b, &fleet_b), fleet_b),
        operator: controls.2,
    }
}

/// The control's races show while raising (interleavings 1 and 2) and completing (7).
fn shows_the_races(violations: &[String]) {
    assert!(!violations.is_empty(), "the control must show the races");
    for kind in ["raise", "complete"] {
        assert!(violations.iter().any(|v| v.starts_with(kind)), "no violation while {kind}: {violations:#?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn instances_out_of_step_on_their_own_serve_stale_values() {
    let (old, new) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
    shows_the_races(&ramps(&OnTheirOwn::new((old.clone(), new.clone()), (old, new))).await);
}

#[tokio::test(flavor = "current_thread")]
async fn instances_out_of_step_on_their_own_serve_stale_values_over_sqlite_files() {
    let dir = tempfile::tempdir().unwrap();
    let pair = || {
        (
            SqliteStore::<u64, u64>::open(dir.path().join("old.db"), "entries").unwrap(),
            SqliteStore::<u64, u64>::open(dir.path().join("new.db"), "entries").unwrap(),
        )
    };
    shows_the_races(&ramps(&OnTheirOwn::new(pair(), pair())).await);
}

#[tokio::test(flavor = "current_thread")]
async fn instances_out_of_step_on_their_own_serve_stale_values_over_postgres_to_redis() {
    let (pg, redis) = (PostgresServer::start(), RedisServer::start());
    let pair = async || {
        (
            PostgresStore::<u64, u64>::connect(&pg.url(), "old_today", 1).await.unwrap(),
            RedisStore::<u64, u64>::connect(&redis.url(), "new_today").await.unwrap(),
        )
    };
    shows_the_races(&ramps(&OnTheirOwn::new(pair().await, pair().await)).await);
}

#[tokio::test(flavor = "current_thread")]
async fn a_plan_that_jumps_instead_of_stepping_serves_stale_values() {
    let control = MemoryControl::new();
    let (old, new) = (Arc::new(MemorySource::new()), Arc::new(MemoryTarget::new()));
    let fleet =
        in_fleet((control.clone(), control.clone(), control.clone()), [(old.clone(), new.clone()), (old, new)]).await;
    let violations = ramps(&Jumping { fleet, control }).await;
    assert!(violations.iter().any(|v| v.starts_with("raise")), "{violations:#?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_fleet_out_of_step_serves_no_stale_value_in_memory() {
    let control = MemoryControl::new();
    let (old, new) = (Arc::new(MemorySource::new()), Arc::new(MemoryTarget::new()));
    let fleet = in_fleet((control.clone(), control.clone(), control), [(old.clone(), new.clone()), (old, new)]).await;
    assert_eq!(ramps(&fleet).await, Vec::<String>::new());
    assert_eq!(fleet.a.1.plan().phase, Phase::Complete);
}

#[tokio::test(flavor = "current_thread")]
async fn a_fleet_out_of_step_serves_no_stale_value_over_sqlite_files() {
    let dir = tempfile::tempdir().unwrap();
    let control = || SqliteControl::open(dir.path().join("control.db"), "orders").unwrap();
    let pair = || {
        (
            SqliteSource::<u64, u64>::open(dir.path().join("old.db"), "entries").unwrap(),
            SqliteTarget::<u64, u64>::open(dir.path().join("new.db"), "entries").unwrap(),
        )
    };
    let fleet = in_fleet((control(), control(), control()), [pair(), pair()]).await;
    assert_eq!(ramps(&fleet).await, Vec::<String>::new());
}

#[tokio::test(flavor = "current_thread")]
async fn a_fleet_out_of_step_serves_no_stale_value_over_postgres_to_redis() {
    let (pg, redis) = (PostgresServer::start(), RedisServer::start());
    let url = pg.url();
    let control = || PostgresControl::connect(&url, "orders");
    let pair = async || {
        (
            PostgresSource::<u64, u64>::connect(&pg.url(), "old_entries", 1).await.unwrap(),
            RedisTarget::<u64, u64>::connect(&redis.url(), "new_entries").await.unwrap(),
        )
    };
    let controls = (control().await.unwrap(), control().await.unwrap(), control().await.unwrap());
    let fleet = in_fleet(controls, [pair().await, pair().await]).await;
    assert_eq!(ramps(&fleet).await, Vec::<String>::new());
}

#[tokio::test(flavor = "current_thread")]
async fn a_fleet_out_of_step_serves_no_stale_value_with_its_record_in_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let connect = async || RedisControl::connect(&url, "orders").await.unwrap();
    let controls = (connect().await, connect().await, connect().await);
    let (old, new) = (Arc::new(MemorySource::new()), Arc::new(MemoryTarget::new()));
    let fleet = in_fleet(controls, [(old.clone(), new.clone()), (old, new)]).await;
    assert_eq!(ramps(&fleet).await, Vec::<String>::new());
    assert_eq!(fleet.a.1.plan().phase, Phase::Complete);
}

#[tokio::test(flavor = "current_thread")]
async fn an_unversioned_fleet_out_of_step_serves_no_stale_value() {
    let dir = tempfile::tempdir().unwrap();
    let control = || SqliteControl::open(dir.path().join("control.db"), "orders").unwrap();
    let config = FleetConfig::default();
    let pair = || {
        (
            SqliteStore::<u64, u64>::open(dir.path().join("old.db"), "entries").unwrap(),
            SqliteCache::<u64, u64>::open(dir.path().join("new.db"), "entries").unwrap(),
        )
    };
    let (fleet_a, fleet_b) = (
        Fleet::join(control(), "a", "fleet", config).await.unwrap(),
        Fleet::join(control(), "b", "fleet", config).await.unwrap(),
    );
    let ((old_a, new_a), (old_b, new_b)) = (pair(), pair());
    let fleet = InFleet {
        a: (CachedProxy::in_fleet(old_a, new_a, &fleet_a), fleet_a),
        b: (CachedProxy::in_fleet(old_b, new_b, &fleet_b), fleet_b),
        operator: control(),
    };
    assert_eq!(ramps(&fleet).await, Vec::<String>::new());
    assert!(fleet.a.0.stats().backfills > 0, "reads filled NEW: {:?}", fleet.a.0.stats());
    assert!(fleet.a.0.stats().reads_from_new > 0, "and NEW served them: {:?}", fleet.a.0.stats());
}

/// 8. A restart forgets the high-water mark: on its own, an instance restarted after the gate was
/// lowered builds `Gate::new(salt, lower)` and no longer invalidates lapsed keys; in a fleet, it
/// loads the mark from the record.
#[tokio::test(flavor = "current_thread")]
async fn a_restarted_instance_keeps_the_high_water_mark() {
    // The control.
    let (old, new) = (Arc::new(MemoryStore::<u64, u64>::new()), Arc::new(MemoryStore::<u64, u64>::new()));
    let gate = Gate::new("fleet", Rate::ALL);
    let before = Proxy::new(old.clone(), new.clone(), gate.clone());
    before.put(&1, &1).await.unwrap();
    gate.set_rate(Rate::NONE).unwrap();
    let restarted = Proxy::new(old.clone(), new.clone(), Gate::new("fleet", Rate::NONE));
    restarted.put(&1, &2).await.unwrap();
    restarted.gate().set_rate(Rate::ALL).unwrap();
    assert_eq!(restarted.get(&1).await.unwrap(), Some(1), "the control serves the stale value");

    // In a fleet.
    let control = MemoryControl::new();
    let (old, new) = (Arc::new(MemorySource::<u64, u64>::new()), Arc::new(MemoryTarget::<u64, u64>::new()));
    let first = Fleet::join(control.clone(), "a", "fleet", FleetConfig::default()).await.unwrap();
    let proxy = VersionedProxy::in_fleet(old.clone(), new.clone(), &first);
    first.set_goal(Goal { phase: Phase::ReadThrough, rate: Rate::ALL }).await.unwrap();
    while first.poll().await.unwrap().moving {}
    proxy.put(&1, &1).await.unwrap();
    first.set_goal(Goal { phase: Phase::ReadThrough, rate: Rate::NONE }).await.unwrap();
    while first.poll().await.unwrap().moving {}
    first.leave().await.unwrap();
    drop(proxy);

    let again = Fleet::join(control, "a", "fleet", FleetConfig::default()).await.unwrap();
    assert_eq!(again.plan().invalidate, Rate::ALL, "the mark survives the restart");
    let proxy = VersionedProxy::in_fleet(old, new, &again);
    proxy.put(&1, &2).await.unwrap();
    again.set_goal(Goal { phase: Phase::ReadThrough, rate: Rate::ALL }).await.unwrap();
    while again.poll().await.unwrap().moving {}
    assert_eq!(proxy.get(&1).await.unwrap(), Some(2));
}
