//! A model-based property test of `zddm::Proxy` under store faults, gate ramps and phase changes.
//!
//! Proptest generates a [`Scenario`]: a starting gate rate, a lock-stripe count (1 and 2 force
//! unrelated keys to share a stripe) and up to 60 [`Step`]s over six keys. The steps drive one
//! proxy, one at a time, over two stores, each wrapped in the suite's fault injector
//! ([`Faulty`]): reads, writes (every put writes a fresh value, so a stale one shows), deletes,
//! rate changes, moves between the phases `Off` to `Live`, one-shot faults on either store
//! ("before": not applied; "after": applied, then an error, like a timeout after commit), and
//! standing NEW outages with their heal. `Complete` cannot be left, so it has its own property,
//! [`proxy_agrees_with_the_model_into_complete`]: the same steps, then a 100 % gate, `Complete`,
//! and a few more steps.
//!
//! The [`Model`] is what the proxy's documentation promises:
//!
//! * `old`: what OLD must hold. OLD is the source of truth until `Complete`, and the model knows
//!   exactly what each write did to it: it applied unless OLD failed it with a "before" fault.
//! * `old_faults`: the one-shot OLD faults not yet consumed. Every OLD failure surfaces in the
//!   proxy's answer, so the model can tell which fault struck and whether it applied.
//! * `in_doubt`: the keys whose NEW copy the proxy holds in doubt. A key enters when a write returns
//!   [`Error::Indeterminate`]; it leaves when a later write of it is settled (any answer but an
//!   indeterminate one) or when a read repairs it (the proxy's `repairs` counter says so).
//!
//! After every step the test checks:
//!
//! 1. **Reads are fresh.** A successful get returns OLD's current value (in `Complete`: NEW's,
//!    except that a copy held in doubt is never served).
//! 2. **NEW is never stale.** Every key NEW holds has OLD's value, unless the key is in doubt; the
//!    proxy's `keys_in_doubt()` is exactly the model's count; no shadow read ever finds a mismatch.
//! 3. **Plain errors leave NEW honest.** After an [`Error::Store`] from a write, NEW holds nothing
//!    for the key that differs from OLD. Outside `Complete`, such an error is always OLD's failure
//!    of that very operation: a NEW failure is absorbed by invalidating NEW's copy.
//! 4. **Only OLD fails reads.** In `Off`, `DualWrite`, `Shadow` and `ReadThrough` a get fails only
//!    by consuming an injected OLD fault; NEW failures are hidden. `Live` may fail on NEW, and
//!    `Complete` reads NEW only.
//! 5. **Convergence.** At the end, with both stores healed, a 100 % gate and `ReadThrough`, one
//!    get of every key returns OLD's value, and then NEW holds exactly OLD's entries and no key is
//!    in doubt. (In `Complete`, which cannot be left, reading every key must settle every key.)
//! 6. **One call per step.** No proxy call makes the same store operation twice (no retries).
//!
//! These are the sequential forms of the invariants of `docs/consistency.md`: checks 1 and 5 of its
//! invariant 1, checks 2 and 3 of its invariants 2 and 3, check 6 of its invariant 4; check 4 is its
//! "a NEW failure …" column.
//!
//! Phase changes are checked against the documented rules (`Live` and `Complete` are entered with a
//! 100 % gate; staying in a phase is always accepted; `Complete` cannot be left), and so are rate
//! changes (any rate before `Complete`, `Live` included; from `Complete` on only 100 %). Outside `Live` and `Complete`, NEW may only lose copies of
//! the keys the gate does not admit (of every key in `Off`, the kill switch). In `Complete`, OLD must
//! stay untouched.
//!
//! Each property runs over two in-memory stores (1,024 scenarios), and again over real stores on
//! both sides (fewer scenarios: each costs a few hundred round trips): SQLite to SQLite, SQLite to
//! PostgreSQL and PostgreSQL to Redis, on servers the tests start themselves.
//!
//! The control, [`the_model_catches_the_naive_proxy`], runs the same scenarios against the seed
//! library's semantics (`zddm_suite::naive::NaiveProxy`) with checks 1 and 2, and requires proptest
//! to find a violation: the checks can fail.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{TestError, TestRunner};
use zddm::cached::ScanKeys;
use zddm::verify::Verify;
use zddm::{Error, Gate, MemoryStore, MigrationKey, Op, Phase, PhaseError, Proxy, Rate, Side, Store};
use zddm_suite::backends::{Backends, Counted};
use zddm_suite::faults::{Fault, Faulty, Injected};
use zddm_suite::naive::{Migrating, NaiveProxy};

/// Keys are `0..KEYS`.
const KEYS: u64 = 6;
const SALT: &str = "proxy-model";

type Mem = MemoryStore<u64, u64>;
type FaultyStore<S = Mem> = Arc<Faulty<S>>;
type TestProxy<O = Mem, N = O> = Proxy<u64, u64, FaultyStore<O>, FaultyStore<N>>;

thread_local! {
    /// Each test's thread drives its stores' futures on a runtime of its own (PostgreSQL and Redis
    /// connections need a Tokio reactor).
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a Tokio runtime");
}

/// Runs `future` to completion on this thread's runtime.
fn wait<F: std::future::Future>(future: F) -> F::Output {
    RUNTIME.with(|runtime| runtime.block_on(future))
}

// ---------------------------------------------------------------------------------------------
// What proptest generates
// ---------------------------------------------------------------------------------------------

/// One operation on the system under test.
#[derive(Debug, Clone)]
enum Step {
    Get(u64),
    /// Writes the next unique value.
    Put(u64),
    Delete(u64),
    /// The gate's new rate, in ppm.
    SetRate(u32),
    SetPhase(Phase),
    /// The next call of `op` (any call if `None`) on `side` fails.
    Fail {
        side: Side,
        op: Option<Op>,
        fault: Fault,
    },
    /// Every NEW call of `op` (any if `None`) fails until [`Step::HealNew`].
    NewOutage {
        op: Option<Op>,
        fault: Fault,
    },
    /// Ends a NEW outage and drops NEW's pending one-shot faults.
    HealNew,
    /// Heals both stores, then runs a whole verification that repairs what it finds.
    Verify,
}

#[derive(Debug, Clone)]
struct Scenario {
    initial_ppm: u32,
    stripes: usize,
    steps: Vec<Step>,
}

fn key() -> impl Strategy<Value = u64> {
    0..KEYS
}

fn rate_ppm() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), Just(300_000), Just(700_000), Just(1_000_000), 0..=1_000_000u32]
}

/// Every phase but `Complete`, which cannot be left: [`scenario_ending_in_complete`] goes there.
fn migrating_phase() -> impl Strategy<Value = Phase> {
    prop_oneof![
        3 => Just(Phase::Off),
        3 => Just(Phase::DualWrite),
        3 => Just(Phase::Shadow),
        5 => Just(Phase::ReadThrough),
        4 => Just(Phase::Live),
    ]
}

/// Mostly puts and deletes: failing both is what leaves a stale copy in doubt, and failing the
/// delete again is what makes its repair fail.
fn store_op() -> impl Strategy<Value = Option<Op>> {
    prop_oneof![
        2 => Just(Some(Op::Get)),
        3 => Just(Some(Op::Put)),
        1 => Just(Some(Op::Insert)),
        3 => Just(Some(Op::Delete)),
        1 => Just(None),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![Just(Fault::Before), Just(Fault::After)]
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![1 => Just(Side::Old), 2 => Just(Side::New)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => key().prop_map(Step::Get),
        5 => key().prop_map(Step::Put),
        2 => key().prop_map(Step::Delete),
        2 => rate_ppm().prop_map(Step::SetRate),
        3 => migrating_phase().prop_map(Step::SetPhase),
        4 => (side(), store_op(), fault()).prop_map(|(side, op, fault)| Step::Fail { side, op, fault }),
        1 => (store_op(), fault()).prop_map(|(op, fault)| Step::NewOutage { op, fault }),
        1 => Just(Step::HealNew),
        1 => Just(Step::Verify),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (rate_ppm(), prop_oneof![Just(1usize), Just(2), Just(1024)], prop::collection::vec(step(), 1..60))
        .prop_map(|(initial_ppm, stripes, steps)| Scenario { initial_ppm, stripes, steps })
}

/// A scenario, then a 100 % gate and `Complete`, then a few more steps.
fn scenario_ending_in_complete() -> impl Strategy<Value = Scenario> {
    (scenario(), prop::collection::vec(step(), 0..12)).prop_map(|(mut scenario, tail)| {
        // `Complete` is earned: the first pass in `Live` repairs what it finds, the second finds
        // NEW clean.
        scenario.steps.extend([
            Step::SetRate(Rate::MAX_PPM),
            Step::SetPhase(Phase::Live),
            Step::Verify,
            Step::Verify,
            Step::SetPhase(Phase::Complete),
        ]);
        scenario.steps.extend(tail);
        scenario
    })
}

/// `cases` scenarios per property (about a millisecond each in a debug build). No regression file: a
/// failure prints the shrunk scenario, which is the reproduction.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers and the checks both runners use
// ---------------------------------------------------------------------------------------------

fn rate(ppm: u32) -> Rate {
    Rate::from_ppm(ppm).expect("generated rates are in range")
}

fn faulty_store() -> FaultyStore {
    Arc::new(Faulty::new(MemoryStore::new()))
}

/// What `store` holds for `key`, read behind the proxy's back (and the fault injector's).
fn peek<S: Store<u64, u64>>(store: &Faulty<S>, key: u64) -> Option<u64> {
    wait(store.inner().get(&key)).expect("the store answers a read behind the proxy's back")
}

/// Everything `store` holds.
fn contents<S: Store<u64, u64>>(store: &Faulty<S>) -> BTreeMap<u64, u64> {
    (0..KEYS).filter_map(|key| peek(store, key).map(|value| (key, value))).collect()
}

const STORE_OPS: [Op; 4] = [Op::Get, Op::Put, Op::Insert, Op::Delete];

/// How many calls of each of [`STORE_OPS`] `store` has had, failed ones included.
fn call_counts<S>(store: &Faulty<S>) -> [usize; 4] {
    STORE_OPS.map(|op| store.calls(op))
}

/// The next call of `op` on `side` fails with `fault`.
fn fail_next<O, N>(side: Side, op: Option<Op>, fault: Fault, old: &Faulty<O>, new: &Faulty<N>) {
    match side {
        Side::Old => old.fail_next(op, fault),
        Side::New => new.fail_next(op, fault),
    }
}

/// Invariant 1: a successful read returns the value of the store that is the source of truth.
fn check_read_is_fresh(key: u64, served: Option<u64>, truth: Option<u64>) -> Result<(), TestCaseError> {
    prop_assert_eq!(served, truth, "invariant 1: get({}) served {:?}, but the truth is {:?}", key, served, truth);
    Ok(())
}

/// Invariant 2: every key NEW holds has OLD's value, unless the proxy holds the key in doubt.
fn check_new_agrees_with_old<O: Store<u64, u64>, N: Store<u64, u64>>(
    old: &Faulty<O>,
    new: &Faulty<N>,
    in_doubt: &BTreeSet<u64>,
) -> Result<(), TestCaseError> {
    for key in (0..KEYS).filter(|key| !in_doubt.contains(key)) {
        if let Some(in_new) = peek(new, key) {
            let in_old = peek(old, key);
            prop_assert_eq!(
                Some(in_new),
                in_old,
                "invariant 2: NEW holds {} for key {}, OLD holds {:?}, and the key is not in doubt",
                in_new,
                key,
                in_old
            );
        }
    }
    Ok(())
}

/// A failed proxy call, with the injected fault behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// [`Error::Store`].
    Store { side: Side, op: Op, fault: Fault },
    /// [`Error::Indeterminate`]; `old_fault` if OLD failed the write too.
    Indeterminate { op: Op, old_fault: Option<Fault> },
}

/// The injected fault behind a store error of the proxy (the in-memory stores never fail alone).
fn injected_fault(error: &Error) -> Result<Fault, TestCaseError> {
    let injected = error.store_error().downcast_ref::<Injected>();
    match injected {
        Some(injected) if injected.op == error.op() => Ok(injected.fault),
        _ => Err(TestCaseError::fail(format!("{error:?} is not an injected failure of {}", error.op()))),
    }
}

fn classify(error: &Error) -> Result<Failure, TestCaseError> {
    match error {
        Error::Store { side, op, .. } => Ok(Failure::Store { side: *side, op: *op, fault: injected_fault(error)? }),
        Error::Indeterminate { op, old_error, .. } => {
            let old_fault = match old_error {
                None => None,
                Some(old_error) => {
                    let old_error = old_error.downcast_ref::<Error>();
                    match old_error {
                        Some(old_error @ Error::Store { side: Side::Old, op: old_op, .. }) if old_op == op => {
                            Some(injected_fault(old_error)?)
                        }
                        _ => return Err(TestCaseError::fail(format!("{error:?}: OLD's error is not OLD's {op}"))),
                    }
                }
            };
            Ok(Failure::Indeterminate { op: *op, old_fault })
        }
        _ => Err(TestCaseError::fail(format!("unexpected error {error:?}"))),
    }
}

/// A put of a value, or a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Put(u64),
    Delete,
}

impl Write {
    fn op(self) -> Op {
        match self {
            Write::Put(_) => Op::Put,
            Write::Delete => Op::Delete,
        }
    }

    /// What the key holds once the write applied.
    fn result(self) -> Option<u64> {
        match self {
            Write::Put(value) => Some(value),
            Write::Delete => None,
        }
    }

    fn apply(self, map: &mut BTreeMap<u64, u64>, key: u64) {
        match self {
            Write::Put(value) => map.insert(key, value),
            Write::Delete => map.remove(&key),
        };
    }
}

fn needs_full_rate(phase: Phase) -> bool {
    matches!(phase, Phase::Live | Phase::Complete)
}

// ---------------------------------------------------------------------------------------------
// The model and the harness driving the real proxy
// ---------------------------------------------------------------------------------------------

/// See the module docs.
struct Model {
    old: BTreeMap<u64, u64>,
    in_doubt: BTreeSet<u64>,
    old_faults: VecDeque<(Option<Op>, Fault)>,
    rate_ppm: u32,
    phase: Phase,
    next_value: u64,
    /// Whether a verification earned `Complete` since the last phase change.
    verified: bool,
}

impl Model {
    /// OLD failed `op` with `fault`, consuming the first pending one-shot fault that matches `op`
    /// (exactly the injector's rule).
    fn consume_old_fault(&mut self, op: Op, fault: Fault) -> Result<(), TestCaseError> {
        let position = self.old_faults.iter().position(|(target, _)| target.is_none() || *target == Some(op));
        let Some(position) = position else {
            return Err(TestCaseError::fail(format!("OLD failed {op} ({fault:?}) but no OLD fault was pending")));
        };
        let (_, planned) = self.old_faults.remove(position).expect("position is in range");
        prop_assert_eq!(planned, fault, "OLD failed {} with the wrong fault", op);
        Ok(())
    }
}

struct Harness<O, N> {
    old: FaultyStore<O>,
    new: FaultyStore<N>,
    proxy: TestProxy<O, N>,
    model: Model,
}

impl<O: Store<u64, u64> + ScanKeys<u64>, N: Counted<u64, u64> + ScanKeys<u64>> Harness<O, N> {
    /// A proxy over `old` and `new`, emptied of the scenario keys first (a runner reuses one pair
    /// of real stores for every scenario).
    fn new(scenario: &Scenario, old: O, new: N) -> Self {
        for key in 0..KEYS {
            wait(old.delete(&key)).expect("OLD is emptied before the scenario");
            wait(new.delete(&key)).expect("NEW is emptied before the scenario");
        }
        assert_eq!(wait(new.count()), 0, "NEW holds nothing but the scenario keys");
        let (old, new) = (Arc::new(Faulty::new(old)), Arc::new(Faulty::new(new)));
        let gate = Gate::new(SALT, rate(scenario.initial_ppm));
        let proxy = Proxy::builder(Arc::clone(&old), Arc::clone(&new), gate)
            .stripes(scenario.stripes)
            .build()
            .expect("ReadThrough with a power-of-two stripe count is a valid configuration");
        let model = Model {
            old: BTreeMap::new(),
            in_doubt: BTreeSet::new(),
            old_faults: VecDeque::new(),
            rate_ppm: scenario.initial_ppm,
            phase: Phase::ReadThrough,
            next_value: 1,
            verified: false,
        };
        Harness { old, new, proxy, model }
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let new_before = contents(&self.new);
        let calls_before = [call_counts(&self.old), call_counts(&self.new)];
        match *step {
            Step::Get(key) => self.get(key)?,
            Step::Put(key) => {
                let value = self.model.next_value;
                self.model.next_value += 1;
                self.write(key, Write::Put(value))?;
            }
            Step::Delete(key) => self.write(key, Write::Delete)?,
            Step::SetRate(ppm) => self.set_rate(ppm)?,
            Step::SetPhase(phase) => self.set_phase(phase)?,
            Step::Fail { side, op, fault } => {
                fail_next(side, op, fault, &self.old, &self.new);
                if side == Side::Old {
                    self.model.old_faults.push_back((op, fault));
                }
            }
            Step::NewOutage { op, fault } => self.new.outage(op, fault),
            Step::HealNew => self.new.heal(),
            Step::Verify => {
                self.verify()?;
                self.check_gate_keeps_keys_out_of_new(&new_before)?;
                return self.check_invariants();
            }
        }
        self.check_gate_keeps_keys_out_of_new(&new_before)?;
        self.check_one_call_per_step(calls_before)?;
        self.check_invariants()
    }

    /// Check 6: no store operation was called twice by this step.
    fn check_one_call_per_step(&self, before: [[usize; 4]; 2]) -> Result<(), TestCaseError> {
        let after = [call_counts(&self.old), call_counts(&self.new)];
        for ((side, after), before) in [Side::Old, Side::New].into_iter().zip(after).zip(before) {
            for ((op, after), before) in STORE_OPS.into_iter().zip(after).zip(before) {
                let calls = after - before;
                prop_assert!(calls <= 1, "check 6: one proxy call made {} {} calls on {}", calls, op, side);
            }
        }
        Ok(())
    }

    /// Outside `Live` and `Complete`, a key the gate does not admit goes to OLD only, and in `Off`
    /// (the kill switch) every key does: NEW may lose such a key's copy, but never gain or change it.
    fn check_gate_keeps_keys_out_of_new(&self, new_before: &BTreeMap<u64, u64>) -> Result<(), TestCaseError> {
        let phase = self.model.phase;
        if needs_full_rate(phase) {
            return Ok(());
        }
        for (key, value) in contents(&self.new) {
            if phase == Phase::Off || !self.proxy.gate().admits(&key) {
                prop_assert_eq!(
                    new_before.get(&key),
                    Some(&value),
                    "NEW gained {} for key {}, which the gate does not let into NEW in {}",
                    value,
                    key,
                    phase
                );
            }
        }
        Ok(())
    }

    fn get(&mut self, key: u64) -> Result<(), TestCaseError> {
        let repairs = self.proxy.stats().repairs;
        let result = wait(self.proxy.get(&key));
        let repaired = self.proxy.stats().repairs - repairs;
        prop_assert!(repaired <= 1, "get({}) repaired {} keys", key, repaired);
        if repaired == 1 {
            prop_assert!(self.model.in_doubt.remove(&key), "get({}) repaired a key that was not in doubt", key);
        }
        match (self.model.phase, result) {
            (Phase::Complete, result) => self.check_complete_read(key, result),
            (_, Ok(served)) => check_read_is_fresh(key, served, self.model.old.get(&key).copied()),
            (phase, Err(error)) => match classify(&error)? {
                Failure::Store { side: Side::Old, op: Op::Get, fault } => self.model.consume_old_fault(Op::Get, fault),
                Failure::Store { side: Side::New, .. } if phase == Phase::Live => Ok(()),
                failure => Err(TestCaseError::fail(format!(
                    "invariant 4: get({key}) in {phase} failed with {failure:?} ({error})"
                ))),
            },
        }
    }

    /// Invariant 1 in `Complete`: NEW serves, but never a copy the proxy holds in doubt
    /// (`docs/consistency.md`, invariant 3: "this process never *serves* the doubtful copy").
    fn check_complete_read(&self, key: u64, result: Result<Option<u64>, Error>) -> Result<(), TestCaseError> {
        let in_new = peek(&self.new, key);
        let in_old = self.model.old.get(&key).copied();
        match result {
            Ok(served) if self.model.in_doubt.contains(&key) && in_new.is_some() && in_new != in_old => {
                prop_assert_ne!(
                    served,
                    in_new,
                    "invariant 1 (Complete): get({}) served NEW's copy, which the proxy holds in doubt \
                     (OLD's committed value is {:?})",
                    key,
                    in_old
                );
                Ok(())
            }
            Ok(served) => check_read_is_fresh(key, served, in_new),
            // `get`: "Fails only if the store that must serve the read fails", NEW in `Complete`.
            Err(error) => match classify(&error)? {
                Failure::Store { side: Side::New, .. } => Ok(()),
                failure => Err(TestCaseError::fail(format!("get({key}) in Complete failed with {failure:?}"))),
            },
        }
    }

    fn write(&mut self, key: u64, write: Write) -> Result<(), TestCaseError> {
        let result = match write {
            Write::Put(value) => wait(self.proxy.put(&key, &value)),
            Write::Delete => wait(self.proxy.delete(&key)),
        };
        if self.model.phase == Phase::Complete {
            return self.check_complete_write(key, write, result);
        }
        // In Live, a write that had to remove NEW's copy keeps its key in doubt (`Complete` must wait
        // for a read to copy it back); a delete whose NEW delete is the delete itself does not.
        let live = self.model.phase == Phase::Live;
        let failure = match result {
            Ok(()) => {
                write.apply(&mut self.model.old, key);
                let invalidated = matches!(write, Write::Put(_)) && peek(&self.new, key).is_none();
                if live && invalidated {
                    self.model.in_doubt.insert(key);
                } else {
                    self.model.in_doubt.remove(&key);
                }
                return Ok(());
            }
            Err(error) => classify(&error)?,
        };
        match failure {
            Failure::Store { side: Side::Old, op, fault } if op == write.op() => {
                self.model.consume_old_fault(op, fault)?;
                if fault == Fault::After {
                    write.apply(&mut self.model.old, key);
                }
                if live {
                    self.model.in_doubt.insert(key);
                } else {
                    self.model.in_doubt.remove(&key);
                }
                self.check_store_error_left_new_honest(key, failure)
            }
            Failure::Indeterminate { op, old_fault } if op == write.op() => {
                if let Some(fault) = old_fault {
                    self.model.consume_old_fault(op, fault)?;
                }
                if old_fault != Some(Fault::Before) {
                    write.apply(&mut self.model.old, key);
                }
                self.model.in_doubt.insert(key);
                Ok(())
            }
            failure => Err(TestCaseError::fail(format!(
                "invariant 3: {:?} of key {key} in {} failed with {failure:?}: only OLD's failure of the write \
                 itself may fail it (a NEW failure is absorbed, or makes it indeterminate)",
                write.op(),
                self.model.phase
            ))),
        }
    }

    /// Invariant 3: after a plain store error, NEW holds nothing for the key that differs from OLD.
    fn check_store_error_left_new_honest(&self, key: u64, failure: Failure) -> Result<(), TestCaseError> {
        let (in_new, in_old) = (peek(&self.new, key), peek(&self.old, key));
        prop_assert!(
            in_new.is_none() || in_new == in_old,
            "invariant 3: after {:?} on key {}, NEW holds {:?} but OLD holds {:?}",
            failure,
            key,
            in_new,
            in_old
        );
        Ok(())
    }

    /// In `Complete` writes go to NEW only; a successful one settles the key (`keys_in_doubt`:
    /// "Each is repaired by its next read or write").
    fn check_complete_write(&mut self, key: u64, write: Write, result: Result<(), Error>) -> Result<(), TestCaseError> {
        match result {
            Ok(()) => {
                prop_assert_eq!(peek(&self.new, key), write.result(), "a {:?} in Complete did not reach NEW", write);
                self.model.in_doubt.remove(&key);
                Ok(())
            }
            Err(error) => match classify(&error)? {
                Failure::Store { side: Side::New, op, .. } if op == write.op() => Ok(()),
                failure => Err(TestCaseError::fail(format!("{write:?} of {key} in Complete failed with {failure:?}"))),
            },
        }
    }

    fn set_rate(&mut self, ppm: u32) -> Result<(), TestCaseError> {
        // From `Complete` on the gate stays at 100 %: any other rate is refused, and nothing changes.
        if self.model.phase == Phase::Complete && ppm != Rate::MAX_PPM {
            let refused = self.proxy.gate().set_rate(rate(ppm));
            prop_assert_eq!(refused, Err(zddm::RateError::GateComplete { rate: rate(ppm) }));
            prop_assert_eq!(self.proxy.gate().rate(), Rate::ALL);
            return Ok(());
        }
        let previous = self.proxy.gate().set_rate(rate(ppm));
        prop_assert_eq!(previous, Ok(rate(self.model.rate_ppm)));
        self.model.rate_ppm = ppm;
        Ok(())
    }

    fn set_phase(&mut self, target: Phase) -> Result<(), TestCaseError> {
        let current = self.model.phase;
        let leaving_complete = current == Phase::Complete && target != Phase::Complete;
        // Staying in a phase is always accepted, `Live` with a gate lowered since included.
        let rate_too_low = needs_full_rate(target) && self.model.rate_ppm != Rate::MAX_PPM && target != current;
        let skips_live = target == Phase::Complete && !matches!(current, Phase::Live | Phase::Complete);
        let completing = target == Phase::Complete && current == Phase::Live;
        let in_doubt = completing && !self.model.in_doubt.is_empty();
        let unverified = completing && !self.model.verified;
        match self.proxy.set_phase(target) {
            Ok(previous) => {
                prop_assert!(
                    !leaving_complete && !skips_live && !rate_too_low && !in_doubt && !unverified,
                    "{} -> {} was allowed",
                    current,
                    target
                );
                prop_assert_eq!(previous, current);
                if target != current {
                    self.model.verified = false;
                }
                self.model.phase = target;
            }
            Err(PhaseError::LeavingComplete { to }) => prop_assert!(leaving_complete && to == target),
            Err(PhaseError::NeedsFullRate { phase, .. }) => {
                prop_assert!(!leaving_complete && rate_too_low && phase == target, "{} -> {} refused", current, target)
            }
            Err(PhaseError::CompleteNeedsLive { from }) => {
                prop_assert!(!leaving_complete && skips_live && from == current, "{} -> {} refused", current, target)
            }
            // Complete no longer reads OLD, so keys in doubt must be repaired first.
            Err(PhaseError::KeysInDoubt { count }) => {
                prop_assert!(
                    !leaving_complete && !skips_live && !rate_too_low && in_doubt,
                    "{} -> {} refused",
                    current,
                    target
                );
                prop_assert_eq!(count, self.model.in_doubt.len());
            }
            // And it needs evidence that NEW holds everything.
            Err(PhaseError::Unverified) => {
                prop_assert!(
                    !rate_too_low && !in_doubt && unverified,
                    "{} -> {} refused as unverified",
                    current,
                    target
                )
            }
            Err(error) => return Err(TestCaseError::fail(format!("{current} -> {target}: {error}"))),
        }
        Ok(())
    }

    /// A whole verification with both stores healed. A key in doubt is looked at first and
    /// repaired by the pass's read wherever a read would repair it (the phases that read NEW for
    /// it); the pass is clean exactly when, besides those, NEW already held what OLD holds; it
    /// earns `Complete` only in `Live`; in `Live` its repairs leave NEW equal to OLD.
    fn verify(&mut self) -> Result<(), TestCaseError> {
        self.old.heal();
        self.new.heal();
        self.model.old_faults.clear();
        let phase = self.model.phase;
        let reads_new = |key: &u64| match phase {
            Phase::Complete => true,
            // In `Live` too, only the keys the gate admits (it may have been lowered since).
            Phase::Live | Phase::Shadow | Phase::ReadThrough => self.proxy.gate().admits(key),
            Phase::Off | Phase::DualWrite => false,
        };
        let stays_in_doubt: BTreeSet<u64> = self.model.in_doubt.iter().copied().filter(|key| !reads_new(key)).collect();
        let new = contents(&self.new);
        let agree =
            (0..KEYS).all(|key| self.model.in_doubt.contains(&key) || new.get(&key) == self.model.old.get(&key));
        let clean = agree && stays_in_doubt.is_empty();
        let report = wait(Verify::new(&self.proxy).recheck_after(std::time::Duration::ZERO).run(|_| async {}, |_| {}))
            .map_err(|error| TestCaseError::fail(format!("the verification failed: {error}")))?;
        prop_assert_eq!(report.clean(), clean, "{}", report);
        let still: BTreeSet<u64> = report.in_doubt.examples.iter().map(|k| u64::from_key_bytes(k).unwrap()).collect();
        prop_assert_eq!(&still, &stays_in_doubt, "{}", report);
        self.model.in_doubt = stays_in_doubt;
        if report.earns_complete() {
            prop_assert_eq!(phase, Phase::Live);
            self.model.verified = true;
        } else if !clean {
            self.model.verified = false;
        }
        if phase == Phase::Live && self.model.rate_ppm == Rate::MAX_PPM {
            prop_assert_eq!(report.unresolved.count, 0, "{}", report);
            prop_assert_eq!(contents(&self.new), self.model.old.clone(), "the repairs left NEW unlike OLD: {}", report);
        }
        Ok(())
    }

    fn check_invariants(&self) -> Result<(), TestCaseError> {
        prop_assert_eq!(contents(&self.old), self.model.old.clone(), "OLD does not hold what the writes left");
        prop_assert_eq!(self.proxy.phase(), self.model.phase);
        prop_assert_eq!(
            self.proxy.keys_in_doubt(),
            self.model.in_doubt.len(),
            "invariant 2: keys_in_doubt() disagrees with the model's keys in doubt {:?}",
            self.model.in_doubt
        );
        prop_assert_eq!(self.proxy.stats().mismatches, 0, "invariant 2: a shadow read found NEW stale");
        if self.model.phase != Phase::Complete {
            check_new_agrees_with_old(&self.old, &self.new, &self.model.in_doubt)?;
        }
        Ok(())
    }

    /// Invariant 5: with the faults gone, one read of every key settles NEW.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        self.old.heal();
        self.new.heal();
        self.model.old_faults.clear();
        if self.model.phase == Phase::Complete {
            for key in 0..KEYS {
                self.get(key)?;
            }
            prop_assert_eq!(
                self.proxy.keys_in_doubt(),
                0,
                "invariant 5: reading every key in Complete left keys in doubt"
            );
            return Ok(());
        }
        self.set_rate(Rate::MAX_PPM)?;
        self.set_phase(Phase::ReadThrough)?;
        prop_assert_eq!(self.model.phase, Phase::ReadThrough);
        for key in 0..KEYS {
            let served = wait(self.proxy.get(&key));
            let expected = self.model.old.get(&key).copied();
            prop_assert!(
                matches!(served, Ok(value) if value == expected),
                "invariant 5: healed get({}) returned {:?}, OLD holds {:?}",
                key,
                served,
                expected
            );
        }
        prop_assert_eq!(contents(&self.old), self.model.old.clone());
        prop_assert_eq!(contents(&self.new), self.model.old.clone(), "invariant 5: NEW did not converge to OLD");
        prop_assert_eq!(wait(self.new.inner().count()), self.model.old.len(), "invariant 5: NEW holds extra keys");
        prop_assert_eq!(self.proxy.keys_in_doubt(), 0, "invariant 5: keys still in doubt after reading every key");
        Ok(())
    }
}

fn run_proxy<O: Store<u64, u64> + ScanKeys<u64>, N: Counted<u64, u64> + ScanKeys<u64>>(
    scenario: &Scenario,
    old: O,
    new: N,
) -> Result<(), TestCaseError> {
    let mut harness = Harness::new(scenario, old, new);
    for (index, step) in scenario.steps.iter().enumerate() {
        harness.step(step).map_err(|error| TestCaseError::fail(format!("step {index} {step:?}: {error}")))?;
    }
    harness.finish().map_err(|error| TestCaseError::fail(format!("final convergence: {error}")))
}

/// Runs `cases` scenarios from `strategy` against a proxy over `old` and `new` (the same two stores
/// for every scenario, emptied in between); a failure panics with proptest's shrunk scenario.
fn check<O, N>(strategy: impl Strategy<Value = Scenario>, cases: u32, old: O, new: N)
where
    O: Store<u64, u64> + ScanKeys<u64> + Clone,
    N: Counted<u64, u64> + ScanKeys<u64> + Clone,
{
    let mut runner = TestRunner::new(config(cases));
    if let Err(error) = runner.run(&strategy, |scenario| run_proxy(&scenario, old.clone(), new.clone())) {
        panic!("{error}");
    }
}

fn memory() -> Arc<Mem> {
    Arc::new(MemoryStore::new())
}

/// The migrating phases, `Off` to `Live`.
#[test]
fn proxy_agrees_with_the_model() {
    check(scenario(), 1024, memory(), memory());
}

/// The same, then `Complete`: NEW only, OLD frozen, and keys left in doubt still settled.
#[test]
fn proxy_agrees_with_the_model_into_complete() {
    check(scenario_ending_in_complete(), 1024, memory(), memory());
}

// The same properties over real stores on both sides: every check reads both stores, so a case
// costs a few hundred round trips, and fewer cases run.
const REAL_CASES: u32 = 128;

/// Both properties over one pair of real stores.
fn check_real<O: Store<u64, u64> + ScanKeys<u64>, N: Counted<u64, u64> + ScanKeys<u64>>(old: O, new: N) {
    let (old, new) = (Arc::new(old), Arc::new(new));
    check(scenario(), REAL_CASES, Arc::clone(&old), Arc::clone(&new));
    check(scenario_ending_in_complete(), REAL_CASES / 2, old, new);
}

#[test]
fn proxy_agrees_with_the_model_over_sqlite() {
    let backends = Backends::default();
    check_real(backends.sqlite(), backends.sqlite());
}

#[test]
fn proxy_agrees_with_the_model_over_sqlite_to_postgres() {
    let backends = Backends::default();
    check_real(backends.sqlite(), wait(backends.postgres()));
}

#[test]
fn proxy_agrees_with_the_model_over_postgres_to_redis() {
    let backends = Backends::default();
    check_real(wait(backends.postgres()), wait(backends.redis()));
}

// ---------------------------------------------------------------------------------------------
// The control: the same scenarios against the seed library's proxy must fail checks 1 and 2
// ---------------------------------------------------------------------------------------------

/// Runs a scenario against `NaiveProxy` (which has no phases and no verification: `SetPhase` and
/// `Verify` steps do nothing, and it
/// never reports a write as indeterminate, so no key is ever in doubt).
fn run_naive(scenario: &Scenario) -> Result<(), TestCaseError> {
    let (old, new) = (faulty_store(), faulty_store());
    let gate = Gate::new(SALT, rate(scenario.initial_ppm));
    let naive = NaiveProxy { old: Arc::clone(&old), new: Arc::clone(&new), gate: gate.clone() };
    let no_keys_in_doubt = BTreeSet::new();
    let mut next_value = 1;
    for step in &scenario.steps {
        match *step {
            Step::Get(key) => {
                if let Ok(served) = wait(Migrating::get(&naive, &key)) {
                    check_read_is_fresh(key, served, peek(&old, key))?;
                }
            }
            Step::Put(key) => {
                let _ = wait(Migrating::put(&naive, &key, &next_value));
                next_value += 1;
            }
            Step::Delete(key) => {
                let _ = wait(Migrating::delete(&naive, &key));
            }
            Step::SetRate(ppm) => {
                gate.set_rate(rate(ppm)).unwrap();
            }
            Step::SetPhase(_) | Step::Verify => {}
            Step::Fail { side, op, fault } => fail_next(side, op, fault, &old, &new),
            Step::NewOutage { op, fault } => new.outage(op, fault),
            Step::HealNew => new.heal(),
        }
        check_new_agrees_with_old(&old, &new, &no_keys_in_doubt)?;
    }
    Ok(())
}

#[test]
fn the_model_catches_the_naive_proxy() {
    let mut runner = TestRunner::new(config(256));
    match runner.run(&scenario(), |scenario| run_naive(&scenario)) {
        Err(TestError::Fail(reason, minimal)) => {
            eprintln!("the naive proxy fails as expected: {reason}\nminimal scenario: {minimal:#?}");
            assert!(minimal.steps.len() <= 8, "shrinking should find a short counterexample: {minimal:#?}");
        }
        other => panic!("the checks found no violation in the naive proxy: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Reproductions of what the model finds in `Complete`
// ---------------------------------------------------------------------------------------------

/// A proxy at 100 % in `ReadThrough` where NEW holds a stale copy of key 1 in doubt: NEW has 10,
/// OLD has 20, and the put of 20 returned `Error::Indeterminate`.
fn proxy_with_key_in_doubt() -> (FaultyStore, FaultyStore, TestProxy) {
    let (old, new) = (faulty_store(), faulty_store());
    let proxy = Proxy::new(Arc::clone(&old), Arc::clone(&new), Gate::new(SALT, Rate::ALL));
    wait(proxy.put(&1, &10)).expect("a put without faults succeeds");
    new.fail_next(Some(Op::Put), Fault::Before);
    new.fail_next(Some(Op::Delete), Fault::Before);
    let error = wait(proxy.put(&1, &20)).expect_err("NEW's put and its invalidation fail");
    assert!(error.is_indeterminate(), "{error:?}");
    assert_eq!((peek(&old, 1), peek(&new, 1)), (Some(20), Some(10)));
    assert_eq!(proxy.keys_in_doubt(), 1);
    (old, new, proxy)
}

/// Outside `Complete`, the next read repairs the key and serves OLD's value.
#[test]
fn a_read_repairs_a_key_held_in_doubt() {
    let (_old, new, proxy) = proxy_with_key_in_doubt();
    proxy.set_phase(Phase::Live).expect("the gate is at 100 %");
    assert_eq!(wait(proxy.get(&1)).unwrap(), Some(20));
    assert_eq!(peek(&new, 1), Some(20));
    assert_eq!(proxy.keys_in_doubt(), 0);
}

/// `Complete` stops reading OLD, so it is refused while a key is in doubt; once a read has
/// repaired the key, the migration can complete and NEW serves OLD's committed value.
#[test]
fn complete_is_refused_while_a_key_is_in_doubt() {
    let (_old, new, proxy) = proxy_with_key_in_doubt();
    proxy.set_phase(Phase::Live).expect("the gate is at 100 %");
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::KeysInDoubt { count: 1 }));
    assert_eq!(proxy.phase(), Phase::Live);
    assert_eq!(wait(proxy.get(&1)).unwrap(), Some(20), "the read repairs the key");
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::Unverified));
    let report = wait(Verify::new(&proxy).run(|_| async {}, |_| {})).unwrap();
    assert!(report.earns_complete(), "{report}");
    assert_eq!(proxy.set_phase(Phase::Complete), Ok(Phase::Live));
    assert_eq!(wait(proxy.get(&1)).unwrap(), Some(20));
    assert_eq!(peek(&new, 1), Some(20));
}
