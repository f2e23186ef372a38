//! The race scenarios of `tests/proxy_races.rs`, shared so that every migrating front end — the
//! proxy, the seed's naive proxy (the control), and the repositories `#[zddm::migrate]` generates —
//! runs the very same interleavings, over in-memory stores or real ones (`tests/proxy_races.rs`).
//! Each returns what it observed; the tests assert on it.

use std::future::Future;
use std::sync::Arc;

use zddm::{Gate, MemoryStore, Op, Rate, Store};

use crate::faults::{Fault, Faulty, Pause};
use crate::naive::Migrating;

pub type Mem = Faulty<MemoryStore<u64, u64>>;

/// The key every scenario works on.
pub const K: u64 = 7;

/// Two fault-injecting in-memory stores and an open gate, for a migrating front end to share.
pub fn stores() -> (Arc<Mem>, Arc<Mem>, Gate) {
    faulty(MemoryStore::new(), MemoryStore::new())
}

/// `old` and `new`, each wrapped in the fault injector, and an open gate.
pub fn faulty<Old, New>(old: Old, new: New) -> (Arc<Faulty<Old>>, Arc<Faulty<New>>, Gate) {
    (Arc::new(Faulty::new(old)), Arc::new(Faulty::new(new)), Gate::new("races", Rate::ALL))
}

/// A migrating front end over two fault-injecting stores (in memory unless said otherwise).
pub struct World<P, Old = MemoryStore<u64, u64>, New = Old> {
    pub proxy: P,
    pub old: Arc<Faulty<Old>>,
    pub new: Arc<Faulty<New>>,
    pub gate: Gate,
}

impl<P, Old: Store<u64, u64>, New: Store<u64, u64>> World<P, Old, New> {
    pub async fn old_value(&self) -> Option<u64> {
        self.old.inner().get(&K).await.expect("OLD answers a read")
    }

    pub async fn new_value(&self) -> Option<u64> {
        self.new.inner().get(&K).await.expect("NEW answers a read")
    }

    /// Writes OLD directly, behind the proxy's back.
    pub async fn set_old(&self, value: u64) {
        self.old.inner().put(&K, &value).await.expect("OLD takes a write");
    }

    /// Store calls in flight on either side.
    fn in_flight(&self) -> usize {
        self.old.in_flight() + self.new.in_flight()
    }
}

/// Runs `paused` until it blocks at its paused store call, then `competitor` as far as it can get,
/// then lets `paused` go on. "As far as it can get" is until it finishes, or until it is pending
/// with no store call of its own in flight: then it waits for `paused` (zddm's per-key lock). Over
/// real stores a call takes real time, so this watches the calls rather than counting polls.
pub async fn interleave<A: Future, B: Future>(
    paused: A,
    pause: Pause,
    competitor: B,
    in_flight: impl Fn() -> usize,
) -> (A::Output, B::Output) {
    let (mut paused, mut competitor) = (std::pin::pin!(paused), std::pin::pin!(competitor));
    tokio::select! {
        biased;
        _ = &mut paused => panic!("the paused operation finished without reaching its pause"),
        () = pause.reached() => {}
    }
    let mut finished = None;
    let mut idle_polls = 0;
    while finished.is_none() && idle_polls < 20 {
        tokio::select! {
            biased;
            output = &mut competitor => finished = Some(output),
            () = tokio::task::yield_now() => {
                // Only the paused call in flight: the competitor waits on something else.
                idle_polls = if in_flight() == 1 { idle_polls + 1 } else { 0 };
            }
        }
    }
    pause.release();
    match finished {
        Some(b) => (paused.await, b),
        None => tokio::join!(paused, competitor),
    }
}

// 1. Stale backfill: a read-through copies v1 into NEW after a concurrent write of v2 finished,
//    leaving NEW older than OLD for good.

pub async fn stale_backfill<P: Migrating<u64, u64>, O: Store<u64, u64>, N: Store<u64, u64>>(
    world: &World<P, O, N>,
    backfill: Op,
) -> (Option<u64>, Option<u64>) {
    world.set_old(1).await;
    let pause = world.new.pause_next(backfill);
    let (read, write) = interleave(world.proxy.get(&K), pause, world.proxy.put(&K, &2), || world.in_flight()).await;
    assert_eq!(read.unwrap(), Some(1), "the read began before the write and may return the old value");
    write.unwrap();
    (world.old_value().await, world.new_value().await)
}

// 2. Ramp down, write, ramp up: the seed stops writing NEW when the gate closes, so NEW keeps the
//    old copy and serves it when the gate opens again.

pub async fn ramp_down_and_up<P: Migrating<u64, u64>, O: Store<u64, u64>, N: Store<u64, u64>>(
    world: &World<P, O, N>,
) -> Option<u64> {
    world.proxy.put(&K, &1).await.unwrap();
    assert_eq!(world.new_value().await, Some(1));
    world.gate.set_rate(Rate::NONE).unwrap();
    world.proxy.put(&K, &2).await.unwrap();
    world.gate.set_rate(Rate::ALL).unwrap();
    world.proxy.get(&K).await.unwrap()
}

// 3. Delete resurrection: a read-through that read v1 before a delete copies it into NEW after the
//    delete, bringing the key back.

pub async fn delete_resurrection<P: Migrating<u64, u64>, O: Store<u64, u64>, N: Store<u64, u64>>(
    world: &World<P, O, N>,
    backfill: Op,
) -> Option<u64> {
    world.set_old(1).await;
    let pause = world.new.pause_next(backfill);
    let (read, delete) = interleave(world.proxy.get(&K), pause, world.proxy.delete(&K), || world.in_flight()).await;
    assert_eq!(read.unwrap(), Some(1));
    delete.unwrap();
    assert_eq!(world.old_value().await, None);
    world.proxy.get(&K).await.unwrap()
}

// 4. NEW outage mid-write: OLD takes the write, NEW fails it; the seed leaves NEW's old copy in place.

pub async fn new_outage_mid_write<P: Migrating<u64, u64>, O: Store<u64, u64>, N: Store<u64, u64>>(
    world: &World<P, O, N>,
) -> (bool, Option<u64>) {
    world.proxy.put(&K, &1).await.unwrap();
    world.new.fail_next(Some(Op::Put), Fault::Before);
    let acknowledged = world.proxy.put(&K, &2).await.is_ok();
    assert_eq!(world.old_value().await, Some(2));
    (acknowledged, world.proxy.get(&K).await.unwrap())
}

// 5. Cancellation: a caller dropping the future at a store call.

/// Starts `op`, drops it when it reaches the paused store call (`pause`, of a call of `at`), and
/// returns what a read sees next.
pub async fn cancel_at<P, O, N, F>(world: &World<P, O, N>, pause: Pause, at: Op, op: F) -> Option<u64>
where
    P: Migrating<u64, u64>,
    F: Future,
{
    let mut op = Box::pin(op);
    tokio::select! {
        biased;
        _ = &mut op => panic!("the operation finished without reaching the {at} call"),
        _ = pause.reached() => {}
    }
    drop(op);
    world.proxy.get(&K).await.unwrap()
}
