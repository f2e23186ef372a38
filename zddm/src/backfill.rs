//! Backfill: copy the keys nobody reads into NEW, so that NEW can hold everything.
//!
//! Read-through moves only the keys someone reads. A backfill pass scans OLD in a stable order,
//! batch by batch ([`Scan`]), and copies each entry into NEW through the proxy's own safe step
//! ([`VersionedProxy::copy_many`]): only keys the plan reads from NEW, only if NEW holds nothing as new,
//! never over a write in flight — so writers can keep hammering the same keys while it runs. After
//! every batch it saves a [`Checkpoint`], so a crash or Ctrl-C repeats at most one batch; it pauses
//! for a rate limit and backs off while the stores are slow or failing; and it reports
//! [`Progress`] (scanned, copied, skipped as newer, rate, ETA) after every batch.
//!
//! ```
//! use std::sync::Arc;
//! use zddm::backfill::{Backfill, MemoryCheckpoint};
//! use zddm::versioned::{MemorySource, MemoryTarget, Source, VersionedProxy};
//! use zddm::{Gate, Phase, Rate};
//!
//! # zddm::block_on(async {
//! let old = Arc::new(MemorySource::<u64, String>::new());
//! let new = Arc::new(MemoryTarget::<u64, String>::new());
//! for id in 0..1_000 {
//!     old.put(&id, &format!("user {id}")).await?;
//! }
//! let proxy = VersionedProxy::new(old.clone(), new.clone(), Gate::new("users", Rate::ALL));
//! proxy.set_phase(Phase::Live)?;
//!
//! let checkpoint = MemoryCheckpoint::new();
//! let done = Backfill::new(&proxy)
//!     .batch(100)
//!     .run(&checkpoint, |_pause| async {}, |progress| println!("{progress}"))
//!     .await?;
//! assert_eq!((done.scanned, done.copied), (1_000, 1_000));
//! assert_eq!(new.values().len(), 1_000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! The `sleep` argument is the runtime's timer (`tokio::time::sleep`): the library does not pick
//! a runtime. Several passes over the same OLD may run at once (each key's copy is safe on its
//! own), but each pass scans all of OLD.

mod checkpoint;
#[cfg(feature = "postgres")]
mod postgres;
mod ranges;
mod throttle;

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

pub use checkpoint::{Checkpoint, CheckpointError, Checkpoints, FileCheckpoint, MemoryCheckpoint};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresClaim, PostgresRanges, RangeError};
pub use ranges::{ranges, Claim, Range, Ranges};
use throttle::Throttle;

use crate::cached::{Cache, CachedProxy, ScanKeys};
use crate::error::chain;
use crate::key::MigrationKey;
use crate::proxy::Proxy;
use crate::store::Store;
use crate::versioned::{Copied, Page, Scan, Target, Versioned, VersionedProxy};

/// What proves a [`Pass::copy_many`] call copies what the pass's own scan read: only zddm's
/// backfill makes one, so no other code can put a value of its choosing into NEW through
/// `migration.proxy()`.
#[derive(Debug)]
pub struct Scanned(());

/// What a backfill runs over: OLD scanned in a stable order, and each batch copied into NEW the way
/// a read would copy it — [`VersionedProxy`] (versioned mode: OLD's entries with their versions,
/// filled if newer), [`CachedProxy`] (unversioned mode: OLD's keys, each read again under a
/// lease and filled only while the lease holds, as a read-through does) and [`Proxy`] (one
/// process: OLD's keys, each read again and inserted under the key's lock).
pub trait Pass: Sync {
    /// The key type.
    type Key: MigrationKey + Send + Sync;
    /// What the scan gives with each key.
    type Entry: Send + Sync;

    /// A page of OLD.
    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Self::Key, Self::Entry>, crate::Error>> + Send;

    /// The page's entries copied into NEW where safe; the outcomes in order. Only a backfill calls
    /// it (only zddm makes a [`Scanned`]), with what its own scan read: copied from anywhere else,
    /// an entry would be a write into NEW around the migration.
    fn copy_many(
        &self,
        entries: &[(Self::Key, Self::Entry)],
        scanned: Scanned,
    ) -> impl Future<Output = Result<Vec<Copied>, crate::Error>> + Send;

    /// About how many keys OLD holds, if it says.
    fn estimate(&self) -> impl Future<Output = Option<u64>> + Send;

    /// Whether OLD scans in canonical key order (ranges need it).
    fn canonical(&self) -> bool;
}

impl<K, V, Old, New> Pass for VersionedProxy<K, V, Old, New>
where
    K: MigrationKey + Send + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Scan<K, V>,
    New: Target<K, V>,
{
    type Key = K;
    type Entry = Versioned<V>;

    async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Versioned<V>>, crate::Error> {
        VersionedProxy::scan(self, after, limit).await
    }

    async fn copy_many(&self, entries: &[(K, Versioned<V>)], _: Scanned) -> Result<Vec<Copied>, crate::Error> {
        VersionedProxy::copy_many(self, entries).await
    }

    async fn estimate(&self) -> Option<u64> {
        VersionedProxy::estimate(self).await
    }

    fn canonical(&self) -> bool {
        self.old_canonical()
    }
}

impl<K, V, Old, New> Pass for CachedProxy<K, V, Old, New>
where
    K: MigrationKey + Send + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Store<K, V> + ScanKeys<K>,
    New: Cache<K, V>,
{
    type Key = K;
    type Entry = ();

    async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, ()>, crate::Error> {
        self.scan_keys(after, limit).await
    }

    async fn copy_many(&self, entries: &[(K, ())], _: Scanned) -> Result<Vec<Copied>, crate::Error> {
        self.copy_keys(entries).await
    }

    async fn estimate(&self) -> Option<u64> {
        None
    }

    fn canonical(&self) -> bool {
        true
    }
}

/// A [`Proxy`] over two plain stores: OLD's keys, each copied under its key's lock as a read-through
/// copies it (OLD's value inserted into NEW if NEW has none).
impl<K, V, Old, New> Pass for Proxy<K, V, Old, New>
where
    K: MigrationKey + Send + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Store<K, V> + ScanKeys<K>,
    New: Store<K, V>,
{
    type Key = K;
    type Entry = ();

    async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, ()>, crate::Error> {
        self.scan_old_keys(after, limit).await
    }

    async fn copy_many(&self, entries: &[(K, ())], _: Scanned) -> Result<Vec<Copied>, crate::Error> {
        let mut copied = Vec::with_capacity(entries.len());
        for (key, ()) in entries {
            copied.push(self.copy_key(key).await?);
        }
        Ok(copied)
    }

    async fn estimate(&self) -> Option<u64> {
        None
    }

    fn canonical(&self) -> bool {
        true
    }
}

/// A backfill pass over a proxy's OLD ([`Pass`]); configure, then [`run`](Backfill::run).
pub struct Backfill<'a, P> {
    proxy: &'a P,
    batch: usize,
    rate: Option<f64>,
    slow_per_row: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
    attempts: u32,
    range: Option<Range>,
}

/// Where a pass stands, reported after every batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The counts so far, resumed runs included, and the scan position.
    pub checkpoint: Checkpoint,
    /// About how many keys OLD holds, if it can say.
    pub estimate: Option<u64>,
    /// Entries scanned per second in this run.
    pub rate: f64,
    /// The time left at this rate, if OLD's size is known.
    pub eta: Option<Duration>,
}

impl std::ops::Deref for Progress {
    type Target = Checkpoint;

    fn deref(&self) -> &Checkpoint {
        &self.checkpoint
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.checkpoint;
        write!(f, "scanned {}", c.scanned)?;
        if let Some(estimate) = self.estimate {
            write!(f, " of about {estimate}")?;
        }
        write!(f, ", copied {}, skipped as newer {}, outside coverage {}", c.copied, c.newer, c.outside)?;
        write!(f, ", {:.0}/s", self.rate)?;
        match (c.done, self.eta) {
            (true, _) => f.write_str(", done"),
            (false, Some(eta)) => write!(f, ", about {}s left", eta.as_secs()),
            (false, None) => Ok(()),
        }
    }
}

/// Why a pass stopped before the end. Its checkpoint holds everything done until then.
///
/// As with [`zddm::Error`](crate::Error), the message carries the whole cause (the store's or the
/// checkpoint's error, and each cause under it, said once), and
/// [`source`](std::error::Error::source) returns `None`, so a reporter walking the chain says each
/// cause once. For code, the underlying error stays reachable: [`BackfillError::store_error`]
/// returns the proxy's [`zddm::Error`](crate::Error), [`BackfillError::checkpoint_error`] the
/// checkpoint store's error.
// Display and `std::error::Error` by hand, not derived with thiserror: thiserror would make the
// field named `source` the `source()`.
#[derive(Debug)]
#[non_exhaustive]
pub enum BackfillError {
    /// A store kept failing: `attempts` batches in a row.
    Store {
        /// How many attempts failed.
        attempts: u32,
        /// The last failure: in the message, and returned by [`BackfillError::store_error`] (not by
        /// `source()`, see [`BackfillError`]).
        source: crate::Error,
    },
    /// The checkpoint (or, for [`Backfill::work`], the ranges' store) could not be loaded or
    /// saved. Its error is in the message, and returned by [`BackfillError::checkpoint_error`]
    /// (not by `source()`, see [`BackfillError`]).
    Checkpoint(Box<dyn std::error::Error + Send + Sync>),
    /// An option is out of range.
    Config(String),
}

impl fmt::Display for BackfillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackfillError::Store { attempts, source } => write!(
                f,
                "the backfill stopped after {attempts} failed attempt{} at one batch ({}): run it again to \
                 resume from its checkpoint",
                if *attempts == 1 { "" } else { "s" },
                chain(source)
            ),
            BackfillError::Checkpoint(error) => write!(
                f,
                "the backfill's checkpoint could not be loaded or saved ({}): fix that, then run the backfill \
                 again to resume",
                chain(&**error)
            ),
            BackfillError::Config(message) => f.write_str(message),
        }
    }
}

/// No `source()`: the cause is in the message (see [`BackfillError`]).
impl std::error::Error for BackfillError {}

impl BackfillError {
    /// The proxy's error, if a store kept failing: the last failure. Its
    /// [`store_error`](crate::Error::store_error) is the store's own error.
    ///
    /// The message of `self` already includes this error's message (see [`BackfillError`]).
    pub fn store_error(&self) -> Option<&crate::Error> {
        match self {
            BackfillError::Store { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The checkpoint store's own error (or the ranges' store's, for [`Backfill::work`]), if the
    /// checkpoint could not be loaded or saved: downcast it to the store's error type (e.g.
    /// [`CheckpointError`]).
    ///
    /// The message of `self` already includes this error's message (see [`BackfillError`]).
    pub fn checkpoint_error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            BackfillError::Checkpoint(error) => Some(&**error),
            _ => None,
        }
    }
}

impl<'a, P: Pass> Backfill<'a, P> {
    /// A pass with defaults: batches of 500, no rate limit, backing off from 100 ms to 10 s when
    /// a batch takes over 10 ms per entry or fails, giving up after 10 failed attempts in a row.
    pub fn new(proxy: &'a P) -> Self {
        Backfill {
            proxy,
            batch: 500,
            rate: None,
            slow_per_row: Duration::from_millis(10),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            attempts: 10,
            range: None,
        }
    }

    /// Only the keys of `range` (a pass over one part of the key space; see [`work`](Backfill::work)).
    pub fn range(mut self, range: Range) -> Self {
        self.range = Some(range);
        self
    }

    /// Entries per batch (and per checkpoint): at least 1.
    pub fn batch(mut self, entries: usize) -> Self {
        self.batch = entries;
        self
    }

    /// At most `per_second` entries scanned per second; must be positive and finite.
    pub fn rate(mut self, per_second: f64) -> Self {
        self.rate = Some(per_second);
        self
    }

    /// Back off when a batch takes longer than `per_entry` per entry, or fails: pauses from `min`
    /// doubling up to `max`, shrinking again once batches are fast.
    pub fn back_off(mut self, per_entry: Duration, min: Duration, max: Duration) -> Self {
        (self.slow_per_row, self.min_backoff, self.max_backoff) = (per_entry, min, max);
        self
    }

    /// Give up after this many failed attempts at one batch (at least 1).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    fn check(&self) -> Result<(), BackfillError> {
        if self.batch == 0 {
            return Err(BackfillError::Config("a backfill batch must hold at least 1 entry, not 0".into()));
        }
        if let Some(rate) = self.rate.filter(|rate| !(rate.is_finite() && *rate > 0.0)) {
            return Err(BackfillError::Config(format!(
                "a backfill rate must be a positive number of entries per second, not {rate}"
            )));
        }
        if self.attempts == 0 {
            return Err(BackfillError::Config("a backfill needs at least 1 attempt per batch, not 0".into()));
        }
        if self.min_backoff > self.max_backoff {
            return Err(BackfillError::Config(format!(
                "the backfill's shortest back-off ({:?}) is longer than its longest ({:?})",
                self.min_backoff, self.max_backoff
            )));
        }
        Ok(())
    }

    /// Runs the pass from `checkpoints`' last checkpoint (or the start) to the end of OLD,
    /// pausing with `sleep` and calling `report` after every batch; returns the final progress.
    /// A pass whose checkpoint says it is done does nothing: save a fresh [`Checkpoint`] to run
    /// it again. Dropping the future stops it; the next run repeats at most one batch.
    pub async fn run<C, S, F>(
        &self,
        checkpoints: &C,
        sleep: S,
        mut report: impl FnMut(&Progress),
    ) -> Result<Progress, BackfillError>
    where
        C: Checkpoints,
        S: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        self.check()?;
        let saved = |error: C::Error| BackfillError::Checkpoint(Box::new(error));
        let mut checkpoint = checkpoints.load().await.map_err(saved)?.unwrap_or_default();
        if checkpoint.position.is_none() {
            checkpoint.position = self.range.as_ref().and_then(|range| range.start.clone());
        }
        let estimate = self.proxy.estimate().await;
        let mut throttle = Throttle::new(self.rate, self.slow_per_row, self.min_backoff, self.max_backoff);
        let (started, scanned_before) = (Instant::now(), checkpoint.scanned);
        let progress = |checkpoint: &Checkpoint| {
            let rate = (checkpoint.scanned - scanned_before) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let left = estimate.map(|estimate| estimate.saturating_sub(checkpoint.scanned));
            let eta = left.filter(|_| rate > 0.0).map(|left| Duration::from_secs_f64(left as f64 / rate));
            Progress { checkpoint: checkpoint.clone(), estimate, rate, eta }
        };
        let (mut failures, mut ran, mut ahead) = (0, false, None);
        while !checkpoint.done {
            ran = true;
            let began = Instant::now();
            match self.step(&checkpoint, &mut ahead).await {
                Ok((next, rows)) => {
                    failures = 0;
                    checkpoint = next;
                    checkpoints.save(&checkpoint).await.map_err(saved)?;
                    report(&progress(&checkpoint));
                    if !checkpoint.done {
                        let pause = throttle.after_batch(rows, began.elapsed());
                        if !pause.is_zero() {
                            sleep(pause).await;
                        }
                    }
                }
                Err(source) => {
                    failures += 1;
                    if failures >= self.attempts {
                        return Err(BackfillError::Store { attempts: failures, source });
                    }
                    sleep(throttle.after_error()).await;
                }
            }
        }
        let done = progress(&checkpoint);
        if !ran {
            report(&done);
        }
        Ok(done)
    }

    /// Boundaries that split OLD into `parts` ranges of about as many keys each, from one scan of
    /// OLD (two if OLD cannot estimate its size). For [`Ranges::plan`], by one worker.
    pub async fn split(&self, parts: u32) -> Result<Vec<Range>, BackfillError> {
        if parts == 0 {
            return Err(BackfillError::Config("a backfill needs at least 1 range, not 0".into()));
        }
        let store = |source| BackfillError::Store { attempts: 1, source };
        let batch = self.batch.max(1000);
        let total = match self.proxy.estimate().await {
            Some(total) => total,
            None => {
                let (mut total, mut after) = (0u64, None);
                loop {
                    let page = self.proxy.scan(after.as_deref(), batch).await.map_err(store)?;
                    total += page.entries.len() as u64;
                    match page.next {
                        Some(next) => after = Some(next),
                        None => break total,
                    }
                }
            }
        };
        let step = total.div_ceil(u64::from(parts)).max(1);
        let (mut boundaries, mut seen, mut after) = (Vec::new(), 0u64, None::<Vec<u8>>);
        'scan: loop {
            let page = self.proxy.scan(after.as_deref(), batch).await.map_err(store)?;
            for (key, _) in &page.entries {
                seen += 1;
                if seen % step == 0 && boundaries.len() + 1 < parts as usize {
                    boundaries.push(key.try_key_bytes().map_err(|e| BackfillError::Config(e.to_string()))?);
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break 'scan,
            }
        }
        Ok(ranges(&boundaries))
    }

    /// One worker of a pass split over several: plans the ranges if nobody has (splitting OLD
    /// into `parts`), then takes ranges no other worker holds and backfills each, its checkpoint
    /// kept in its range, until every range is done. A range whose worker died is taken over
    /// once the store has released its lock; meanwhile this worker waits `idle` between looks.
    pub async fn work<R, S, F>(
        &self,
        ranges: &R,
        parts: u32,
        idle: Duration,
        sleep: S,
        mut report: impl FnMut(&Range, &Progress),
    ) -> Result<Vec<Checkpoint>, BackfillError>
    where
        R: Ranges,
        S: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        let control = |error: R::Error| BackfillError::Checkpoint(Box::new(error));
        if !self.proxy.canonical() {
            return Err(BackfillError::Config(
                "ranges split OLD in canonical key order, and this OLD scans in another order: run one worker \
                 (Backfill::run) instead"
                    .into(),
            ));
        }
        if !ranges.planned().await.map_err(control)? {
            let split = self.split(parts).await?;
            ranges.plan(&split).await.map_err(control)?;
        }
        loop {
            match ranges.claim().await.map_err(control)? {
                Some(claim) => {
                    let range = claim.range().clone();
                    let pass = Backfill { range: Some(range.clone()), ..self.clone_options() };
                    let outcome = pass.run(&claim, &sleep, |progress| report(&range, progress)).await;
                    claim.release().await.map_err(control)?;
                    outcome?;
                }
                None => {
                    let checkpoints = ranges.checkpoints().await.map_err(control)?;
                    if checkpoints.iter().all(|checkpoint| checkpoint.done) {
                        return Ok(checkpoints);
                    }
                    sleep(idle).await;
                }
            }
        }
    }

    fn clone_options(&self) -> Self {
        Backfill {
            proxy: self.proxy,
            batch: self.batch,
            rate: self.rate,
            slow_per_row: self.slow_per_row,
            min_backoff: self.min_backoff,
            max_backoff: self.max_backoff,
            attempts: self.attempts,
            range: self.range.clone(),
        }
    }

    /// A page of OLD from `position`, cut at the range's end.
    async fn fetch(&self, position: Option<&[u8]>) -> Result<Page<P::Key, P::Entry>, crate::Error> {
        let mut page = self.proxy.scan(position, self.batch).await?;
        if let Some(end) = self.range.as_ref().and_then(|range| range.end.as_deref()) {
            // The range ends at `end`: what lies beyond is the next range's.
            let before = page.entries.len();
            page.entries.retain(|(key, _)| key.try_key_bytes().is_ok_and(|bytes| bytes.as_slice() <= end));
            if page.entries.len() < before || page.next.as_deref().is_some_and(|next| next >= end) {
                page.next = None;
            }
        }
        Ok(page)
    }

    /// One batch from `checkpoint`: the checkpoint after it, and how many entries it held. Counts
    /// change only once the whole batch is through, so a failed batch, repeated, counts once.
    ///
    /// The next page is read while this one is copied (`ahead`, with the position it was read
    /// from), so a store's round trips overlap the other's. Reading early is safe: a versioned
    /// copy lands only where NEW holds nothing as new, and the other passes read each value again
    /// when they copy it. A page read ahead that failed is read again in the next step.
    async fn step(&self, checkpoint: &Checkpoint, ahead: &mut Ahead<P>) -> Result<(Checkpoint, usize), crate::Error> {
        let page = match ahead.take() {
            Some((position, page)) if position == checkpoint.position => page,
            _ => self.fetch(checkpoint.position.as_deref()).await?,
        };
        let (copied, read) = match page.next.as_deref() {
            Some(position) => {
                let (copied, read) =
                    both(self.proxy.copy_many(&page.entries, Scanned(())), self.fetch(Some(position))).await;
                (copied, read.ok().map(|read| (page.next.clone(), read)))
            }
            None => (self.proxy.copy_many(&page.entries, Scanned(())).await, None),
        };
        *ahead = read;
        let mut next = checkpoint.clone();
        for copied in copied? {
            match copied {
                Copied::Copied => next.copied += 1,
                Copied::Newer => next.newer += 1,
                Copied::Outside => next.outside += 1,
            }
        }
        let rows = page.entries.len();
        next.scanned += rows as u64;
        next.done = page.next.is_none();
        next.position = page.next.or(next.position);
        Ok((next, rows))
    }
}

/// A page read ahead, with the position it was read from.
type Ahead<P> = Option<(Option<Vec<u8>>, Page<<P as Pass>::Key, <P as Pass>::Entry>)>;

/// Both futures' outputs, the two polled together on the caller's task (no runtime needed).
async fn both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut out_a, mut out_b) = (None, None);
    std::future::poll_fn(|cx| {
        if out_a.is_none() {
            if let std::task::Poll::Ready(out) = a.as_mut().poll(cx) {
                out_a = Some(out);
            }
        }
        if out_b.is_none() {
            if let std::task::Poll::Ready(out) = b.as_mut().poll(cx) {
                out_b = Some(out);
            }
        }
        match (out_a.take(), out_b.take()) {
            (Some(a), Some(b)) => std::task::Poll::Ready((a, b)),
            (a, b) => {
                (out_a, out_b) = (a, b);
                std::task::Poll::Pending
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use crate::error::fixtures::{Disk, Layered};
    use std::error::Error as _;

    use super::*;
    use crate::error::{Op, Side};

    #[test]
    fn a_store_error_says_its_cause_once_and_has_no_source() {
        let error =
            BackfillError::Store { attempts: 3, source: crate::Error::store(Side::Old, Op::Scan, Layered(Disk)) };
        assert_eq!(
            error.to_string(),
            "the backfill stopped after 3 failed attempts at one batch (scan on the OLD store failed: write failed: \
             the disk is full): run it again to resume from its checkpoint"
        );
        assert!(error.source().is_none(), "the cause is in the message");
        let store = error.store_error().expect("a store error");
        assert_eq!((store.side(), store.op()), (Side::Old, Op::Scan));
        assert!(store.store_error().downcast_ref::<Layered>().is_some());
        assert!(error.checkpoint_error().is_none());
        let error = BackfillError::Store { attempts: 1, source: crate::Error::store(Side::Old, Op::Scan, Disk) };
        assert!(error.to_string().starts_with("the backfill stopped after 1 failed attempt at"), "{error}");
    }

    #[test]
    fn a_checkpoint_error_says_its_cause_once_and_has_no_source() {
        let error = BackfillError::Checkpoint(Box::new(Layered(Disk)));
        assert_eq!(
            error.to_string(),
            "the backfill's checkpoint could not be loaded or saved (write failed: the disk is full): fix that, then \
             run the backfill again to resume"
        );
        assert!(error.source().is_none(), "the cause is in the message");
        assert!(error.checkpoint_error().and_then(|error| error.downcast_ref::<Layered>()).is_some());
        assert!(error.store_error().is_none());

        let error = BackfillError::Checkpoint(Box::new(CheckpointError::Io {
            action: "read",
            path: "pass.checkpoint".into(),
            source: std::io::Error::other("device gone"),
        }));
        let message = error.to_string();
        assert_eq!(message.matches("device gone").count(), 1, "{message}");
        let cause = error.checkpoint_error().and_then(|error| error.downcast_ref::<CheckpointError>());
        assert!(cause.and_then(CheckpointError::io_error).is_some());
    }
}
