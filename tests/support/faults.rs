//! A store wrapper for fault injection — the only mock in the suite, and only a wrapper: every
//! operation it lets through goes to the real store inside. It counts calls per operation, injects
//! failures (before the store applies the operation, or after it applied it: the "unknown effect"
//! of a timeout), and pauses chosen calls so a test can force an interleaving.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use zddm::{Op, Store};

/// When an injected failure strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The store does not apply the operation and returns an error.
    Before,
    /// The store applies the operation, then the caller gets an error (a timeout after commit).
    After,
}

/// The error an injected failure returns.
#[derive(Debug, thiserror::Error)]
#[error("injected {fault:?} failure of {op}")]
pub struct Injected {
    pub op: Op,
    pub fault: Fault,
}

#[derive(Default)]
struct Plan {
    /// One-shot faults, consumed by the next matching call, in order.
    next: VecDeque<(Option<Op>, Fault)>,
    /// A standing outage: every matching call fails until healed.
    outage: Option<(Option<Op>, Fault)>,
    pauses: Vec<(Op, Arc<PauseState>)>,
}

#[derive(Default)]
pub(crate) struct PauseState {
    pub(crate) reached: Notify,
    pub(crate) release: Notify,
}

/// A paused call: wait until a call reaches it, then let it go on.
pub struct Pause(pub(crate) Arc<PauseState>);

impl Pause {
    /// Waits until the paused call has been made (it is then blocked before reaching the store).
    pub async fn reached(&self) {
        self.0.reached.notified().await;
    }

    /// Lets the paused call go on to the store.
    pub fn release(&self) {
        self.0.release.notify_one();
    }
}

/// See the module docs.
pub struct Faulty<S> {
    inner: S,
    plan: Mutex<Plan>,
    calls: [AtomicUsize; 4],
    in_flight: AtomicUsize,
}

/// One call in flight, from its arrival (before any pause) until it returns or is dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn index(op: Op) -> usize {
    match op {
        Op::Get => 0,
        Op::Put => 1,
        Op::Insert => 2,
        Op::Delete => 3,
        // Versioned-mode operations: this wrapper serves the unversioned `Store` only.
        _ => 3,
    }
}

impl<S> Faulty<S> {
    pub fn new(inner: S) -> Self {
        Faulty { inner, plan: Mutex::default(), calls: Default::default(), in_flight: AtomicUsize::new(0) }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The next call of `op` (any op if `None`) fails.
    pub fn fail_next(&self, op: Option<Op>, fault: Fault) {
        self.plan.lock().unwrap().next.push_back((op, fault));
    }

    /// Every call of `op` (any op if `None`) fails until [`heal`](Faulty::heal).
    pub fn outage(&self, op: Option<Op>, fault: Fault) {
        self.plan.lock().unwrap().outage = Some((op, fault));
    }

    /// Ends the outage and drops pending one-shot faults.
    pub fn heal(&self) {
        let mut plan = self.plan.lock().unwrap();
        plan.outage = None;
        plan.next.clear();
    }

    /// The next call of `op` blocks before reaching the store until released.
    pub fn pause_next(&self, op: Op) -> Pause {
        let state = Arc::new(PauseState::default());
        self.plan.lock().unwrap().pauses.push((op, Arc::clone(&state)));
        Pause(state)
    }

    /// How many calls of `op` were made (including failed ones).
    pub fn calls(&self, op: Op) -> usize {
        self.calls[index(op)].load(Ordering::SeqCst)
    }

    /// Calls of every operation.
    pub fn total_calls(&self) -> usize {
        self.calls.iter().map(|c| c.load(Ordering::SeqCst)).sum()
    }

    /// Calls made and not yet returned, paused ones included. A caller that is pending while none
    /// of its calls is in flight is waiting for something else: a lock, say.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(&self.in_flight)
    }

    async fn before(&self, op: Op) -> Option<Fault> {
        self.calls[index(op)].fetch_add(1, Ordering::SeqCst);
        let (pause, fault) = {
            let mut plan = self.plan.lock().unwrap();
            let pause = plan.pauses.iter().position(|(o, _)| *o == op).map(|i| plan.pauses.remove(i).1);
            let matches = |target: &Option<Op>| target.is_none_or(|t| t == op);
            let fault = match plan.next.iter().position(|(o, _)| matches(o)) {
                Some(i) => plan.next.remove(i).map(|(_, f)| f),
                None => plan.outage.filter(|(o, _)| matches(o)).map(|(_, f)| f),
            };
            (pause, fault)
        };
        if let Some(pause) = pause {
            pause.reached.notify_one();
            pause.release.notified().await;
        }
        fault
    }
}

fn settle<T>(op: Op, fault: Option<Fault>, result: Result<T, Injected>) -> Result<T, Injected> {
    match fault {
        Some(Fault::After) => Err(Injected { op, fault: Fault::After }),
        _ => result,
    }
}

impl<K: ?Sized + Sync, V: Send + Sync, S: Store<K, V>> Store<K, V> for Faulty<S> {
    type Error = Injected;

    async fn get(&self, key: &K) -> Result<Option<V>, Injected> {
        let _call = self.enter();
        let fault = self.before(Op::Get).await;
        if fault == Some(Fault::Before) {
            return Err(Injected { op: Op::Get, fault: Fault::Before });
        }
        let result = self.inner.get(key).await.map_err(|_| Injected { op: Op::Get, fault: Fault::Before });
        settle(Op::Get, fault, result)
    }

    async fn put(&self, key: &K, value: &V) -> Result<(), Injected> {
        let _call = self.enter();
        let fault = self.before(Op::Put).await;
        if fault == Some(Fault::Before) {
            return Err(Injected { op: Op::Put, fault: Fault::Before });
        }
        let result = self.inner.put(key, value).await.map_err(|_| Injected { op: Op::Put, fault: Fault::Before });
        settle(Op::Put, fault, result)
    }

    async fn insert_if_absent(&self, key: &K, value: &V) -> Result<bool, Injected> {
        let _call = self.enter();
        let fault = self.before(Op::Insert).await;
        if fault == Some(Fault::Before) {
            return Err(Injected { op: Op::Insert, fault: Fault::Before });
        }
        let result = self
            .inner
            .insert_if_absent(key, value)
            .await
            .map_err(|_| Injected { op: Op::Insert, fault: Fault::Before });
        settle(Op::Insert, fault, result)
    }

    async fn delete(&self, key: &K) -> Result<(), Injected> {
        let _call = self.enter();
        let fault = self.before(Op::Delete).await;
        if fault == Some(Fault::Before) {
            return Err(Injected { op: Op::Delete, fault: Fault::Before });
        }
        let result = self.inner.delete(key).await.map_err(|_| Injected { op: Op::Delete, fault: Fault::Before });
        settle(Op::Delete, fault, result)
    }
}

/// Scans pass through, unfaulted and uncounted: a backfill or a verification reads keys this way,
/// and the faults are for the proxy's own calls.
impl<K, S: zddm::cached::ScanKeys<K>> zddm::cached::ScanKeys<K> for Faulty<S> {
    type Error = S::Error;

    fn scan_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<zddm::versioned::Page<K, ()>, S::Error>> + Send {
        self.inner.scan_keys(after, limit)
    }
}
