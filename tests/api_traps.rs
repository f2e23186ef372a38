//! Issue 12, item 5: traps in the API, each now working behaviour, a typed error or a documented
//! rule — one test each. (The rate's resolution, trap 3, is tested with the other rate rules in
//! `tests/gate.rs`: `a_rate_finer_than_the_gate_resolution_is_an_error_not_rounded`.)

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::Duration;

use zddm::cached::{CachedProxy, MemoryCache};
use zddm::fleet::{Fleet, FleetConfig, MemoryControl};
use zddm::verify::Verify;
use zddm::versioned::{MemorySource, MemoryTarget, VersionedProxy};
use zddm::{
    block_on, Blocking, BlockingStore, ConfigError, Gate, KeyError, MemoryStore, Op, Phase, PhaseError, Proxy, Rate,
    RateError, Store,
};
use zddm_suite::faults::{Fault, Faulty};

type Mem = Faulty<MemoryStore<u64, u64>>;
type TestProxy = Proxy<u64, u64, Arc<Mem>, Arc<Mem>>;

fn proxy_world() -> (TestProxy, Arc<Mem>, Arc<Mem>) {
    let (old, new) = (Arc::new(Faulty::new(MemoryStore::new())), Arc::new(Faulty::new(MemoryStore::new())));
    (Proxy::new(old.clone(), new.clone(), Gate::new("traps", Rate::ALL)), old, new)
}

fn half() -> Rate {
    Rate::percent(50.0).unwrap()
}

/// Trap 1: lowering the gate in `Live` used to be accepted and ignored (NEW went on serving every
/// key). Now the keys that leave the gate are read from OLD — which `Live` still writes first, so
/// it holds every acknowledged write — while `Live` keeps writing them to NEW too; `Complete` needs
/// the gate back at 100 %, and from `Complete` on (OLD no longer written) lowering is refused.
#[tokio::test(flavor = "current_thread")]
async fn lowering_the_gate_in_live_takes_keys_off_new_and_loses_no_write() {
    let (proxy, old, new) = proxy_world();
    proxy.put(&1, &1).await.unwrap();
    proxy.set_phase(Phase::Live).unwrap();
    proxy.put(&1, &2).await.unwrap();
    assert_eq!(proxy.gate().set_rate(Rate::NONE), Ok(Rate::ALL));

    // NEW misbehaves: with the gate lowered, reads no longer need it.
    new.outage(Some(Op::Get), Fault::Before);
    let before = proxy.stats();
    assert_eq!(proxy.get(&1).await.unwrap(), Some(2), "OLD serves the write made in Live");
    assert_eq!((proxy.stats().since(&before).reads_from_old, proxy.stats().since(&before).reads_from_new), (1, 0));
    new.heal();

    // Writes still reach both stores, so raising the gate again serves NEW's copy, current.
    proxy.put(&1, &3).await.unwrap();
    assert_eq!((old.inner().get(&1).await.unwrap(), new.inner().get(&1).await.unwrap()), (Some(3), Some(3)));
    assert_eq!(proxy.set_phase(Phase::Live), Ok(Phase::Live), "staying in Live is fine at any rate");
    assert_eq!(
        proxy.set_phase(Phase::Complete),
        Err(PhaseError::NeedsFullRate { phase: Phase::Complete, rate: Rate::NONE })
    );
    proxy.gate().set_rate(Rate::ALL).unwrap();
    let before = proxy.stats();
    assert_eq!(proxy.get(&1).await.unwrap(), Some(3));
    assert_eq!(proxy.stats().since(&before).reads_from_new, 1);

    // Complete: OLD is no longer written, so the gate stays at 100 %, loudly.
    let report = Verify::new(&proxy).recheck_after(Duration::ZERO).run(|_| async {}, |_| {}).await.unwrap();
    assert!(report.earns_complete(), "{report}");
    proxy.set_phase(Phase::Complete).unwrap();
    let refused = proxy.gate().set_rate(Rate::NONE).unwrap_err();
    assert_eq!(refused, RateError::GateComplete { rate: Rate::NONE });
    assert!(refused.to_string().contains("no way back from complete"), "{refused}");
    assert_eq!((proxy.gate().rate(), proxy.gate().clone().set_rate(half()).is_err()), (Rate::ALL, true));
    assert_eq!(proxy.gate().set_rate(Rate::ALL), Ok(Rate::ALL), "100 % changes nothing, so it is accepted");
    assert_eq!(proxy.get(&1).await.unwrap(), Some(3));

    // A proxy (re)started in Complete fixes its gate too, and refuses to start below 100 %.
    let (old, new) = (MemoryStore::<u64, u64>::new(), MemoryStore::<u64, u64>::new());
    let restarted = Proxy::builder(old, new, Gate::new("traps", Rate::ALL)).phase(Phase::Complete).build().unwrap();
    assert!(matches!(restarted.gate().set_rate(Rate::NONE), Err(RateError::GateComplete { .. })));
    let (old, new) = (MemoryStore::<u64, u64>::new(), MemoryStore::<u64, u64>::new());
    let lowered = Proxy::builder(old, new, Gate::new("traps", half())).phase(Phase::Complete).build();
    assert!(matches!(lowered, Err(ConfigError::Phase(PhaseError::NeedsFullRate { .. }))));
}

/// Trap 1, in versioned and unversioned mode on their own, and in a fleet (whose plan, not the
/// gate, sets the rates: `set_rate` on a fleet proxy's gate used to be ignored in every phase).
#[tokio::test(flavor = "current_thread")]
async fn the_fleet_modes_follow_a_lowered_gate_in_live_or_refuse_it() {
    let versioned =
        VersionedProxy::new(MemorySource::<u64, u64>::new(), MemoryTarget::new(), Gate::new("v", Rate::ALL));
    versioned.put(&1, &1).await.unwrap();
    versioned.set_phase(Phase::Live).unwrap();
    versioned.put(&1, &2).await.unwrap();
    versioned.gate().set_rate(Rate::NONE).unwrap();
    let before = versioned.stats();
    assert_eq!(versioned.get(&1).await.unwrap(), Some(2));
    assert_eq!(versioned.stats().since(&before).reads_from_old, 1, "a key off the gate is read from OLD");
    versioned.gate().set_rate(Rate::ALL).unwrap();
    let before = versioned.stats();
    assert_eq!(versioned.get(&1).await.unwrap(), Some(2));
    assert_eq!(versioned.stats().since(&before).reads_from_new, 1, "and from NEW once back in it");
    let report = Verify::new(&versioned).run(|_| async {}, |_| {}).await.unwrap();
    assert!(report.earns_complete(), "{report}");
    versioned.set_phase(Phase::Complete).unwrap();
    assert_eq!(versioned.gate().set_rate(half()), Err(RateError::GateComplete { rate: half() }));

    let cached = CachedProxy::new(MemoryStore::<u64, u64>::new(), MemoryCache::new(), Gate::new("c", Rate::ALL));
    cached.put(&1, &1).await.unwrap();
    cached.set_phase(Phase::Live).unwrap();
    cached.gate().set_rate(Rate::NONE).unwrap();
    let before = cached.stats();
    assert_eq!(cached.get(&1).await.unwrap(), Some(1));
    assert_eq!((cached.stats().since(&before).reads_from_old, cached.stats().since(&before).reads_from_new), (1, 0));

    let control = MemoryControl::new();
    let fleet = Fleet::join(control.clone(), "a", "fleet", FleetConfig::default()).await.unwrap();
    let in_fleet = VersionedProxy::in_fleet(MemorySource::<u64, u64>::new(), MemoryTarget::new(), &fleet);
    let refused = in_fleet.gate().set_rate(Rate::ALL).unwrap_err();
    assert_eq!(refused, RateError::GateInFleet { rate: Rate::ALL });
    assert!(refused.to_string().contains("Fleet::set_goal"), "{refused}");
    let cached = CachedProxy::in_fleet(MemoryStore::<u64, u64>::new(), MemoryCache::new(), &fleet);
    assert!(matches!(cached.gate().set_rate(Rate::NONE), Err(RateError::GateInFleet { .. })));
}

/// Trap 2: `set_phase(Live)` in `Live` was refused once the gate was below 100 %. Setting the
/// phase a proxy is in changes nothing, so it is accepted, in every phase, and keeps the
/// verification that earns `Complete`.
#[tokio::test(flavor = "current_thread")]
async fn setting_the_phase_the_proxy_is_in_is_a_no_op() {
    let (proxy, _, _) = proxy_world();
    proxy.gate().set_rate(half()).unwrap();
    for phase in [Phase::Off, Phase::DualWrite, Phase::Shadow, Phase::ReadThrough] {
        proxy.set_phase(phase).unwrap();
        assert_eq!(proxy.set_phase(phase), Ok(phase), "{phase} -> {phase}");
    }
    proxy.gate().set_rate(Rate::ALL).unwrap();
    proxy.set_phase(Phase::Live).unwrap();
    let report = Verify::new(&proxy).recheck_after(Duration::ZERO).run(|_| async {}, |_| {}).await.unwrap();
    assert!(report.earns_complete(), "{report}");
    proxy.gate().set_rate(half()).unwrap();
    assert_eq!(proxy.set_phase(Phase::Live), Ok(Phase::Live), "Live -> Live below 100 %");
    assert_eq!(proxy.phase(), Phase::Live);
    proxy.gate().set_rate(Rate::ALL).unwrap();
    assert_eq!(proxy.set_phase(Phase::Complete), Ok(Phase::Live), "the no-op kept the verification");
    assert_eq!(proxy.set_phase(Phase::Complete), Ok(Phase::Complete));

    // Entering `Live` below 100 % is still refused, and says what to do.
    let (proxy, _, _) = proxy_world();
    proxy.gate().set_rate(half()).unwrap();
    let refused = proxy.set_phase(Phase::Live).unwrap_err();
    assert_eq!(refused, PhaseError::NeedsFullRate { phase: Phase::Live, rate: half() });
    assert!(refused.to_string().contains("raise the gate to 100%"), "{refused}");

    // The fleet modes on their own, the same.
    let versioned =
        VersionedProxy::new(MemorySource::<u64, u64>::new(), MemoryTarget::new(), Gate::new("v", Rate::ALL));
    versioned.set_phase(Phase::Live).unwrap();
    versioned.gate().set_rate(half()).unwrap();
    assert_eq!(versioned.set_phase(Phase::Live), Ok(Phase::Live));
    let cached = CachedProxy::new(MemoryStore::<u64, u64>::new(), MemoryCache::new(), Gate::new("c", Rate::ALL));
    cached.set_phase(Phase::Live).unwrap();
    cached.gate().set_rate(half()).unwrap();
    assert_eq!(cached.set_phase(Phase::Live), Ok(Phase::Live));
}

/// A blocking store of the test's own: `BlockingStore` is in scope, as in an application that has
/// both kinds of store.
#[derive(Default)]
struct SyncMap(Mutex<HashMap<u64, u64>>);

impl BlockingStore<u64, u64> for SyncMap {
    type Error = KeyError;

    fn get(&self, key: &u64) -> Result<Option<u64>, KeyError> {
        Ok(self.0.lock().unwrap().get(key).copied())
    }

    fn put(&self, key: &u64, value: &u64) -> Result<(), KeyError> {
        self.0.lock().unwrap().insert(*key, *value);
        Ok(())
    }

    fn insert_if_absent(&self, key: &u64, value: &u64) -> Result<bool, KeyError> {
        let mut map = self.0.lock().unwrap();
        let absent = !map.contains_key(key);
        if absent {
            map.insert(*key, *value);
        }
        Ok(absent)
    }

    fn delete(&self, key: &u64) -> Result<(), KeyError> {
        self.0.lock().unwrap().remove(key);
        Ok(())
    }
}

/// Trap 4: `MemoryStore` implemented both `Store` and `BlockingStore`, so with both traits
/// imported every call was ambiguous (E0034). It is a `Store` only now: this file, which imports
/// both, does not compile if that comes back. Its futures are ready at once, so synchronous code
/// uses it through `block_on` or the proxy's blocking handle.
#[test]
fn memory_store_calls_are_unambiguous_with_both_store_traits_in_scope() {
    let store = MemoryStore::<u64, u64>::new();
    block_on(async {
        store.put(&1, &1).await.unwrap();
        assert!(!store.insert_if_absent(&1, &2).await.unwrap());
        assert_eq!(store.get(&1).await.unwrap(), Some(1));
        store.delete(&1).await.unwrap();
    });
    assert_eq!(block_on(store.get(&1)).unwrap(), None);

    // Beside a blocking store of the application's, whose calls are its own.
    let sync = SyncMap::default();
    sync.put(&2, &2).unwrap();
    let proxy = Proxy::new(store, Blocking(sync), Gate::new("sync", Rate::ALL));
    let users = proxy.blocking();
    users.put(&3, &3).unwrap();
    assert_eq!(users.get(&3).unwrap(), Some(3));
    assert_eq!(BlockingStore::get(&proxy.new_store().0, &3).unwrap(), Some(3));
    assert_eq!(proxy.old().len(), 1);
}

/// An OLD store whose `put` can be held in flight: "sent", never answered. Dropped in flight, the
/// write is recalled (`recalls`: the rule of `Store`) or stays sent and lands later, on
/// [`land`](Late::land) (a write spawned to finish in the background, or a request already on the
/// wire that commits after the client gave up).
struct Late {
    memory: MemoryStore<u64, u64>,
    hold: AtomicBool,
    recalls: bool,
    sent: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl Late {
    async fn land(&self) {
        let sent = std::mem::take(&mut *self.sent.lock().unwrap());
        for (key, value) in sent {
            self.memory.put(&key, &value).await.unwrap();
        }
    }
}

/// Recalls a held write when its future is dropped, if the store keeps the rule.
struct Recall {
    sent: Arc<Mutex<Vec<(u64, u64)>>>,
    recalls: bool,
}

impl Drop for Recall {
    fn drop(&mut self) {
        if self.recalls {
            self.sent.lock().unwrap().clear();
        }
    }
}

impl Store<u64, u64> for Late {
    type Error = KeyError;

    async fn get(&self, key: &u64) -> Result<Option<u64>, KeyError> {
        self.memory.get(key).await
    }

    async fn put(&self, key: &u64, value: &u64) -> Result<(), KeyError> {
        if !self.hold.load(Ordering::SeqCst) {
            return self.memory.put(key, value).await;
        }
        self.sent.lock().unwrap().push((*key, *value));
        let _recall = Recall { sent: Arc::clone(&self.sent), recalls: self.recalls };
        std::future::pending::<()>().await;
        Ok(())
    }

    async fn insert_if_absent(&self, key: &u64, value: &u64) -> Result<bool, KeyError> {
        self.memory.insert_if_absent(key, value).await
    }

    async fn delete(&self, key: &u64) -> Result<(), KeyError> {
        self.memory.delete(key).await
    }
}

/// A put abandoned in flight on OLD, the key's repairing read, then whatever the store lets land:
/// what the proxy then serves for the key, and what OLD holds.
async fn abandoned_put(recalls: bool) -> (Option<u64>, Option<u64>) {
    let old =
        Arc::new(Late { memory: MemoryStore::new(), hold: AtomicBool::new(false), recalls, sent: Arc::default() });
    let proxy = Proxy::new(old.clone(), MemoryStore::<u64, u64>::new(), Gate::new("cancel", Rate::ALL));
    proxy.put(&1, &1).await.unwrap();
    old.hold.store(true, Ordering::SeqCst);
    {
        let mut put = pin!(proxy.put(&1, &2));
        let pending = put.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        assert!(pending.is_pending(), "the put waits on OLD");
    } // the caller gives up: the future is dropped
    assert_eq!(proxy.keys_in_doubt(), 1, "a write dropped between OLD and NEW is in doubt");
    old.hold.store(false, Ordering::SeqCst);
    assert_eq!(proxy.get(&1).await.unwrap(), Some(1), "repaired from OLD, where the put did not land");
    assert_eq!(proxy.keys_in_doubt(), 0);
    old.land().await;
    (proxy.get(&1).await.unwrap(), old.memory.get(&1).await.unwrap())
}

/// Trap 5: the rule the proxy relies on — a store's operation must not take effect after its
/// future is dropped — was written nowhere an implementer looks. It is in the docs of `Store` and
/// `BlockingStore` now; and this is what it protects: with a store that keeps it, an abandoned
/// write leaves both stores agreeing; with one that lets the write land later, NEW serves a value
/// OLD has replaced, for good.
#[tokio::test(flavor = "current_thread")]
async fn a_store_operation_must_not_take_effect_after_its_future_is_dropped() {
    let docs: String = include_str!("../zddm/src/store.rs")
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("///"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    for rule in [
        "**An operation must not take effect after its future is dropped, unless it already had when it was dropped**",
        "never hand a write to a task spawned to finish it in the background",
        "**when a call returns, its operation has taken effect or never will**",
    ] {
        assert!(docs.contains(rule), "the store traits' docs state: {rule}");
    }

    assert_eq!(abandoned_put(true).await, (Some(1), Some(1)), "kept: the write never happened, both agree");
    assert_eq!(abandoned_put(false).await, (Some(1), Some(2)), "broken: NEW serves 1 while OLD holds 2");
}
