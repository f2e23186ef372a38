//! Randomised and PCT schedules (shuttle) over the real async [`zddm::Proxy`], checking DESIGN.md
//! section 5's invariants 1–4 (`docs/consistency.md` states them for the proxy).
//!
//! # What is explored
//!
//! `random_schedules_keep_the_invariants` and `pct_schedules_keep_the_invariants` run 10 000
//! iterations each under shuttle's `RandomScheduler` and `PctScheduler` (depth 3) — what
//! `shuttle::check_random` / `check_pct` run, with a 1 MiB task stack for debug-build futures.
//! `PROXY_SCHEDULES_ITERATIONS=N` runs N iterations of each instead (a soak). Each iteration is a
//! fresh world: two in-memory stores, a gate at 100 %, a proxy in the `ReadThrough` phase, and a plan
//! drawn from shuttle's own randomness (so a failing schedule replays with its plan):
//!
//! - 2–3 keys, each initially absent, in OLD only, or in OLD and NEW (a finished backfill);
//! - 2–3 worker tasks, each running 2–4 random reads, writes and deletes; every written value is
//!   unique in the iteration, so a stale value is always recognisable;
//! - usually a control task that changes the gate's rate (100 % / 50 % / 0 %) and the phase (`Off`,
//!   `DualWrite`, `Shadow`, `ReadThrough`, `Live`);
//! - sometimes a canceller: it spawns one proxy operation as a task and aborts it after 0–6 yields,
//!   so the operation's future is dropped at whatever await point it reached (or never starts);
//! - sometimes injected store failures (`Faulty`): one or two one-shot `Before` / `After` failures of
//!   any operation of either store, and sometimes an outage of NEW's deletes (so invalidations fail and
//!   writes become indeterminate); all healed at quiescence;
//! - 1 or 1024 lock stripes (one stripe makes unrelated keys share a lock and a doubt count), and a
//!   shadow sample of 100 % or 50 %.
//!
//! `Complete` is left out: it stops writing OLD, and the checks below take OLD as the source of truth.
//!
//! The proxy's own synchronisation (a `tokio::sync::Mutex`, std atomics) is invisible to shuttle,
//! so the stores are wrapped in [`Sched`], which yields to shuttle's scheduler before and after
//! every store call: every await point of the proxy becomes a scheduling point. Inside it,
//! `Faulty` injects failures and counts calls, and innermost [`Recorder`] logs every change that
//! reaches OLD (its *commit log*) and checks every value that reaches NEW.
//!
//! # What is checked
//!
//! Time is a logical clock ticked at each operation's start, at its end (the instant its future
//! completes, or is dropped when cancelled) and at each OLD commit. Because values are unique and OLD is
//! the source of truth, a value's *version* is its position in OLD's commit log for the key (deletes
//! are commits too, of "absent"); the initial state is version 0. This is exact: versions are not the
//! order in which writes were issued but the order in which OLD applied them.
//!
//! - **Invariant 1** (every successful read): let `floor` be the highest version committed by the
//!   writes and deletes of the key acknowledged (successfully) before the read started. A read
//!   returning `Some(v)` must return a value OLD committed before the read ended, at version ≥
//!   `floor`. A read returning `None` needs OLD to have been without the key at some version ≥
//!   `floor`, before the read ended (the initial absence, or a delete). *Strong form*, the proxy's
//!   documented promise that it never serves a copy left in doubt: the same with `floor` taken over
//!   every write of the key that ended before the read started, failed or cancelled ones included
//!   (those that committed to OLD). After quiescence, one more read of each key must return exactly
//!   OLD's value.
//! - **Invariant 2**: every value put or copied into NEW must be one OLD committed first (checked
//!   at the moment NEW stores it); at quiescence NEW holds, for each key, nothing or OLD's value —
//!   unless the key is excused by invariant 3.
//! - **Invariant 3**: a key whose NEW copy differs from OLD at quiescence must have had a write that
//!   returned `Error::Indeterminate` or was cancelled, and `keys_in_doubt()` must count it (it is at
//!   least the number of such stale keys, and at most the number of keys with such writes). With the
//!   faults healed, in `ReadThrough` at 100 %, one read per key must repair it: afterwards NEW holds
//!   nothing or OLD's value for every key, and `keys_in_doubt()` is 0.
//! - **Invariant 4**: every store call is attributed to the operation that made it (shuttle names
//!   the running task). A write calls OLD exactly once with its own operation (at most once if
//!   cancelled), never reads, and calls NEW at most once per operation kind; without an injected
//!   failure it is exactly `[OLD write, NEW put or delete]` (a delete: `[OLD delete, NEW delete]`).
//!   An acknowledged write has exactly one commit in OLD. A read calls OLD at most once (a get) and
//!   NEW at most twice for a get and at most once for a delete (repair) and an insert (copy), never a
//!   put. `sequential_store_calls_are_exact` checks exact call sequences step by step, phase by
//!   phase, cross-checked with `Faulty`'s counters.
//!
//! Each exploration also sums what its iterations covered and fails if a hard path was never taken
//! (indeterminate and cancelled writes, keys in doubt at quiescence and their repair, read-throughs
//! that waited for a write, reads whose floor came from a failed or cancelled write, shadow
//! comparisons, gate and phase changes…); run with `--nocapture` to see the counts.
//!
//! The controls, `control_naive_proxy_is_caught_*`, run the same exploration (without faults,
//! cancellation or phases, which it does not have) against `NaiveProxy`, the seed library's
//! semantics, once with the gate fixed at 100 % and once with gate changes, and require shuttle to
//! find a violation of invariant 1, 2 or 3: the schedules are strong enough to catch the races the
//! proxy exists to prevent.
//!
//! A failure prints the plan, the full history (operations with their ticks, outcomes and store
//! calls, OLD's commit log, gate and phase changes) and shuttle's failing schedule, which
//! `shuttle::replay` replays exactly.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::panic;
use std::sync::{Arc, Mutex, MutexGuard};

use shuttle::current::{get_current_task, TaskId};
use shuttle::future::{block_on, spawn_local, yield_now};
use shuttle::rand::{rngs::ThreadRng, thread_rng, Rng};
use shuttle::scheduler::{PctScheduler, RandomScheduler, Scheduler};
use shuttle::{Config, Runner};
use zddm::{Gate, KeyError, MemoryStore, Op, Phase, Proxy, Rate, Side, Stats, Store};
use zddm_suite::faults::{Fault, Faulty, Injected};
use zddm_suite::naive::{Migrating, NaiveProxy};

const RANDOM_ITERATIONS: usize = 10_000;
const PCT_ITERATIONS: usize = 10_000;
const PCT_DEPTH: usize = 3;
const CONTROL_ITERATIONS: usize = 2000;

/// `PROXY_SCHEDULES_ITERATIONS` overrides the iteration counts of the explorations of the real
/// proxy, for longer soak runs.
fn iterations(default: usize) -> usize {
    std::env::var("PROXY_SCHEDULES_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The history of one iteration.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    Put(u64),
    Delete,
}

impl Kind {
    fn is_write(self) -> bool {
        !matches!(self, Kind::Get)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Running,
    Read(Option<u64>),
    Written,
    Failed { indeterminate: bool, error: String },
    Cancelled,
}

/// A store call that reached `Faulty`, and the failure it injected, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Call {
    side: Side,
    op: Op,
    fault: Option<Fault>,
}

#[derive(Debug)]
struct OpRecord {
    task: String,
    kind: Kind,
    key: u64,
    start: u64,
    end: Option<u64>,
    outcome: Outcome,
    calls: Vec<Call>,
}

impl OpRecord {
    /// Whether this write removed NEW's copy instead of writing it: a NEW delete after a failed store
    /// call, or a put that ended with a NEW delete. In `Live` such a key stays in doubt until a read
    /// copies it back, so `Complete` cannot lose it.
    fn invalidated_new(&self) -> bool {
        let deleted_new = self.calls.iter().any(|c| c.side == Side::New && c.op == Op::Delete && c.fault.is_none());
        let failed = self.calls.iter().any(|c| c.fault.is_some());
        deleted_new && (failed || matches!(self.kind, Kind::Put(_)))
    }
}

/// A change OLD applied: the key's new state, when, and which operation made it.
#[derive(Debug)]
struct Commit {
    value: Option<u64>,
    tick: u64,
    op: Option<usize>,
}

#[derive(Default)]
struct History {
    clock: u64,
    ops: Vec<OpRecord>,
    /// The operation each task is running (a cancelled one stays: task ids are never reused).
    running: HashMap<TaskId, usize>,
    old_log: BTreeMap<u64, Vec<Commit>>,
    events: Vec<(u64, String)>,
}

impl History {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn current_op(&self) -> Option<usize> {
        get_current_task().and_then(|task| self.running.get(&task).copied())
    }

    /// The position in OLD's log of the commit that `op` made.
    fn commit_of(&self, op: usize) -> Option<usize> {
        let record = &self.ops[op];
        self.old_log.get(&record.key)?.iter().position(|commit| commit.op == Some(op))
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "operations:")?;
        for (id, op) in self.ops.iter().enumerate() {
            let end = op.end.map_or("-".to_string(), |end| end.to_string());
            let calls: Vec<String> = op
                .calls
                .iter()
                .map(|c| match c.fault {
                    None => format!("{}.{}", c.side, c.op),
                    Some(fault) => format!("{}.{}!{fault:?}", c.side, c.op),
                })
                .collect();
            writeln!(
                f,
                "  #{id} {} {:?} key {} @{}..{end} -> {:?} calls [{}]",
                op.task,
                op.kind,
                op.key,
                op.start,
                op.outcome,
                calls.join(", ")
            )?;
        }
        writeln!(f, "OLD commit log (version: value @tick by op):")?;
        for (key, log) in &self.old_log {
            let entries: Vec<String> =
                log.iter().enumerate().map(|(i, c)| format!("v{i}: {:?} @{} by {:?}", c.value, c.tick, c.op)).collect();
            writeln!(f, "  key {key}: {}", entries.join("; "))?;
        }
        writeln!(f, "events:")?;
        for (tick, event) in &self.events {
            writeln!(f, "  @{tick} {event}")?;
        }
        Ok(())
    }
}

type Shared = Arc<Mutex<History>>;

fn lock(history: &Shared) -> MutexGuard<'_, History> {
    // A failed check panics with the lock free; a poisoned lock only follows a panic already reported.
    history.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The store stack: Sched (scheduling points, call attribution) → Faulty → Recorder → MemoryStore.

/// The innermost layer: the real store, recording OLD's commits and checking NEW's writes.
struct Recorder {
    side: Side,
    memory: MemoryStore<u64, u64>,
    history: Shared,
}

impl Recorder {
    fn applied(&self, key: u64, value: Option<u64>) {
        let mut history = lock(&self.history);
        match self.side {
            Side::Old => {
                let tick = history.tick();
                let op = history.current_op();
                history.old_log.entry(key).or_default().push(Commit { value, tick, op });
            }
            Side::New => {
                let Some(value) = value else { return };
                let committed = history.old_log.get(&key).is_some_and(|log| log.iter().any(|c| c.value == Some(value)));
                if !committed {
                    let op = history.current_op();
                    drop(history);
                    panic!(
                        "invariant 2: NEW stored {value} under key {key} (by op {op:?}), a value OLD never committed\n{}",
                        lock(&self.history)
                    );
                }
            }
        }
    }
}

impl Store<u64, u64> for Recorder {
    type Error = KeyError;

    async fn get(&self, key: &u64) -> Result<Option<u64>, KeyError> {
        self.memory.get(key).await
    }

    async fn put(&self, key: &u64, value: &u64) -> Result<(), KeyError> {
        self.memory.put(key, value).await?;
        self.applied(*key, Some(*value));
        Ok(())
    }

    async fn insert_if_absent(&self, key: &u64, value: &u64) -> Result<bool, KeyError> {
        let inserted = self.memory.insert_if_absent(key, value).await?;
        if inserted {
            self.applied(*key, Some(*value));
        }
        Ok(inserted)
    }

    async fn delete(&self, key: &u64) -> Result<(), KeyError> {
        self.memory.delete(key).await?;
        self.applied(*key, None);
        Ok(())
    }
}

/// The outermost layer: a shuttle scheduling point before and after each call, and the call logged
/// against the operation the current task is running.
struct Sched {
    side: Side,
    store: Arc<Faulty<Recorder>>,
    history: Shared,
}

impl Sched {
    fn called<T>(&self, op: Op, result: &Result<T, Injected>) {
        let mut history = lock(&self.history);
        if let Some(id) = history.current_op() {
            let fault = result.as_ref().err().map(|e| e.fault);
            history.ops[id].calls.push(Call { side: self.side, op, fault });
        }
    }
}

impl Store<u64, u64> for Sched {
    type Error = Injected;

    async fn get(&self, key: &u64) -> Result<Option<u64>, Injected> {
        yield_now().await;
        let result = self.store.get(key).await;
        self.called(Op::Get, &result);
        yield_now().await;
        result
    }

    async fn put(&self, key: &u64, value: &u64) -> Result<(), Injected> {
        yield_now().await;
        let result = self.store.put(key, value).await;
        self.called(Op::Put, &result);
        yield_now().await;
        result
    }

    async fn insert_if_absent(&self, key: &u64, value: &u64) -> Result<bool, Injected> {
        yield_now().await;
        let result = self.store.insert_if_absent(key, value).await;
        self.called(Op::Insert, &result);
        yield_now().await;
        result
    }

    async fn delete(&self, key: &u64) -> Result<(), Injected> {
        yield_now().await;
        let result = self.store.delete(key).await;
        self.called(Op::Delete, &result);
        yield_now().await;
        result
    }
}

/// One iteration's stores and history.
#[derive(Clone)]
struct World {
    history: Shared,
    old: Arc<Faulty<Recorder>>,
    new: Arc<Faulty<Recorder>>,
}

impl World {
    fn new() -> World {
        let history = Shared::default();
        let store =
            |side| Arc::new(Faulty::new(Recorder { side, memory: MemoryStore::new(), history: Arc::clone(&history) }));
        World { old: store(Side::Old), new: store(Side::New), history }
    }

    fn store(&self, side: Side) -> &Arc<Faulty<Recorder>> {
        match side {
            Side::Old => &self.old,
            Side::New => &self.new,
        }
    }

    fn sched(&self, side: Side) -> Sched {
        Sched { side, store: Arc::clone(self.store(side)), history: Arc::clone(&self.history) }
    }

    fn history(&self) -> MutexGuard<'_, History> {
        lock(&self.history)
    }

    /// The key's initial state: version 0 of OLD's log, and a copy in NEW if `in_new`.
    fn seed(&self, key: u64, value: Option<u64>, in_new: bool) {
        if let Some(value) = value {
            zddm::block_on(self.old.inner().memory.put(&key, &value)).unwrap();
            if in_new {
                zddm::block_on(self.new.inner().memory.put(&key, &value)).unwrap();
            }
        }
        self.history().old_log.entry(key).or_default().push(Commit { value, tick: 0, op: None });
    }

    fn value(&self, side: Side, key: u64) -> Option<u64> {
        zddm::block_on(self.store(side).inner().memory.get(&key)).unwrap()
    }

    fn event(&self, event: String) {
        let mut history = self.history();
        let tick = history.tick();
        history.events.push((tick, event));
    }

    fn heal(&self) {
        self.old.heal();
        self.new.heal();
    }

    fn calls(&self) -> [[usize; 4]; 2] {
        let ops = [Op::Get, Op::Put, Op::Insert, Op::Delete];
        [ops.map(|op| self.old.calls(op)), ops.map(|op| self.new.calls(op))]
    }
}

// ---------------------------------------------------------------------------------------------
// The proxies under test.

#[derive(Debug)]
struct Failure {
    indeterminate: bool,
    message: String,
}

impl From<zddm::Error> for Failure {
    fn from(error: zddm::Error) -> Failure {
        Failure { indeterminate: error.is_indeterminate(), message: error.to_string() }
    }
}

#[allow(async_fn_in_trait)]
trait Subject: Sized + 'static {
    fn build(old: Sched, new: Sched, gate: Gate, stripes: usize, shadow_sample: Rate) -> Self;
    async fn get(&self, key: u64) -> Result<Option<u64>, Failure>;
    async fn put(&self, key: u64, value: u64) -> Result<(), Failure>;
    async fn delete(&self, key: u64) -> Result<(), Failure>;
    fn set_rate(&self, rate: Rate);
    fn set_phase(&self, phase: Phase) -> Result<Phase, String>;
    /// `None` for a proxy that keeps no record of keys in doubt.
    fn keys_in_doubt(&self) -> Option<usize>;
    fn stats(&self) -> Option<Stats>;
}

type Real = Proxy<u64, u64, Sched, Sched>;

impl Subject for Real {
    fn build(old: Sched, new: Sched, gate: Gate, stripes: usize, shadow_sample: Rate) -> Self {
        Proxy::builder(old, new, gate).stripes(stripes).shadow_sample(shadow_sample).build().unwrap()
    }

    async fn get(&self, key: u64) -> Result<Option<u64>, Failure> {
        Ok(Proxy::get(self, &key).await?)
    }

    async fn put(&self, key: u64, value: u64) -> Result<(), Failure> {
        Ok(Proxy::put(self, &key, &value).await?)
    }

    async fn delete(&self, key: u64) -> Result<(), Failure> {
        Ok(Proxy::delete(self, &key).await?)
    }

    fn set_rate(&self, rate: Rate) {
        // From `Complete` on the gate stays at 100 %: a lower rate is refused.
        if let Err(refused) = self.gate().set_rate(rate) {
            assert_eq!(self.phase(), Phase::Complete, "{refused}");
        }
    }

    fn set_phase(&self, phase: Phase) -> Result<Phase, String> {
        Proxy::set_phase(self, phase).map_err(|e| e.to_string())
    }

    fn keys_in_doubt(&self) -> Option<usize> {
        Some(Proxy::keys_in_doubt(self))
    }

    fn stats(&self) -> Option<Stats> {
        Some(Proxy::stats(self))
    }
}

/// The control: the seed library's semantics.
struct Naive(NaiveProxy<Sched, Sched>);

fn naive_failure(error: zddm::BoxError) -> Failure {
    Failure { indeterminate: false, message: error.to_string() }
}

impl Subject for Naive {
    fn build(old: Sched, new: Sched, gate: Gate, _stripes: usize, _shadow_sample: Rate) -> Self {
        Naive(NaiveProxy { old, new, gate })
    }

    async fn get(&self, key: u64) -> Result<Option<u64>, Failure> {
        Migrating::<u64, u64>::get(&self.0, &key).await.map_err(naive_failure)
    }

    async fn put(&self, key: u64, value: u64) -> Result<(), Failure> {
        Migrating::<u64, u64>::put(&self.0, &key, &value).await.map_err(naive_failure)
    }

    async fn delete(&self, key: u64) -> Result<(), Failure> {
        Migrating::<u64, u64>::delete(&self.0, &key).await.map_err(naive_failure)
    }

    fn set_rate(&self, rate: Rate) {
        self.0.gate.set_rate(rate).unwrap();
    }

    fn set_phase(&self, _phase: Phase) -> Result<Phase, String> {
        Err("the seed's proxy has no phases".into())
    }

    fn keys_in_doubt(&self) -> Option<usize> {
        None
    }

    fn stats(&self) -> Option<Stats> {
        None
    }
}

/// Runs one proxy operation as `task`, recording it.
async fn run_op<S: Subject>(world: &World, subject: &S, task: &str, kind: Kind, key: u64) -> Outcome {
    let mut running = {
        let mut history = world.history();
        let start = history.tick();
        history.ops.push(OpRecord {
            task: task.to_string(),
            kind,
            key,
            start,
            end: None,
            outcome: Outcome::Running,
            calls: Vec::new(),
        });
        let id = history.ops.len() - 1;
        let task = get_current_task().expect("running in a shuttle task");
        history.running.insert(task, id);
        Running { world, id, task, outcome: Outcome::Cancelled }
    };
    let failed = |f: Failure| Outcome::Failed { indeterminate: f.indeterminate, error: f.message };
    running.outcome = match kind {
        Kind::Get => subject.get(key).await.map_or_else(failed, Outcome::Read),
        Kind::Put(value) => subject.put(key, value).await.map_or_else(failed, |()| Outcome::Written),
        Kind::Delete => subject.delete(key).await.map_or_else(failed, |()| Outcome::Written),
    };
    // No await between the operation's completion and its acknowledgement tick (in `drop`).
    running.outcome.clone()
}

/// An operation in progress: records its end when it completes, or when its future is dropped at an
/// await point (then `Cancelled`, just after the proxy's future and its destructors ran).
struct Running<'w> {
    world: &'w World,
    id: usize,
    task: TaskId,
    outcome: Outcome,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut history = self.world.history();
        let end = history.tick();
        let record = &mut history.ops[self.id];
        record.end = Some(end);
        record.outcome = std::mem::replace(&mut self.outcome, Outcome::Running);
        history.running.remove(&self.task);
    }
}

// ---------------------------------------------------------------------------------------------
// Plans.

#[derive(Debug, Clone, Copy)]
enum Action {
    Rate(Rate),
    Phase(Phase),
}

#[derive(Debug, Clone, Copy)]
struct Mode {
    /// Whether a control task may change the gate's rate.
    gate_changes: bool,
    faults: bool,
    cancellation: bool,
    phases: bool,
    /// Check invariant 4 (the control's read-through is a plain put, so it is not held to it).
    count_calls: bool,
}

const FULL: Mode = Mode { gate_changes: true, faults: true, cancellation: true, phases: true, count_calls: true };
/// The control with concurrency alone: the gate stays at 100 %.
const CONTROL_RACES: Mode =
    Mode { gate_changes: false, faults: false, cancellation: false, phases: false, count_calls: false };
/// The control with gate changes too.
const CONTROL_GATE: Mode = Mode { gate_changes: true, ..CONTROL_RACES };

#[derive(Debug)]
struct Plan {
    keys: u64,
    /// Per key: the initial value, and whether NEW has a copy.
    initial: Vec<(Option<u64>, bool)>,
    stripes: usize,
    shadow_sample: Rate,
    workers: Vec<Vec<(Kind, u64)>>,
    control: Vec<Action>,
    /// An operation to cancel after this many yields.
    cancel: Option<(Kind, u64, usize)>,
    faults: Vec<(Side, Op, Fault)>,
    new_delete_outage: bool,
}

const OPS: [Op; 4] = [Op::Get, Op::Put, Op::Insert, Op::Delete];

impl Plan {
    fn random(rng: &mut ThreadRng, mode: Mode) -> Plan {
        let mut next_value = 0;
        let mut fresh = || {
            next_value += 1;
            next_value
        };
        let keys = rng.gen_range(2..=3);
        let initial = (0..keys)
            .map(|_| match rng.gen_range(0..3) {
                0 => (None, false),
                1 => (Some(fresh()), false),
                _ => (Some(fresh()), true),
            })
            .collect();
        let mut op = |rng: &mut ThreadRng| {
            let key = rng.gen_range(0..keys);
            let kind = match rng.gen_range(0..5) {
                0 | 1 => Kind::Get,
                2 | 3 => Kind::Put(fresh()),
                _ => Kind::Delete,
            };
            (kind, key)
        };
        let workers = (0..rng.gen_range(2..=3)).map(|_| (0..rng.gen_range(2..=4)).map(|_| op(rng)).collect()).collect();
        let cancel = (mode.cancellation && rng.gen_bool(0.5)).then(|| {
            let (kind, key) = op(rng);
            (kind, key, rng.gen_range(0..=6))
        });
        let half = Rate::percent(50.0).unwrap();
        let control = if mode.gate_changes && rng.gen_bool(0.75) {
            (0..rng.gen_range(1..=3))
                .map(|_| match rng.gen_range(0..if mode.phases { 8 } else { 3 }) {
                    0 => Action::Rate(Rate::NONE),
                    1 => Action::Rate(Rate::ALL),
                    2 => Action::Rate(half),
                    3 => Action::Phase(Phase::Off),
                    4 => Action::Phase(Phase::DualWrite),
                    5 => Action::Phase(Phase::Shadow),
                    6 => Action::Phase(Phase::ReadThrough),
                    _ => Action::Phase(Phase::Live),
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut faults = Vec::new();
        let mut new_delete_outage = false;
        if mode.faults && rng.gen_bool(0.5) {
            for _ in 0..rng.gen_range(1..=2) {
                let side = if rng.gen_bool(0.5) { Side::Old } else { Side::New };
                let fault = if rng.gen_bool(0.5) { Fault::Before } else { Fault::After };
                faults.push((side, OPS[rng.gen_range(0..4)], fault));
            }
            new_delete_outage = rng.gen_bool(0.2);
        }
        Plan {
            keys,
            initial,
            stripes: if rng.gen_bool(0.5) { 1 } else { 1024 },
            shadow_sample: if rng.gen_bool(0.75) { Rate::ALL } else { half },
            workers,
            control,
            cancel,
            faults,
            new_delete_outage,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Coverage: proof that the hard paths were taken, summed over a run's iterations.

#[derive(Default)]
struct Coverage(Mutex<BTreeMap<&'static str, usize>>);

/// What every full exploration must have seen at least once.
const REQUIRED: [&str; 16] = [
    "iterations",
    "reads served",
    "writes acknowledged",
    "operations failed",
    "indeterminate writes",
    "writes cancelled",
    "reads cancelled",
    "keys stale in NEW at quiescence (excused)",
    "keys in doubt at quiescence",
    "gate or phase changes",
    "read-throughs that waited for the key's lock (second NEW look)",
    "reads checked against an acknowledged write",
    "reads checked against a failed or cancelled write only (strong form)",
    "repairs of keys in doubt",
    "shadow comparisons",
    "invalidations",
];

impl Coverage {
    fn add(&self, what: &'static str, count: usize) {
        *self.0.lock().unwrap().entry(what).or_default() += count;
    }

    fn require(&self, iterations: usize) {
        let counts = self.0.lock().unwrap();
        eprintln!("coverage over {iterations} iterations: {counts:#?}");
        assert_eq!(counts.get("iterations"), Some(&iterations), "every iteration ran to the end");
        for what in REQUIRED {
            assert!(counts.get(what).is_some_and(|&n| n > 0), "no iteration covered: {what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One iteration.

/// Panics with the plan and the history if `ok` is false.
fn ensure(world: &World, plan: &Plan, ok: bool, message: impl FnOnce() -> String) {
    if !ok {
        let message = message();
        let history = world.history().to_string();
        panic!("{message}\nplan: {plan:?}\n{history}");
    }
}

async fn explore<S: Subject>(mode: Mode, coverage: &Coverage) {
    let mut rng = thread_rng();
    let plan = Plan::random(&mut rng, mode);
    let world = World::new();
    for (key, &(value, in_new)) in (0..).zip(&plan.initial) {
        world.seed(key, value, in_new);
    }
    let gate = Gate::new("proxy-schedules", Rate::ALL);
    let subject =
        Arc::new(S::build(world.sched(Side::Old), world.sched(Side::New), gate, plan.stripes, plan.shadow_sample));
    for &(side, op, fault) in &plan.faults {
        world.store(side).fail_next(Some(op), fault);
    }
    if plan.new_delete_outage {
        world.new.outage(Some(Op::Delete), Fault::Before);
    }

    let mut tasks = Vec::new();
    for (i, script) in plan.workers.iter().enumerate() {
        let (world, subject, script) = (world.clone(), Arc::clone(&subject), script.clone());
        tasks.push(spawn_local(async move {
            let name = format!("worker{i}");
            for (kind, key) in script {
                run_op(&world, &*subject, &name, kind, key).await;
            }
        }));
    }
    if !plan.control.is_empty() {
        let (world, subject, actions) = (world.clone(), Arc::clone(&subject), plan.control.clone());
        tasks.push(spawn_local(async move {
            for action in actions {
                yield_now().await;
                match action {
                    Action::Rate(rate) => {
                        subject.set_rate(rate);
                        world.event(format!("gate rate -> {rate}"));
                    }
                    Action::Phase(phase) => {
                        let result = subject.set_phase(phase);
                        world.event(format!("phase -> {phase}: {result:?}"));
                    }
                }
            }
        }));
    }
    if let Some((kind, key, yields)) = plan.cancel {
        let (world, subject) = (world.clone(), Arc::clone(&subject));
        tasks.push(spawn_local(async move {
            let target = {
                let (world, subject) = (world.clone(), Arc::clone(&subject));
                spawn_local(async move {
                    run_op(&world, &*subject, "cancellable", kind, key).await;
                })
            };
            for _ in 0..yields {
                yield_now().await;
            }
            target.abort();
            let joined = target.await;
            world.event(format!("abort after {yields} yields: {joined:?}"));
        }));
    }
    for task in tasks {
        task.await.expect("tasks are not aborted");
    }
    assert!(world.history().ops.iter().all(|op| op.end.is_some()), "every operation ended");

    check_quiescence(&world, &plan, &*subject, coverage).await;
    check_history(&world, &plan, mode, coverage);
    record_coverage(&world, &*subject, coverage);
}

fn record_coverage<S: Subject>(world: &World, subject: &S, coverage: &Coverage) {
    let history = world.history();
    let count = |f: &dyn Fn(&OpRecord) -> bool| history.ops.iter().filter(|op| f(op)).count();
    coverage.add("iterations", 1);
    coverage.add("reads served", count(&|op| matches!(op.outcome, Outcome::Read(_))));
    coverage.add("writes acknowledged", count(&|op| op.outcome == Outcome::Written));
    coverage.add("operations failed", count(&|op| matches!(op.outcome, Outcome::Failed { .. })));
    coverage
        .add("indeterminate writes", count(&|op| matches!(op.outcome, Outcome::Failed { indeterminate: true, .. })));
    coverage.add("writes cancelled", count(&|op| op.kind.is_write() && op.outcome == Outcome::Cancelled));
    coverage.add(
        "read-throughs that waited for the key's lock (second NEW look)",
        count(&|op| {
            !op.kind.is_write() && op.calls.iter().filter(|c| c.side == Side::New && c.op == Op::Get).count() == 2
        }),
    );
    coverage.add("reads cancelled", count(&|op| !op.kind.is_write() && op.outcome == Outcome::Cancelled));
    coverage.add(
        "gate or phase changes",
        history.events.iter().filter(|(_, e)| e.starts_with("gate") || e.contains(": Ok")).count(),
    );
    if let Some(stats) = subject.stats() {
        let stat = |n: u64| usize::try_from(n).unwrap();
        coverage.add("read-through copies skipped (a write got there first)", stat(stats.backfills_skipped));
        coverage.add("repairs of keys in doubt", stat(stats.repairs));
        coverage.add("shadow comparisons", stat(stats.shadow_compared));
        coverage.add("shadow mismatches", stat(stats.mismatches));
        coverage.add("invalidations", stat(stats.invalidations));
    }
}

/// Invariants 2 and 3 once every task is done, then the repair by one read per key.
async fn check_quiescence<S: Subject>(world: &World, plan: &Plan, subject: &S, coverage: &Coverage) {
    let doubtful: BTreeSet<u64> = world
        .history()
        .ops
        .iter()
        .filter(|op| {
            op.kind.is_write()
                && (matches!(op.outcome, Outcome::Cancelled | Outcome::Failed { indeterminate: true, .. })
                    || op.invalidated_new())
        })
        .map(|op| op.key)
        .collect();
    let mut stale = Vec::new();
    for key in 0..plan.keys {
        let (old, new) = (world.value(Side::Old, key), world.value(Side::New, key));
        if new.is_some() && new != old {
            ensure(world, plan, doubtful.contains(&key), || {
                format!(
                    "invariant 2/3: at quiescence NEW holds {new:?} under key {key} but OLD holds {old:?}, and no \
                     write of the key was indeterminate or cancelled"
                )
            });
            stale.push(key);
        }
    }
    coverage.add("keys stale in NEW at quiescence (excused)", stale.len());
    if let Some(in_doubt) = subject.keys_in_doubt() {
        coverage.add("keys in doubt at quiescence", in_doubt);
        ensure(world, plan, stale.len() <= in_doubt, || {
            format!("invariant 3: keys {stale:?} are stale in NEW but keys_in_doubt() = {in_doubt}")
        });
        ensure(world, plan, in_doubt <= doubtful.len(), || {
            format!(
                "keys_in_doubt() = {in_doubt}, but only keys {doubtful:?} had an indeterminate, cancelled or \
                 (in Live) invalidating write"
            )
        });
    }

    world.heal();
    subject.set_rate(Rate::ALL);
    let _ = subject.set_phase(Phase::ReadThrough);
    world.event("healed; gate 100 %, phase read-through".into());
    for key in 0..plan.keys {
        let outcome = run_op(world, subject, "final", Kind::Get, key).await;
        let old = world.value(Side::Old, key);
        ensure(world, plan, outcome == Outcome::Read(old), || {
            format!("invariant 1: at quiescence, reading key {key} gave {outcome:?}, but OLD holds {old:?}")
        });
        let new = world.value(Side::New, key);
        ensure(world, plan, new.is_none() || new == old, || {
            format!("invariant 2: after the repairing read, NEW holds {new:?} under key {key} but OLD holds {old:?}")
        });
    }
    if let Some(in_doubt) = subject.keys_in_doubt() {
        ensure(world, plan, in_doubt == 0, || {
            format!("invariant 3: keys_in_doubt() = {in_doubt} after one read per key")
        });
    }
}

/// Invariant 1 for every successful read, invariant 4 for every operation.
fn check_history(world: &World, plan: &Plan, mode: Mode, coverage: &Coverage) {
    let history = world.history();
    let mut problems = Vec::new();
    for (id, op) in history.ops.iter().enumerate() {
        if let Outcome::Read(result) = op.outcome {
            check_read(&history, id, result, coverage, &mut problems);
        }
        if mode.count_calls {
            check_calls(&history, id, op, &mut problems);
        }
    }
    if !problems.is_empty() {
        let history = history.to_string();
        panic!("{}\nplan: {plan:?}\n{history}", problems.join("\n"));
    }
}

/// Invariant 1 for a successful read (see the module docs), in its two forms.
fn check_read(history: &History, id: usize, result: Option<u64>, coverage: &Coverage, problems: &mut Vec<String>) {
    let read = &history.ops[id];
    let end = read.end.expect("a read with a result has ended");
    let log = &history.old_log[&read.key];
    // The writes of the key that ended before the read began, with their commit in OLD's log.
    let before: Vec<(usize, &OpRecord, Option<usize>)> = history
        .ops
        .iter()
        .enumerate()
        .filter(|(_, w)| w.key == read.key && w.kind.is_write() && w.end.is_some_and(|end| end < read.start))
        .map(|(w, record)| (w, record, history.commit_of(w)))
        .collect();
    let mut acknowledged = 0;
    for &(w, record, commit) in &before {
        if record.outcome == Outcome::Written {
            match commit {
                Some(version) => acknowledged = acknowledged.max(version),
                None => problems.push(format!("invariant 4: acknowledged write #{w} has no commit in OLD")),
            }
        }
    }
    let settled = before.iter().filter_map(|&(_, _, commit)| commit).max().unwrap_or(0);
    coverage.add("reads checked against an acknowledged write", usize::from(acknowledged > 0));
    coverage.add(
        "reads checked against a failed or cancelled write only (strong form)",
        usize::from(settled > acknowledged),
    );
    // Whether the result is OLD's state at some version >= `floor`, committed before the read ended.
    let fresh = |floor: usize| match result {
        Some(value) => log.iter().position(|c| c.value == Some(value)).is_some_and(|v| v >= floor && log[v].tick < end),
        None => log[floor..].iter().any(|c| c.value.is_none() && c.tick < end),
    };
    if !fresh(acknowledged) {
        problems.push(format!(
            "invariant 1: read #{id} of key {} returned {result:?}, older than version v{acknowledged} of OLD's log, \
             acknowledged before the read began",
            read.key
        ));
    } else if !fresh(settled) {
        problems.push(format!(
            "invariant 1 (strong form): read #{id} of key {} returned {result:?}, older than version v{settled} of \
             OLD's log, committed by a write that failed or was cancelled before the read began (the proxy \
             promises never to serve a copy such a write left in doubt)",
            read.key
        ));
    }
}

/// Invariant 4 for one operation (see the module docs).
fn check_calls(history: &History, id: usize, op: &OpRecord, problems: &mut Vec<String>) {
    let count = |side: Side, kind: Op| op.calls.iter().filter(|c| c.side == side && c.op == kind).count();
    let finished = op.outcome != Outcome::Cancelled;
    let faultless = op.calls.iter().all(|c| c.fault.is_none());
    let mut fail =
        |what: String| problems.push(format!("invariant 4: op #{id} ({:?} of key {}): {what}", op.kind, op.key));
    match op.kind {
        Kind::Put(_) | Kind::Delete => {
            let write = if op.kind == Kind::Delete { Op::Delete } else { Op::Put };
            let old_writes = count(Side::Old, write);
            let old_calls = op.calls.iter().filter(|c| c.side == Side::Old).count();
            if old_calls != old_writes || old_writes > 1 || (finished && old_writes != 1) {
                fail(format!("OLD calls {:?}, expected one {write}", op.calls));
            }
            let new_puts = count(Side::New, Op::Put);
            let new_deletes = count(Side::New, Op::Delete);
            let new_calls = op.calls.iter().filter(|c| c.side == Side::New).count();
            if new_calls != new_puts + new_deletes
                || new_puts > 1
                || new_deletes > 1
                || (write == Op::Delete && new_puts > 0)
            {
                fail(format!("NEW calls {:?}: at most one put and one delete", op.calls));
            }
            if finished && faultless {
                let shaped = op.calls.len() == 2 && op.calls[0].side == Side::Old && op.calls[1].side == Side::New;
                let new_ok = match write {
                    Op::Delete => new_deletes == 1,
                    _ => new_puts + new_deletes == 1,
                };
                if !shaped || !new_ok {
                    fail(format!("without failures, calls {:?}: expected [OLD {write}, NEW put or delete]", op.calls));
                }
            }
            if op.outcome == Outcome::Written {
                let commits = history.old_log[&op.key].iter().filter(|c| c.op == Some(id)).count();
                if commits != 1 {
                    fail(format!("acknowledged with {commits} commits in OLD"));
                }
            }
        }
        Kind::Get => {
            let old_calls = op.calls.iter().filter(|c| c.side == Side::Old).count();
            if old_calls != count(Side::Old, Op::Get) || old_calls > 1 {
                fail(format!("OLD calls {:?}: at most one get", op.calls));
            }
            if count(Side::New, Op::Get) > 2
                || count(Side::New, Op::Delete) > 1
                || count(Side::New, Op::Insert) > 1
                || count(Side::New, Op::Put) > 0
            {
                fail(format!("NEW calls {:?}: at most two gets, one delete, one insert, no put", op.calls));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// A runner with room for debug-build futures on each task's stack (shuttle's default is 60 KiB).
fn runner<S: Scheduler + 'static>(scheduler: S) -> Runner<S> {
    let mut config = Config::new();
    config.stack_size = 1 << 20;
    Runner::new(scheduler, config)
}

/// Explores the real proxy under `scheduler` (`check_random` / `check_pct` with a bigger stack),
/// then requires that the hard paths were covered.
fn explore_real<S: Scheduler + 'static>(scheduler: S, iterations: usize) {
    let coverage = Arc::new(Coverage::default());
    let shared = Arc::clone(&coverage);
    let runs = runner(scheduler).run(move || block_on(explore::<Real>(FULL, &shared)));
    assert_eq!(runs, iterations);
    coverage.require(iterations);
}

#[test]
fn random_schedules_keep_the_invariants() {
    let iterations = iterations(RANDOM_ITERATIONS);
    explore_real(RandomScheduler::new(iterations), iterations);
}

#[test]
fn pct_schedules_keep_the_invariants() {
    let iterations = iterations(PCT_ITERATIONS);
    explore_real(PctScheduler::new(PCT_DEPTH, iterations), iterations);
}

/// Runs the exploration against the seed's proxy and returns the violation shuttle found.
fn control(mode: Mode) -> String {
    let result = panic::catch_unwind(|| {
        let coverage = Coverage::default();
        runner(RandomScheduler::new(CONTROL_ITERATIONS)).run(move || block_on(explore::<Naive>(mode, &coverage)));
    });
    let payload = result.expect_err("shuttle found no violation in the seed's proxy: the schedules are too weak");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        ["invariant 1", "invariant 2", "invariant 3"].iter().any(|name| message.contains(name)),
        "the control failed for another reason: {message}"
    );
    message
}

#[test]
fn control_naive_proxy_is_caught_by_races_alone() {
    control(CONTROL_RACES);
}

#[test]
fn control_naive_proxy_is_caught_with_gate_changes() {
    control(CONTROL_GATE);
}

/// Invariant 4 exactly: one task, every step's store calls in order, cross-checked with `Faulty`'s
/// counters. The `Sched` layer needs a shuttle execution; one schedule is all there is.
#[test]
fn sequential_store_calls_are_exact() {
    runner(RandomScheduler::new(1)).run(|| block_on(sequential()));
}

async fn sequential() {
    use Op::{Delete as D, Get as G, Insert as I, Put as P};
    use Side::{New as N, Old as O};

    let world = World::new();
    world.seed(0, None, false);
    world.seed(1, Some(100), false);
    let proxy = Real::build(world.sched(O), world.sched(N), Gate::new("sequential", Rate::ALL), 1024, Rate::ALL);

    let mut step = 0;
    macro_rules! expect {
        ($kind:expr, $key:expr, $outcome:expr, $calls:expr) => {
            step += 1;
            expect_calls(&world, &proxy, step, $kind, $key, $outcome, $calls).await
        };
    }

    // ReadThrough, admitted: write-through, NEW hits, read-through copies.
    expect!(Kind::Put(1), 0, Outcome::Written, &[(O, P), (N, P)]);
    expect!(Kind::Get, 0, Outcome::Read(Some(1)), &[(N, G)]);
    expect!(Kind::Get, 1, Outcome::Read(Some(100)), &[(N, G), (O, G), (N, I)]);
    expect!(Kind::Get, 1, Outcome::Read(Some(100)), &[(N, G)]);
    expect!(Kind::Delete, 0, Outcome::Written, &[(O, D), (N, D)]);
    expect!(Kind::Get, 0, Outcome::Read(None), &[(N, G), (O, G)]);

    // Off: OLD only, writes invalidate NEW.
    proxy.set_phase(Phase::Off).unwrap();
    expect!(Kind::Put(2), 1, Outcome::Written, &[(O, P), (N, D)]);
    expect!(Kind::Get, 1, Outcome::Read(Some(2)), &[(O, G)]);
    // DualWrite: writes to both, reads from OLD.
    proxy.set_phase(Phase::DualWrite).unwrap();
    expect!(Kind::Put(3), 1, Outcome::Written, &[(O, P), (N, P)]);
    expect!(Kind::Get, 1, Outcome::Read(Some(3)), &[(O, G)]);
    // Shadow: OLD served, NEW compared (equal: nothing else), copied on a miss.
    proxy.set_phase(Phase::Shadow).unwrap();
    expect!(Kind::Get, 1, Outcome::Read(Some(3)), &[(O, G), (N, G)]);
    world.new.inner().memory.delete(&1).await.unwrap();
    expect!(Kind::Get, 1, Outcome::Read(Some(3)), &[(O, G), (N, G), (N, I)]);
    // Live: like ReadThrough for every key.
    proxy.set_phase(Phase::Live).unwrap();
    expect!(Kind::Get, 1, Outcome::Read(Some(3)), &[(N, G)]);
    expect!(Kind::Put(4), 1, Outcome::Written, &[(O, P), (N, P)]);

    // ReadThrough with the gate lowered: the key has lapsed, writes invalidate, reads go to OLD.
    proxy.set_phase(Phase::ReadThrough).unwrap();
    proxy.gate().set_rate(Rate::NONE).unwrap();
    expect!(Kind::Put(5), 1, Outcome::Written, &[(O, P), (N, D)]);
    expect!(Kind::Get, 1, Outcome::Read(Some(5)), &[(O, G)]);
    proxy.gate().set_rate(Rate::ALL).unwrap();
    expect!(Kind::Get, 1, Outcome::Read(Some(5)), &[(N, G), (O, G), (N, I)]);

    // NEW's put fails: invalidated, the write still succeeds.
    world.new.fail_next(Some(Op::Put), Fault::Before);
    expect!(Kind::Put(6), 1, Outcome::Written, &[(O, P), (N, P), (N, D)]);
    expect!(Kind::Get, 1, Outcome::Read(Some(6)), &[(N, G), (O, G), (N, I)]);

    // NEW's delete fails: indeterminate, in doubt, and the next read repairs before trusting NEW.
    world.new.fail_next(Some(Op::Delete), Fault::Before);
    let outcome = run_op(&world, &proxy, "seq", Kind::Delete, 1).await;
    assert!(matches!(outcome, Outcome::Failed { indeterminate: true, .. }), "{outcome:?}");
    assert_eq!(proxy.keys_in_doubt(), 1);
    expect!(Kind::Get, 1, Outcome::Read(None), &[(N, D), (O, G)]);
    assert_eq!(proxy.keys_in_doubt(), 0);

    // A gate that never admitted the key: OLD only, NEW never touched.
    let world = World::new();
    world.seed(7, None, false);
    let proxy = Real::build(world.sched(O), world.sched(N), Gate::new("never", Rate::NONE), 1024, Rate::ALL);
    assert_eq!(run_op(&world, &proxy, "seq", Kind::Put(8), 7).await, Outcome::Written);
    assert_eq!(run_op(&world, &proxy, "seq", Kind::Get, 7).await, Outcome::Read(Some(8)));
    assert_eq!(run_op(&world, &proxy, "seq", Kind::Delete, 7).await, Outcome::Written);
    let calls: Vec<Vec<(Side, Op)>> =
        world.history().ops.iter().map(|op| op.calls.iter().map(|c| (c.side, c.op)).collect()).collect();
    assert_eq!(calls, [vec![(O, P)], vec![(O, G)], vec![(O, D)]]);
    assert_eq!(world.new.total_calls(), 0);
}

/// One step of `sequential`: the outcome, the store calls in order, and `Faulty`'s counters.
async fn expect_calls(
    world: &World,
    proxy: &Real,
    step: usize,
    kind: Kind,
    key: u64,
    outcome: Outcome,
    calls: &[(Side, Op)],
) {
    let before = world.calls();
    let got = run_op(world, proxy, "seq", kind, key).await;
    assert_eq!(got, outcome, "step {step}: {kind:?} of key {key}");
    let made: Vec<(Side, Op)> = world.history().ops.last().unwrap().calls.iter().map(|c| (c.side, c.op)).collect();
    assert_eq!(made, calls, "step {step}: {kind:?} of key {key}: store calls in order");
    let mut counted = before;
    for &(side, op) in calls {
        counted[usize::from(side == Side::New)][OPS.iter().position(|&o| o == op).unwrap()] += 1;
    }
    assert_eq!(world.calls(), counted, "step {step}: Faulty's counters agree");
}
