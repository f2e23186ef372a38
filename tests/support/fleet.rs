//! Interleavings across instances: two instances of a service, each with its own proxy and its own
//! handles on the same OLD and NEW (separate connections for real stores), forced into the orders
//! that break a fleet. Every scenario runs in versioned mode and, as the control, with today's
//! per-process `Proxy` on each instance; it returns what it saw, and [`Seen::violations`] checks
//! that against the invariants.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use zddm::cached::{Cache, CachedProxy, Probe};
use zddm::versioned::{Lookup, Source, Target, VersionedProxy};
use zddm::{Error, Gate, Proxy, Rate, Store};

use crate::faults::Pause;
use crate::stall::{Call, Stall};

/// The key every scenario works on.
pub const K: u64 = 7;

/// What a test does through one instance.
pub trait Instance: Send + Sync {
    fn get(&self, key: u64) -> impl Future<Output = Result<Option<u64>, Error>> + Send;
    fn put(&self, key: u64, value: u64) -> impl Future<Output = Result<(), Error>> + Send;
    fn delete(&self, key: u64) -> impl Future<Output = Result<(), Error>> + Send;
}

/// How one mode reaches the stores: its proxy, the NEW calls to stall, and how to look inside.
pub trait Mode {
    type Old;
    type New;
    type Proxy: Instance;
    /// NEW's call that writes a value through.
    const NEW_PUT: Call;
    /// NEW's call that takes a read-through's copy.
    const FILL: Call;
    fn proxy(old: Arc<Stall<Self::Old>>, new: Arc<Stall<Self::New>>, gate: Gate) -> Self::Proxy;
    /// OLD's value, read directly.
    fn old_value(old: &Self::Old) -> impl Future<Output = Option<u64>>;
    /// Writes OLD directly (a value that predates the migration).
    fn seed_old(old: &Self::Old, value: u64) -> impl Future<Output = ()>;
    /// The value NEW would serve, read directly.
    fn new_value(new: &Self::New) -> impl Future<Output = Option<u64>>;
}

/// Versioned mode over a source and a target.
pub struct Versioned<O, N>(PhantomData<(O, N)>);
/// Unversioned mode: any store as OLD, a cache with leases as NEW.
pub struct Cached<O, N>(PhantomData<(O, N)>);
/// Today's `Proxy`, one per instance: the control.
pub struct Unversioned<O, N>(PhantomData<(O, N)>);

/// The grace period of the versioned scenarios: short, so that the repair after it is tested too.
pub const GRACE: Duration = Duration::from_millis(300);

impl<O: Source<u64, u64>, N: Target<u64, u64>> Mode for Versioned<O, N> {
    type Old = O;
    type New = N;
    type Proxy = VersionedProxy<u64, u64, Arc<Stall<O>>, Arc<Stall<N>>>;
    const NEW_PUT: Call = Call::Apply;
    const FILL: Call = Call::Fill;

    fn proxy(old: Arc<Stall<O>>, new: Arc<Stall<N>>, gate: Gate) -> Self::Proxy {
        VersionedProxy::builder(old, new, gate).grace(GRACE).build().expect("a valid grace")
    }

    async fn old_value(old: &O) -> Option<u64> {
        old.get(&K).await.expect("OLD answers").map(|found| found.value)
    }

    async fn seed_old(old: &O, value: u64) {
        old.put(&K, &value).await.expect("OLD takes a write");
    }

    async fn new_value(new: &N) -> Option<u64> {
        match new.lookup(&K).await.expect("NEW answers") {
            Lookup::Hit(value) => Some(value),
            Lookup::Deleted | Lookup::Miss | Lookup::Pending { .. } => None,
        }
    }
}

impl<O: Store<u64, u64>, N: Cache<u64, u64>> Mode for Cached<O, N> {
    type Old = O;
    type New = N;
    type Proxy = CachedProxy<u64, u64, Arc<Stall<O>>, Arc<Stall<N>>>;
    // A write's last step in NEW: the invalidation.
    const NEW_PUT: Call = Call::Invalidate;
    const FILL: Call = Call::Fill;

    fn proxy(old: Arc<Stall<O>>, new: Arc<Stall<N>>, gate: Gate) -> Self::Proxy {
        CachedProxy::new(old, new, gate).with_grace(GRACE).expect("a valid grace")
    }

    async fn old_value(old: &O) -> Option<u64> {
        old.get(&K).await.expect("OLD answers")
    }

    async fn seed_old(old: &O, value: u64) {
        old.put(&K, &value).await.expect("OLD takes a write");
    }

    async fn new_value(new: &N) -> Option<u64> {
        // A probe may issue a lease; that voids nothing a later read relies on.
        match new.probe(&K).await.expect("NEW answers") {
            Probe::Hit(value) => Some(value),
            Probe::Absent | Probe::Leased(_) | Probe::Busy => None,
        }
    }
}

impl<O: Store<u64, u64>, N: Store<u64, u64>> Mode for Unversioned<O, N> {
    type Old = O;
    type New = N;
    type Proxy = Proxy<u64, u64, Arc<Stall<O>>, Arc<Stall<N>>>;
    const NEW_PUT: Call = Call::Put;
    const FILL: Call = Call::Insert;

    fn proxy(old: Arc<Stall<O>>, new: Arc<Stall<N>>, gate: Gate) -> Self::Proxy {
        Proxy::new(old, new, gate)
    }

    async fn old_value(old: &O) -> Option<u64> {
        old.get(&K).await.expect("OLD answers")
    }

    async fn seed_old(old: &O, value: u64) {
        old.put(&K, &value).await.expect("OLD takes a write");
    }

    async fn new_value(new: &N) -> Option<u64> {
        new.get(&K).await.expect("NEW answers")
    }
}

impl<O: Source<u64, u64>, N: Target<u64, u64>> Instance for VersionedProxy<u64, u64, O, N> {
    async fn get(&self, key: u64) -> Result<Option<u64>, Error> {
        VersionedProxy::get(self, &key).await
    }
    async fn put(&self, key: u64, value: u64) -> Result<(), Error> {
        VersionedProxy::put(self, &key, &value).await
    }
    async fn delete(&self, key: u64) -> Result<(), Error> {
        VersionedProxy::delete(self, &key).await
    }
}

impl<O: Store<u64, u64>, N: Cache<u64, u64>> Instance for CachedProxy<u64, u64, O, N> {
    async fn get(&self, key: u64) -> Result<Option<u64>, Error> {
        CachedProxy::get(self, &key).await
    }
    async fn put(&self, key: u64, value: u64) -> Result<(), Error> {
        CachedProxy::put(self, &key, &value).await
    }
    async fn delete(&self, key: u64) -> Result<(), Error> {
        CachedProxy::delete(self, &key).await
    }
}

impl<O: Store<u64, u64>, N: Store<u64, u64>> Instance for Proxy<u64, u64, O, N> {
    async fn get(&self, key: u64) -> Result<Option<u64>, Error> {
        Proxy::get(self, &key).await
    }
    async fn put(&self, key: u64, value: u64) -> Result<(), Error> {
        Proxy::put(self, &key, &value).await
    }
    async fn delete(&self, key: u64) -> Result<(), Error> {
        Proxy::delete(self, &key).await
    }
}

/// One instance: its proxy and its own handles (the ones its calls are stalled on).
pub struct Member<M: Mode> {
    pub proxy: M::Proxy,
    pub old: Arc<Stall<M::Old>>,
    pub new: Arc<Stall<M::New>>,
    pub gate: Gate,
}

/// Two instances and a third pair of handles to look at the stores with.
pub struct Fleet<M: Mode> {
    pub a: Member<M>,
    pub b: Member<M>,
    pub old: M::Old,
    pub new: M::New,
}

impl<M: Mode> Fleet<M> {
    /// A fleet over three handle pairs on the same two stores, each instance at a 100 % gate.
    pub fn new(a: (M::Old, M::New), b: (M::Old, M::New), observer: (M::Old, M::New)) -> Self {
        let member = |(old, new): (M::Old, M::New)| {
            let (old, new, gate) =
                (Arc::new(Stall::new(old)), Arc::new(Stall::new(new)), Gate::new("fleet", Rate::ALL));
            Member { proxy: M::proxy(old.clone(), new.clone(), gate.clone()), old, new, gate }
        };
        Fleet { a: member(a), b: member(b), old: observer.0, new: observer.1 }
    }

    /// OLD's and NEW's values now, and reads of the key through both instances after the
    /// interleaving: what [`Seen::violations`] checks.
    pub async fn seen(&self, what: &'static str) -> Seen {
        let old = M::old_value(&self.old).await;
        // NEW first: a read may repair or fill it. Then B, which did not stall (A may know
        // something about the key that B does not), then A.
        let new = M::new_value(&self.new).await;
        let read_b = self.b.proxy.get(K).await.expect("B reads");
        let read_a = self.a.proxy.get(K).await.expect("A reads");
        Seen { what, old, new, reads: vec![read_b, read_a] }
    }
}

/// The state after a scenario, once its writes have quiesced.
#[derive(Debug)]
pub struct Seen {
    pub what: &'static str,
    pub old: Option<u64>,
    pub new: Option<u64>,
    pub reads: Vec<Option<u64>>,
}

impl Seen {
    /// What breaks the invariants: a read that is not OLD's latest value (every write was
    /// acknowledged before it began), and NEW serving a value OLD does not hold.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for read in &self.reads {
            if *read != self.old {
                out.push(format!("{}: stale read {read:?}, OLD holds {:?}", self.what, self.old));
            }
        }
        match (self.new, self.old) {
            (Some(new), None) => out.push(format!("{}: NEW serves {new}, deleted in OLD (resurrection)", self.what)),
            (Some(new), Some(old)) if new != old => {
                out.push(format!("{}: NEW serves {new}, OLD holds {old}", self.what))
            }
            _ => {}
        }
        out
    }
}

/// Runs `paused` until it blocks at its paused call, then `competitor` to its end, then lets
/// `paused` go on. The instances share no lock, so the competitor never waits for the paused one.
pub async fn while_paused<A: Future, B: Future>(paused: A, pause: Pause, competitor: B) -> (A::Output, B::Output) {
    let mut paused = std::pin::pin!(paused);
    tokio::select! {
        biased;
        _ = &mut paused => panic!("the paused operation finished without reaching its pause"),
        () = pause.reached() => {}
    }
    let competitor = competitor.await;
    pause.release();
    (paused.await, competitor)
}

/// 3. Put vs put: A puts a1 to OLD and stalls; B puts b1 to OLD and NEW; A writes a1 to NEW.
pub async fn put_vs_put<M: Mode>(fleet: &Fleet<M>) -> Seen {
    fleet.a.proxy.put(K, 0).await.unwrap();
    let pause = fleet.a.new.pause_next(M::NEW_PUT);
    let (a, b) = while_paused(fleet.a.proxy.put(K, 1), pause, fleet.b.proxy.put(K, 2)).await;
    a.unwrap();
    b.unwrap();
    fleet.seen("put vs put").await
}

/// 4. Put vs delete: B puts b1 to OLD and stalls; A deletes from both; B writes b1 to NEW.
pub async fn put_vs_delete<M: Mode>(fleet: &Fleet<M>) -> Seen {
    fleet.b.proxy.put(K, 0).await.unwrap();
    let pause = fleet.b.new.pause_next(M::NEW_PUT);
    let (b, a) = while_paused(fleet.b.proxy.put(K, 1), pause, fleet.a.proxy.delete(K)).await;
    b.unwrap();
    a.unwrap();
    fleet.seen("put vs delete").await
}

/// 5. Read-through vs delete: A misses, reads v0 from OLD and stalls; B deletes from both; A copies
///    v0 into NEW.
pub async fn read_through_vs_delete<M: Mode>(fleet: &Fleet<M>) -> Seen {
    M::seed_old(&fleet.old, 0).await;
    let pause = fleet.a.new.pause_next(M::FILL);
    let (read, b) = while_paused(fleet.a.proxy.get(K), pause, fleet.b.proxy.delete(K)).await;
    assert_eq!(read.unwrap(), Some(0), "the read began before the delete");
    b.unwrap();
    fleet.seen("read-through vs delete").await
}

/// 6. Abandoned write: A's put of a2 is dropped after OLD took it; B reads.
pub async fn abandoned_write<M: Mode>(fleet: &Fleet<M>) -> Seen {
    fleet.a.proxy.put(K, 1).await.unwrap();
    // A read, so that NEW holds a1 in every mode (unversioned mode caches only what reads copy).
    assert_eq!(fleet.b.proxy.get(K).await.unwrap(), Some(1));
    let pause = fleet.a.new.pause_next(M::NEW_PUT);
    let mut put = Box::pin(fleet.a.proxy.put(K, 2));
    tokio::select! {
        biased;
        _ = &mut put => panic!("the put finished without reaching NEW"),
        () = pause.reached() => {}
    }
    // Dropped once OLD has taken the write, as when the instance dies there.
    drop(put);
    fleet.seen("abandoned write").await
}
