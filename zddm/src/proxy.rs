//! The runtime proxy: gated read-through / write-through / delete from OLD to NEW.

mod blocking;
mod lock;
mod pass;
mod phase;
pub(crate) mod stats;

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

pub use blocking::{block_on, BlockingProxy};
pub use phase::{Phase, PhaseError};
pub use stats::Stats;

use crate::error::{Error, Op, Side};
use crate::gate::{Admission, Gate};
use crate::key::MigrationKey;
use crate::rate::Rate;
use crate::store::Store;
use crate::verify::Evidence;
use lock::{Intent, Locks};
use stats::{bump, Counters};

/// Routes every read and write of a key between the OLD and the NEW store.
///
/// For keys the [`Gate`] admits (in the [`ReadThrough`](Phase::ReadThrough) phase, the default):
/// a read tries NEW, and on a miss reads OLD and copies the value into NEW with a conditional insert;
/// a write goes to OLD, then NEW; a delete removes the key from both. Other keys go to OLD only, and
/// their writes invalidate NEW's copy if the gate's high-water mark ever admitted them, so lowering
/// the gate is safe in every phase before `Complete` and raising it again never serves stale data
/// (the table on [`Phase`] gives every phase; in `Complete` the gate stays at 100 %).
///
/// Within a process, every write and read-through of a key is serialised, so no interleaving of
/// concurrent calls, gate or phase changes, dropped futures or store failures lets NEW serve a value
/// older than OLD's (`docs/consistency.md` states the guarantees exactly). A NEW failure never fails a
/// read that OLD can serve.
///
/// Clones share everything: stores, gate, phase, locks and stats.
///
/// ```
/// use std::sync::Arc;
/// use zddm::{Gate, MemoryStore, Proxy, Rate, Store};
///
/// # zddm::block_on(async {
/// let old = Arc::new(MemoryStore::<u64, String>::new());
/// let new = Arc::new(MemoryStore::<u64, String>::new());
/// old.put(&1, &"from OLD".to_string()).await?;
///
/// let proxy = Proxy::new(old.clone(), new.clone(), Gate::new("users", Rate::ALL));
/// assert_eq!(proxy.get(&1).await?, Some("from OLD".to_string())); // read through, copied into NEW
/// assert_eq!(new.get(&1).await?, Some("from OLD".to_string()));
/// assert_eq!(proxy.get(&1).await?, Some("from OLD".to_string())); // served by NEW
/// assert_eq!(proxy.stats().old_read_ratio(), 0.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct Proxy<K: ?Sized, V, Old, New> {
    inner: Arc<Inner<K, V, Old, New>>,
}

type MismatchHook<K, V> = Box<dyn Fn(&Mismatch<'_, K, V>) + Send + Sync>;

struct Inner<K: ?Sized, V, Old, New> {
    old: Old,
    new: New,
    gate: Gate,
    phase: AtomicU8,
    locks: Locks,
    stats: Counters,
    shadow_sample: AtomicU32,
    shadow_draws: AtomicU64,
    on_mismatch: Option<MismatchHook<K, V>>,
    evidence: Evidence,
    key: PhantomData<fn(&K)>,
}

/// A shadow read where NEW disagreed with OLD: passed to the hook set with
/// [`ProxyBuilder::on_mismatch`]. OLD's value is the one served.
#[derive(Debug)]
#[non_exhaustive]
pub struct Mismatch<'a, K: ?Sized, V> {
    /// The key read.
    pub key: &'a K,
    /// OLD's value.
    pub old: Option<&'a V>,
    /// NEW's value (which the proxy then invalidated).
    pub new: Option<&'a V>,
}

/// Options for a [`Proxy`]; start with [`Proxy::builder`].
pub struct ProxyBuilder<K: ?Sized, V, Old, New> {
    old: Old,
    new: New,
    gate: Gate,
    phase: Phase,
    stripes: usize,
    shadow_sample: Rate,
    on_mismatch: Option<MismatchHook<K, V>>,
}

/// Why a [`ProxyBuilder`] could not build a proxy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Lock stripes are indexed by bucket bits.
    #[error("{count} lock stripes: use a power of two from 1 to 2^20, e.g. 1024")]
    Stripes {
        /// The refused count.
        count: usize,
    },
    /// The starting phase is not allowed with the gate's rate.
    #[error(transparent)]
    Phase(#[from] PhaseError),
    /// A fleet proxy's grace period must outlast the stores' own timeouts twice: a write abandoned
    /// by its caller may still land that late, and a repair must not come first.
    #[error(
        "a grace period of {grace:?} is too short for stores whose operations may run for {timeout:?}: \
         use at least twice that (the default, 30 s, is)"
    )]
    GraceBelowTimeout {
        /// The refused period.
        grace: std::time::Duration,
        /// The stores' longest operation.
        timeout: std::time::Duration,
    },
    /// A versioned proxy's grace period must be whole milliseconds, at least one.
    #[error("a grace period of {grace:?}: use whole milliseconds, at least 1 ms (the default is 30 s)")]
    Grace {
        /// The refused period.
        grace: std::time::Duration,
    },
}

const DEFAULT_STRIPES: usize = 1024;
const MAX_STRIPES: usize = 1 << 20;

impl<K: ?Sized, V, Old, New> ProxyBuilder<K, V, Old, New> {
    /// The phase the proxy starts in (default [`Phase::ReadThrough`]).
    pub fn phase(mut self, phase: Phase) -> Self {
        self.phase = phase;
        self
    }

    /// How many lock stripes serialise keys (default 1024; a power of two). More stripes mean fewer
    /// unrelated keys waiting on each other's writes.
    pub fn stripes(mut self, count: usize) -> Self {
        self.stripes = count;
        self
    }

    /// The share of admitted reads that the [`Shadow`](Phase::Shadow) phase compares with NEW
    /// (default all). The others are served by OLD without reading NEW.
    pub fn shadow_sample(mut self, rate: Rate) -> Self {
        self.shadow_sample = rate;
        self
    }

    /// Called for every shadow read where NEW disagrees with OLD. Keep it cheap: it runs inline, with
    /// the key locked.
    pub fn on_mismatch(mut self, hook: impl Fn(&Mismatch<'_, K, V>) + Send + Sync + 'static) -> Self {
        self.on_mismatch = Some(Box::new(hook));
        self
    }

    /// The proxy, or why these options do not make one.
    pub fn build(self) -> Result<Proxy<K, V, Old, New>, ConfigError> {
        if !self.stripes.is_power_of_two() || self.stripes > MAX_STRIPES {
            return Err(ConfigError::Stripes { count: self.stripes });
        }
        // Starting in a phase is not a transition (a restarted process may start in `Complete`): only
        // the gate rate is checked, and in `Complete` fixed at 100 %.
        Phase::check_start(self.phase, self.gate.rate())?;
        if self.phase == Phase::Complete {
            self.gate.fix_for_complete().map_err(|rate| PhaseError::NeedsFullRate { phase: Phase::Complete, rate })?;
        }
        Ok(self.assemble())
    }

    fn assemble(self) -> Proxy<K, V, Old, New> {
        Proxy {
            inner: Arc::new(Inner {
                old: self.old,
                new: self.new,
                gate: self.gate,
                phase: AtomicU8::new(self.phase.index()),
                locks: Locks::new(self.stripes),
                stats: Counters::default(),
                shadow_sample: AtomicU32::new(self.shadow_sample.ppm()),
                shadow_draws: AtomicU64::new(0),
                on_mismatch: self.on_mismatch,
                evidence: Evidence::default(),
                key: PhantomData,
            }),
        }
    }
}

/// Where a read goes.
#[derive(Clone, Copy)]
enum ReadRoute {
    /// OLD only.
    Old,
    /// NEW, then OLD with a copy into NEW on a miss; the key's bucket if the gate hashed it.
    Through(Option<u64>),
    /// OLD, compared with NEW; the key's bucket if the gate hashed it.
    Shadow(Option<u64>),
    /// NEW only (with the repair of a key left in doubt).
    Complete,
}

/// Where a write goes, decided with the key locked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    /// OLD only; NEW never had the key.
    Old,
    /// OLD, then invalidate NEW's copy.
    OldInvalidate,
    /// OLD, then NEW.
    Both,
    /// NEW only.
    New,
}

enum Write<'v, V> {
    Put(&'v V),
    Delete,
}

// By hand: a derive would require `V: Copy`, but only a reference is copied.
impl<V> Clone for Write<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Write<'_, V> {}

impl<V> Write<'_, V> {
    fn op(&self) -> Op {
        match self {
            Write::Put(_) => Op::Put,
            Write::Delete => Op::Delete,
        }
    }
}

impl<K: ?Sized, V, Old, New> Proxy<K, V, Old, New> {
    /// A proxy in the [`ReadThrough`](Phase::ReadThrough) phase with default options.
    pub fn new(old: Old, new: New, gate: Gate) -> Self
    where
        Old: Store<K, V>,
        New: Store<K, V>,
    {
        // ReadThrough and the default stripe count are valid with any gate: nothing to check.
        Proxy::builder(old, new, gate).assemble()
    }

    /// Options beyond [`Proxy::new`]'s defaults.
    pub fn builder(old: Old, new: New, gate: Gate) -> ProxyBuilder<K, V, Old, New>
    where
        Old: Store<K, V>,
        New: Store<K, V>,
    {
        ProxyBuilder {
            old,
            new,
            gate,
            phase: Phase::ReadThrough,
            stripes: DEFAULT_STRIPES,
            shadow_sample: Rate::ALL,
            on_mismatch: None,
        }
    }

    /// The gate deciding which keys take part. Change its rate at any time before `Complete`; from
    /// `Complete` on it stays at 100 % ([`Gate::set_rate`] refuses to lower it).
    pub fn gate(&self) -> &Gate {
        &self.inner.gate
    }

    /// The OLD store.
    pub fn old(&self) -> &Old {
        &self.inner.old
    }

    /// The NEW store.
    pub fn new_store(&self) -> &New {
        &self.inner.new
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_index(self.inner.phase.load(Ordering::Acquire))
    }

    /// The gate's rates and the phase, as a plan (the form a [`Report`](crate::verify::Report)
    /// records).
    pub fn plan(&self) -> crate::fleet::Plan {
        let (rate, high) = self.inner.gate.rates();
        crate::fleet::Plan::local(self.phase(), rate, high)
    }

    /// Moves to `phase`, for this proxy and every clone, and returns the previous phase. Moving to
    /// the phase the proxy is in changes nothing and is always accepted.
    ///
    /// Refused: entering [`Live`](Phase::Live) or [`Complete`](Phase::Complete) while the gate
    /// admits less than 100 %, leaving `Complete`, and entering it from `Live` unless earned: no key may be in
    /// doubt ([`keys_in_doubt`](Proxy::keys_in_doubt)), and a whole
    /// [`Verify`](crate::verify::Verify) pass begun in `Live`, with no phase change since, must
    /// have found NEW clean ([`PhaseError::Unverified`]; a [`Backfill`](crate::backfill::Backfill)
    /// copies what reads did not). Operations already past their routing decision finish under the
    /// phase they started in; each is safe in either. Entering `Complete` fixes the gate at 100 %.
    pub fn set_phase(&self, phase: Phase) -> Result<Phase, PhaseError> {
        // Every change runs under the evidence's mutex, so the phase cannot change between the
        // checks and the store.
        self.inner.evidence.change(phase, |earned| {
            let current = self.phase();
            Phase::check_transition(current, phase, self.inner.gate.rate())?;
            if phase == Phase::Complete && current == Phase::Live {
                let count = self.keys_in_doubt();
                if count > 0 {
                    return Err(PhaseError::KeysInDoubt { count });
                }
                if !earned {
                    return Err(PhaseError::Unverified);
                }
            }
            if phase == Phase::Complete {
                // Atomically with the check of the rate: from here no one can lower it.
                let gate = &self.inner.gate;
                gate.fix_for_complete().map_err(|rate| PhaseError::NeedsFullRate { phase, rate })?;
            }
            self.inner.phase.store(phase.index(), Ordering::Release);
            Ok(current)
        })
    }

    pub(crate) fn evidence(&self) -> &Evidence {
        &self.inner.evidence
    }

    /// Sets the share of admitted reads the shadow phase compares (see [`ProxyBuilder::shadow_sample`]).
    pub fn set_shadow_sample(&self, rate: Rate) {
        self.inner.shadow_sample.store(rate.ppm(), Ordering::Release);
    }

    /// Counters of what the proxy did so far.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }

    /// How many keys this process currently holds in doubt: a write was abandoned before it settled
    /// NEW (cancelled, or NEW and its invalidation failed), or, in `Live`, had to remove NEW's copy.
    /// Each is repaired by its next read or write; `Complete` waits until there are none.
    pub fn keys_in_doubt(&self) -> usize {
        self.inner.locks.abandoned()
    }
}

impl<K, V, Old, New> Proxy<K, V, Old, New>
where
    K: MigrationKey + ?Sized + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Store<K, V>,
    New: Store<K, V>,
{
    /// Reads `key`: from NEW if the gate admits it and NEW has it, otherwise from OLD (copying the
    /// value into NEW when the key is admitted). Fails only if the store that must serve the read
    /// fails: OLD, or NEW for an admitted key in `Live`, and for every key in `Complete`.
    pub async fn get(&self, key: &K) -> Result<Option<V>, Error> {
        match self.read_route(self.phase(), key) {
            // Awaited inline rather than through `read_old`: one state machine fewer on the most
            // common route, every gate-closed read (measured: docs/performance.md).
            ReadRoute::Old => {
                let value = self.inner.old.get(key).await.map_err(|e| self.fail(Side::Old, Op::Get, e))?;
                bump(&self.inner.stats.reads_from_old);
                Ok(value)
            }
            ReadRoute::Through(bucket) => self.read_through(key, bucket).await,
            // Boxed, here and in `read_through`: the locked paths hold several store futures, and
            // keeping them out of this future keeps it small for the common routes.
            ReadRoute::Shadow(bucket) => {
                Box::pin(self.read_shadow(key, bucket.unwrap_or_else(|| self.inner.gate.bucket(key)))).await
            }
            ReadRoute::Complete => self.read_complete(key, None).await,
        }
    }

    /// Writes `value` under `key`: to OLD, then to NEW if the gate admits the key. Returns once both
    /// are settled. If NEW fails, its copy is invalidated and the write succeeds (OLD has it); if the
    /// invalidation fails too, [`Error::Indeterminate`].
    pub async fn put(&self, key: &K, value: &V) -> Result<(), Error> {
        self.write(key, Write::Put(value)).await
    }

    /// Deletes `key` from OLD, then from NEW. A concurrent read-through cannot bring it back.
    pub async fn delete(&self, key: &K) -> Result<(), Error> {
        self.write(key, Write::Delete).await
    }

    fn read_route(&self, phase: Phase, key: &K) -> ReadRoute {
        if phase == Phase::Complete {
            return ReadRoute::Complete;
        }
        if !matches!(phase, Phase::Shadow | Phase::ReadThrough | Phase::Live) {
            return ReadRoute::Old;
        }
        // A key the gate cannot encode is never admitted, so it has no copy in NEW.
        let Some((admission, bucket)) = self.inner.gate.decide(key) else { return ReadRoute::Old };
        match (phase, admission) {
            (Phase::Shadow, Admission::Admitted) if self.sampled() => ReadRoute::Shadow(bucket),
            // In `Live` too: a key the gate no longer admits is read from OLD, which `Live` still
            // writes first, so it holds every acknowledged write.
            (Phase::ReadThrough | Phase::Live, Admission::Admitted) => ReadRoute::Through(bucket),
            _ => ReadRoute::Old,
        }
    }

    /// The key's bucket if its stripe may hold a key in doubt. Only then is the key hashed (unless
    /// `known` already is its bucket): while no key is in doubt anywhere, no read needs its stripe.
    fn doubtful_bucket(&self, key: &K, known: Option<u64>) -> Option<u64> {
        if self.inner.locks.abandoned() == 0 {
            return None;
        }
        let bucket = known.or_else(|| self.inner.gate.try_bucket(key).ok())?;
        self.inner.locks.stripe(bucket).maybe_abandoned().then_some(bucket)
    }

    fn reads_through(&self, phase: Phase, bucket: u64) -> bool {
        match phase {
            Phase::Live | Phase::ReadThrough => self.admitted(bucket),
            _ => false,
        }
    }

    fn admitted(&self, bucket: u64) -> bool {
        self.inner.gate.admission_for_bucket(bucket) == Admission::Admitted
    }

    fn sampled(&self) -> bool {
        let rate = Rate::from_ppm(self.inner.shadow_sample.load(Ordering::Acquire)).unwrap_or(Rate::ALL);
        rate == Rate::ALL || rate.admits_bucket(splitmix64(self.inner.shadow_draws.fetch_add(1, Ordering::Relaxed)))
    }

    fn fail(&self, side: Side, op: Op, error: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.inner.stats.fail(side, op, error)
    }

    async fn read_old(&self, key: &K) -> Result<Option<V>, Error> {
        let value = self.inner.old.get(key).await.map_err(|e| self.fail(Side::Old, Op::Get, e))?;
        bump(&self.inner.stats.reads_from_old);
        Ok(value)
    }

    async fn read_complete(&self, key: &K, bucket: Option<u64>) -> Result<Option<V>, Error> {
        match self.doubtful_bucket(key, bucket) {
            Some(bucket) => Box::pin(self.repair_in_complete(key, bucket)).await,
            None => self.read_new_only(key).await,
        }
    }

    /// A write still in flight when the phase became `Complete` may have left a key in doubt. NEW
    /// cannot repair it by forgetting the key (OLD is no longer read), so copy OLD's value — the last
    /// one OLD committed, since nothing writes OLD in `Complete` — into NEW: the one case where
    /// `Complete` touches OLD.
    async fn repair_in_complete(&self, key: &K, bucket: u64) -> Result<Option<V>, Error> {
        let (mut guard, _) = self.inner.locks.lock(bucket).await;
        if !guard.is_abandoned(key) {
            drop(guard);
            return self.read_new_only(key).await;
        }
        let value = self.read_old(key).await?;
        let copied = match &value {
            Some(value) => self.inner.new.put(key, value).await.map_err(|e| self.fail(Side::New, Op::Put, e)),
            None => self.inner.new.delete(key).await.map_err(|e| self.fail(Side::New, Op::Delete, e)),
        };
        copied?;
        guard.settle(key);
        bump(&self.inner.stats.repairs);
        Ok(value)
    }

    async fn read_new_only(&self, key: &K) -> Result<Option<V>, Error> {
        let value = self.inner.new.get(key).await.map_err(|e| self.fail(Side::New, Op::Get, e))?;
        let stats = &self.inner.stats;
        bump(if value.is_some() { &stats.new_hits } else { &stats.new_misses });
        bump(&stats.reads_from_new);
        Ok(value)
    }

    /// NEW's answer: `Ok(Some)` to serve it, `Ok(None)` on a miss, `Err` when the read must fail.
    /// On a NEW error outside `Live`, the caller falls back to OLD: `Err(None)`.
    async fn look_in_new(&self, key: &K) -> Result<Option<V>, Option<Error>> {
        let stats = &self.inner.stats;
        match self.inner.new.get(key).await {
            Ok(Some(value)) => {
                bump(&stats.new_hits);
                bump(&stats.reads_from_new);
                Ok(Some(value))
            }
            Ok(None) => {
                bump(&stats.new_misses);
                Ok(None)
            }
            Err(error) => {
                let error = self.fail(Side::New, Op::Get, error);
                Err((self.phase() == Phase::Live).then_some(error))
            }
        }
    }

    async fn read_through(&self, key: &K, bucket: Option<u64>) -> Result<Option<V>, Error> {
        let doubtful = self.doubtful_bucket(key, bucket);
        let looked = doubtful.is_none();
        if looked {
            match self.look_in_new(key).await {
                Ok(Some(value)) => return Ok(Some(value)),
                Ok(None) => {}
                Err(Some(error)) => return Err(error),
                Err(None) => return self.read_old(key).await,
            }
        }
        let bucket = doubtful.or(bucket).unwrap_or_else(|| self.inner.gate.bucket(key));
        Box::pin(self.read_through_locked(key, bucket, looked)).await
    }

    /// The rest of a read-through after a NEW miss (`looked`) or when NEW may hold a key in doubt.
    async fn read_through_locked(&self, key: &K, bucket: u64, looked: bool) -> Result<Option<V>, Error> {
        // A miss: copy from OLD with the key locked, so no write can slip between the OLD read and
        // the copy into NEW.
        let (mut guard, waited) = self.inner.locks.lock(bucket).await;
        let phase = self.phase();
        if !self.reads_through(phase, bucket) {
            // The phase or the gate changed while we waited; no copy into NEW now.
            drop(guard);
            return if phase == Phase::Complete {
                self.read_complete(key, Some(bucket)).await
            } else {
                self.read_old(key).await
            };
        }
        if guard.is_abandoned(key) {
            // An earlier write left NEW's copy in doubt: remove it before trusting NEW again.
            match self.inner.new.delete(key).await {
                Ok(()) => {
                    guard.settle(key);
                    bump(&self.inner.stats.repairs);
                }
                Err(error) => {
                    let error = self.fail(Side::New, Op::Delete, error);
                    drop(guard);
                    return if phase == Phase::Live { Err(error) } else { self.read_old(key).await };
                }
            }
        } else if waited || !looked {
            // Someone held the key meanwhile (or we skipped NEW): NEW may have it now.
            match self.look_in_new(key).await {
                Ok(Some(value)) => return Ok(Some(value)),
                Ok(None) => {}
                Err(Some(error)) => return Err(error),
                Err(None) => {
                    drop(guard);
                    return self.read_old(key).await;
                }
            }
        }
        let value = self.read_old(key).await?;
        if let Some(value) = &value {
            match self.inner.new.insert_if_absent(key, value).await {
                Ok(true) => bump(&self.inner.stats.backfills),
                Ok(false) => bump(&self.inner.stats.backfills_skipped),
                // The read is served; the next one tries the copy again.
                Err(error) => drop(self.fail(Side::New, Op::Insert, error)),
            }
        }
        drop(guard);
        Ok(value)
    }

    async fn read_shadow(&self, key: &K, bucket: u64) -> Result<Option<V>, Error> {
        let stats = &self.inner.stats;
        let (mut guard, _) = self.inner.locks.lock(bucket).await;
        let old = self.read_old(key).await?;
        if guard.is_abandoned(key) {
            match self.inner.new.delete(key).await {
                Ok(()) => {
                    guard.settle(key);
                    bump(&stats.repairs);
                }
                Err(error) => {
                    drop(self.fail(Side::New, Op::Delete, error));
                    return Ok(old);
                }
            }
        }
        let new = match self.inner.new.get(key).await {
            Ok(new) => new,
            Err(error) => {
                drop(self.fail(Side::New, Op::Get, error));
                return Ok(old);
            }
        };
        bump(&stats.shadow_compared);
        bump(if new.is_some() { &stats.new_hits } else { &stats.new_misses });
        match (&old, &new) {
            (Some(value), None) => match self.inner.new.insert_if_absent(key, value).await {
                Ok(true) => bump(&stats.backfills),
                Ok(false) => bump(&stats.backfills_skipped),
                Err(error) => drop(self.fail(Side::New, Op::Insert, error)),
            },
            (old_value, new_value) if old_value != new_value => {
                bump(&stats.mismatches);
                if let Some(hook) = &self.inner.on_mismatch {
                    hook(&Mismatch { key, old: old_value.as_ref(), new: new_value.as_ref() });
                }
                // NEW is wrong: drop its copy so it is filled again from OLD.
                match self.inner.new.delete(key).await {
                    Ok(()) => bump(&stats.invalidations),
                    Err(error) => drop(self.fail(Side::New, Op::Delete, error)),
                }
            }
            _ => {}
        }
        Ok(old)
    }

    fn route(&self, phase: Phase, bucket: Option<u64>) -> Route {
        let Some(bucket) = bucket else {
            // A key the gate cannot encode is never admitted, so it has no copy in NEW.
            return Route::Old;
        };
        match phase {
            Phase::Complete => Route::New,
            // Every key, admitted or not: `Live` keeps NEW current for keys a lowered gate reads
            // from OLD, so raising it again serves them from NEW at once.
            Phase::Live => Route::Both,
            _ => match self.inner.gate.admission_for_bucket(bucket) {
                Admission::Admitted if phase != Phase::Off => Route::Both,
                Admission::Admitted | Admission::Lapsed => Route::OldInvalidate,
                Admission::Never => Route::Old,
            },
        }
    }

    async fn apply<S: Store<K, V>>(&self, store: &S, side: Side, key: &K, write: Write<'_, V>) -> Result<(), Error> {
        match write {
            Write::Put(value) => store.put(key, value).await.map_err(|e| self.fail(side, Op::Put, e)),
            Write::Delete => store.delete(key).await.map_err(|e| self.fail(side, Op::Delete, e)),
        }
    }

    async fn write(&self, key: &K, write: Write<'_, V>) -> Result<(), Error> {
        let bucket = self.inner.gate.try_bucket(key).ok();
        // Every write holds the key's lock, and routes under it: a gate raised meanwhile cannot let a
        // read-through copy a value this write is about to replace.
        let (mut guard, _) = self.inner.locks.lock(bucket.unwrap_or(0)).await;
        let phase = self.phase();
        let route = self.route(phase, bucket);
        match route {
            Route::Old => return self.apply(&self.inner.old, Side::Old, key, write).await,
            Route::New => {
                self.apply(&self.inner.new, Side::New, key, write).await?;
                // NEW now holds exactly this write: any earlier doubt about its copy is settled.
                guard.settle(key);
                return Ok(());
            }
            Route::Both | Route::OldInvalidate => {}
        }

        // From here until NEW is settled, NEW's copy may be stale: a dropped future or a failure
        // leaves the key recorded as in doubt.
        let intent = Intent::new(guard, key);
        let old_result = self.apply(&self.inner.old, Side::Old, key, write).await;
        if let (Route::Both, Ok(()), Write::Put(_)) = (route, &old_result, write) {
            if self.apply(&self.inner.new, Side::New, key, write).await.is_ok() {
                intent.settle();
                return Ok(());
            }
        }
        // NEW must not keep a copy that may be older than OLD's: remove it. For a delete this is the
        // delete itself; it is not retried (one call per step), so if it fails the key stays in doubt.
        match self.inner.new.delete(key).await {
            Ok(()) => {
                let invalidated = matches!(write, Write::Put(_)) || old_result.is_err();
                if invalidated {
                    bump(&self.inner.stats.invalidations);
                }
                // In `Live` the next phase reads NEW only, where a key invalidated now would be lost:
                // keep it in doubt, so `Complete` waits until a read has copied it back.
                if !(invalidated && phase == Phase::Live) {
                    intent.settle();
                }
                old_result
            }
            Err(error) => {
                let error = self.fail(Side::New, Op::Delete, error);
                Err(self.indeterminate(write.op(), old_result.err(), error))
            }
        }
    }

    /// A write of the application's own other than `put` and `delete` (a status, a flag): `on_old`
    /// changes `key` in OLD (`on_new` in NEW, in `Complete`), with the key locked, and then NEW's
    /// copy is removed, as a write that cannot be written through is. In `Live` the key stays in
    /// doubt until a read copies it back, as after any invalidation. `R` is the call's own answer,
    /// whatever it says: a call that failed may have changed the store, so NEW's copy goes anyway.
    pub(crate) async fn update<R>(
        &self,
        key: &K,
        on_old: impl std::future::Future<Output = R>,
        on_new: impl std::future::Future<Output = R>,
    ) -> Result<R, Error> {
        self.update_many(&[key], on_old, on_new).await
    }

    /// [`update`](Proxy::update) for a write of several keys at once (`archive_all(&[K])`,
    /// `put_many(&[(K, V)])`): every key's stripe locked, the call run once — on NEW if any key's
    /// route is NEW's (`Complete`), on OLD otherwise — then each key's NEW copy removed where its
    /// route says so. A key whose removal failed stays in doubt.
    pub(crate) async fn update_many<R>(
        &self,
        keys: &[&K],
        on_old: impl std::future::Future<Output = R>,
        on_new: impl std::future::Future<Output = R>,
    ) -> Result<R, Error> {
        let buckets: Vec<Option<u64>> = keys.iter().map(|key| self.inner.gate.try_bucket(*key).ok()).collect();
        let stripes: Vec<u64> = buckets.iter().map(|bucket| bucket.unwrap_or(0)).collect();
        let (guards, at) = self.inner.locks.lock_many(&stripes).await;
        let phase = self.phase();
        let routes: Vec<Route> = buckets.iter().map(|bucket| self.route(phase, *bucket)).collect();
        // The keys whose NEW copy this call touches (a key the gate cannot encode has none), each
        // with its place in `keys`.
        let mut touched = Vec::new();
        let mut intents = Vec::new();
        for (index, ((key, at), route)) in keys.iter().zip(&at).zip(&routes).enumerate() {
            if let (false, Ok(bytes)) = (*route == Route::Old, key.try_key_bytes()) {
                touched.push(index);
                intents.push((*at, bytes.into_boxed_slice()));
            }
        }
        let mut intents = lock::Intents::new(guards, intents);
        if routes.contains(&Route::New) {
            let out = on_new.await;
            (0..touched.len()).for_each(|intent| intents.settle(intent));
            return Ok(out);
        }
        let out = on_old.await;
        let mut failed = None;
        for (intent, index) in touched.into_iter().enumerate() {
            match self.inner.new.delete(keys[index]).await {
                Ok(()) => {
                    bump(&self.inner.stats.invalidations);
                    if phase != Phase::Live {
                        intents.settle(intent);
                    }
                }
                // The key stays in doubt (its intent unsettled): the next read repairs it.
                Err(error) => failed = Some(self.fail(Side::New, Op::Delete, error)),
            }
        }
        match failed {
            None => Ok(out),
            Some(error) => Err(self.indeterminate(Op::Put, None, error)),
        }
    }

    fn indeterminate(&self, op: Op, old: Option<Error>, invalidation: Error) -> Error {
        bump(&self.inner.stats.indeterminate);
        Error::Indeterminate { op, old_error: old.map(|e| Box::new(e) as _), source: Box::new(invalidation) }
    }
}

impl<K: ?Sized, V, Old, New> Clone for Proxy<K, V, Old, New> {
    fn clone(&self) -> Self {
        Proxy { inner: Arc::clone(&self.inner) }
    }
}

impl<K: ?Sized, V, Old, New> fmt::Debug for Proxy<K, V, Old, New> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy").field("gate", &self.inner.gate).field("phase", &self.phase()).finish_non_exhaustive()
    }
}

/// A well-mixed 64-bit value from a counter, for sampling.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
