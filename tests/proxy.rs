//! The proxy's behaviour per phase, its stats, the calls it makes (DESIGN invariant 4), the
//! blocking handle, and the seed library's own in-memory migration scenario.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use zddm::verify::{Report, Verify};

use zddm::{Admission, ConfigError, Gate, MemoryStore, MigrationKey, Op, Phase, PhaseError, Proxy, Rate, Stats, Store};
use zddm_suite::faults::Faulty;

type Mem = Faulty<MemoryStore<u64, String>>;
type TestProxy = Proxy<u64, String, Arc<Mem>, Arc<Mem>>;

fn world(rate: Rate) -> (TestProxy, Arc<Mem>, Arc<Mem>) {
    let old = Arc::new(Faulty::new(MemoryStore::new()));
    let new = Arc::new(Faulty::new(MemoryStore::new()));
    (Proxy::new(old.clone(), new.clone(), Gate::new("proxy-tests", rate)), old, new)
}

fn s(text: &str) -> String {
    text.to_owned()
}

/// A whole verification, repairing, with no wait before its second look (nothing else runs).
async fn verify(proxy: &TestProxy) -> Report {
    Verify::new(proxy).recheck_after(Duration::ZERO).run(|_| async {}, |_| {}).await.unwrap()
}

/// Store calls by (side, op), for exact accounting.
fn calls(old: &Mem, new: &Mem) -> [usize; 8] {
    let ops = [Op::Get, Op::Put, Op::Insert, Op::Delete];
    let mut out = [0; 8];
    for (i, op) in ops.into_iter().enumerate() {
        out[i] = old.calls(op);
        out[4 + i] = new.calls(op);
    }
    out
}

/// `[old get, put, insert, delete, new get, put, insert, delete]` made by `f`.
async fn calls_made<F: std::future::Future>(old: &Mem, new: &Mem, f: F) -> [usize; 8] {
    let before = calls(old, new);
    f.await;
    let after = calls(old, new);
    std::array::from_fn(|i| after[i] - before[i])
}

#[tokio::test(flavor = "current_thread")]
async fn each_store_is_called_exactly_once_per_step() {
    let (proxy, old, new) = world(Rate::ALL);
    //                                            OLD: get put ins del  NEW: get put ins del
    assert_eq!(calls_made(&old, &new, async { proxy.put(&1, &s("a")).await.unwrap() }).await, [0, 1, 0, 0, 0, 1, 0, 0]);
    assert_eq!(calls_made(&old, &new, async { proxy.get(&1).await.unwrap() }).await, [0, 0, 0, 0, 1, 0, 0, 0]);
    old.inner().put(&2, &s("b")).await.unwrap();
    assert_eq!(calls_made(&old, &new, async { proxy.get(&2).await.unwrap() }).await, [1, 0, 0, 0, 1, 0, 1, 0]);
    assert_eq!(calls_made(&old, &new, async { proxy.get(&3).await.unwrap() }).await, [1, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(calls_made(&old, &new, async { proxy.delete(&1).await.unwrap() }).await, [0, 0, 0, 1, 0, 0, 0, 1]);

    proxy.gate().set_rate(Rate::NONE).unwrap();
    // Lapsed: OLD, plus one invalidation. Reads stay on OLD.
    assert_eq!(calls_made(&old, &new, async { proxy.put(&2, &s("c")).await.unwrap() }).await, [0, 1, 0, 0, 0, 0, 0, 1]);
    assert_eq!(calls_made(&old, &new, async { proxy.get(&2).await.unwrap() }).await, [1, 0, 0, 0, 0, 0, 0, 0]);

    // Never admitted: OLD only, NEW untouched.
    let (proxy, old, new) = world(Rate::NONE);
    assert_eq!(calls_made(&old, &new, async { proxy.put(&1, &s("a")).await.unwrap() }).await, [0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(calls_made(&old, &new, async { proxy.get(&1).await.unwrap() }).await, [1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(calls_made(&old, &new, async { proxy.delete(&1).await.unwrap() }).await, [0, 0, 0, 1, 0, 0, 0, 0]);
}

#[tokio::test(flavor = "current_thread")]
async fn phases_route_reads_and_writes_as_documented() {
    let (proxy, old, new) = world(Rate::ALL);
    old.inner().put(&1, &s("old")).await.unwrap();

    proxy.set_phase(Phase::Off).unwrap();
    assert_eq!(proxy.get(&1).await.unwrap(), Some(s("old")));
    new.inner().put(&1, &s("stale")).await.unwrap();
    proxy.put(&1, &s("v1")).await.unwrap();
    assert_eq!(new.inner().get(&1).await.unwrap(), None, "the kill switch still invalidates NEW");

    proxy.set_phase(Phase::DualWrite).unwrap();
    proxy.put(&1, &s("v2")).await.unwrap();
    assert_eq!(new.inner().get(&1).await.unwrap(), Some(s("v2")));
    old.inner().put(&2, &s("only-old")).await.unwrap();
    assert_eq!(proxy.get(&2).await.unwrap(), Some(s("only-old")));
    assert_eq!(new.inner().get(&2).await.unwrap(), None, "dual-write reads do not copy");

    proxy.set_phase(Phase::ReadThrough).unwrap();
    assert_eq!(proxy.get(&2).await.unwrap(), Some(s("only-old")));
    assert_eq!(new.inner().get(&2).await.unwrap(), Some(s("only-old")), "read-through copies");

    proxy.set_phase(Phase::Live).unwrap();
    proxy.put(&3, &s("live")).await.unwrap();
    assert_eq!(old.inner().get(&3).await.unwrap(), Some(s("live")), "live still writes OLD");
    new.outage(Some(Op::Get), zddm_suite::faults::Fault::Before);
    let error = proxy.get(&3).await.unwrap_err();
    assert_eq!((error.side(), error.op()), (zddm::Side::New, Op::Get), "in live, NEW serves reads");
    new.heal();

    old.inner().put(&6, &s("cold")).await.unwrap();
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::Unverified), "key 6 was never copied");
    let report = verify(&proxy).await;
    assert_eq!((report.checked, report.missing.count, report.repaired), (4, 1, 1), "{report}");
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::Unverified), "a pass that repaired is not clean");
    assert!(verify(&proxy).await.earns_complete());
    proxy.set_phase(Phase::Complete).unwrap();
    assert_eq!(proxy.get(&6).await.unwrap(), Some(s("cold")), "the repaired key is served by NEW");
    proxy.put(&4, &s("done")).await.unwrap();
    assert_eq!(old.inner().get(&4).await.unwrap(), None, "complete writes NEW only");
    old.inner().put(&5, &s("forgotten")).await.unwrap();
    assert_eq!(proxy.get(&5).await.unwrap(), None, "complete reads NEW only");
    proxy.delete(&4).await.unwrap();
    assert_eq!(new.inner().get(&4).await.unwrap(), None);
}

#[tokio::test(flavor = "current_thread")]
async fn phase_changes_are_checked() {
    let (proxy, _, _) = world(Rate::percent(50.0).unwrap());
    assert_eq!(proxy.phase(), Phase::ReadThrough);
    let refused = proxy.set_phase(Phase::Live).unwrap_err();
    assert_eq!(refused, PhaseError::NeedsFullRate { phase: Phase::Live, rate: Rate::percent(50.0).unwrap() });
    assert!(refused.to_string().contains("raise the gate to 100%"), "{refused}");
    assert_eq!(proxy.phase(), Phase::ReadThrough);
    assert_eq!(proxy.set_phase(Phase::Shadow), Ok(Phase::ReadThrough));

    proxy.gate().set_rate(Rate::ALL).unwrap();
    let skipped = proxy.set_phase(Phase::Complete).unwrap_err();
    assert_eq!(skipped, PhaseError::CompleteNeedsLive { from: Phase::Shadow });
    assert!(skipped.to_string().contains("move to live first"), "{skipped}");
    proxy.set_phase(Phase::Live).unwrap();
    let unverified = proxy.set_phase(Phase::Complete).unwrap_err();
    assert_eq!(unverified, PhaseError::Unverified);
    assert!(unverified.to_string().contains("verification in live"), "{unverified}");
    assert!(verify(&proxy).await.earns_complete(), "both stores are empty");
    proxy.set_phase(Phase::Complete).unwrap();
    assert_eq!(proxy.set_phase(Phase::ReadThrough), Err(PhaseError::LeavingComplete { to: Phase::ReadThrough }));
    assert_eq!(proxy.clone().phase(), Phase::Complete, "clones share the phase");

    for phase in Phase::ALL {
        assert_eq!(phase.to_string().parse::<Phase>(), Ok(phase));
    }
    assert_eq!("dual-write".parse::<Phase>(), Ok(Phase::DualWrite));
    let unknown = "readthrough".parse::<Phase>().unwrap_err();
    assert!(unknown.to_string().contains("read-through"), "{unknown}");
}

/// In `Live` the next phase reads NEW only: a key the proxy had to remove from NEW stays in doubt,
/// so `Complete` waits until a read has copied it back (otherwise an acknowledged write would be
/// lost when OLD is dropped).
#[tokio::test(flavor = "current_thread")]
async fn live_keeps_keys_it_removes_from_new_in_doubt_until_copied_back() {
    let (proxy, old, new) = world(Rate::ALL);
    proxy.set_phase(Phase::Live).unwrap();
    new.fail_next(Some(Op::Put), zddm_suite::faults::Fault::Before);
    proxy.put(&1, &s("acknowledged")).await.unwrap();
    assert_eq!(new.inner().get(&1).await.unwrap(), None, "NEW's copy was invalidated");
    assert_eq!(proxy.keys_in_doubt(), 1);
    assert_eq!(proxy.set_phase(Phase::Complete), Err(PhaseError::KeysInDoubt { count: 1 }));

    assert_eq!(proxy.get(&1).await.unwrap(), Some(s("acknowledged")), "served from OLD, copied into NEW");
    assert_eq!(new.inner().get(&1).await.unwrap(), Some(s("acknowledged")));
    assert_eq!(proxy.keys_in_doubt(), 0);
    assert!(verify(&proxy).await.earns_complete());
    proxy.set_phase(Phase::Complete).unwrap();
    assert_eq!(proxy.get(&1).await.unwrap(), Some(s("acknowledged")), "not lost by completing");

    // A delete in Live settles: its NEW delete is the delete itself.
    let (proxy, old2, _) = world(Rate::ALL);
    proxy.set_phase(Phase::Live).unwrap();
    proxy.put(&2, &s("x")).await.unwrap();
    proxy.delete(&2).await.unwrap();
    assert_eq!((proxy.keys_in_doubt(), old2.inner().get(&2).await.unwrap()), (0, None));
    let _ = old;
}

#[test]
fn builder_options_are_validated() {
    let build = |stripes: usize, phase: Phase, rate: Rate| {
        Proxy::builder(MemoryStore::<u64, String>::new(), MemoryStore::<u64, String>::new(), Gate::new("b", rate))
            .stripes(stripes)
            .phase(phase)
            .build()
    };
    assert!(build(1, Phase::Off, Rate::NONE).is_ok());
    assert!(build(4096, Phase::Complete, Rate::ALL).is_ok(), "a restarted process may start complete");
    for stripes in [0, 3, 1000, 1 << 21] {
        let error = build(stripes, Phase::Off, Rate::NONE).unwrap_err();
        assert_eq!(error, ConfigError::Stripes { count: stripes });
        assert!(error.to_string().contains("power of two"));
    }
    assert!(matches!(build(8, Phase::Live, Rate::NONE), Err(ConfigError::Phase(PhaseError::NeedsFullRate { .. }))));
}

#[tokio::test(flavor = "current_thread")]
async fn shadow_reads_compare_report_sample_and_repair() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let old = Arc::new(MemoryStore::<u64, String>::new());
    let new = Arc::new(MemoryStore::<u64, String>::new());
    let proxy = Proxy::builder(old.clone(), new.clone(), Gate::new("shadow", Rate::ALL))
        .phase(Phase::Shadow)
        .on_mismatch({
            let seen = seen.clone();
            move |m| seen.lock().unwrap().push((*m.key, m.old.cloned(), m.new.cloned()))
        })
        .build()
        .unwrap();
    old.put(&1, &s("right")).await.unwrap();
    new.put(&1, &s("wrong")).await.unwrap();
    new.put(&2, &s("extra")).await.unwrap();
    old.put(&3, &s("missing")).await.unwrap();

    assert_eq!(proxy.get(&1).await.unwrap(), Some(s("right")), "shadow serves OLD");
    assert_eq!(proxy.get(&2).await.unwrap(), None);
    assert_eq!(proxy.get(&3).await.unwrap(), Some(s("missing")));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(1, Some(s("right")), Some(s("wrong"))), (2, None, Some(s("extra")))],
        "mismatches are reported; a key NEW lacks is not a mismatch"
    );
    assert_eq!(new.get(&1).await.unwrap(), None, "a mismatching copy is invalidated");
    assert_eq!(new.get(&2).await.unwrap(), None);
    assert_eq!(new.get(&3).await.unwrap(), Some(s("missing")), "a missing key is copied");
    let stats = proxy.stats();
    assert_eq!((stats.shadow_compared, stats.mismatches, stats.backfills, stats.invalidations), (3, 2, 1, 2));
    assert_eq!(stats.old_read_ratio(), 1.0);

    // Sampling: at 0 % no read touches NEW; at 10 % about a tenth do.
    proxy.set_shadow_sample(Rate::NONE);
    for key in 0..100 {
        proxy.get(&key).await.unwrap();
    }
    assert_eq!(proxy.stats().shadow_compared, 3);
    proxy.set_shadow_sample(Rate::percent(10.0).unwrap());
    for key in 0..2_000 {
        proxy.get(&key).await.unwrap();
    }
    let compared = proxy.stats().shadow_compared - 3;
    assert!((120..280).contains(&compared), "{compared} of 2000 reads compared at 10%");
}

#[tokio::test(flavor = "current_thread")]
async fn stats_count_what_happened() {
    let (proxy, old, new) = world(Rate::ALL);
    assert_eq!(proxy.stats(), Stats::default());
    assert_eq!(proxy.stats().old_read_ratio(), 0.0);
    old.inner().put(&1, &s("a")).await.unwrap();
    proxy.get(&1).await.unwrap(); // miss, OLD, backfill
    proxy.get(&1).await.unwrap(); // hit
    proxy.get(&1).await.unwrap(); // hit
    proxy.get(&9).await.unwrap(); // miss, absent in OLD too
    new.inner().put(&2, &s("newer")).await.unwrap();
    old.inner().put(&2, &s("b")).await.unwrap();
    let stats = proxy.stats();
    assert_eq!((stats.reads_from_old, stats.reads_from_new), (2, 2));
    assert_eq!((stats.new_hits, stats.new_misses, stats.backfills), (2, 2, 1));
    assert_eq!(stats.old_read_ratio(), 0.5);
    assert_eq!((stats.old_errors, stats.new_errors, stats.indeterminate), (0, 0, 0));

    proxy.get(&1).await.unwrap();
    let window = proxy.stats().since(&stats);
    assert_eq!((window.reads_from_new, window.reads_from_old, window.new_hits), (1, 0, 1));
    assert_eq!(window.old_read_ratio(), 0.0);
    assert_eq!(
        stats.since(&proxy.stats()),
        Stats::default(),
        "an earlier snapshot minus a later one is zero, not a wrap"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn keys_are_routed_by_their_bucket() {
    // Half the keys migrate; the others never touch NEW.
    let (proxy, _, new) = world(Rate::percent(50.0).unwrap());
    for key in 0..200u64 {
        proxy.put(&key, &key.to_string()).await.unwrap();
    }
    let admitted = (0..200u64).filter(|k| proxy.gate().admission(k) == Admission::Admitted).count();
    assert_eq!(new.inner().len(), admitted);
    assert!((70..130).contains(&admitted), "{admitted}");
}

#[test]
fn the_blocking_handle_runs_the_same_protocol_across_threads() {
    let proxy =
        Proxy::new(MemoryStore::<u64, u64>::new(), MemoryStore::<u64, u64>::new(), Gate::new("blocking", Rate::ALL));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let users = proxy.blocking();
            std::thread::spawn(move || {
                for i in 0..500u64 {
                    // Read-your-writes on this thread's own keys...
                    let own = 100 + t * 50 + i % 50;
                    users.put(&own, &i).unwrap();
                    assert_eq!(users.get(&own).unwrap(), Some(i));
                    // ... and contention with every other thread on shared keys.
                    let shared = i % 10;
                    users.put(&shared, &(t * 1_000 + i)).unwrap();
                    users.get(&shared).unwrap();
                    if i % 7 == 0 {
                        users.delete(&shared).unwrap();
                        users.delete(&own).unwrap();
                        assert_eq!(users.get(&own).unwrap(), None);
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let (old, new) = (proxy.old().entries(), proxy.new_store().entries());
    for (key, value) in &new {
        assert_eq!(old.iter().find(|(k, _)| k == key).map(|(_, v)| v), Some(value), "NEW agrees with OLD");
    }
    assert_eq!(proxy.keys_in_doubt(), 0);
}

#[derive(MigrationKey, Clone, Debug)]
struct CustomerKey {
    region: u16,
    customer: String,
}

/// The seed library's scenario: OLD holds 100,000 records; the gate ramps 0 → 10 → 50 → 100 % while
/// everything is read at each step; at the end NEW holds every key with OLD's value, and a final pass
/// reads nothing from OLD.
#[tokio::test(flavor = "current_thread")]
async fn seed_scenario_migrates_100k_keys_by_reading_them() {
    const N: u32 = 100_000;
    let old = Arc::new(MemoryStore::<CustomerKey, String>::new());
    let new = Arc::new(MemoryStore::<CustomerKey, String>::new());
    let keys: Vec<CustomerKey> =
        (0..N).map(|i| CustomerKey { region: (i % 17) as u16, customer: format!("cust-{i}") }).collect();
    for (i, key) in keys.iter().enumerate() {
        old.put(key, &format!("record-{i}")).await.unwrap();
    }
    let proxy = Proxy::new(old.clone(), new.clone(), Gate::new("seed-scenario", Rate::NONE));

    let mut in_new = 0;
    for percent in [0.0, 10.0, 50.0, 100.0] {
        proxy.gate().set_rate(Rate::percent(percent).unwrap()).unwrap();
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(proxy.get(key).await.unwrap(), Some(format!("record-{i}")));
        }
        let now = new.len();
        let expected = f64::from(N) * percent / 100.0;
        assert!(
            (now as f64 - expected).abs() <= 5.0 * (expected.max(1.0)).sqrt() + 1.0,
            "{now} keys in NEW at {percent}%"
        );
        assert!(now >= in_new, "raising the gate only adds keys to NEW");
        in_new = now;
    }
    assert_eq!(new.entries(), old.entries(), "NEW holds every key with OLD's value");

    let before = proxy.stats();
    for key in &keys {
        proxy.get(key).await.unwrap();
    }
    let after = proxy.stats();
    assert_eq!(after.reads_from_old - before.reads_from_old, 0, "the final pass reads nothing from OLD");
    assert_eq!(after.reads_from_new - before.reads_from_new, u64::from(N));
}
