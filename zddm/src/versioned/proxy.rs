use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Op, Side};
use crate::fleet::{Control, Fleet, Plan, Reach, Routing};
use crate::gate::Gate;
use crate::key::MigrationKey;
use crate::proxy::stats::{bump, Counters};
use crate::proxy::{ConfigError, Phase, PhaseError, Stats};
use crate::verify::Evidence;
use crate::versioned::{Change, Filled, Lookup, Page, Scan, ScanSlots, Source, Target, Versioned};

/// What [`VersionedProxy::copy_many`] did with an entry of OLD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copied {
    /// NEW took it.
    Copied,
    /// NEW already holds the key at this version or a newer one (a delete included), or a write
    /// of it is in flight: nothing changed.
    Newer,
    /// The plan does not read this key from NEW yet, so copying it would not be safe.
    Outside,
}

/// How long a write's pending mark keeps its key from being repaired by a read, unless set with
/// [`VersionedProxyBuilder::grace`].
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The proxy of versioned mode: the same gate and phases as [`Proxy`](crate::Proxy), correct
/// across any number of instances sharing OLD and NEW (see [the module](crate::versioned)).
///
/// Per call, with the key admitted:
/// - **read**: NEW's settled value or delete; on a miss or a pending key, OLD's, copied into NEW
///   only if newer than what NEW holds (and, for a pending key, only once its marks have expired).
/// - **write / delete**: mark the key pending in NEW, write OLD, apply OLD's version to NEW (a value
///   or a delete, if newer) and withdraw the mark. If NEW cannot take the mark, the write fails
///   before OLD is touched; if it fails after, the key stays pending and nobody serves it from NEW.
///
/// Alone, it follows its [`Gate`] and [`set_phase`](VersionedProxy::set_phase); in a fleet
/// ([`in_fleet`](VersionedProxy::in_fleet)) it follows the fleet's plan. No lock is held between
/// calls: versions order everything, in one process or many.
pub struct VersionedProxy<K: ?Sized, V, Old, New> {
    inner: Arc<Inner<K, V, Old, New>>,
}

struct Inner<K: ?Sized, V, Old, New> {
    old: Old,
    new: New,
    gate: Gate,
    routing: Routing,
    grace: Duration,
    /// `Complete` writes OLD first, as `Live` does (see `complete_writes_old`).
    keeps_old: bool,
    stats: Counters,
    /// Local routing only: the verification that earns `Complete`.
    evidence: Evidence,
    types: PhantomData<fn(&K) -> V>,
}

/// Options for a [`VersionedProxy`]; start with [`VersionedProxy::builder`].
pub struct VersionedProxyBuilder<K: ?Sized, V, Old, New> {
    old: Old,
    new: New,
    gate: Gate,
    routing: Routing,
    phase: Phase,
    grace: Duration,
    keeps_old: bool,
    types: PhantomData<fn(&K) -> V>,
}

impl<K: ?Sized, V, Old: Source<K, V>, New: Target<K, V>> VersionedProxyBuilder<K, V, Old, New> {
    /// The phase the proxy starts in (default [`Phase::ReadThrough`]); ignored in a fleet.
    pub fn phase(mut self, phase: Phase) -> Self {
        self.phase = phase;
        self
    }

    /// How long a write may take from marking its key to settling it (default [`DEFAULT_GRACE`]).
    /// After it, a read may repair the key from OLD, so it must be longer than any write can take:
    /// at least twice the stores' own operation timeouts ([`Source::timeout`]), checked by
    /// [`build`](VersionedProxyBuilder::build). Whole milliseconds, at least one.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Whether `Complete` still writes OLD first (default `false`). By default `Complete` writes NEW
    /// alone, with a version from OLD's counter; with `true` its writes are `Live`'s — mark NEW,
    /// write OLD, apply OLD's version — and so are [`update`](VersionedProxy::update)'s, which run
    /// the application's own method on OLD and are refused in `Complete` otherwise. NEW stays as
    /// exact either way; OLD stays current too, at one more call per write.
    ///
    /// Every instance that writes the same keys must be built the same way: an update reads OLD
    /// back after its method, so a write another instance made to NEW alone would be lost. A
    /// `#[zddm::migrate(.., mode = versioned)]` migration sets it whenever its trait has a
    /// write method of its own besides the routed write and delete.
    pub fn complete_writes_old(mut self, yes: bool) -> Self {
        self.keeps_old = yes;
        self
    }

    /// The proxy, or why these options do not make one.
    pub fn build(mut self) -> Result<VersionedProxy<K, V, Old, New>, ConfigError> {
        if self.grace.as_millis() == 0 || self.grace.subsec_nanos() % 1_000_000 != 0 {
            return Err(ConfigError::Grace { grace: self.grace });
        }
        let timeout = Source::timeout(&self.old).into_iter().chain(Target::timeout(&self.new)).max();
        if let Some(timeout) = timeout.filter(|timeout| self.grace < *timeout * 2) {
            return Err(ConfigError::GraceBelowTimeout { grace: self.grace, timeout });
        }
        if let Routing::Local(phase) = &mut self.routing {
            Phase::check_start(self.phase, self.gate.rate())?;
            if self.phase == Phase::Complete {
                let full = self.gate.fix_for_complete();
                full.map_err(|rate| PhaseError::NeedsFullRate { phase: Phase::Complete, rate })?;
            }
            *phase.get_mut() = self.phase.index();
        }
        Ok(self.assemble())
    }

    pub(crate) fn assemble(self) -> VersionedProxy<K, V, Old, New> {
        VersionedProxy {
            inner: Arc::new(Inner {
                old: self.old,
                new: self.new,
                gate: self.gate,
                routing: self.routing,
                grace: self.grace,
                keeps_old: self.keeps_old,
                stats: Counters::default(),
                evidence: Evidence::default(),
                types: PhantomData,
            }),
        }
    }
}

impl<K: ?Sized, V, Old, New> VersionedProxy<K, V, Old, New> {
    /// A proxy for one process, in the [`ReadThrough`](Phase::ReadThrough) phase with default
    /// options. With several instances, use [`in_fleet`](VersionedProxy::in_fleet).
    pub fn new(old: Old, new: New, gate: Gate) -> Self
    where
        Old: Source<K, V>,
        New: Target<K, V>,
    {
        Self::builder(old, new, gate).assemble()
    }

    /// A proxy that follows `fleet`'s plan, with default options.
    pub fn in_fleet<C: Control>(old: Old, new: New, fleet: &Fleet<C>) -> Self
    where
        Old: Source<K, V>,
        New: Target<K, V>,
    {
        Self::fleet_builder(old, new, fleet).assemble()
    }

    /// Options beyond [`VersionedProxy::new`]'s defaults.
    pub fn builder(old: Old, new: New, gate: Gate) -> VersionedProxyBuilder<K, V, Old, New>
    where
        Old: Source<K, V>,
        New: Target<K, V>,
    {
        VersionedProxyBuilder {
            old,
            new,
            gate,
            routing: Routing::local(Phase::ReadThrough),
            phase: Phase::ReadThrough,
            grace: DEFAULT_GRACE,
            keeps_old: false,
            types: PhantomData,
        }
    }

    /// Options beyond [`VersionedProxy::in_fleet`]'s defaults.
    pub fn fleet_builder<C: Control>(old: Old, new: New, fleet: &Fleet<C>) -> VersionedProxyBuilder<K, V, Old, New>
    where
        Old: Source<K, V>,
        New: Target<K, V>,
    {
        let gate = fleet.gate().clone();
        // Its rates are the plan's: `set_rate` on it would be ignored, so it is refused.
        gate.fix_for_fleet();
        VersionedProxyBuilder {
            old,
            new,
            gate,
            routing: Routing::Fleet(fleet.cell()),
            phase: Phase::ReadThrough,
            grace: DEFAULT_GRACE,
            keeps_old: false,
            types: PhantomData,
        }
    }

    /// The gate deciding which keys take part. In a fleet only its salt counts: the rates are
    /// the plan's, and [`Gate::set_rate`] is refused ([`RateError::GateInFleet`](crate::RateError)).
    /// On its own, its rate may be lowered in any phase before `Complete` (in `Live` the keys it no
    /// longer admits are read from OLD, which `Live` still writes first); from `Complete` on it
    /// stays at 100 %.
    pub fn gate(&self) -> &Gate {
        &self.inner.gate
    }

    /// The grace period of pending marks.
    pub fn grace(&self) -> Duration {
        self.inner.grace
    }

    /// The plan calls run under now.
    pub fn plan(&self) -> Plan {
        self.inner.routing.plan(&self.inner.gate)
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.plan().phase
    }

    /// Moves to `phase`, for this proxy and its clones; returns the previous phase. The same
    /// transitions as [`Proxy::set_phase`](crate::Proxy::set_phase) are refused, and every change
    /// in a fleet (which moves with [`Fleet::set_goal`]). `Complete` must be earned: it is refused
    /// ([`PhaseError::Unverified`]) unless a whole [`Verify`](crate::verify::Verify) pass that began
    /// in `Live`, with no phase change since, found NEW clean. Keys left pending need no wait here:
    /// in `Complete` a read of a pending key still repairs it from OLD.
    pub fn set_phase(&self, phase: Phase) -> Result<Phase, PhaseError> {
        self.inner.evidence.change(phase, |earned| {
            let current = self.phase();
            let local = matches!(self.inner.routing, Routing::Local(_));
            if phase == Phase::Complete && current == Phase::Live && local && !earned {
                return Err(PhaseError::Unverified);
            }
            if phase == Phase::Complete && local {
                // `Complete` writes NEW only: fix the gate at 100 %, once the move is known to be
                // allowed (phase changes of this proxy are serialised by the evidence's lock).
                Phase::check_transition(current, phase, self.inner.gate.rate())?;
                let full = self.inner.gate.fix_for_complete();
                full.map_err(|rate| PhaseError::NeedsFullRate { phase, rate })?;
            }
            self.inner.routing.set_phase(&self.inner.gate, phase)
        })
    }

    /// When a verification begins: the fleet's epoch, or how many phase changes this proxy made.
    pub(crate) fn verification_epoch(&self) -> u64 {
        match &self.inner.routing {
            Routing::Fleet(cell) => cell.epoch.load(std::sync::atomic::Ordering::Acquire),
            Routing::Local(_) => self.inner.evidence.epoch(),
        }
    }

    /// This proxy's own record of the verification that earns `Complete` (local routing only).
    pub(crate) fn evidence(&self) -> &Evidence {
        &self.inner.evidence
    }

    /// Counters of what this proxy did so far. `repairs` counts pending keys a read repaired.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }
}

impl<K, V, Old, New> VersionedProxy<K, V, Old, New>
where
    K: MigrationKey + ?Sized + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Source<K, V>,
    New: Target<K, V>,
{
    /// Reads `key` (see the type's docs). Fails only if the store that must serve it fails: OLD,
    /// or NEW in `Live` and `Complete`.
    pub async fn get(&self, key: &K) -> Result<Option<V>, Error> {
        let (reach, phase, _ticket) = self.route(
            key,
            read_reach,
            // Fenced: OLD, which every phase before `Complete` writes; in `Live` NEW as well, as
            // the fleet may have completed without this instance.
            |plan, _| match plan.phase {
                Phase::Live | Phase::Complete => plan.read_reach(|_| true),
                _ => Reach::Old,
            },
        );
        match reach {
            Reach::Through | Reach::New => self.read_through(key, phase).await,
            Reach::Shadow => self.read_shadow(key).await,
            Reach::Old | Reach::Invalidate => Ok(self.read_old(key).await?.map(|found| found.value)),
        }
    }

    /// Writes `value` under `key`: OLD, then NEW at OLD's version, with the key pending between.
    pub async fn put(&self, key: &K, value: &V) -> Result<(), Error> {
        self.write(key, Some(value)).await
    }

    /// Deletes `key`: from OLD, then a tombstone in NEW at the delete's version, which no slower
    /// read-through in any instance can overwrite.
    pub async fn delete(&self, key: &K) -> Result<(), Error> {
        self.write(key, None).await
    }

    /// Another keyed write of the application's own (a repository's `archive` or `put_many`):
    /// `on_old` runs once, on OLD, with each key marked pending in NEW before it and settled after
    /// it as a verifier's [`repair`](Self::repair) settles a key: a version drawn from OLD's
    /// counter once `on_old` is done, then OLD's state of the key (its value, or a delete if it has
    /// none) applied to NEW at that version. A write of the key that committed to OLD before the
    /// draw is in what was read; one that commits after it has a newer version and wins in NEW. So
    /// `on_old` need not bump the rows' versions itself. Keys the plan only invalidates are
    /// invalidated at that version; keys it leaves to OLD are not touched in NEW.
    ///
    /// The call's own answer comes back as it is (a failure of OLD included, after which NEW is
    /// settled all the same). If NEW cannot take a mark, the call fails before `on_old` runs; if a
    /// key cannot be settled after it, the key stays pending, served by OLD until a read repairs it.
    ///
    /// In `Complete`, without [`complete_writes_old`](VersionedProxyBuilder::complete_writes_old),
    /// the call is refused ([`Error::Refused`]) before anything runs: `Complete` writes NEW alone,
    /// so OLD no longer holds what the method would change.
    pub async fn update_many<R>(&self, keys: &[&K], on_old: impl std::future::Future<Output = R>) -> Result<R, Error> {
        let mut tickets = Vec::with_capacity(keys.len());
        let mut covered = Vec::with_capacity(keys.len());
        for key in keys {
            let (reach, phase, ticket) = self.write_route(key);
            tickets.push(ticket);
            match reach {
                Reach::Old => {}
                Reach::New => return Err(Error::Refused { op: Op::Update, phase }),
                reach => covered.push((*key, reach)),
            }
        }
        let started = Instant::now();
        // Before OLD changes, as a write's mark: whatever happens next, no instance serves NEW's copy.
        for (key, _) in &covered {
            self.mark(key).await?;
        }
        let answer = on_old.await;
        // As a write's: one slower than half its grace may have been repaired around already.
        let settle = started.elapsed() < self.inner.grace / 2;
        for (key, reach) in &covered {
            // A key that cannot be settled stays pending: OLD serves it until a read repairs NEW.
            let invalidate = *reach == Reach::Invalidate;
            drop(self.copy_as_of_now(key, invalidate, settle, (Op::Update, Op::Update)).await);
        }
        drop(tickets);
        Ok(answer)
    }

    /// [`update_many`](Self::update_many) of one key.
    pub async fn update<R>(&self, key: &K, on_old: impl std::future::Future<Output = R>) -> Result<R, Error> {
        self.update_many(&[key], on_old).await
    }

    /// Makes NEW agree with OLD for `key` as of now: a version drawn from OLD's counter, then OLD's
    /// state read (its value, or a delete if it has none) and applied at that version — or an
    /// invalidation, if `invalidate`. A write that committed before the draw is in what was read;
    /// one after it has a newer version. `ops`: OLD's and NEW's operation, for errors.
    async fn copy_as_of_now(&self, key: &K, invalidate: bool, settle: bool, ops: (Op, Op)) -> Result<(), Error> {
        let version = self.inner.old.next_version(key).await.map_err(|e| self.fail(Side::Old, ops.0, e))?;
        let found;
        let change = if invalidate {
            bump(&self.inner.stats.invalidations);
            Change::Invalidate
        } else {
            found = self.inner.old.get(key).await.map_err(|e| self.fail(Side::Old, ops.0, e))?;
            found.as_ref().map_or(Change::Delete, |found| Change::Put(&found.value))
        };
        self.inner.new.apply(key, change, version, settle).await.map_err(|e| self.fail(Side::New, ops.1, e))
    }

    /// Copies a batch of OLD's entries, as a [`Scan`] read them (keys distinct), into NEW where a
    /// read of each key would: only if the plan reads the key from NEW (so every instance that may
    /// run at the same time writes it through), and only if NEW holds nothing as new and no write
    /// of the key is in flight — one [`Target::fill_many`]. The outcomes in order; this is a
    /// backfill's step, which [`crate::backfill`] runs over OLD.
    pub async fn copy_many(&self, entries: &[(K, Versioned<V>)]) -> Result<Vec<Copied>, Error>
    where
        K: Sized,
    {
        let mut tickets = Vec::with_capacity(entries.len());
        let mut covered = Vec::with_capacity(entries.len());
        let mut out = Vec::with_capacity(entries.len());
        for (key, found) in entries {
            match self.inner.routing.reads_from_new(&self.inner.gate, key) {
                None => out.push(Copied::Outside),
                Some(ticket) => {
                    // Held until the fills are done, as a read holds its own.
                    tickets.push(ticket);
                    covered.push((key, &found.value, found.version));
                    out.push(Copied::Copied);
                }
            }
        }
        if covered.is_empty() {
            return Ok(out);
        }
        let filled = self.inner.new.fill_many(&covered).await.map_err(|e| self.fail(Side::New, Op::Fill, e))?;
        drop(tickets);
        let mut filled = filled.into_iter();
        for copied in out.iter_mut().filter(|copied| **copied == Copied::Copied) {
            *copied = match filled.next() {
                Some(Filled::Copied | Filled::Repaired) => {
                    bump(&self.inner.stats.backfills);
                    Copied::Copied
                }
                _ => {
                    bump(&self.inner.stats.backfills_skipped);
                    Copied::Newer
                }
            };
        }
        Ok(out)
    }

    /// Makes NEW agree with OLD for `key` whatever NEW holds — a value NEW has and OLD no longer
    /// does, a different value, a missing key — where the plan reads the key from NEW: a verifier's
    /// repair. It draws a version from OLD's counter, then reads OLD, then applies what it read at
    /// that version. A write of the key that committed before the draw is in what it read; one
    /// after it has a newer version and wins in NEW. A write in flight keeps its mark.
    pub async fn repair(&self, key: &K) -> Result<Copied, Error> {
        let Some(_ticket) = self.inner.routing.reads_from_new(&self.inner.gate, key) else {
            return Ok(Copied::Outside);
        };
        self.copy_as_of_now(key, false, false, (Op::Get, Op::Fill)).await?;
        bump(&self.inner.stats.reads_from_old);
        bump(&self.inner.stats.repairs);
        Ok(Copied::Copied)
    }

    /// What NEW holds for `key`, as a read would find it.
    pub(crate) async fn lookup_new(&self, key: &K) -> Result<Lookup<V>, Error> {
        self.inner.new.lookup(key).await.map_err(|e| self.fail(Side::New, Op::Get, e))
    }

    /// OLD's entry for `key`.
    pub(crate) async fn get_old(&self, key: &K) -> Result<Option<Versioned<V>>, Error> {
        self.inner.old.get(key).await.map_err(|e| self.fail(Side::Old, Op::Get, e))
    }

    /// A page of NEW's slots in canonical key order.
    pub(crate) async fn scan_new(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Lookup<V>>, Error>
    where
        K: Sized,
        New: ScanSlots<K, V>,
    {
        self.inner.new.scan_slots(after, limit).await.map_err(|e| self.fail(Side::New, Op::Scan, e))
    }

    /// Up to `limit` keys after `after` whose writes have not settled in NEW.
    pub(crate) async fn pending(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, Error> {
        self.inner.new.pending_keys(after, limit).await.map_err(|e| self.fail(Side::New, Op::Scan, e))
    }

    /// A page of OLD in scan order.
    pub(crate) async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Versioned<V>>, Error>
    where
        K: Sized,
        Old: Scan<K, V>,
    {
        self.inner.old.scan(after, limit).await.map_err(|e| self.fail(Side::Old, Op::Scan, e))
    }

    /// Whether OLD's scan runs in canonical key order.
    pub(crate) fn old_canonical(&self) -> bool
    where
        K: Sized,
        Old: Scan<K, V>,
    {
        Scan::canonical(&self.inner.old)
    }

    /// Whether NEW's scan runs in canonical key order.
    pub(crate) fn new_canonical(&self) -> bool
    where
        K: Sized,
        New: ScanSlots<K, V>,
    {
        ScanSlots::canonical(&self.inner.new)
    }

    /// OLD's estimate of its size; `None` if it cannot say, or failed to.
    pub(crate) async fn estimate(&self) -> Option<u64>
    where
        K: Sized,
        Old: Scan<K, V>,
    {
        self.inner.old.estimate().await.ok().flatten()
    }

    fn route(
        &self,
        key: &K,
        reach: impl Fn(&Plan, &dyn Fn(crate::Rate) -> bool) -> Reach,
        fenced: impl Fn(&Plan, &dyn Fn(crate::Rate) -> bool) -> Reach,
    ) -> (Reach, Phase, Option<crate::fleet::Ticket<'_>>) {
        self.inner.routing.route(&self.inner.gate, key, reach, fenced)
    }

    fn fail(&self, side: Side, op: Op, error: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.inner.stats.fail(side, op, error)
    }

    async fn read_old(&self, key: &K) -> Result<Option<Versioned<V>>, Error> {
        let found = self.inner.old.get(key).await.map_err(|e| self.fail(Side::Old, Op::Get, e))?;
        bump(&self.inner.stats.reads_from_old);
        Ok(found)
    }

    async fn read_through(&self, key: &K, phase: Phase) -> Result<Option<V>, Error> {
        let stats = &self.inner.stats;
        let token = match self.inner.new.lookup(key).await {
            Ok(Lookup::Hit(value)) => {
                bump(&stats.new_hits);
                bump(&stats.reads_from_new);
                return Ok(Some(value));
            }
            // A settled delete is the answer: every instance that writes the key keeps NEW honest.
            Ok(Lookup::Deleted) => {
                bump(&stats.new_hits);
                bump(&stats.reads_from_new);
                return Ok(None);
            }
            Ok(Lookup::Miss) if phase == Phase::Complete => {
                bump(&stats.new_misses);
                bump(&stats.reads_from_new);
                return Ok(None);
            }
            Ok(Lookup::Miss) => None,
            Ok(Lookup::Pending { token, expired }) => Some(expired.then_some(token)),
            Err(error) => {
                let error = self.fail(Side::New, Op::Get, error);
                if matches!(phase, Phase::Live | Phase::Complete) {
                    return Err(error);
                }
                return Ok(self.read_old(key).await?.map(|found| found.value));
            }
        };
        bump(&stats.new_misses);
        let found = self.read_old(key).await?;
        match token {
            // Not pending: copy a value, if NEW has nothing as new.
            None => {
                if let Some(found) = &found {
                    self.fill(key, Some(&found.value), found.version, None).await;
                }
            }
            // Pending, every mark expired: OLD's state is final for them, absent included.
            Some(Some(token)) => {
                let (value, version) = found.as_ref().map_or((None, 0), |f| (Some(&f.value), f.version));
                self.fill(key, value, version, Some(token)).await;
            }
            // A write is in flight: OLD answers, NEW is left to it.
            Some(None) => {}
        }
        Ok(found.map(|found| found.value))
    }

    /// A fill is a courtesy to later reads: its failure never fails this one.
    async fn fill(&self, key: &K, value: Option<&V>, version: u64, token: Option<u64>) {
        let stats = &self.inner.stats;
        match self.inner.new.fill(key, value, version, token).await {
            Ok(Filled::Copied) => bump(&stats.backfills),
            Ok(Filled::Repaired) => bump(&stats.repairs),
            Ok(Filled::Refused) => bump(&stats.backfills_skipped),
            Err(error) => drop(self.fail(Side::New, Op::Fill, error)),
        }
    }

    async fn read_shadow(&self, key: &K) -> Result<Option<V>, Error> {
        let stats = &self.inner.stats;
        let found = self.read_old(key).await?;
        let lookup = match self.inner.new.lookup(key).await {
            Ok(lookup) => lookup,
            Err(error) => {
                drop(self.fail(Side::New, Op::Get, error));
                return Ok(found.map(|found| found.value));
            }
        };
        bump(&stats.shadow_compared);
        let old_value = found.as_ref().map(|found| &found.value);
        let agrees = match &lookup {
            Lookup::Hit(new_value) => old_value == Some(new_value),
            Lookup::Deleted => old_value.is_none(),
            Lookup::Miss | Lookup::Pending { .. } => true,
        };
        match lookup {
            Lookup::Hit(_) | Lookup::Deleted => bump(&stats.new_hits),
            Lookup::Miss | Lookup::Pending { .. } => bump(&stats.new_misses),
        }
        if !agrees {
            // Either a write landed between the two reads, or NEW is behind.
            bump(&stats.mismatches);
        }
        if let (Some(found), false) = (&found, matches!(lookup, Lookup::Pending { .. })) {
            // A fill takes OLD's value only if it is the newer one.
            self.fill(key, Some(&found.value), found.version, None).await;
        }
        Ok(found.map(|found| found.value))
    }

    /// Where a write of `key` goes, with the call's ticket: `Reach::New` only in `Complete`, and
    /// not with `complete_writes_old`, which writes through there as `Live` does.
    fn write_route(&self, key: &K) -> (Reach, Phase, Option<crate::fleet::Ticket<'_>>) {
        let keeps_old = self.inner.keeps_old;
        let reach = move |plan: &Plan, admitted: &dyn Fn(crate::Rate) -> bool| match plan.write_reach(admitted) {
            Reach::New if keeps_old => Reach::Through,
            reach => reach,
        };
        self.route(
            key,
            reach,
            // Fenced: write through what the fleet writes through, invalidate every other key —
            // the fleet may have raised its coverage meanwhile.
            move |plan, admitted| match reach(plan, admitted) {
                reach @ (Reach::Through | Reach::New) => reach,
                _ => Reach::Invalidate,
            },
        )
    }

    async fn write(&self, key: &K, value: Option<&V>) -> Result<(), Error> {
        let op = if value.is_some() { Op::Put } else { Op::Delete };
        let (reach, _, _ticket) = self.write_route(key);
        let change = match (reach, value) {
            (Reach::Old, _) => return self.write_old(key, value, op).await.map(drop),
            (Reach::New, _) => {
                // OLD is no longer written; its counter still orders this write with any instance
                // still in `Live`.
                let version = self.inner.old.next_version(key).await.map_err(|e| self.fail(Side::Old, op, e))?;
                let change = value.map_or(Change::Delete, Change::Put);
                self.inner.new.apply(key, change, version, false).await.map_err(|e| self.fail(Side::New, op, e))?;
                return Ok(());
            }
            // Only invalidated, deletes too: an instance a step behind may still write this key to
            // OLD alone, after this write, so NEW may not answer for it — not even "deleted".
            (Reach::Invalidate, _) => Change::Invalidate,
            (_, None) => Change::Delete,
            (_, Some(value)) => Change::Put(value),
        };
        let started = Instant::now();
        // Before OLD changes, so that whatever happens from here on — an error, a dropped future,
        // a crash — no instance serves NEW's copy until this write or a later repair settles it.
        self.mark(key).await?;
        // If OLD fails, the key stays pending: OLD may have committed (a timeout after commit).
        let version = self.write_old(key, value, op).await?;
        // A write slower than half its grace may already have been repaired around; its mark may
        // have been cleared, so withdrawing it could withdraw a later write's mark instead.
        let settle = started.elapsed() < self.inner.grace / 2;
        if matches!(change, Change::Invalidate) {
            bump(&self.inner.stats.invalidations);
        }
        if let Err(error) = self.inner.new.apply(key, change, version, settle).await {
            // The key stays pending: OLD serves it until a read repairs NEW.
            drop(self.fail(Side::New, op, error));
        }
        Ok(())
    }

    /// Marks `key` pending in NEW for the grace period, before a write changes OLD.
    async fn mark(&self, key: &K) -> Result<(), Error> {
        let grace_ms = u64::try_from(self.inner.grace.as_millis()).unwrap_or(u64::MAX);
        self.inner.new.mark(key, grace_ms).await.map_err(|e| self.fail(Side::New, Op::Mark, e))
    }

    async fn write_old(&self, key: &K, value: Option<&V>, op: Op) -> Result<u64, Error> {
        let written = match value {
            Some(value) => self.inner.old.put(key, value).await,
            None => self.inner.old.delete(key).await,
        };
        written.map_err(|e| self.fail(Side::Old, op, e))
    }
}

/// Where a read goes under `plan`. A fleet's plan reads every key in `Live`; a local plan's read
/// rate is its gate's, which may have been lowered in `Live`: the keys it no longer admits are read
/// from OLD, which `Live` still writes first (and writes them through to NEW as well).
fn read_reach(plan: &Plan, admitted: &dyn Fn(crate::Rate) -> bool) -> Reach {
    if plan.phase == Phase::Live && plan.read != crate::Rate::ALL && !admitted(plan.read) {
        return Reach::Old;
    }
    plan.read_reach(admitted)
}

impl<K: ?Sized, V, Old, New> Clone for VersionedProxy<K, V, Old, New> {
    fn clone(&self) -> Self {
        VersionedProxy { inner: Arc::clone(&self.inner) }
    }
}

impl<K: ?Sized, V, Old, New> fmt::Debug for VersionedProxy<K, V, Old, New> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionedProxy")
            .field("plan", &self.plan())
            .field("fleet", &matches!(self.inner.routing, Routing::Fleet(_)))
            .field("grace", &self.inner.grace)
            .field("complete_writes_old", &self.inner.keeps_old)
            .finish_non_exhaustive()
    }
}
