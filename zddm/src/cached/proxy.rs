use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cached::{Cache, Probe};
use crate::error::{Error, Op, Side};
use crate::fleet::{Control, Fleet, Plan, Reach, Routing};
use crate::gate::Gate;
use crate::key::MigrationKey;
use crate::proxy::stats::{bump, Counters};
use crate::proxy::{ConfigError, Phase, PhaseError, Stats};
use crate::store::Store;
use crate::versioned::DEFAULT_GRACE;

/// The proxy of unversioned mode (see [the module](crate::cached)): OLD is any [`Store`], NEW a
/// [`Cache`] filled by reads under leases and invalidated by writes. The same gate, phases and
/// fleet plans as [`VersionedProxy`](crate::versioned::VersionedProxy), except that `Complete`
/// behaves as `Live`: without versions NEW never becomes the source of truth.
pub struct CachedProxy<K: ?Sized, V, Old, New> {
    inner: Arc<Inner<K, V, Old, New>>,
}

struct Inner<K: ?Sized, V, Old, New> {
    old: Old,
    new: New,
    gate: Gate,
    routing: Routing,
    grace: Duration,
    stats: Counters,
    types: PhantomData<fn(&K) -> V>,
}

impl<K: ?Sized, V, Old, New> CachedProxy<K, V, Old, New> {
    /// A proxy for one process, in the `ReadThrough` phase, with the default grace period (30 s).
    pub fn new(old: Old, new: New, gate: Gate) -> Self
    where
        Old: Store<K, V>,
        New: Cache<K, V>,
    {
        Self::assemble(old, new, gate, Routing::local(Phase::ReadThrough), DEFAULT_GRACE)
    }

    /// A proxy that follows `fleet`'s plan, with the default grace period.
    pub fn in_fleet<C: Control>(old: Old, new: New, fleet: &Fleet<C>) -> Self
    where
        Old: Store<K, V>,
        New: Cache<K, V>,
    {
        let gate = fleet.gate().clone();
        // Its rates are the plan's: `set_rate` on it would be ignored, so it is refused.
        gate.fix_for_fleet();
        Self::assemble(old, new, gate, Routing::Fleet(fleet.cell()), DEFAULT_GRACE)
    }

    /// The same proxy with another grace period: how long a write may take from its mark to its
    /// invalidation — longer than any write can take, and at least twice NEW's own operation
    /// timeout ([`Cache::timeout`]). Whole milliseconds, at least one.
    pub fn with_grace(self, grace: Duration) -> Result<Self, ConfigError>
    where
        Old: Clone,
        New: Clone + Cache<K, V>,
    {
        if grace.as_millis() == 0 || grace.subsec_nanos() % 1_000_000 != 0 {
            return Err(ConfigError::Grace { grace });
        }
        let inner = &self.inner;
        if let Some(timeout) = inner.new.timeout().filter(|timeout| grace < *timeout * 2) {
            return Err(ConfigError::GraceBelowTimeout { grace, timeout });
        }
        let routing = match &inner.routing {
            Routing::Local(_) => Routing::local(self.phase()),
            Routing::Fleet(cell) => Routing::Fleet(Arc::clone(cell)),
        };
        Ok(Self::assemble(inner.old.clone(), inner.new.clone(), inner.gate.clone(), routing, grace))
    }

    fn assemble(old: Old, new: New, gate: Gate, routing: Routing, grace: Duration) -> Self {
        CachedProxy {
            inner: Arc::new(Inner { old, new, gate, routing, grace, stats: Counters::default(), types: PhantomData }),
        }
    }

    /// The gate deciding which keys take part. In a fleet only its salt counts, and
    /// [`Gate::set_rate`] is refused ([`RateError::GateInFleet`](crate::RateError)). On its own,
    /// its rate may be lowered in every phase (`Complete` behaves as `Live`, and both still write
    /// OLD): the keys it no longer admits are read from OLD.
    pub fn gate(&self) -> &Gate {
        &self.inner.gate
    }

    /// The plan calls run under now.
    pub fn plan(&self) -> Plan {
        self.inner.routing.plan(&self.inner.gate)
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.plan().phase
    }

    /// Moves to `phase` (refused in a fleet, and for the same transitions as
    /// [`Proxy::set_phase`](crate::Proxy::set_phase)); returns the previous phase.
    pub fn set_phase(&self, phase: Phase) -> Result<Phase, PhaseError> {
        self.inner.routing.set_phase(&self.inner.gate, phase)
    }

    /// Counters of what this proxy did so far: `backfills` counts fills that landed,
    /// `backfills_skipped` fills refused (a write voided the lease), `invalidations` writes'
    /// invalidations, `repairs` fills that cleared expired marks.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }
}

impl<K, V, Old, New> CachedProxy<K, V, Old, New>
where
    K: MigrationKey + ?Sized + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Store<K, V>,
    New: Cache<K, V>,
{
    /// Reads `key`: NEW's cached answer, or OLD's (copied into NEW under a lease).
    pub async fn get(&self, key: &K) -> Result<Option<V>, Error> {
        let (reach, phase, _ticket) = self.inner.routing.route(
            &self.inner.gate,
            key,
            |plan, admitted| {
                // A local plan's gate may have been lowered in `Live` (or `Complete`, which behaves
                // as `Live` here): keys it no longer admits are read from OLD, the source of truth.
                let everywhere = matches!(plan.phase, Phase::Live | Phase::Complete);
                if everywhere && plan.read != crate::Rate::ALL && !admitted(plan.read) {
                    return Reach::Old;
                }
                plan.read_reach(admitted)
            },
            |plan, _| match plan.phase {
                Phase::Live | Phase::Complete => Reach::Through,
                _ => Reach::Old,
            },
        );
        match reach {
            Reach::Through | Reach::New => self.read_through(key, phase).await,
            Reach::Shadow => self.read_shadow(key).await,
            Reach::Old | Reach::Invalidate => self.read_old(key).await,
        }
    }

    /// Writes `value` under `key`: OLD, with NEW's copy hidden before and invalidated after.
    pub async fn put(&self, key: &K, value: &V) -> Result<(), Error> {
        self.write(key, Some(value)).await
    }

    /// Deletes `key` from OLD, with NEW's copy hidden before and invalidated after.
    pub async fn delete(&self, key: &K) -> Result<(), Error> {
        self.write(key, None).await
    }

    fn fail(&self, side: Side, op: Op, error: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.inner.stats.fail(side, op, error)
    }

    async fn read_old(&self, key: &K) -> Result<Option<V>, Error> {
        let value = self.inner.old.get(key).await.map_err(|e| self.fail(Side::Old, Op::Get, e))?;
        bump(&self.inner.stats.reads_from_old);
        Ok(value)
    }

    async fn read_through(&self, key: &K, phase: Phase) -> Result<Option<V>, Error> {
        let stats = &self.inner.stats;
        let token = match self.inner.new.probe(key).await {
            Ok(Probe::Hit(value)) => {
                bump(&stats.new_hits);
                bump(&stats.reads_from_new);
                return Ok(Some(value));
            }
            Ok(Probe::Absent) => {
                bump(&stats.new_hits);
                bump(&stats.reads_from_new);
                return Ok(None);
            }
            Ok(Probe::Leased(token)) => Some(token),
            Ok(Probe::Busy) => None,
            Err(error) => {
                let error = self.fail(Side::New, Op::Get, error);
                if matches!(phase, Phase::Live | Phase::Complete) {
                    return Err(error);
                }
                None
            }
        };
        bump(&stats.new_misses);
        let value = self.read_old(key).await?;
        if let Some(token) = token {
            self.fill(key, value.as_ref(), token).await;
        }
        Ok(value)
    }

    /// A page of OLD's keys.
    pub(crate) async fn scan_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<crate::versioned::Page<K, ()>, Error>
    where
        K: Sized,
        Old: crate::cached::ScanKeys<K>,
    {
        self.inner.old.scan_keys(after, limit).await.map_err(|e| self.fail(Side::Old, Op::Scan, e))
    }

    /// A backfill's copy of each key, as a read-through makes it: only keys the plan reads from
    /// NEW; a lease from NEW first, then OLD's value read, then the fill, which lands only while
    /// the lease holds (a write since voids it). A cached key, or one a write holds, is `Newer`.
    pub(crate) async fn copy_keys(&self, keys: &[(K, ())]) -> Result<Vec<crate::versioned::Copied>, Error>
    where
        K: Sized,
    {
        use crate::versioned::Copied;
        let mut out = Vec::with_capacity(keys.len());
        for (key, ()) in keys {
            let Some(_ticket) = self.inner.routing.reads_from_new(&self.inner.gate, key) else {
                out.push(Copied::Outside);
                continue;
            };
            let token = match self.inner.new.probe(key).await.map_err(|e| self.fail(Side::New, Op::Get, e))? {
                Probe::Leased(token) => token,
                Probe::Hit(_) | Probe::Absent | Probe::Busy => {
                    out.push(Copied::Newer);
                    continue;
                }
            };
            let value = self.inner.old.get(key).await.map_err(|e| self.fail(Side::Old, Op::Get, e))?;
            let filled =
                self.inner.new.fill(key, value.as_ref(), token).await.map_err(|e| self.fail(Side::New, Op::Fill, e))?;
            bump(if filled { &self.inner.stats.backfills } else { &self.inner.stats.backfills_skipped });
            out.push(if filled { Copied::Copied } else { Copied::Newer });
        }
        Ok(out)
    }

    /// A fill is a courtesy to later reads: its failure never fails this one.
    async fn fill(&self, key: &K, value: Option<&V>, token: u64) {
        let stats = &self.inner.stats;
        match self.inner.new.fill(key, value, token).await {
            Ok(true) => bump(&stats.backfills),
            Ok(false) => bump(&stats.backfills_skipped),
            Err(error) => drop(self.fail(Side::New, Op::Fill, error)),
        }
    }

    async fn read_shadow(&self, key: &K) -> Result<Option<V>, Error> {
        let stats = &self.inner.stats;
        let value = self.read_old(key).await?;
        match self.inner.new.probe(key).await {
            Ok(Probe::Hit(cached)) => {
                bump(&stats.shadow_compared);
                if Some(&cached) != value.as_ref() {
                    bump(&stats.mismatches);
                }
            }
            Ok(Probe::Absent) => {
                bump(&stats.shadow_compared);
                if value.is_some() {
                    bump(&stats.mismatches);
                }
            }
            // The lease was issued after the OLD read above: a fill of that read may be older
            // than OLD by now, so it is not filled.
            Ok(Probe::Leased(_) | Probe::Busy) => {}
            Err(error) => drop(self.fail(Side::New, Op::Get, error)),
        }
        Ok(value)
    }

    /// Another keyed write of the application's own (a repository's `archive` or `put_many`):
    /// `on_old` runs once, on OLD, with each key's copy in NEW hidden before and invalidated after,
    /// exactly as a write's, so no instance serves a copy from before it. The keys are routed as
    /// writes are; the call's own answer comes back as it is (a failure of OLD included).
    pub async fn update_many<R>(&self, keys: &[&K], on_old: impl std::future::Future<Output = R>) -> Result<R, Error> {
        let mut tickets = Vec::with_capacity(keys.len());
        let mut covered = Vec::with_capacity(keys.len());
        for key in keys {
            let (reach, ticket) = self.write_route(key);
            tickets.push(ticket);
            if reach != Reach::Old {
                covered.push(*key);
            }
        }
        let started = Instant::now();
        // Before OLD changes, as a write's mark: whatever happens next, no instance serves NEW's copy.
        for key in &covered {
            self.mark(key).await?;
        }
        let answer = on_old.await;
        let settle = started.elapsed() < self.inner.grace / 2;
        for key in &covered {
            self.invalidate(key, settle).await;
        }
        drop(tickets);
        Ok(answer)
    }

    /// [`update_many`](Self::update_many) of one key.
    pub async fn update<R>(&self, key: &K, on_old: impl std::future::Future<Output = R>) -> Result<R, Error> {
        self.update_many(&[key], on_old).await
    }

    /// Where a write of `key` goes, with the call's ticket. Fenced, every key is invalidated: the
    /// fleet may have raised its coverage meanwhile.
    fn write_route(&self, key: &K) -> (Reach, Option<crate::fleet::Ticket<'_>>) {
        let (reach, _, ticket) = self.inner.routing.route(
            &self.inner.gate,
            key,
            |plan, admitted| plan.write_reach(admitted),
            |_, _| Reach::Invalidate,
        );
        (reach, ticket)
    }

    async fn write(&self, key: &K, value: Option<&V>) -> Result<(), Error> {
        let op = if value.is_some() { Op::Put } else { Op::Delete };
        let (reach, _ticket) = self.write_route(key);
        if reach == Reach::Old {
            return self.write_old(key, value, op).await;
        }
        let started = Instant::now();
        // Before OLD changes: from here, whatever happens, no instance serves NEW's copy.
        self.mark(key).await?;
        self.write_old(key, value, op).await?;
        self.invalidate(key, started.elapsed() < self.inner.grace / 2).await;
        Ok(())
    }

    /// Marks `key` pending in NEW for the grace period, before a write changes OLD.
    async fn mark(&self, key: &K) -> Result<(), Error> {
        let grace_ms = u64::try_from(self.inner.grace.as_millis()).unwrap_or(u64::MAX);
        self.inner.new.mark(key, grace_ms).await.map_err(|e| self.fail(Side::New, Op::Mark, e))
    }

    /// Invalidates NEW's copy of `key` after a write changed OLD (`settle`: withdraw the mark too).
    async fn invalidate(&self, key: &K, settle: bool) {
        match self.inner.new.invalidate(key, settle).await {
            Ok(()) => bump(&self.inner.stats.invalidations),
            // The key stays marked: OLD serves it until a read repairs NEW.
            Err(error) => drop(self.fail(Side::New, Op::Delete, error)),
        }
    }

    async fn write_old(&self, key: &K, value: Option<&V>, op: Op) -> Result<(), Error> {
        let written = match value {
            Some(value) => self.inner.old.put(key, value).await,
            None => self.inner.old.delete(key).await,
        };
        written.map_err(|e| self.fail(Side::Old, op, e))
    }
}

impl<K: ?Sized, V, Old, New> Clone for CachedProxy<K, V, Old, New> {
    fn clone(&self) -> Self {
        CachedProxy { inner: Arc::clone(&self.inner) }
    }
}

impl<K: ?Sized, V, Old, New> fmt::Debug for CachedProxy<K, V, Old, New> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedProxy")
            .field("plan", &self.plan())
            .field("fleet", &matches!(self.inner.routing, Routing::Fleet(_)))
            .field("grace", &self.inner.grace)
            .finish_non_exhaustive()
    }
}
