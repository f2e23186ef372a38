//! Verify: evidence that NEW holds what OLD holds, before anyone stops reading OLD.
//!
//! A verification pass walks OLD ([`Scan`]) and NEW ([`ScanSlots`]) side by side in canonical key
//! order and sorts every key into one of: agrees, **missing** (OLD has it, NEW would not answer
//! it), **extra** (NEW answers a value OLD does not hold), **differs** (NEW answers another value,
//! or "deleted"), or **in doubt** (a write is in flight or was abandoned: the key is pending).
//! Keys in doubt are looked at first. A difference may be a write caught between its two stores,
//! so each one is checked again after a delay before it counts; what is still wrong then is
//! repaired, if asked, through [`VersionedProxy::repair`] (a version from OLD's counter, so no
//! newer write is overwritten), and checked once more.
//!
//! ```
//! use std::sync::Arc;
//! use zddm::backfill::{Backfill, MemoryCheckpoint};
//! use zddm::verify::Verify;
//! use zddm::versioned::{MemorySource, MemoryTarget, Source, VersionedProxy};
//! use zddm::{Gate, Phase, Rate};
//!
//! # zddm::block_on(async {
//! let old = Arc::new(MemorySource::<u64, String>::new());
//! let new = Arc::new(MemoryTarget::<u64, String>::new());
//! for id in 0..100 {
//!     old.put(&id, &format!("user {id}")).await?;
//! }
//! let proxy = VersionedProxy::new(old.clone(), new.clone(), Gate::new("users", Rate::ALL));
//! proxy.set_phase(Phase::Live)?;
//!
//! let report = Verify::new(&proxy).repair(false).run(|_| async {}, |_| {}).await?;
//! assert_eq!(report.missing.count, 100); // nothing copied yet
//! assert!(proxy.set_phase(Phase::Complete).is_err()); // so `Complete` is refused
//!
//! Backfill::new(&proxy).run(&MemoryCheckpoint::new(), |_| async {}, |_| {}).await?;
//! let report = Verify::new(&proxy).run(|_| async {}, |_| {}).await?;
//! assert!(report.clean(), "{report}");
//! proxy.set_phase(Phase::Complete)?; // earned
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::cached::ScanKeys;
use crate::error::chain;
use crate::fleet::Plan;
use crate::gate::Gate;
use crate::key::MigrationKey;
use crate::proxy::{Phase, PhaseError, Proxy};
use crate::rate::Rate;
use crate::store::Store;
use crate::versioned::{Copied, Lookup, Page, Scan, ScanSlots, Versioned, VersionedProxy};

/// How one key compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// NEW answers what OLD holds (a value, or nothing).
    Agrees,
    /// OLD holds the key; NEW has nothing for it (never copied, or only invalidated).
    Missing,
    /// NEW answers a value for a key OLD does not hold.
    Extra,
    /// NEW answers another value than OLD's, or "deleted" for a key OLD holds.
    Differs,
    /// A write of the key is in flight or was abandoned: NEW does not answer it until it settles.
    InDoubt,
}

impl Verdict {
    /// Compares what OLD holds with what a read of NEW finds.
    pub fn of<V: PartialEq>(old: Option<&V>, new: &Lookup<V>) -> Verdict {
        match (old, new) {
            (_, Lookup::Pending { .. }) => Verdict::InDoubt,
            (Some(old), Lookup::Hit(new)) if old == new => Verdict::Agrees,
            (Some(_), Lookup::Hit(_) | Lookup::Deleted) => Verdict::Differs,
            (Some(_), Lookup::Miss) => Verdict::Missing,
            (None, Lookup::Hit(_)) => Verdict::Extra,
            (None, Lookup::Deleted | Lookup::Miss) => Verdict::Agrees,
        }
    }
}

/// Keys of one kind of difference: how many, and the first few (canonical key bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// How many.
    pub count: u64,
    /// The first [`Verify::examples`] of them.
    pub examples: Vec<Vec<u8>>,
}

impl Keys {
    fn add(&mut self, key: &[u8], keep: usize) {
        self.count += 1;
        if self.examples.len() < keep {
            self.examples.push(key.to_vec());
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The plan when the pass began; a pass counts toward `Complete` only if it was `Live`.
    pub started: Plan,
    /// When the pass began: the fleet's epoch, for a proxy in a fleet (see
    /// [`Fleet::record_verification`](crate::fleet::Fleet::record_verification)); for one on its
    /// own, how many phase changes it had made.
    pub epoch: u64,
    /// Whether every key was compared (no sample).
    pub whole: bool,
    /// Keys compared.
    pub checked: u64,
    /// Differences that were gone when checked again: writes that were in flight.
    pub transient: u64,
    /// Real differences, by kind (after the second look; before any repair).
    pub missing: Keys,
    /// See [`Verdict::Extra`].
    pub extra: Keys,
    /// See [`Verdict::Differs`].
    pub differs: Keys,
    /// Keys still pending at the end: not settled, so not verified.
    pub in_doubt: Keys,
    /// Real differences repaired and found agreeing afterwards.
    pub repaired: u64,
    /// Keys still wrong at the end: not repaired (repair off, or outside the plan's read
    /// coverage), or wrong again after the repair.
    pub unresolved: Keys,
}

impl Report {
    fn new(started: Plan, epoch: u64, whole: bool) -> Self {
        Report {
            started,
            epoch,
            whole,
            checked: 0,
            transient: 0,
            missing: Keys::default(),
            extra: Keys::default(),
            differs: Keys::default(),
            in_doubt: Keys::default(),
            repaired: 0,
            unresolved: Keys::default(),
        }
    }

    /// Whether NEW agreed with OLD on every key compared: no real difference (repaired or not)
    /// and nothing in doubt. A pass that repaired something is evidence of the repair, not of a
    /// NEW that was right: run another.
    pub fn clean(&self) -> bool {
        self.missing.count + self.extra.count + self.differs.count + self.in_doubt.count == 0
    }

    /// Whether this pass earns `Complete`: whole, clean, and begun in `Live`.
    pub fn earns_complete(&self) -> bool {
        self.whole && self.clean() && self.started.phase == Phase::Live
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "checked {} keys{}", self.checked, if self.whole { "" } else { " (a sample)" })?;
        write!(
            f,
            ": {} missing, {} extra, {} differing, {} in doubt; {} passed on a second look; {} repaired; {} unresolved",
            self.missing.count,
            self.extra.count,
            self.differs.count,
            self.in_doubt.count,
            self.transient,
            self.repaired,
            self.unresolved.count
        )?;
        f.write_str(match (self.clean(), self.unresolved.count) {
            (true, _) => " — clean",
            (false, 0) => " — not clean: run it again to confirm the repairs",
            (false, _) => " — NOT clean",
        })
    }
}

/// Why a verification could not finish.
///
/// As with [`zddm::Error`](crate::Error), the message carries the whole cause (for
/// [`VerifyError::Store`], the proxy's message with the store's error), and
/// [`source`](std::error::Error::source) returns `None`, so a reporter walking the chain says each
/// cause once. For code, the proxy's error is returned by [`VerifyError::store_error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A store failed. Its error is in the message, and returned by [`VerifyError::store_error`]
    /// (not by `source()`, see [`VerifyError`]).
    #[error(
        "the verification stopped ({}): run it again, once the store is back (a verification starts over)",
        chain(.0)
    )]
    Store(crate::Error),
    /// OLD's scan is not in canonical key order, which a side-by-side comparison needs.
    #[error(
        "OLD's scan returned keys out of canonical order (after {previous:02x?} came {key:02x?}): \
         verification compares OLD and NEW side by side and needs `Scan` in canonical key order"
    )]
    Unordered {
        /// The key before.
        previous: Vec<u8>,
        /// The key that came after it.
        key: Vec<u8>,
    },
    /// An option is out of range.
    #[error("{0}")]
    Config(String),
}

// By hand rather than `#[from]`, which would make the field the `source()` as well.
impl From<crate::Error> for VerifyError {
    fn from(error: crate::Error) -> Self {
        VerifyError::Store(error)
    }
}

impl VerifyError {
    /// The proxy's error, if a store failed. Its [`store_error`](crate::Error::store_error) is the
    /// store's own error.
    ///
    /// The message of `self` already includes this error's message (see [`VerifyError`]).
    pub fn store_error(&self) -> Option<&crate::Error> {
        match self {
            VerifyError::Store(error) => Some(error),
            _ => None,
        }
    }
}

/// What a verification runs over: a proxy whose OLD and NEW can both be scanned — a
/// [`VersionedProxy`] (OLD a [`Scan`], NEW a [`ScanSlots`]) or a [`Proxy`] over two plain stores
/// that implement [`ScanKeys`]. Implemented by the library only.
pub trait Compare: sealed::Sealed + Sync {
    /// The key type.
    type Key: MigrationKey + Send + Sync;
    /// What OLD's scan gives with each key.
    #[doc(hidden)]
    type Old: Send + Sync;
    /// What NEW's scan gives with each key.
    #[doc(hidden)]
    type New: Send + Sync;

    /// The plan calls run under now.
    #[doc(hidden)]
    fn plan(&self) -> Plan;
    /// When a pass begins: the fleet's epoch, or the proxy's count of phase changes.
    #[doc(hidden)]
    fn epoch(&self) -> u64;
    /// Whether both sides scan in canonical key order, so they can be walked side by side.
    #[doc(hidden)]
    fn canonical(&self) -> bool;
    /// Up to `limit` canonical keys after `after` whose NEW copy is in doubt.
    #[doc(hidden)]
    fn pending(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, crate::Error>> + Send;
    /// A page of OLD.
    #[doc(hidden)]
    fn scan_old(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Self::Key, Self::Old>, crate::Error>> + Send;
    /// A page of NEW.
    #[doc(hidden)]
    fn scan_new(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Self::Key, Self::New>, crate::Error>> + Send;
    /// The verdict the scans show, or `None` if only a [`look`](Compare::look) can tell.
    #[doc(hidden)]
    fn judge(old: Option<&Self::Old>, new: Option<&Self::New>) -> Option<Verdict>;
    /// Whether NEW's entry answers reads (a value, or a write in flight) rather than nothing.
    #[doc(hidden)]
    fn answers(new: &Self::New) -> bool;
    /// NEW's entry for `key`, as its scan would give it.
    #[doc(hidden)]
    fn look_new(&self, key: &Self::Key) -> impl Future<Output = Result<Option<Self::New>, crate::Error>> + Send;
    /// Whether OLD holds `key`.
    #[doc(hidden)]
    fn old_holds(&self, key: &Self::Key) -> impl Future<Output = Result<bool, crate::Error>> + Send;
    /// How `key` compares now, after repairing an abandoned write as a read would.
    #[doc(hidden)]
    fn look(&self, key: &Self::Key) -> impl Future<Output = Result<Verdict, crate::Error>> + Send;
    /// Makes NEW agree with OLD for `key`, where the plan reads it from NEW.
    #[doc(hidden)]
    fn repair(&self, key: &Self::Key) -> impl Future<Output = Result<Copied, crate::Error>> + Send;
    /// Records a pass that earns `Complete`, begun at `epoch` (a local proxy only).
    #[doc(hidden)]
    fn record(&self, epoch: u64);
    /// Forgets any pass that earned `Complete`: a later one found NEW wrong.
    #[doc(hidden)]
    fn revoke(&self);
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

impl<K: ?Sized, V, Old, New> sealed::Sealed for VersionedProxy<K, V, Old, New> {}
impl<K: ?Sized, V, Old, New> sealed::Sealed for Proxy<K, V, Old, New> {}

impl<K, V, Old, New> Compare for VersionedProxy<K, V, Old, New>
where
    K: MigrationKey + Send + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Scan<K, V>,
    New: ScanSlots<K, V>,
{
    type Key = K;
    type Old = Versioned<V>;
    type New = Lookup<V>;

    fn plan(&self) -> Plan {
        VersionedProxy::plan(self)
    }

    fn epoch(&self) -> u64 {
        self.verification_epoch()
    }

    fn canonical(&self) -> bool {
        self.old_canonical() && self.new_canonical()
    }

    async fn pending(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, crate::Error> {
        VersionedProxy::pending(self, after, limit).await
    }

    async fn scan_old(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Versioned<V>>, crate::Error> {
        self.scan(after, limit).await
    }

    async fn scan_new(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Lookup<V>>, crate::Error> {
        VersionedProxy::scan_new(self, after, limit).await
    }

    fn judge(old: Option<&Versioned<V>>, new: Option<&Lookup<V>>) -> Option<Verdict> {
        Some(Verdict::of(old.map(|found| &found.value), new.unwrap_or(&Lookup::Miss)))
    }

    fn answers(new: &Lookup<V>) -> bool {
        !matches!(new, Lookup::Miss | Lookup::Deleted)
    }

    async fn look_new(&self, key: &K) -> Result<Option<Lookup<V>>, crate::Error> {
        self.lookup_new(key).await.map(Some)
    }

    async fn old_holds(&self, key: &K) -> Result<bool, crate::Error> {
        Ok(self.get_old(key).await?.is_some())
    }

    async fn look(&self, key: &K) -> Result<Verdict, crate::Error> {
        let mut lookup = self.lookup_new(key).await?;
        if let Lookup::Pending { expired: true, .. } = lookup {
            // An abandoned write: a read repairs it, as any read would.
            self.get(key).await?;
            lookup = self.lookup_new(key).await?;
        }
        let found = self.get_old(key).await?;
        Ok(Verdict::of(found.as_ref().map(|found| &found.value), &lookup))
    }

    async fn repair(&self, key: &K) -> Result<Copied, crate::Error> {
        VersionedProxy::repair(self, key).await
    }

    fn record(&self, epoch: u64) {
        self.evidence().record(epoch);
    }

    fn revoke(&self) {
        self.evidence().revoke();
    }
}

/// Plain stores scan keys only, so a key both sides hold is looked up in each.
impl<K, V, Old, New> Compare for Proxy<K, V, Old, New>
where
    K: MigrationKey + Send + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Store<K, V> + ScanKeys<K>,
    New: Store<K, V> + ScanKeys<K>,
{
    type Key = K;
    type Old = ();
    type New = ();

    fn plan(&self) -> Plan {
        Proxy::plan(self)
    }

    fn epoch(&self) -> u64 {
        self.evidence().epoch()
    }

    fn canonical(&self) -> bool {
        true
    }

    async fn pending(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, crate::Error> {
        Ok(self.doubtful_keys(after, limit).await)
    }

    async fn scan_old(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, ()>, crate::Error> {
        self.scan_old_keys(after, limit).await
    }

    async fn scan_new(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, ()>, crate::Error> {
        self.scan_new_keys(after, limit).await
    }

    fn judge(old: Option<&()>, new: Option<&()>) -> Option<Verdict> {
        match (old, new) {
            (Some(()), None) => Some(Verdict::Missing),
            (None, Some(())) => Some(Verdict::Extra),
            _ => None,
        }
    }

    fn answers(_: &()) -> bool {
        true
    }

    async fn look_new(&self, key: &K) -> Result<Option<()>, crate::Error> {
        Ok(self.holds(crate::error::Side::New, key).await?.then_some(()))
    }

    async fn old_holds(&self, key: &K) -> Result<bool, crate::Error> {
        self.holds(crate::error::Side::Old, key).await
    }

    async fn look(&self, key: &K) -> Result<Verdict, crate::Error> {
        self.compare(key).await
    }

    async fn repair(&self, key: &K) -> Result<Copied, crate::Error> {
        Proxy::repair(self, key).await
    }

    fn record(&self, epoch: u64) {
        self.evidence().record(epoch);
    }

    fn revoke(&self) {
        self.evidence().revoke();
    }
}

/// A proxy's own record of the verification that earns `Complete`, when no fleet keeps it: how
/// many phase changes it made, and one more than that count when the last pass that earns
/// `Complete` began (0: none). One mutex, so a check and a change of phase cannot interleave with
/// another change.
#[derive(Debug, Default)]
pub(crate) struct Evidence(std::sync::Mutex<(u64, u64)>);

impl Evidence {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, u64)> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The epoch a pass beginning now records.
    pub(crate) fn epoch(&self) -> u64 {
        self.lock().0
    }

    /// A pass begun at `epoch` earned `Complete`, unless the phase changed since.
    pub(crate) fn record(&self, epoch: u64) {
        let mut evidence = self.lock();
        if evidence.0 == epoch {
            evidence.1 = epoch + 1;
        }
    }

    pub(crate) fn revoke(&self) {
        self.lock().1 = 0;
    }

    /// Runs a change of phase to `to`: `change` is told whether `Complete` is earned now, and
    /// returns the previous phase. A change to another phase voids the evidence.
    pub(crate) fn change(
        &self,
        to: Phase,
        change: impl FnOnce(bool) -> Result<Phase, PhaseError>,
    ) -> Result<Phase, PhaseError> {
        let mut evidence = self.lock();
        let previous = change(evidence.1 == evidence.0 + 1)?;
        if previous != to {
            evidence.0 += 1;
        }
        Ok(previous)
    }
}

/// A verification pass over a proxy's OLD and NEW ([`Compare`]); configure, then [`run`](Verify::run).
pub struct Verify<'a, P> {
    proxy: &'a P,
    batch: usize,
    sample: Option<Rate>,
    recheck_after: Duration,
    repair: bool,
    examples: usize,
}

/// One side of the side-by-side walk: a buffer of entries with their canonical bytes.
struct Cursor<K, E> {
    buffer: VecDeque<(Vec<u8>, K, E)>,
    after: Option<Vec<u8>>,
    done: bool,
}

impl<K: MigrationKey, E> Cursor<K, E> {
    fn new() -> Self {
        Cursor { buffer: VecDeque::new(), after: None, done: false }
    }

    fn fill(&mut self, page: Page<K, E>) -> Result<(), VerifyError> {
        let mut previous = self.after.clone();
        for (key, entry) in page.entries {
            let bytes = key.try_key_bytes().map_err(|e| VerifyError::Config(e.to_string()))?;
            if let Some(previous) = previous.filter(|previous| *previous >= bytes) {
                return Err(VerifyError::Unordered { previous, key: bytes });
            }
            previous = Some(bytes.clone());
            self.buffer.push_back((bytes, key, entry));
        }
        self.done = page.next.is_none();
        self.after = page.next.or(previous);
        Ok(())
    }
}

impl<'a, P: Compare> Verify<'a, P> {
    /// A pass over every key, in batches of 500, checking differences again after 2 s, repairing
    /// real ones, keeping up to 20 example keys of each kind.
    pub fn new(proxy: &'a P) -> Self {
        Verify { proxy, batch: 500, sample: None, recheck_after: Duration::from_secs(2), repair: true, examples: 20 }
    }

    /// Entries per scan batch, on each side: at least 1.
    pub fn batch(mut self, entries: usize) -> Self {
        self.batch = entries;
        self
    }

    /// Compare only the keys a gate at `rate` admits (salted apart from the migration's own
    /// gate): a quicker check, which never earns `Complete`.
    pub fn sample(mut self, rate: Rate) -> Self {
        self.sample = Some(rate);
        self
    }

    /// How long to wait before the second look at a difference: longer than a write takes from
    /// OLD to NEW.
    pub fn recheck_after(mut self, delay: Duration) -> Self {
        self.recheck_after = delay;
        self
    }

    /// Whether to repair real differences (default yes); without, they are only reported.
    pub fn repair(mut self, repair: bool) -> Self {
        self.repair = repair;
        self
    }

    /// How many example keys to keep of each kind of difference.
    pub fn examples(mut self, keys: usize) -> Self {
        self.examples = keys;
        self
    }

    /// Runs the pass: keys in doubt first, then OLD and NEW side by side, then a second look at
    /// each difference after the delay (waited with `sleep`), then repairs. `progress` gets the
    /// report so far after every batch. A local proxy this pass earns `Complete` for records it
    /// (see [`VersionedProxy::set_phase`]); a pass that is not clean withdraws an earlier one's.
    pub async fn run<S, F>(&self, sleep: S, mut progress: impl FnMut(&Report)) -> Result<Report, VerifyError>
    where
        S: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        if self.batch == 0 {
            return Err(VerifyError::Config("a verification batch must hold at least 1 entry, not 0".into()));
        }
        let started = self.proxy.plan();
        let epoch = self.proxy.epoch();
        let sample = self.sample.map(|rate| Gate::new("zddm verify sample", rate));
        let mut report = Report::new(started, epoch, sample.is_none());
        let mut suspects: Vec<(Vec<u8>, P::Key)> = Vec::new();
        let admitted = |key: &P::Key| sample.as_ref().map_or(true, |gate| gate.admits(key));

        // Keys in doubt first: they are the likeliest to be wrong, and the fastest to look at.
        let mut after: Option<Vec<u8>> = None;
        loop {
            let pending = self.proxy.pending(after.as_deref(), self.batch).await?;
            let last = pending.last().cloned();
            for bytes in &pending {
                if let Ok(key) = P::Key::from_key_bytes(bytes) {
                    if admitted(&key) {
                        suspects.push((bytes.clone(), key));
                    }
                }
            }
            if pending.len() < self.batch {
                break;
            }
            after = last;
        }
        let first_look: std::collections::HashSet<Vec<u8>> = suspects.iter().map(|(bytes, _)| bytes.clone()).collect();

        if self.proxy.canonical() {
            self.side_by_side(&mut report, &mut suspects, &first_look, &admitted, &mut progress).await?;
        } else {
            self.look_up(&mut report, &mut suspects, &first_look, &admitted, &mut progress).await?;
        }
        progress(&report);

        // The second look, after writes in flight had time to land.
        if !suspects.is_empty() && !self.recheck_after.is_zero() {
            sleep(self.recheck_after).await;
        }
        for (bytes, key) in suspects {
            let verdict = self.look(&key).await?;
            let kind = match verdict {
                Verdict::Agrees => {
                    report.transient += 1;
                    continue;
                }
                Verdict::InDoubt => {
                    report.in_doubt.add(&bytes, self.examples);
                    continue;
                }
                Verdict::Missing => &mut report.missing,
                Verdict::Extra => &mut report.extra,
                Verdict::Differs => &mut report.differs,
            };
            kind.add(&bytes, self.examples);
            let repaired = self.repair && self.proxy.repair(&key).await? == Copied::Copied;
            if repaired && self.look(&key).await? == Verdict::Agrees {
                report.repaired += 1;
            } else {
                report.unresolved.add(&bytes, self.examples);
            }
        }
        progress(&report);
        if report.earns_complete() {
            self.proxy.record(epoch);
        } else if !report.clean() {
            // Whatever an earlier pass showed, NEW was found wrong since.
            self.proxy.revoke();
        }
        Ok(report)
    }

    /// The walk for an OLD and a NEW that both scan in canonical key order: both side by side,
    /// one page of each at a time.
    async fn side_by_side(
        &self,
        report: &mut Report,
        suspects: &mut Vec<(Vec<u8>, P::Key)>,
        first_look: &std::collections::HashSet<Vec<u8>>,
        admitted: &impl Fn(&P::Key) -> bool,
        progress: &mut impl FnMut(&Report),
    ) -> Result<(), VerifyError> {
        let (mut old, mut new) = (Cursor::new(), Cursor::new());
        loop {
            if old.buffer.is_empty() && !old.done {
                old.fill(self.proxy.scan_old(old.after.as_deref(), self.batch).await?)?;
            }
            if new.buffer.is_empty() && !new.done {
                new.fill(self.proxy.scan_new(new.after.as_deref(), self.batch).await?)?;
            }
            let order = match (old.buffer.front(), new.buffer.front()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(o), Some(n)) => o.0.cmp(&n.0),
            };
            let old_entry = if order.is_gt() { None } else { old.buffer.pop_front() };
            let new_entry = if order.is_lt() { None } else { new.buffer.pop_front() };
            let (bytes, key, judged) = match (old_entry, new_entry) {
                (Some((bytes, key, found)), None) => (bytes, key, P::judge(Some(&found), None)),
                (None, Some((bytes, key, lookup))) => (bytes, key, P::judge(None, Some(&lookup))),
                (Some((bytes, key, found)), Some((_, _, lookup))) => {
                    (bytes, key, P::judge(Some(&found), Some(&lookup)))
                }
                (None, None) => break,
            };
            if !admitted(&key) {
                continue;
            }
            let verdict = match judged {
                Some(verdict) => verdict,
                None => self.look(&key).await?,
            };
            report.checked += 1;
            if verdict != Verdict::Agrees && !first_look.contains(&bytes) {
                suspects.push((bytes, key));
            }
            if report.checked % self.batch as u64 == 0 {
                progress(report);
            }
        }
        Ok(())
    }

    /// The walk when OLD or NEW does not scan in canonical order: OLD's keys each looked up in NEW,
    /// then NEW's keys with a value or a mark each looked up in OLD (the ones OLD lacks).
    async fn look_up(
        &self,
        report: &mut Report,
        suspects: &mut Vec<(Vec<u8>, P::Key)>,
        first_look: &std::collections::HashSet<Vec<u8>>,
        admitted: &impl Fn(&P::Key) -> bool,
        progress: &mut impl FnMut(&Report),
    ) -> Result<(), VerifyError> {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.proxy.scan_old(after.as_deref(), self.batch).await?;
            for (key, found) in page.entries {
                if !admitted(&key) {
                    continue;
                }
                report.checked += 1;
                let new = self.proxy.look_new(&key).await?;
                let verdict = match P::judge(Some(&found), new.as_ref()) {
                    Some(verdict) => verdict,
                    None => self.look(&key).await?,
                };
                let bytes = key.try_key_bytes().map_err(|e| VerifyError::Config(e.to_string()))?;
                if verdict != Verdict::Agrees && !first_look.contains(&bytes) {
                    suspects.push((bytes, key));
                }
            }
            progress(report);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let mut after: Option<Vec<u8>> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let page = self.proxy.scan_new(after.as_deref(), self.batch).await?;
            for (key, lookup) in page.entries {
                if !admitted(&key) || !P::answers(&lookup) {
                    continue;
                }
                if self.proxy.old_holds(&key).await? {
                    continue; // compared above
                }
                let bytes = key.try_key_bytes().map_err(|e| VerifyError::Config(e.to_string()))?;
                // A hash-ordered scan may give a key twice.
                if !seen.insert(bytes.clone()) {
                    continue;
                }
                report.checked += 1;
                if !first_look.contains(&bytes) {
                    suspects.push((bytes, key));
                }
            }
            progress(report);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    async fn look(&self, key: &P::Key) -> Result<Verdict, VerifyError> {
        Ok(self.proxy.look(key).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::fixtures::{Disk, Layered};
    use crate::error::{Op, Side};

    #[test]
    fn a_store_error_says_its_cause_once_and_has_no_source() {
        let error = VerifyError::from(crate::Error::store(Side::New, Op::Scan, Layered(Disk)));
        assert_eq!(
            error.to_string(),
            "the verification stopped (scan on the NEW store failed: write failed: the disk is full): run it \
             again, once the store is back (a verification starts over)"
        );
        assert!(std::error::Error::source(&error).is_none(), "the cause is in the message");
        let store = error.store_error().expect("a store error");
        assert_eq!((store.side(), store.op()), (Side::New, Op::Scan));
        assert!(store.store_error().downcast_ref::<Layered>().is_some());
        assert!(VerifyError::Config("x".into()).store_error().is_none());
    }

    #[test]
    fn every_pair_of_old_and_new_has_one_verdict() {
        let pending = Lookup::Pending { token: 1, expired: false };
        assert_eq!(Verdict::of(Some(&1), &Lookup::Hit(1)), Verdict::Agrees);
        assert_eq!(Verdict::of(Some(&1), &Lookup::Hit(2)), Verdict::Differs);
        assert_eq!(Verdict::of(Some(&1), &Lookup::Deleted), Verdict::Differs);
        assert_eq!(Verdict::of(Some(&1), &Lookup::Miss), Verdict::Missing);
        assert_eq!(Verdict::of(Some(&1), &pending), Verdict::InDoubt);
        assert_eq!(Verdict::of(None, &Lookup::Hit(2)), Verdict::Extra);
        assert_eq!(Verdict::of(None::<&i32>, &Lookup::Deleted), Verdict::Agrees);
        assert_eq!(Verdict::of(None::<&i32>, &Lookup::Miss), Verdict::Agrees);
        assert_eq!(Verdict::of(None, &pending), Verdict::InDoubt);
    }
}
