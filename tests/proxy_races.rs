//! Deterministic reproductions of the seed library's defects. Each scenario runs against
//! `zddm::Proxy` and against `NaiveProxy` (the seed's semantics, the control): the test asserts the
//! defect shows in the control — so the scenario really exercises it — and not in zddm.
//!
//! Interleavings are forced by pausing a chosen store call (`Faulty::pause_next`) and running the
//! competing operation while it is paused.
//!
//! Every race is a body generic over the two stores. Each runs as its own test over in-memory
//! stores, and all of them run again over real stores on both sides — SQLite to SQLite, SQLite to
//! PostgreSQL, PostgreSQL to PostgreSQL, PostgreSQL to Redis and Redis to Redis — on servers the
//! tests start themselves.

use std::future::Future;
use std::sync::Arc;
use zddm::cached::ScanKeys;
use zddm::verify::Verify;

use zddm::{Error, MemoryStore, Op, Proxy, Rate, Store};
use zddm_suite::backends::Backends;
use zddm_suite::faults::{Fault, Faulty};
use zddm_suite::naive::{Migrating, NaiveProxy};
use zddm_suite::scenarios::*;

type Zddm<O, N> = Proxy<u64, u64, Arc<Faulty<O>>, Arc<Faulty<N>>>;
type Naive<O, N> = NaiveProxy<Arc<Faulty<O>>, Arc<Faulty<N>>>;

/// Two stores of a pair, fresh and empty on every call.
trait Fresh {
    type Old: Store<u64, u64> + ScanKeys<u64> + 'static;
    type New: Store<u64, u64> + ScanKeys<u64> + 'static;
    fn pair(&self) -> impl Future<Output = (Self::Old, Self::New)>;
}

impl<O, N, F> Fresh for F
where
    O: Store<u64, u64> + ScanKeys<u64> + 'static,
    N: Store<u64, u64> + ScanKeys<u64> + 'static,
    F: AsyncFn() -> (O, N),
{
    type Old = O;
    type New = N;
    fn pair(&self) -> impl Future<Output = (O, N)> {
        self()
    }
}

async fn zddm<F: Fresh>(fresh: &F) -> World<Zddm<F::Old, F::New>, F::Old, F::New> {
    let (old, new) = fresh.pair().await;
    let (old, new, gate) = faulty(old, new);
    World { proxy: Proxy::new(old.clone(), new.clone(), gate.clone()), old, new, gate }
}

async fn naive<F: Fresh>(fresh: &F) -> World<Naive<F::Old, F::New>, F::Old, F::New> {
    let (old, new) = fresh.pair().await;
    let (old, new, gate) = faulty(old, new);
    World { proxy: NaiveProxy { old: old.clone(), new: new.clone(), gate: gate.clone() }, old, new, gate }
}

/// The races: each becomes a test over in-memory stores, and `every_race` runs them all over
/// one pair of real stores.
macro_rules! races {
    ($($race:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "current_thread")]
            async fn $race() {
                super::$race(&async || (MemoryStore::new(), MemoryStore::new())).await;
            }
        )*

        async fn every_race<F: Fresh>(fresh: &F) {
            $( super::$race(fresh).await; )*
        }
    };
}

mod in_memory {
    use super::*;

    races!(
        stale_backfill_race,
        ramp_down_ramp_up_race,
        delete_resurrection_race,
        new_outage_mid_write_race,
        new_outage_that_also_fails_the_invalidation_is_indeterminate_then_repaired,
        a_new_read_outage_never_fails_a_read_old_can_serve,
        cancellation_between_old_and_new_writes,
        cancellation_at_every_await_of_every_operation,
        a_write_waiting_for_the_key_lock_can_be_dropped_harmlessly,
        complete_repairs_a_key_left_in_doubt_from_old,
        a_write_in_complete_settles_a_key_left_in_doubt,
    );

    pub(super) async fn all<F: Fresh>(fresh: &F) {
        every_race(fresh).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_race_over_sqlite() {
    let backends = Backends::default();
    in_memory::all(&async || (backends.sqlite(), backends.sqlite())).await;
}

#[tokio::test(flavor = "current_thread")]
async fn every_race_over_sqlite_to_postgres() {
    let backends = Backends::default();
    in_memory::all(&async || (backends.sqlite(), backends.postgres().await)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn every_race_over_postgres() {
    let backends = Backends::default();
    in_memory::all(&async || (backends.postgres().await, backends.postgres().await)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn every_race_over_postgres_to_redis() {
    let backends = Backends::default();
    in_memory::all(&async || (backends.postgres().await, backends.redis().await)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn every_race_over_redis() {
    let backends = Backends::default();
    in_memory::all(&async || (backends.redis().await, backends.redis().await)).await;
}

async fn stale_backfill_race<F: Fresh>(fresh: &F) {
    let control = naive(fresh).await;
    assert_eq!(stale_backfill(&control, Op::Put).await, (Some(2), Some(1)), "the control shows the stale backfill");
    assert_eq!(control.proxy.get(&K).await.unwrap(), Some(1), "and serves the stale value");

    let world = zddm(fresh).await;
    assert_eq!(stale_backfill(&world, Op::Insert).await, (Some(2), Some(2)));
    assert_eq!(world.proxy.get(&K).await.unwrap(), Some(2));
}

async fn ramp_down_ramp_up_race<F: Fresh>(fresh: &F) {
    assert_eq!(ramp_down_and_up(&naive(fresh).await).await, Some(1), "the control serves the stale copy");
    let world = zddm(fresh).await;
    assert_eq!(ramp_down_and_up(&world).await, Some(2));
    assert_eq!(world.proxy.stats().invalidations, 1, "the lapsed write invalidated NEW's copy");
}

async fn delete_resurrection_race<F: Fresh>(fresh: &F) {
    assert_eq!(delete_resurrection(&naive(fresh).await, Op::Put).await, Some(1), "the control resurrects the key");
    let world = zddm(fresh).await;
    assert_eq!(delete_resurrection(&world, Op::Insert).await, None);
    assert_eq!(world.new_value().await, None);
}

async fn new_outage_mid_write_race<F: Fresh>(fresh: &F) {
    let (acknowledged, read) = new_outage_mid_write(&naive(fresh).await).await;
    assert!(!acknowledged, "the control fails the write although OLD committed it");
    assert_eq!(read, Some(1), "and then serves the stale copy");

    let world = zddm(fresh).await;
    assert_eq!(new_outage_mid_write(&world).await, (true, Some(2)), "acknowledged, and never stale");
    let stats = world.proxy.stats();
    assert_eq!((stats.new_errors, stats.invalidations, stats.indeterminate), (1, 1, 0));
}

async fn new_outage_that_also_fails_the_invalidation_is_indeterminate_then_repaired<F: Fresh>(fresh: &F) {
    let world = zddm(fresh).await;
    world.proxy.put(&K, &1).await.unwrap();
    world.new.outage(None, Fault::Before);
    let error = world.proxy.put(&K, &2).await.unwrap_err();
    assert!(error.is_indeterminate(), "{error}");
    assert!(matches!(&error, Error::Indeterminate { op: Op::Put, old_error: None, .. }), "{error:?}");
    assert!(error.to_string().contains("OLD committed it"), "{error}");
    assert_eq!(world.proxy.keys_in_doubt(), 1);
    assert_eq!(world.new_value().await, Some(1), "NEW really is stale here");

    // A NEW outage never fails a read OLD can serve, and the stale copy is never served.
    assert_eq!(world.proxy.get(&K).await.unwrap(), Some(2));
    world.new.heal();
    assert_eq!(world.proxy.get(&K).await.unwrap(), Some(2), "repaired, then read through");
    assert_eq!(world.proxy.keys_in_doubt(), 0);
    assert_eq!(world.new_value().await, Some(2));
    assert_eq!(world.proxy.stats().repairs, 1);
}

async fn a_new_read_outage_never_fails_a_read_old_can_serve<F: Fresh>(fresh: &F) {
    let control = naive(fresh).await;
    control.old.inner().put(&K, &1).await.unwrap();
    control.new.outage(Some(Op::Get), Fault::Before);
    assert!(control.proxy.get(&K).await.is_err(), "the control fails the read");

    let world = zddm(fresh).await;
    world.old.inner().put(&K, &1).await.unwrap();
    world.new.outage(Some(Op::Get), Fault::Before);
    assert_eq!(world.proxy.get(&K).await.unwrap(), Some(1));
    // OLD failing is a real failure, and says which side and operation.
    world.old.fail_next(Some(Op::Get), Fault::Before);
    let error = world.proxy.get(&K).await.unwrap_err();
    assert_eq!((error.side(), error.op()), (zddm::Side::Old, Op::Get));
    // The message carries the store's error, so `to_string()` alone says what went wrong.
    assert_eq!(error.to_string(), "get on the OLD store failed: injected Before failure of get");
    assert!(std::error::Error::source(&error).is_none(), "the cause is said once, in the message");
    assert!(error.store_error().downcast_ref::<zddm_suite::faults::Injected>().is_some(), "{error:?}");
}

// 5. Cancellation at every `.await`: a caller dropping the future at any store call must never leave
//    NEW serving a value older than OLD's.

async fn cancellation_between_old_and_new_writes<F: Fresh>(fresh: &F) {
    let control = naive(fresh).await;
    control.proxy.put(&K, &1).await.unwrap();
    let read = cancel_at(&control, control.new.pause_next(Op::Put), Op::Put, control.proxy.put(&K, &2)).await;
    assert_eq!((control.old_value().await, read), (Some(2), Some(1)), "the control serves a stale value");

    let world = zddm(fresh).await;
    world.proxy.put(&K, &1).await.unwrap();
    let read = cancel_at(&world, world.new.pause_next(Op::Put), Op::Put, world.proxy.put(&K, &2)).await;
    assert_eq!((world.old_value().await, read), (Some(2), Some(2)));
    assert_eq!(world.proxy.stats().repairs, 1);
    assert_eq!(world.proxy.keys_in_doubt(), 0);
}

async fn cancellation_at_every_await_of_every_operation<F: Fresh>(fresh: &F) {
    // (operation, store side, paused call): every store call the proxy can make on each path.
    #[derive(Clone, Copy, Debug)]
    enum Case {
        Put(bool, Op),
        Delete(bool, Op),
        ReadThrough(bool, Op),
        LapsedPut(bool, Op),
        PutWithNewFailing(bool, Op),
    }
    const OLD: bool = true;
    const NEW: bool = false;
    let cases = [
        Case::Put(OLD, Op::Put),
        Case::Put(NEW, Op::Put),
        Case::Delete(OLD, Op::Delete),
        Case::Delete(NEW, Op::Delete),
        Case::ReadThrough(NEW, Op::Get),
        Case::ReadThrough(OLD, Op::Get),
        Case::ReadThrough(NEW, Op::Insert),
        Case::LapsedPut(OLD, Op::Put),
        Case::LapsedPut(NEW, Op::Delete),
        Case::PutWithNewFailing(NEW, Op::Delete),
    ];
    for case in cases {
        let world = zddm(fresh).await;
        world.proxy.put(&K, &1).await.unwrap();
        let (on_old, at) = match case {
            Case::Put(s, o) | Case::Delete(s, o) | Case::ReadThrough(s, o) | Case::LapsedPut(s, o) => (s, o),
            Case::PutWithNewFailing(s, o) => (s, o),
        };
        let side = || if on_old { world.old.pause_next(at) } else { world.new.pause_next(at) };
        let read = match case {
            Case::Put(..) => cancel_at(&world, side(), at, world.proxy.put(&K, &2)).await,
            Case::Delete(..) => cancel_at(&world, side(), at, world.proxy.delete(&K)).await,
            Case::ReadThrough(..) => {
                world.new.inner().delete(&K).await.unwrap();
                cancel_at(&world, side(), at, world.proxy.get(&K)).await
            }
            Case::LapsedPut(..) => {
                world.gate.set_rate(Rate::NONE).unwrap();
                let read = cancel_at(&world, side(), at, world.proxy.put(&K, &2)).await;
                world.gate.set_rate(Rate::ALL).unwrap();
                assert_eq!(read, world.old_value().await, "{case:?}: a lapsed read is served by OLD");
                world.proxy.get(&K).await.unwrap()
            }
            Case::PutWithNewFailing(..) => {
                world.new.fail_next(Some(Op::Put), Fault::Before);
                cancel_at(&world, side(), at, world.proxy.put(&K, &2)).await
            }
        };
        let old = world.old_value().await;
        assert_eq!(read, old, "{case:?}: the next read returns OLD's value");
        let new = world.new_value().await;
        assert!(new.is_none() || new == old, "{case:?}: NEW holds {new:?} while OLD holds {old:?}");
        assert_eq!(world.proxy.keys_in_doubt(), 0, "{case:?}: the read repaired any doubt");
    }
}

async fn a_write_waiting_for_the_key_lock_can_be_dropped_harmlessly<F: Fresh>(fresh: &F) {
    let world = zddm(fresh).await;
    world.old.inner().put(&K, &1).await.unwrap();
    let pause = world.new.pause_next(Op::Insert);
    let mut read = Box::pin(world.proxy.get(&K));
    tokio::select! {
        biased;
        _ = &mut read => panic!("the read finished early"),
        _ = pause.reached() => {}
    }
    // The read holds the key's lock: this write waits for it, and is dropped while waiting.
    {
        let mut write = Box::pin(world.proxy.put(&K, &2));
        for _ in 0..10 {
            assert!(poll_once(&mut write).await.is_none(), "the write waits for the lock");
        }
    }
    pause.release();
    assert_eq!(read.await.unwrap(), Some(1));
    assert_eq!(world.old.calls(Op::Put), 0, "the dropped write never reached OLD");
    assert_eq!(world.proxy.keys_in_doubt(), 0);
    assert_eq!(world.proxy.get(&K).await.unwrap(), Some(1));
}

/// Polls a future once; `Some` if it finished.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *future).poll(cx) {
        std::task::Poll::Ready(output) => std::task::Poll::Ready(Some(output)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

// 6. A write still in flight when the phase becomes `Complete` (the check that refuses `Complete`
//    with keys in doubt has already passed) leaves its key in doubt: `Complete` must not serve NEW's
//    stale copy, and must not forget the key either, since OLD is the only place its value is left.

async fn key_in_doubt_after_completing<F: Fresh>(fresh: &F) -> World<Zddm<F::Old, F::New>, F::Old, F::New> {
    let world = zddm(fresh).await;
    world.proxy.put(&K, &1).await.unwrap();
    world.proxy.set_phase(zddm::Phase::Live).unwrap();
    let report = Verify::new(&world.proxy).run(|_| async {}, |_| {}).await.unwrap();
    assert!(report.earns_complete(), "{report}");
    // The paused NEW put will fail, and so will the invalidation after it (a call's fault is chosen
    // when the call arrives, before it waits at the pause).
    world.new.fail_next(Some(Op::Put), Fault::Before);
    world.new.fail_next(Some(Op::Delete), Fault::Before);
    let pause = world.new.pause_next(Op::Put);
    let write = world.proxy.put(&K, &2);
    let complete = async {
        pause.reached().await;
        world.proxy.set_phase(zddm::Phase::Complete).unwrap();
        pause.release();
    };
    let (write, ()) = tokio::join!(write, complete);
    assert!(write.unwrap_err().is_indeterminate());
    assert_eq!((world.old_value().await, world.new_value().await), (Some(2), Some(1)));
    assert_eq!(world.proxy.keys_in_doubt(), 1);
    world
}

async fn complete_repairs_a_key_left_in_doubt_from_old<F: Fresh>(fresh: &F) {
    let world = key_in_doubt_after_completing(fresh).await;
    assert_eq!(world.proxy.get(&K).await.unwrap(), Some(2), "OLD's committed value, not NEW's stale copy");
    assert_eq!(world.new_value().await, Some(2), "copied into NEW, not forgotten");
    assert_eq!(world.proxy.keys_in_doubt(), 0);
    assert_eq!(world.proxy.get(&K).await.unwrap(), Some(2));
}

async fn a_write_in_complete_settles_a_key_left_in_doubt<F: Fresh>(fresh: &F) {
    let world = key_in_doubt_after_completing(fresh).await;
    world.proxy.put(&K, &3).await.unwrap();
    assert_eq!(world.proxy.keys_in_doubt(), 0);
    assert_eq!((world.old_value().await, world.new_value().await), (Some(2), Some(3)));
    assert_eq!(world.proxy.get(&K).await.unwrap(), Some(3));
}
