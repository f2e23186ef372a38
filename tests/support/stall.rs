//! One instance's handle on a shared store, with the power to stall or fail its calls: the fleet
//! tests give each instance its own `Stall`, so pausing instance A's call to NEW leaves instance
//! B's calls to the very same store untouched — as with two processes. Only a wrapper: every call
//! it lets through goes to the real store inside. Works for the unversioned [`Store`], both sides of
//! versioned mode and unversioned mode's cache. It reports no store timeout, so tests may use grace
//! periods shorter than the real store's timeouts, to see repairs happen within a test.

use std::sync::{Arc, Mutex};

use zddm::cached::{Cache, Probe};
use zddm::versioned::{Change, Filled, Lookup, Page, Scan, ScanSlots, Source, Target, Versioned};
use zddm::Store;

use crate::faults::{Fault, Injected, Pause, PauseState};

/// A store call, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Get,
    Put,
    Insert,
    Delete,
    Lookup,
    Mark,
    Apply,
    Fill,
    NextVersion,
    Probe,
    Invalidate,
    Scan,
}

impl Call {
    fn op(self) -> zddm::Op {
        match self {
            Call::Get | Call::Lookup | Call::Probe => zddm::Op::Get,
            Call::Put | Call::Apply | Call::NextVersion => zddm::Op::Put,
            Call::Insert => zddm::Op::Insert,
            Call::Delete | Call::Invalidate => zddm::Op::Delete,
            Call::Mark => zddm::Op::Mark,
            Call::Fill => zddm::Op::Fill,
            Call::Scan => zddm::Op::Scan,
        }
    }
}

#[derive(Default)]
struct Plan {
    pauses: Vec<(Call, Arc<PauseState>)>,
    faults: Vec<(Call, Fault)>,
}

/// See the module docs.
pub struct Stall<S> {
    inner: S,
    plan: Mutex<Plan>,
    chaos: Mutex<Option<Chaos>>,
}

/// Random failures and delays on every call: for the stress tests.
#[derive(Debug, Clone, Copy)]
pub struct Chaos {
    /// Per million calls, how many fail before reaching the store.
    pub fail_before_ppm: u64,
    /// Per million calls, how many fail after the store applied them (an ambiguous timeout).
    pub fail_after_ppm: u64,
    /// Per million calls, how many are held up for up to `max_delay`, giving other calls (and
    /// cancellations) a chance to cut in.
    pub delay_ppm: u64,
    /// The longest delay.
    pub max_delay: std::time::Duration,
    /// The random state (xorshift64*, non-zero).
    pub seed: u64,
}

impl<S> Stall<S> {
    pub fn new(inner: S) -> Self {
        Stall { inner, plan: Mutex::default(), chaos: Mutex::new(None) }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The next `call` blocks before reaching the store until released.
    pub fn pause_next(&self, call: Call) -> Pause {
        let state = Arc::new(PauseState::default());
        self.plan.lock().unwrap().pauses.push((call, Arc::clone(&state)));
        Pause(state)
    }

    /// The next `call` fails: before the store applies it, or after (an ambiguous timeout).
    pub fn fail_next(&self, call: Call, fault: Fault) {
        self.plan.lock().unwrap().faults.push((call, fault));
    }

    /// Random faults and delays on every call from now on (`None`: stop).
    pub fn chaos(&self, chaos: Option<Chaos>) {
        *self.chaos.lock().unwrap() = chaos;
    }

    /// A random fault and delay for one call, if chaos is on.
    fn roll(&self) -> (Option<Fault>, Option<std::time::Duration>) {
        let mut chaos = self.chaos.lock().unwrap();
        let Some(chaos) = chaos.as_mut() else { return (None, None) };
        let mut next = || {
            chaos.seed ^= chaos.seed >> 12;
            chaos.seed ^= chaos.seed << 25;
            chaos.seed ^= chaos.seed >> 27;
            chaos.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11
        };
        let (draw, delay, length) = (next() % 1_000_000, next() % 1_000_000, next());
        let fault = if draw < chaos.fail_before_ppm {
            Some(Fault::Before)
        } else if draw < chaos.fail_before_ppm + chaos.fail_after_ppm {
            Some(Fault::After)
        } else {
            None
        };
        let max = chaos.max_delay.as_micros().max(1) as u64;
        let delay = (delay < chaos.delay_ppm).then(|| std::time::Duration::from_micros(length % max));
        (fault, delay)
    }

    async fn before(&self, call: Call) -> Result<Option<Fault>, Injected> {
        let (random_fault, delay) = self.roll();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if random_fault == Some(Fault::Before) {
            return Err(Injected { op: call.op(), fault: Fault::Before });
        }
        let (pause, fault) = {
            let mut plan = self.plan.lock().unwrap();
            let pause = plan.pauses.iter().position(|(c, _)| *c == call).map(|i| plan.pauses.remove(i).1);
            let fault = plan.faults.iter().position(|(c, _)| *c == call).map(|i| plan.faults.remove(i).1);
            (pause, fault)
        };
        if let Some(pause) = pause {
            pause.reached.notify_one();
            pause.release.notified().await;
        }
        match fault {
            Some(Fault::Before) => Err(Injected { op: call.op(), fault: Fault::Before }),
            other => Ok(other.or(random_fault)),
        }
    }

    async fn call<T, E>(
        &self,
        call: Call,
        run: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, Injected> {
        let fault = self.before(call).await?;
        let result = run.await.map_err(|_| Injected { op: call.op(), fault: Fault::Before });
        match fault {
            Some(Fault::After) => Err(Injected { op: call.op(), fault: Fault::After }),
            _ => result,
        }
    }
}

impl<K: ?Sized + Sync, V: Send + Sync, S: Store<K, V>> Store<K, V> for Stall<S> {
    type Error = Injected;

    async fn get(&self, key: &K) -> Result<Option<V>, Injected> {
        self.call(Call::Get, self.inner.get(key)).await
    }

    async fn put(&self, key: &K, value: &V) -> Result<(), Injected> {
        self.call(Call::Put, self.inner.put(key, value)).await
    }

    async fn insert_if_absent(&self, key: &K, value: &V) -> Result<bool, Injected> {
        self.call(Call::Insert, self.inner.insert_if_absent(key, value)).await
    }

    async fn delete(&self, key: &K) -> Result<(), Injected> {
        self.call(Call::Delete, self.inner.delete(key)).await
    }
}

impl<K: ?Sized + Sync, V: Send + Sync, S: Source<K, V>> Source<K, V> for Stall<S> {
    type Error = Injected;

    async fn get(&self, key: &K) -> Result<Option<Versioned<V>>, Injected> {
        self.call(Call::Get, self.inner.get(key)).await
    }

    async fn put(&self, key: &K, value: &V) -> Result<u64, Injected> {
        self.call(Call::Put, self.inner.put(key, value)).await
    }

    async fn delete(&self, key: &K) -> Result<u64, Injected> {
        self.call(Call::Delete, self.inner.delete(key)).await
    }

    async fn next_version(&self, key: &K) -> Result<u64, Injected> {
        self.call(Call::NextVersion, self.inner.next_version(key)).await
    }
}

impl<K: Send + Sync, V: Send + Sync, S: Scan<K, V>> Scan<K, V> for Stall<S> {
    async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Versioned<V>>, Injected> {
        self.call(Call::Scan, self.inner.scan(after, limit)).await
    }

    async fn estimate(&self) -> Result<Option<u64>, Injected> {
        self.inner.estimate().await.map_err(|_| Injected { op: zddm::Op::Scan, fault: Fault::Before })
    }
}

impl<K: Send + Sync, S: zddm::cached::ScanKeys<K>> zddm::cached::ScanKeys<K> for Stall<S> {
    type Error = Injected;

    async fn scan_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, ()>, Injected> {
        self.call(Call::Scan, self.inner.scan_keys(after, limit)).await
    }
}

impl<K: Send + Sync, V: Send + Sync, S: ScanSlots<K, V>> ScanSlots<K, V> for Stall<S> {
    async fn scan_slots(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Lookup<V>>, Injected> {
        self.call(Call::Scan, self.inner.scan_slots(after, limit)).await
    }
}

impl<K: ?Sized + Sync, V: Send + Sync, S: Target<K, V>> Target<K, V> for Stall<S> {
    type Error = Injected;

    async fn lookup(&self, key: &K) -> Result<Lookup<V>, Injected> {
        self.call(Call::Lookup, self.inner.lookup(key)).await
    }

    async fn mark(&self, key: &K, grace_ms: u64) -> Result<(), Injected> {
        self.call(Call::Mark, self.inner.mark(key, grace_ms)).await
    }

    async fn apply(&self, key: &K, change: Change<&V>, version: u64, settle: bool) -> Result<(), Injected> {
        self.call(Call::Apply, self.inner.apply(key, change, version, settle)).await
    }

    async fn fill(&self, key: &K, value: Option<&V>, version: u64, token: Option<u64>) -> Result<Filled, Injected> {
        self.call(Call::Fill, self.inner.fill(key, value, version, token)).await
    }

    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, Injected> {
        self.inner.pending_keys(after, limit).await.map_err(|_| Injected { op: zddm::Op::Get, fault: Fault::Before })
    }

    async fn purge(&self, older_than_ms: u64) -> Result<usize, Injected> {
        self.inner.purge(older_than_ms).await.map_err(|_| Injected { op: zddm::Op::Delete, fault: Fault::Before })
    }
}

impl<K: ?Sized + Sync, V: Send + Sync, S: Cache<K, V>> Cache<K, V> for Stall<S> {
    type Error = Injected;

    async fn probe(&self, key: &K) -> Result<Probe<V>, Injected> {
        self.call(Call::Probe, self.inner.probe(key)).await
    }

    async fn mark(&self, key: &K, grace_ms: u64) -> Result<(), Injected> {
        self.call(Call::Mark, self.inner.mark(key, grace_ms)).await
    }

    async fn invalidate(&self, key: &K, settle: bool) -> Result<(), Injected> {
        self.call(Call::Invalidate, self.inner.invalidate(key, settle)).await
    }

    async fn fill(&self, key: &K, value: Option<&V>, token: u64) -> Result<bool, Injected> {
        self.call(Call::Fill, self.inner.fill(key, value, token)).await
    }

    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, Injected> {
        self.inner.pending_keys(after, limit).await.map_err(|_| Injected { op: zddm::Op::Get, fault: Fault::Before })
    }
}
