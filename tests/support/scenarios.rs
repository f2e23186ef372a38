//! The race scenarios of `tests/proxy_races.rs`, shared so that every migrating front end — the
//! proxy, the seed's naive proxy (the control), and the repositories `#[zddm::migrate]` generates —
//! runs the very same interleavings. Each returns what it observed; the tests assert on it.

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
    (
        Arc::new(Faulty::new(MemoryStore::new())),
        Arc::new(Faulty::new(MemoryStore::new())),
        Gate::new("races", Rate::ALL),
    )
}

pub struct World<P> {
    pub proxy: P,
    pub old: Arc<Mem>,
    pub new: Arc<Mem>,
    pub gate: Gate,
}

impl<P> World<P> {
    pub async fn old_value(&self) -> Option<u64> {
        self.old.inner().get(&K).await.unwrap()
    }

    pub async fn new_value(&self) -> Option<u64> {
        self.new.inner().get(&K).await.unwrap()
    }
}

/// Runs `competitor` while `paused` is blocked at its paused store call, then lets it go on.
/// `competitor` may itself wait for `paused` (zddm's per-key lock); yielding a while lets it get as
/// far as it can before the release.
pub async fn interleave<A: Future, B: Future>(paused: A, pause: Pause, competitor: B) -> (A::Output, B::Output) {
    let release = async {
        pause.reached().await;
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        pause.release();
    };
    // `join!` polls its branches in order, so `paused` has reached its pause (the in-memory stores
    // answer at once) before the competitor's first real step.
    let competitor = async {
        tokio::task::yield_now().await;
        competitor.await
    };
    let (a, b, ()) = tokio::join!(paused, competitor, release);
    (a, b)
}

// 1. Stale backfill: a read-through copies v1 into NEW after a concurrent write of v2 finished,
//    leaving NEW older than OLD for good.

pub async fn stale_backfill<P: Migrating<u64, u64>>(world: &World<P>, backfill: Op) -> (Option<u64>, Option<u64>) {
    world.old.inner().put(&K, &1).await.unwrap();
    let pause = world.new.pause_next(backfill);
    let (read, write) = interleave(world.proxy.get(&K), pause, world.proxy.put(&K, &2)).await;
    assert_eq!(read.unwrap(), Some(1), "the read began before the write and may return the old value");
    write.unwrap();
    (world.old_value().await, world.new_value().await)
}

// 2. Ramp down, write, ramp up: the seed stops writing NEW when the gate closes, so NEW keeps the
//    old copy and serves it when the gate opens again.

pub async fn ramp_down_and_up<P: Migrating<u64, u64>>(world: &World<P>) -> Option<u64> {
    world.proxy.put(&K, &1).await.unwrap();
    assert_eq!(world.new_value().await, Some(1));
    world.gate.set_rate(Rate::NONE);
    world.proxy.put(&K, &2).await.unwrap();
    world.gate.set_rate(Rate::ALL);
    world.proxy.get(&K).await.unwrap()
}

// 3. Delete resurrection: a read-through that read v1 before a delete copies it into NEW after the
//    delete, bringing the key back.

pub async fn delete_resurrection<P: Migrating<u64, u64>>(world: &World<P>, backfill: Op) -> Option<u64> {
    world.old.inner().put(&K, &1).await.unwrap();
    let pause = world.new.pause_next(backfill);
    let (read, delete) = interleave(world.proxy.get(&K), pause, world.proxy.delete(&K)).await;
    assert_eq!(read.unwrap(), Some(1));
    delete.unwrap();
    assert_eq!(world.old_value().await, None);
    world.proxy.get(&K).await.unwrap()
}

// 4. NEW outage mid-write: OLD takes the write, NEW fails it; the seed leaves NEW's old copy in place.

pub async fn new_outage_mid_write<P: Migrating<u64, u64>>(world: &World<P>) -> (bool, Option<u64>) {
    world.proxy.put(&K, &1).await.unwrap();
    world.new.fail_next(Some(Op::Put), Fault::Before);
    let acknowledged = world.proxy.put(&K, &2).await.is_ok();
    assert_eq!(world.old_value().await, Some(2));
    (acknowledged, world.proxy.get(&K).await.unwrap())
}

// 5. Cancellation: a caller dropping the future at a store call.

/// Starts `op`, drops it when it reaches the paused store call, and returns what a read sees next.
pub async fn cancel_at<P: Migrating<u64, u64>, F: Future>(world: &World<P>, side: &Mem, at: Op, op: F) -> Option<u64> {
    let pause = side.pause_next(at);
    let mut op = Box::pin(op);
    tokio::select! {
        biased;
        _ = &mut op => panic!("the operation finished without reaching the {at} call"),
        _ = pause.reached() => {}
    }
    drop(op);
    world.proxy.get(&K).await.unwrap()
}
