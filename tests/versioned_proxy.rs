//! `VersionedProxy` on its own: failures on either side at every step, the grace period and the
//! repair after it, gate admissions, phases and options. Stores are in memory behind the fault
//! wrapper (`Stall`), which only injects failures and pauses.

use std::sync::Arc;
use std::time::Duration;

use zddm::verify::Verify;
use zddm::versioned::{Change, Lookup, MemorySource, MemoryTarget, Source, Target, VersionedProxy};
use zddm::{ConfigError, Gate, Op, Phase, PhaseError, Rate, Side};
use zddm_suite::faults::Fault;
use zddm_suite::stall::{Call, Stall};

type Old = Arc<Stall<Arc<MemorySource<u64, u64>>>>;
type New = Arc<Stall<Arc<MemoryTarget<u64, u64>>>>;
type P = VersionedProxy<u64, u64, Old, New>;

const GRACE: Duration = Duration::from_millis(200);

struct World {
    proxy: P,
    old: Old,
    new: New,
    gate: Gate,
}

fn world() -> World {
    let old = Arc::new(Stall::new(Arc::new(MemorySource::new())));
    let new = Arc::new(Stall::new(Arc::new(MemoryTarget::new())));
    let gate = Gate::new("versioned", Rate::ALL);
    let proxy = VersionedProxy::builder(old.clone(), new.clone(), gate.clone()).grace(GRACE).build().unwrap();
    World { proxy, old, new, gate }
}

impl World {
    async fn old_value(&self, key: u64) -> Option<u64> {
        self.old.inner().get(&key).await.unwrap().map(|found| found.value)
    }

    async fn lookup(&self, key: u64) -> Lookup<u64> {
        self.new.inner().lookup(&key).await.unwrap()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_abandoned_write_is_served_from_old_then_repaired_after_the_grace_period() {
    let w = world();
    w.proxy.put(&1, &1).await.unwrap();
    let pause = w.new.pause_next(Call::Apply);
    let mut put = Box::pin(w.proxy.put(&1, &2));
    tokio::select! {
        biased;
        _ = &mut put => panic!("the put finished without reaching NEW"),
        () = pause.reached() => {}
    }
    drop(put);
    assert!(matches!(w.lookup(1).await, Lookup::Pending { expired: false, .. }));
    assert_eq!(w.proxy.get(&1).await.unwrap(), Some(2), "OLD serves a pending key");
    assert_eq!(w.proxy.stats().repairs, 0, "no repair inside the grace period");
    tokio::time::sleep(GRACE + Duration::from_millis(50)).await;
    assert_eq!(w.proxy.get(&1).await.unwrap(), Some(2));
    assert_eq!(w.proxy.stats().repairs, 1);
    assert_eq!(w.lookup(1).await, Lookup::Hit(2), "the repair copied OLD's value");
    let before = w.proxy.stats().reads_from_new;
    assert_eq!(w.proxy.get(&1).await.unwrap(), Some(2));
    assert_eq!(w.proxy.stats().reads_from_new, before + 1, "served by NEW again");
}

#[tokio::test(flavor = "current_thread")]
async fn a_write_whose_mark_fails_fails_before_old_is_touched() {
    let w = world();
    w.proxy.put(&1, &1).await.unwrap();
    w.new.fail_next(Call::Mark, Fault::Before);
    let error = w.proxy.put(&1, &2).await.unwrap_err();
    assert_eq!((error.side(), error.op()), (Side::New, Op::Mark), "{error}");
    assert!(!error.is_indeterminate());
    assert_eq!(w.old_value(1).await, Some(1), "OLD untouched");
    assert_eq!(w.proxy.get(&1).await.unwrap(), Some(1));
}

#[tokio::test(flavor = "current_thread")]
async fn an_ambiguous_old_failure_leaves_the_key_pending_and_served_by_old() {
    let w = world();
    w.proxy.put(&1, &1).await.unwrap();
    // OLD commits, then the caller gets an error: a timeout after commit.
    w.old.fail_next(Call::Put, Fault::After);
    let error = w.proxy.put(&1, &2).await.unwrap_err();
    assert_eq!((error.side(), error.op()), (Side::Old, Op::Put));
    assert!(matches!(w.lookup(1).await, Lookup::Pending { .. }), "NEW's copy is not served");
    assert_eq!(w.proxy.get(&1).await.unwrap(), Some(2), "OLD committed it, and OLD answers");
    tokio::time::sleep(GRACE + Duration::from_millis(50)).await;
    assert_eq!(w.proxy.get(&1).await.unwrap(), Some(2));
    assert_eq!(w.lookup(1).await, Lookup::Hit(2));
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_apply_still_acknowledges_the_write_and_never_serves_the_old_copy() {
    let w = world();
    w.proxy.put(&1, &1).await.unwrap();
    w.new.fail_next(Call::Apply, Fault::Before);
    w.proxy.put(&1, &2).await.unwrap();
    assert_eq!(w.proxy.stats().new_errors, 1);
    assert!(matches!(w.lookup(1).await, Lookup::Pending { .. }));
    assert_eq!(w.proxy.get(&1).await.unwrap(), Some(2));
    // A later write settles the key at once (its own mark and apply), without the grace period.
    w.proxy.put(&1, &3).await.unwrap();
    assert!(matches!(w.lookup(1).await, Lookup::Pending { .. }), "the failed write's mark still stands");
    w.new.fail_next(Call::Apply, Fault::After);
    w.proxy.delete(&1).await.unwrap();
    assert_eq!(w.proxy.get(&1).await.unwrap(), None, "a delete whose NEW result is unknown is still a delete");
}

#[tokio::test(flavor = "current_thread")]
async fn a_new_outage_never_fails_a_read_old_can_serve_outside_live() {
    let w = world();
    w.proxy.put(&1, &1).await.unwrap();
    w.new.fail_next(Call::Lookup, Fault::Before);
    assert_eq!(w.proxy.get(&1).await.unwrap(), Some(1));
    w.new.fail_next(Call::Fill, Fault::Before);
    w.old.inner().put(&2, &20).await.unwrap();
    assert_eq!(w.proxy.get(&2).await.unwrap(), Some(20), "a failed copy into NEW does not fail the read");
    w.proxy.set_phase(Phase::Live).unwrap();
    w.new.fail_next(Call::Lookup, Fault::Before);
    let error = w.proxy.get(&1).await.unwrap_err();
    assert_eq!(error.side(), Side::New, "in live, NEW is the source of reads");
}

#[tokio::test(flavor = "current_thread")]
async fn reads_copy_into_new_at_olds_version_and_never_over_a_newer_value() {
    let w = world();
    w.old.inner().put(&1, &10).await.unwrap();
    assert_eq!(w.proxy.get(&1).await.unwrap(), Some(10));
    assert_eq!(w.proxy.stats().backfills, 1);
    assert_eq!(w.lookup(1).await, Lookup::Hit(10));
    // A write reached NEW between a read's OLD read and its copy: the copy is refused.
    let version = w.old.inner().put(&2, &1).await.unwrap();
    w.new.inner().apply(&2, Change::Put(&2), version + 1, false).await.unwrap();
    assert_eq!(w.new.inner().fill(&2, Some(&1), version, None).await.unwrap(), zddm::versioned::Filled::Refused);
}

#[tokio::test(flavor = "current_thread")]
async fn the_gate_decides_which_writes_touch_new() {
    let w = world();
    w.gate.set_rate(Rate::NONE).unwrap();
    // Before any ramp no key was ever admitted: OLD only, no mark.
    let gate = Gate::new("versioned-fresh", Rate::NONE);
    let fresh = VersionedProxy::new(w.old.clone(), w.new.clone(), gate);
    fresh.put(&5, &5).await.unwrap();
    assert_eq!(w.lookup(5).await, Lookup::Miss);
    assert_eq!(w.new.inner().slots().len(), 0, "no call reached NEW");
    // A lapsed key (admitted at the high-water mark) keeps NEW current by version.
    w.proxy.put(&6, &6).await.unwrap();
    assert_eq!(w.lookup(6).await, Lookup::Hit(6));
    assert_eq!(w.proxy.get(&6).await.unwrap(), Some(6));
    assert_eq!(w.proxy.stats().reads_from_old, 1, "a lapsed key is read from OLD");
    w.gate.set_rate(Rate::ALL).unwrap();
    assert_eq!(w.proxy.get(&6).await.unwrap(), Some(6));
    assert_eq!(w.proxy.stats().reads_from_new, 1, "raised again, NEW serves it, current");
}

#[tokio::test(flavor = "current_thread")]
async fn complete_writes_new_only_and_repairs_pending_keys_from_old() {
    let w = world();
    w.proxy.put(&1, &1).await.unwrap();
    w.proxy.put(&2, &1).await.unwrap();
    w.proxy.set_phase(Phase::Live).unwrap();
    assert_eq!(w.proxy.set_phase(Phase::Complete), Err(PhaseError::Unverified));
    let report = Verify::new(&w.proxy).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(report.clean(), "{report}");
    w.new.fail_next(Call::Apply, Fault::Before);
    w.proxy.put(&2, &2).await.unwrap(); // left pending after the verification
    w.proxy.set_phase(Phase::Complete).unwrap();
    w.proxy.put(&1, &10).await.unwrap();
    assert_eq!(w.old_value(1).await, Some(1), "OLD is no longer written");
    assert_eq!(w.proxy.get(&1).await.unwrap(), Some(10));
    assert_eq!(w.proxy.get(&2).await.unwrap(), Some(2), "the pending key is read from OLD");
    tokio::time::sleep(GRACE + Duration::from_millis(50)).await;
    assert_eq!(w.proxy.get(&2).await.unwrap(), Some(2));
    assert_eq!(w.lookup(2).await, Lookup::Hit(2), "and repaired once its mark expired");
    w.proxy.delete(&1).await.unwrap();
    assert_eq!(w.proxy.get(&1).await.unwrap(), None);
    assert_eq!(w.proxy.get(&3).await.unwrap(), None, "a key NEW never had is absent");
}

#[tokio::test(flavor = "current_thread")]
async fn phases_and_options_are_checked() {
    let w = world();
    assert_eq!(w.proxy.set_phase(Phase::Complete), Err(PhaseError::CompleteNeedsLive { from: Phase::ReadThrough }));
    w.gate.set_rate(Rate::percent(50.0).unwrap()).unwrap();
    assert!(matches!(w.proxy.set_phase(Phase::Live), Err(PhaseError::NeedsFullRate { .. })));
    for grace in [Duration::ZERO, Duration::from_micros(1500)] {
        let error = VersionedProxy::builder(w.old.clone(), w.new.clone(), Gate::new("g", Rate::ALL))
            .grace(grace)
            .build()
            .unwrap_err();
        assert_eq!(error, ConfigError::Grace { grace });
        assert!(error.to_string().contains("whole milliseconds"), "{error}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_write_slower_than_half_its_grace_leaves_its_mark_for_the_repair() {
    let w = world();
    let pause = w.old.pause_next(Call::Put);
    let (put, ()) = tokio::join!(w.proxy.put(&1, &1), async {
        pause.reached().await;
        tokio::time::sleep(GRACE / 2 + Duration::from_millis(20)).await;
        pause.release();
    });
    put.unwrap();
    // Its value landed, but withdrawing its mark might have withdrawn another writer's.
    assert!(matches!(w.lookup(1).await, Lookup::Pending { .. }));
    assert_eq!(w.proxy.get(&1).await.unwrap(), Some(1));
}
