//! An exhaustive model of the fleet protocol: every interleaving of two instances' calls, the
//! fleet's plan steps, one instance crashing at any point, and time passing, explored breadth
//! first over every reachable state.
//!
//! Both fleet modes are explored. The model runs the real protocol code where it can: NEW is a map
//! of `zddm::versioned::Slot` (or, in unversioned mode, of `zddm::cached::Entry`), every change to it
//! one call of their own functions, and routing and plan steps are
//! `zddm::fleet::Plan`'s. What is modelled is only the I/O around them: OLD as a versioned map,
//! each store call one atomic step, an instance's poll as "apply" and "acknowledge" steps, and the
//! grace period (time may pass by a grace only while no live instance is inside a write).
//!
//! Checked in every state: NEW never serves a value OLD does not hold (a settled value or delete
//! that disagrees with OLD), and every read returns a value OLD held at some moment while the read
//! ran (linearizable against OLD). Two switches re-introduce known races and must be caught: a
//! plan that jumps to its goal, and writes that skip their pending mark. Set `ZDDM_MODEL_TRACE=1` to
//! print the path to a violation.

use std::collections::{BTreeSet, HashMap, VecDeque};

use zddm::cached::{Entry, Probe};
use zddm::fleet::{Goal, Plan, Reach};
use zddm::versioned::{Change, Lookup, Slot};
use zddm::{Phase, Rate};

const GRACE: u64 = 10;

/// The share of keys under which each key's bucket falls: key 0 is admitted from 25 %, key 1 from 75 %.
const RANK: [u32; 2] = [250_000, 750_000];

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Op {
    Put(u8, u8),
    Delete(u8),
    Get(u8),
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Call {
    op: Op,
    /// The epoch the call started under (its ticket).
    epoch: u8,
    reach: Reach,
    step: u8,
    version: u64,
    /// Reads: what the lookup found, and its token if the marks had expired.
    token: Option<Option<u64>>,
    /// Reads: what OLD returned.
    found: Option<Option<(u8, u64)>>,
    /// Reads (ghost): every value OLD held while the read ran.
    possible: BTreeSet<Option<u8>>,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Instance {
    epoch: u8,
    acked: bool,
    next: u8,
    call: Option<Call>,
    crashed: bool,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct World {
    old: [Option<(u8, u64)>; 2],
    counter: u64,
    new: [Slot<u8>; 2],
    /// NEW in unversioned mode (the other mode leaves it untouched).
    cache: [Entry<u8>; 2],
    now: u64,
    epoch: u8,
    instances: [Instance; 2],
    crashes: u8,
}

/// What the model is checked with, and the switches that break it.
struct Model {
    plans: Vec<Plan>,
    programs: [Vec<Op>; 2],
    skip_marks: bool,
    /// Unversioned mode (`zddm::cached`) instead of versioned mode.
    cached: bool,
}

fn admitted(key: u8) -> impl Fn(Rate) -> bool {
    move |rate: Rate| RANK[usize::from(key)] < rate.ppm()
}

impl Model {
    /// The plans a fleet walks through: up to 50 %, to 100 %, down to 0 %, up to 100 %, `Live`.
    fn stepped() -> Vec<Plan> {
        let rate = |percent| Rate::percent(percent).unwrap();
        let goals = [
            Goal { phase: Phase::ReadThrough, rate: rate(50.0) },
            Goal { phase: Phase::ReadThrough, rate: Rate::ALL },
            Goal { phase: Phase::ReadThrough, rate: Rate::NONE },
            Goal { phase: Phase::ReadThrough, rate: Rate::ALL },
            Goal { phase: Phase::Live, rate: Rate::ALL },
        ];
        let mut plans = vec![Plan::start(Phase::ReadThrough)];
        for goal in goals {
            while let Some(next) = plans.last().unwrap().step_toward(&goal) {
                plans.push(next);
            }
        }
        plans
    }

    /// The switch: each goal in one jump, read, write and invalidate coverage together.
    fn jumping() -> Vec<Plan> {
        let at = |phase, ppm| {
            let rate = Rate::from_ppm(ppm).unwrap();
            Plan { phase, read: rate, write: rate, invalidate: rate }
        };
        vec![
            Plan::start(Phase::ReadThrough),
            at(Phase::ReadThrough, 500_000),
            at(Phase::ReadThrough, 1_000_000),
            Plan { read: Rate::NONE, ..at(Phase::ReadThrough, 1_000_000) },
            at(Phase::ReadThrough, 1_000_000),
        ]
    }

    fn initial(&self) -> World {
        let instance = Instance { epoch: 0, acked: true, next: 0, call: None, crashed: false };
        World {
            old: [None, None],
            counter: 0,
            new: [Slot::default(), Slot::default()],
            cache: [Entry::default(), Entry::default()],
            now: 0,
            epoch: 0,
            instances: [instance.clone(), instance],
            crashes: 0,
        }
    }

    /// Every state one step away from `w`.
    fn successors(&self, w: &World) -> Vec<World> {
        let mut out = Vec::new();
        // The fleet takes its next step once every live instance has acknowledged the current one.
        let all_acked = w.instances.iter().all(|i| i.crashed || (i.epoch == w.epoch && i.acked));
        if usize::from(w.epoch) + 1 < self.plans.len() && all_acked {
            let mut next = w.clone();
            next.epoch += 1;
            out.push(next);
        }
        // Time passes by a grace, but never while a live instance is inside a marked write (the
        // grace is longer than any write); only while some mark has yet to expire.
        let inside = w.instances.iter().any(|i| {
            !i.crashed
                && i.call
                    .as_ref()
                    .is_some_and(|c| matches!(c.op, Op::Put(..) | Op::Delete(_)) && c.reach != Reach::Old && c.step > 0)
        });
        let unexpired = w.new.iter().any(|s| s.pending > 0 && s.pending_until > w.now)
            || w.cache.iter().any(|e| e.pending > 0 && e.pending_until > w.now);
        if !inside && unexpired {
            let mut next = w.clone();
            next.now += GRACE;
            out.push(next);
        }
        for n in 0..2 {
            let me = &w.instances[n];
            if me.crashed {
                continue;
            }
            // One crash in all, at any point.
            if w.crashes == 0 && me.call.is_some() {
                let mut next = w.clone();
                next.instances[n].crashed = true;
                next.crashes = 1;
                out.push(next);
            }
            // Apply a newer plan once no call from two plans ago runs; acknowledge it once none
            // from the plan before runs.
            let current_only = me.call.as_ref().is_none_or(|c| c.epoch == me.epoch);
            if w.epoch > me.epoch && current_only {
                let mut next = w.clone();
                next.instances[n].epoch = w.epoch;
                next.instances[n].acked = false;
                out.push(next);
            }
            if !me.acked && current_only {
                let mut next = w.clone();
                next.instances[n].acked = true;
                out.push(next);
            }
            match &me.call {
                None if usize::from(me.next) < self.programs[n].len() => {
                    let mut next = w.clone();
                    let op = self.programs[n][usize::from(me.next)];
                    let plan = self.plans[usize::from(me.epoch)];
                    let reach = match op {
                        Op::Get(k) => plan.read_reach(admitted(k)),
                        Op::Put(k, _) | Op::Delete(k) => plan.write_reach(admitted(k)),
                    };
                    let possible = match op {
                        Op::Get(k) => BTreeSet::from([w.old[usize::from(k)].map(|(v, _)| v)]),
                        _ => BTreeSet::new(),
                    };
                    next.instances[n].next += 1;
                    next.instances[n].call = Some(Call {
                        op,
                        epoch: me.epoch,
                        reach,
                        step: 0,
                        version: 0,
                        token: None,
                        found: None,
                        possible,
                    });
                    out.push(next);
                }
                None => {}
                Some(call) => {
                    let mut next = w.clone();
                    self.step(&mut next, n, call.clone());
                    out.push(next);
                }
            }
        }
        out
    }

    /// One store call of instance `n`'s call.
    fn step(&self, w: &mut World, n: usize, mut call: Call) {
        let done = if self.cached { self.cached_step(w, &mut call) } else { self.versioned_step(w, &mut call) };
        // Every OLD write is seen by every read in flight of that key.
        for instance in &mut w.instances {
            if let Some(other) = &mut instance.call {
                if let Op::Get(k) = other.op {
                    other.possible.insert(w.old[usize::from(k)].map(|(v, _)| v));
                }
            }
        }
        call.possible.extend(match call.op {
            Op::Get(k) => Some(w.old[usize::from(k)].map(|(v, _)| v)),
            _ => None,
        });
        call.step += 1;
        w.instances[n].call = if done { None } else { Some(call) };
    }

    /// One store call in unversioned mode; whether the call is done.
    fn cached_step(&self, w: &mut World, call: &mut Call) -> bool {
        let now = w.now;
        match (call.op, call.reach) {
            (Op::Put(..) | Op::Delete(_), Reach::Old) => {
                write_old(w, call.op);
                true
            }
            (Op::Put(k, _) | Op::Delete(k), _) => {
                let key = usize::from(k);
                match call.step {
                    0 => {
                        if !self.skip_marks {
                            w.cache[key].mark(now, GRACE);
                        }
                        false
                    }
                    1 => {
                        write_old(w, call.op);
                        false
                    }
                    _ => {
                        w.cache[key].invalidate(!self.skip_marks);
                        true
                    }
                }
            }
            (Op::Get(k), Reach::Old) => {
                check_read(call, w.old[usize::from(k)].map(|(v, _)| v));
                true
            }
            (Op::Get(k), _) => {
                let key = usize::from(k);
                match call.step {
                    0 => match w.cache[key].probe(now) {
                        Probe::Hit(value) => {
                            check_read(call, Some(value));
                            true
                        }
                        Probe::Absent => {
                            check_read(call, None);
                            true
                        }
                        Probe::Leased(token) => {
                            call.token = Some(Some(token));
                            false
                        }
                        Probe::Busy => {
                            call.token = None;
                            false
                        }
                    },
                    1 => {
                        call.found = Some(w.old[key]);
                        false
                    }
                    _ => {
                        let found = call.found.unwrap().map(|(v, _)| v);
                        if let Some(Some(token)) = call.token {
                            w.cache[key].fill(found, token);
                        }
                        check_read(call, found);
                        true
                    }
                }
            }
        }
    }

    /// One store call in versioned mode; whether the call is done.
    fn versioned_step(&self, w: &mut World, call: &mut Call) -> bool {
        let now = w.now;
        match (call.op, call.reach) {
            (Op::Put(..) | Op::Delete(_), Reach::Old) => {
                write_old(w, call.op);
                true
            }
            (Op::Put(k, _) | Op::Delete(k), Reach::Through | Reach::Invalidate) => {
                let key = usize::from(k);
                match call.step {
                    0 => {
                        if !self.skip_marks {
                            w.new[key].mark(now, GRACE);
                        }
                        false
                    }
                    1 => {
                        call.version = write_old(w, call.op);
                        false
                    }
                    _ => {
                        let change = match (call.op, call.reach) {
                            (_, Reach::Invalidate) => Change::Invalidate,
                            (Op::Put(_, v), _) => Change::Put(v),
                            _ => Change::Delete,
                        };
                        w.new[key].apply(change, call.version, !self.skip_marks, now);
                        true
                    }
                }
            }
            (Op::Get(k), Reach::Old) => {
                let value = w.old[usize::from(k)].map(|(v, _)| v);
                check_read(call, value);
                true
            }
            (Op::Get(k), Reach::Through) => {
                let key = usize::from(k);
                match call.step {
                    0 => match w.new[key].lookup(now) {
                        Lookup::Hit(value) => {
                            check_read(call, Some(value));
                            true
                        }
                        Lookup::Deleted => {
                            check_read(call, None);
                            true
                        }
                        Lookup::Miss => {
                            call.token = Some(None);
                            false
                        }
                        // A pending key is filled (repaired) only with the token of expired marks.
                        Lookup::Pending { token, expired } => {
                            call.token = expired.then_some(Some(token));
                            false
                        }
                    },
                    1 => {
                        call.found = Some(w.old[key]);
                        false
                    }
                    _ => {
                        let found = call.found.unwrap();
                        match call.token {
                            Some(None) => {
                                if let Some((v, version)) = found {
                                    w.new[key].fill(Some(v), version, None, now);
                                }
                            }
                            Some(Some(token)) => {
                                let (v, version) = found.map_or((None, 0), |(v, version)| (Some(v), version));
                                w.new[key].fill(v, version, Some(token), now);
                            }
                            None => {}
                        }
                        check_read(call, found.map(|(v, _)| v));
                        true
                    }
                }
            }
            other => panic!("not modelled: {other:?}"),
        }
    }
}

/// OLD's write: the next version from its counter.
fn write_old(w: &mut World, op: Op) -> u64 {
    w.counter += 1;
    match op {
        Op::Put(k, v) => w.old[usize::from(k)] = Some((v, w.counter)),
        Op::Delete(k) => w.old[usize::from(k)] = None,
        Op::Get(_) => unreachable!(),
    }
    w.counter
}

thread_local! {
    static BAD_READ: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn check_read(call: &Call, value: Option<u8>) {
    if !call.possible.contains(&value) {
        BAD_READ.with(|bad| {
            bad.borrow_mut()
                .get_or_insert_with(|| format!("{:?} returned {value:?}, OLD held only {:?}", call.op, call.possible));
        });
    }
}

/// NEW serves nothing OLD does not hold.
fn new_is_honest(w: &World) -> Result<(), String> {
    for key in 0..2 {
        let old = w.old[key].map(|(v, _)| v);
        let entry = &w.cache[key];
        if entry.pending == 0 && (entry.value.is_some_and(|v| Some(v) != old) || (entry.absent && old.is_some())) {
            return Err(format!("NEW's cache serves {:?} for key {key}, OLD holds {old:?}", entry.value));
        }
        match w.new[key].lookup(w.now) {
            Lookup::Hit(v) if Some(v) != old => return Err(format!("NEW serves {v} for key {key}, OLD holds {old:?}")),
            Lookup::Deleted if old.is_some() => {
                return Err(format!("NEW says key {key} is deleted, OLD holds {old:?}"))
            }
            _ => {}
        }
    }
    Ok(())
}

struct Explored {
    states: usize,
    violation: Option<(String, usize)>,
}

fn explore(model: &Model) -> Explored {
    let start = model.initial();
    let mut parents: HashMap<World, Option<World>> = HashMap::from([(start.clone(), None)]);
    let mut queue = VecDeque::from([(start, 0usize)]);
    let tracing = std::env::var_os("ZDDM_MODEL_TRACE").is_some();
    while let Some((world, depth)) = queue.pop_front() {
        for next in model.successors(&world) {
            let bad = BAD_READ.with(|bad| bad.borrow_mut().take()).map(Err).unwrap_or_else(|| new_is_honest(&next));
            if let Err(bad) = bad {
                if tracing {
                    let mut trace = vec![next.clone(), world.clone()];
                    while let Some(Some(parent)) = parents.get(trace.last().unwrap()) {
                        trace.push(parent.clone());
                    }
                    for (i, state) in trace.iter().rev().enumerate() {
                        eprintln!("{i}: {state:?}");
                    }
                }
                return Explored { states: parents.len(), violation: Some((bad, depth + 1)) };
            }
            if !parents.contains_key(&next) {
                // Parents are kept only to print a trace: memory otherwise.
                let parent = tracing.then(|| world.clone());
                parents.insert(next.clone(), parent);
                queue.push_back((next, depth + 1));
            }
        }
    }
    Explored { states: parents.len(), violation: None }
}

fn programs() -> [Vec<Op>; 2] {
    [
        vec![Op::Put(0, 1), Op::Get(1), Op::Put(1, 3), Op::Get(0)],
        vec![Op::Get(0), Op::Put(0, 2), Op::Delete(1), Op::Get(1)],
    ]
}

#[test]
fn every_interleaving_of_two_instances_keeps_the_invariants() {
    let model = Model { plans: Model::stepped(), programs: programs(), skip_marks: false, cached: false };
    assert!(model.plans.len() >= 8, "{} plans", model.plans.len());
    let explored = explore(&model);
    eprintln!("fleet model: {} states explored", explored.states);
    assert_eq!(explored.violation, None);
    assert!(explored.states > 100_000, "{} states", explored.states);
}

#[test]
fn the_model_finds_a_plan_that_jumps() {
    let model = Model { plans: Model::jumping(), programs: programs(), skip_marks: false, cached: false };
    let explored = explore(&model);
    let (violation, depth) = explored.violation.expect("the jump is caught");
    eprintln!("jumping plan: {violation} at depth {depth} ({} states)", explored.states);
}

#[test]
fn the_model_finds_writes_without_marks() {
    let model = Model { plans: Model::stepped(), programs: programs(), skip_marks: true, cached: false };
    let explored = explore(&model);
    let (violation, depth) = explored.violation.expect("a crash between OLD and NEW is caught");
    eprintln!("no marks: {violation} at depth {depth} ({} states)", explored.states);
}

#[test]
fn every_interleaving_in_unversioned_mode_keeps_the_invariants() {
    let model = Model { plans: Model::stepped(), programs: programs(), skip_marks: false, cached: true };
    let explored = explore(&model);
    eprintln!("fleet model, unversioned mode: {} states explored", explored.states);
    assert_eq!(explored.violation, None);
    assert!(explored.states > 100_000, "{} states", explored.states);
}

#[test]
fn the_model_finds_unversioned_writes_without_marks() {
    let model = Model { plans: Model::stepped(), programs: programs(), skip_marks: true, cached: true };
    let (violation, depth) = explore(&model).violation.expect("a crash between OLD and NEW is caught");
    eprintln!("unversioned, no marks: {violation} at depth {depth}");
}
