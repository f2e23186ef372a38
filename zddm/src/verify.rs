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

use crate::fleet::Plan;
use crate::gate::Gate;
use crate::key::MigrationKey;
use crate::proxy::Phase;
use crate::rate::Rate;
use crate::versioned::{Copied, Lookup, Page, Scan, ScanSlots, VersionedProxy};

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
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A store failed.
    #[error("the verification stopped: a store failed; run it again")]
    Store(#[from] crate::Error),
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

/// A verification pass over a [`VersionedProxy`]'s OLD and NEW; configure, then [`run`](Verify::run).
pub struct Verify<'a, K, V, Old, New> {
    proxy: &'a VersionedProxy<K, V, Old, New>,
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

impl<'a, K, V, Old, New> Verify<'a, K, V, Old, New>
where
    K: MigrationKey + Send + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Scan<K, V>,
    New: ScanSlots<K, V>,
{
    /// A pass over every key, in batches of 500, checking differences again after 2 s, repairing
    /// real ones, keeping up to 20 example keys of each kind.
    pub fn new(proxy: &'a VersionedProxy<K, V, Old, New>) -> Self {
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
        let epoch = self.proxy.verification_epoch();
        let sample = self.sample.map(|rate| Gate::new("zddm verify sample", rate));
        let mut report = Report::new(started, epoch, sample.is_none());
        let mut suspects: Vec<(Vec<u8>, K)> = Vec::new();
        let admitted = |key: &K| sample.as_ref().map_or(true, |gate| gate.admits(key));

        // Keys in doubt first: they are the likeliest to be wrong, and the fastest to look at.
        let mut after: Option<Vec<u8>> = None;
        loop {
            let pending = self.proxy.pending(after.as_deref(), self.batch).await?;
            let last = pending.last().cloned();
            for bytes in &pending {
                if let Ok(key) = K::from_key_bytes(bytes) {
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

        if self.proxy.old_canonical() && self.proxy.new_canonical() {
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
            self.proxy.record_verification(epoch);
        } else if !report.clean() {
            // Whatever an earlier pass showed, NEW was found wrong since.
            self.proxy.revoke_verification();
        }
        Ok(report)
    }

    /// The walk for an OLD and a NEW that both scan in canonical key order: both side by side,
    /// one page of each at a time.
    async fn side_by_side(
        &self,
        report: &mut Report,
        suspects: &mut Vec<(Vec<u8>, K)>,
        first_look: &std::collections::HashSet<Vec<u8>>,
        admitted: &impl Fn(&K) -> bool,
        progress: &mut impl FnMut(&Report),
    ) -> Result<(), VerifyError> {
        let (mut old, mut new) = (Cursor::new(), Cursor::new());
        loop {
            if old.buffer.is_empty() && !old.done {
                old.fill(self.proxy.scan(old.after.as_deref(), self.batch).await?)?;
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
            let (bytes, key, verdict) = match (old_entry, new_entry) {
                (Some((bytes, key, found)), None) => (bytes, key, Verdict::of(Some(&found.value), &Lookup::Miss)),
                (None, Some((bytes, key, lookup))) => (bytes, key, Verdict::of(None, &lookup)),
                (Some((bytes, key, found)), Some((_, _, lookup))) => {
                    (bytes, key, Verdict::of(Some(&found.value), &lookup))
                }
                (None, None) => break,
            };
            if !admitted(&key) {
                continue;
            }
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
        suspects: &mut Vec<(Vec<u8>, K)>,
        first_look: &std::collections::HashSet<Vec<u8>>,
        admitted: &impl Fn(&K) -> bool,
        progress: &mut impl FnMut(&Report),
    ) -> Result<(), VerifyError> {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.proxy.scan(after.as_deref(), self.batch).await?;
            for (key, found) in page.entries {
                if !admitted(&key) {
                    continue;
                }
                report.checked += 1;
                let lookup = self.proxy.lookup_new(&key).await?;
                let bytes = key.try_key_bytes().map_err(|e| VerifyError::Config(e.to_string()))?;
                if Verdict::of(Some(&found.value), &lookup) != Verdict::Agrees && !first_look.contains(&bytes) {
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
                if !admitted(&key) || matches!(lookup, Lookup::Miss | Lookup::Deleted) {
                    continue;
                }
                if self.proxy.get_old(&key).await?.is_some() {
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

    async fn look(&self, key: &K) -> Result<Verdict, VerifyError> {
        let mut lookup = self.proxy.lookup_new(key).await?;
        if let Lookup::Pending { expired: true, .. } = lookup {
            // An abandoned write: a read repairs it, as any read would.
            self.proxy.get(key).await?;
            lookup = self.proxy.lookup_new(key).await?;
        }
        let found = self.proxy.get_old(key).await?;
        Ok(Verdict::of(found.as_ref().map(|found| &found.value), &lookup))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
