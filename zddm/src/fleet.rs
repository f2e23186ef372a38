//! One gate and one phase for a fleet of instances.
//!
//! Every instance of a service runs its own proxy, and each decides per key where a call goes. If
//! two instances decide differently — one has raised its gate and reads a key from NEW, the other
//! has not and writes that key to OLD only — NEW serves a stale value. A [`Fleet`] keeps every
//! instance on one [`Plan`], stored in a control record ([`Control`]: a row in PostgreSQL or SQLite,
//! a hash in Redis, or memory for one process), and changes it in steps that any two neighbours can run side by side:
//!
//! - raising the rate first makes every instance invalidate NEW's copy of the new keys, then write
//!   them through, and only then read them from NEW; lowering moves reads first;
//! - the high-water mark (`Plan::invalidate`) is in the record, so a restarted instance keeps
//!   invalidating keys that a lowered gate no longer reads;
//! - `Live` and `Complete` are entered by the whole fleet, one step after another.
//!
//! The fleet takes the next step only when every live instance has acknowledged the current one —
//! applied it, and finished every call that began under the one before. Each instance calls
//! [`Fleet::poll`] periodically (it reads the record, applies a new plan, acknowledges, and takes
//! the next step when it is due) — zddm has no timer of its own, so run it on yours, e.g.
//! `loop { if let Err(e) = fleet.poll().await { log(e) } tokio::time::sleep(Duration::from_secs(1)).await }`.
//! The request path only reads local atomics. An instance that has not reached the record for
//! `fence_after` falls to the safe side on its own: reads from OLD, and every write keeps NEW
//! honest; [`Fleet::is_fenced`] says so, and each failed poll returns the store's error.
//!
//! ```
//! use zddm::fleet::{Fleet, FleetConfig, Goal, MemoryControl};
//! use zddm::versioned::{MemorySource, MemoryTarget, VersionedProxy};
//! use zddm::{Phase, Rate};
//!
//! # zddm::block_on(async {
//! let control = MemoryControl::new();
//! let fleet = Fleet::join(&control, "instance-1", "orders-v2", FleetConfig::default()).await?;
//! let proxy = VersionedProxy::in_fleet(MemorySource::<u64, String>::new(), MemoryTarget::new(), &fleet);
//!
//! fleet.set_goal(Goal { phase: Phase::ReadThrough, rate: Rate::percent(10.0)? }).await?;
//! // Each poll applies the plan, acknowledges it, and takes the next step once all have.
//! while fleet.poll().await?.moving {}
//! assert_eq!(fleet.plan().read, Rate::percent(10.0)?);
//! # let _ = proxy;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

mod memory;
mod plan;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "redis")]
pub use self::redis::RedisControl;
pub use memory::MemoryControl;
pub use plan::{Goal, Plan, Reach};
#[cfg(feature = "postgres")]
pub use postgres::PostgresControl;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteControl;

use crate::error::{chain, BoxError};
use crate::gate::Gate;
use crate::proxy::{Phase, PhaseError};
use crate::rate::Rate;

/// The fleet's control record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The gate's salt: every instance must use the same, or they pick different keys.
    pub salt: String,
    /// Raised by one at every step.
    pub epoch: u64,
    /// The current plan.
    pub plan: Plan,
    /// Where the operator wants the fleet.
    pub goal: Goal,
    /// The epoch at which a whole verification that found NEW clean began, if one was recorded
    /// ([`Fleet::record_verification`]). `Complete` needs it to be the current epoch, in `Live`.
    pub verified: Option<u64>,
}

impl Record {
    /// Whether the goal may be `Complete`: in `Live` (or there already), with a verification
    /// recorded at this epoch.
    pub fn may_complete(&self) -> bool {
        self.plan.phase == Phase::Complete || (self.plan.phase == Phase::Live && self.verified == Some(self.epoch))
    }
}

/// One instance's row: the epoch it last acknowledged, and when (the control store's clock, ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The instance's name.
    pub instance: String,
    /// The last epoch it applied and drained.
    pub epoch: u64,
    /// When it last acknowledged (its heartbeat), on the store's clock.
    pub seen_ms: u64,
}

/// Where a fleet keeps its record: one record, and one row per instance, so that a thousand
/// instances acknowledging each second never contend on one row.
///
/// Implementations must make [`open`](Control::open) and [`advance`](Control::advance) atomic in
/// the store (an insert that keeps the first record; a compare-and-set on the epoch).
pub trait Control: Send + Sync {
    /// The store's own error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The record, created as `initial` if there is none yet.
    fn open(&self, initial: &Record) -> impl Future<Output = Result<Record, Self::Error>> + Send;

    /// The record as it is now.
    fn load(&self) -> impl Future<Output = Result<Record, Self::Error>> + Send;

    /// Replaces the plan with `plan` at `epoch + 1` if the record is still at `epoch`; whether it did.
    fn advance(&self, epoch: u64, plan: &Plan) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Sets the goal.
    fn set_goal(&self, goal: &Goal) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Records that `instance` has applied and drained `epoch`, now.
    fn acknowledge(&self, instance: &str, epoch: u64) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Every instance's row, and the store's clock now (ms).
    fn members(&self) -> impl Future<Output = Result<(Vec<Member>, u64), Self::Error>> + Send;

    /// Removes `instance`'s row: it has stopped (or an operator knows it is gone for good).
    fn leave(&self, instance: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Sets [`Record::verified`]; `None` withdraws it.
    fn set_verified(&self, epoch: Option<u64>) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// How a fleet member times its contact with the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetConfig {
    /// An instance that has not reached the record for this long fences itself (default 10 s).
    pub fence_after: Duration,
    /// An instance silent for this long no longer holds the fleet back (default 60 s). It must
    /// exceed `fence_after` plus the longest a call can take (the versioned proxy's grace), so a
    /// silent instance is fenced, with its calls finished, before the fleet moves on without it.
    /// Entering `Complete` waits for every instance with a row, silent or not: one that is gone
    /// for good is removed with [`Fleet::forget`].
    pub dead_after: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig { fence_after: Duration::from_secs(10), dead_after: Duration::from_secs(60) }
    }
}

/// Why a fleet operation failed.
///
/// As with [`zddm::Error`](crate::Error), the message carries the whole cause (for
/// [`FleetError::Control`], the control store's message and each cause under it, said once), and
/// [`source`](std::error::Error::source) returns `None`, so a reporter walking the chain says each
/// cause once. For code, the control store's own error is returned by
/// [`FleetError::control_error`], to downcast to the store's error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The control store failed. The store's error is in the message, and returned by
    /// [`FleetError::control_error`] (not by `source()`, see [`FleetError`]).
    #[error("the fleet's control store failed: {}", chain(&**.0))]
    Control(BoxError),
    /// This instance's salt is not the fleet's.
    #[error(
        "this instance's gate salt is {ours:?} but the fleet's record says {record:?}: every instance of a \
         migration must use the same salt, or they pick different keys"
    )]
    Salt {
        /// The salt this instance was given.
        ours: String,
        /// The record's.
        record: String,
    },
    /// The goal cannot be reached.
    #[error(transparent)]
    Goal(#[from] PhaseError),
    /// The timing is unsafe.
    #[error(
        "dead_after ({dead_after:?}) must be longer than fence_after ({fence_after:?}): a silent instance must \
         fence itself before the fleet moves on without it"
    )]
    Config {
        /// The refused `fence_after`.
        fence_after: Duration,
        /// The refused `dead_after`.
        dead_after: Duration,
    },
}

/// What one [`Fleet::poll`] saw and did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Poll {
    /// The epoch this instance now runs.
    pub epoch: u64,
    /// Whether it acknowledged that epoch (its calls from the epoch before have all finished).
    pub acknowledged: bool,
    /// Whether this poll took the fleet's next step.
    pub advanced: bool,
    /// Whether the plan is still on its way to the goal.
    pub moving: bool,
    /// Live instances that have not acknowledged the current epoch yet.
    pub waiting_for: Vec<String>,
}

/// The request path's view of the plan: one word, a switch counter whose parity tags the calls in
/// flight, and the time of the last contact with the record.
pub(crate) struct Cell {
    plan: AtomicU64,
    switches: AtomicU64,
    in_flight: [AtomicUsize; 2],
    /// The epoch of the plan applied, for a verification to say when it began.
    pub(crate) epoch: AtomicU64,
    origin: Instant,
    contact_ms: AtomicU64,
    fence_after_ms: u64,
}

/// A call in flight under one plan; dropping it (the call ended or was cancelled) counts it out.
pub(crate) struct Ticket<'a> {
    cell: &'a Cell,
    parity: usize,
    /// The plan the call runs under.
    pub(crate) plan: Plan,
    /// Whether the instance has lost the record and runs fenced.
    pub(crate) fenced: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.cell.in_flight[self.parity].fetch_sub(1, Ordering::AcqRel);
    }
}

impl Cell {
    fn new(plan: Plan, fence_after: Duration) -> Cell {
        Cell {
            plan: AtomicU64::new(plan.pack()),
            switches: AtomicU64::new(0),
            in_flight: [AtomicUsize::new(0), AtomicUsize::new(0)],
            epoch: AtomicU64::new(0),
            origin: Instant::now(),
            contact_ms: AtomicU64::new(0),
            fence_after_ms: u64::try_from(fence_after.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The plan for one call, counted in flight until the ticket is dropped.
    pub(crate) fn ticket(&self) -> Ticket<'_> {
        loop {
            let switches = self.switches.load(Ordering::Acquire);
            let parity = (switches & 1) as usize;
            self.in_flight[parity].fetch_add(1, Ordering::AcqRel);
            // Counted under the switch it saw, or retried: the poller then never misses a call.
            if self.switches.load(Ordering::Acquire) == switches {
                let plan = Plan::unpack(self.plan.load(Ordering::Acquire));
                let fenced =
                    self.elapsed_ms().saturating_sub(self.contact_ms.load(Ordering::Acquire)) > self.fence_after_ms;
                return Ticket { cell: self, parity, plan, fenced };
            }
            self.in_flight[parity].fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn plan(&self) -> Plan {
        Plan::unpack(self.plan.load(Ordering::Acquire))
    }

    /// Whether the record has not been reached for longer than `fence_after`.
    fn fenced(&self) -> bool {
        self.elapsed_ms().saturating_sub(self.contact_ms.load(Ordering::Acquire)) > self.fence_after_ms
    }

    fn touch(&self) {
        self.contact_ms.store(self.elapsed_ms(), Ordering::Release);
    }

    /// Switches to `plan` unless calls from two switches ago still run; whether it switched.
    fn switch(&self, plan: Plan) -> bool {
        let switches = self.switches.load(Ordering::Acquire);
        let next = ((switches + 1) & 1) as usize;
        if self.in_flight[next].load(Ordering::Acquire) != 0 {
            return false;
        }
        self.plan.store(plan.pack(), Ordering::Release);
        self.switches.store(switches + 1, Ordering::Release);
        true
    }

    /// Whether every call that began before the last switch has ended.
    fn drained(&self) -> bool {
        let previous = (self.switches.load(Ordering::Acquire).wrapping_sub(1) & 1) as usize;
        self.in_flight[previous].load(Ordering::Acquire) == 0
    }
}

/// Where a proxy takes its plan from: its own gate and phase (one process), or its fleet.
pub(crate) enum Routing {
    /// One process: the gate's rates and this phase.
    Local(std::sync::atomic::AtomicU8),
    /// The fleet's plan, as this instance applied it.
    Fleet(Arc<Cell>),
}

impl Routing {
    pub(crate) fn local(phase: Phase) -> Routing {
        Routing::Local(std::sync::atomic::AtomicU8::new(phase.index()))
    }

    /// The plan calls run under now.
    pub(crate) fn plan(&self, gate: &Gate) -> Plan {
        match self {
            Routing::Local(phase) => {
                let (rate, high) = gate.rates();
                Plan::local(Phase::from_index(phase.load(Ordering::Acquire)), rate, high)
            }
            Routing::Fleet(cell) => cell.plan(),
        }
    }

    /// Where a call of `key` goes: by the plan, or by `fenced` when this instance has lost its
    /// fleet's record. The ticket (in a fleet) keeps the call counted until it ends.
    pub(crate) fn route<K: crate::key::MigrationKey + ?Sized>(
        &self,
        gate: &Gate,
        key: &K,
        reach: impl Fn(&Plan, &dyn Fn(Rate) -> bool) -> Reach,
        fenced: impl Fn(&Plan, &dyn Fn(Rate) -> bool) -> Reach,
    ) -> (Reach, Phase, Option<Ticket<'_>>) {
        let bucket = std::cell::Cell::new(None);
        let admitted = |rate| gate.admits_at(key, rate, &bucket);
        match self {
            Routing::Local(_) => {
                let plan = self.plan(gate);
                (reach(&plan, &admitted), plan.phase, None)
            }
            Routing::Fleet(cell) => {
                let ticket = cell.ticket();
                let reach =
                    if ticket.fenced { fenced(&ticket.plan, &admitted) } else { reach(&ticket.plan, &admitted) };
                (reach, ticket.plan.phase, Some(ticket))
            }
        }
    }

    /// Moves a local proxy to `phase`; refused in a fleet, whose plan moves with its goal.
    /// Whether the plan reads `key` from NEW — where a backfill's copy or a verifier's repair is as
    /// safe as a read's — with the call's ticket if so. Fenced, this instance does not know the
    /// fleet's coverage, so it answers no.
    pub(crate) fn reads_from_new<K: crate::key::MigrationKey + ?Sized>(
        &self,
        gate: &Gate,
        key: &K,
    ) -> Option<Option<Ticket<'_>>> {
        let (reach, _, ticket) = self.route(gate, key, |plan, admitted| plan.read_reach(admitted), |_, _| Reach::Old);
        (!matches!(reach, Reach::Old | Reach::Invalidate)).then_some(ticket)
    }

    pub(crate) fn set_phase(&self, gate: &Gate, phase: Phase) -> Result<Phase, PhaseError> {
        let Routing::Local(cell) = self else { return Err(PhaseError::InFleet) };
        let mut current = cell.load(Ordering::Acquire);
        loop {
            Phase::check_transition(Phase::from_index(current), phase, gate.rate())?;
            match cell.compare_exchange(current, phase.index(), Ordering::AcqRel, Ordering::Acquire) {
                Ok(previous) => return Ok(Phase::from_index(previous)),
                Err(actual) => current = actual,
            }
        }
    }
}

/// This instance's membership in a fleet (see [the module](self)).
pub struct Fleet<C> {
    control: C,
    instance: String,
    gate: Gate,
    config: FleetConfig,
    cell: Arc<Cell>,
    /// The epoch applied locally, and whether it was acknowledged.
    state: Mutex<(u64, bool)>,
}

fn control<E: std::error::Error + Send + Sync + 'static>(error: E) -> FleetError {
    FleetError::Control(Box::new(error))
}

impl FleetError {
    /// The control store's own error, if the control store failed: downcast it to the store's
    /// error type (e.g. `error.control_error()?.downcast_ref::<zddm::PostgresError>()`).
    ///
    /// The message of `self` already includes this error's message (see [`FleetError`]).
    pub fn control_error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            FleetError::Control(error) => Some(&**error),
            _ => None,
        }
    }
}

impl<C: Control> Fleet<C> {
    /// Joins the fleet whose record `control` holds (creating it, for gate salt `salt`, with
    /// nothing covered and in `ReadThrough`, if there is none): loads the plan, applies it and
    /// acknowledges it. `instance` names this instance uniquely in the fleet.
    pub async fn join(control: C, instance: &str, salt: &str, config: FleetConfig) -> Result<Fleet<C>, FleetError> {
        if config.dead_after <= config.fence_after {
            return Err(FleetError::Config { fence_after: config.fence_after, dead_after: config.dead_after });
        }
        let initial = Record {
            salt: salt.to_owned(),
            epoch: 0,
            plan: Plan::start(Phase::ReadThrough),
            goal: Goal { phase: Phase::ReadThrough, rate: Rate::NONE },
            verified: None,
        };
        let record = control.open(&initial).await.map_err(self::control)?;
        if record.salt != salt {
            return Err(FleetError::Salt { ours: salt.to_owned(), record: record.salt });
        }
        control.acknowledge(instance, record.epoch).await.map_err(self::control)?;
        let cell = Arc::new(Cell::new(record.plan, config.fence_after));
        cell.epoch.store(record.epoch, Ordering::Release);
        cell.touch();
        Ok(Fleet {
            control,
            instance: instance.to_owned(),
            gate: Gate::new(salt, Rate::NONE),
            config,
            cell,
            state: Mutex::new((record.epoch, true)),
        })
    }

    /// The plan this instance runs.
    pub fn plan(&self) -> Plan {
        self.cell.plan()
    }

    /// The epoch this instance runs.
    pub fn epoch(&self) -> u64 {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0
    }

    /// Whether this instance has lost the record for longer than `fence_after` (its calls then
    /// read OLD and keep NEW honest on every write).
    pub fn is_fenced(&self) -> bool {
        self.cell.fenced()
    }

    /// This instance's name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub(crate) fn cell(&self) -> Arc<Cell> {
        Arc::clone(&self.cell)
    }

    pub(crate) fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Asks the fleet to move toward `goal`; the steps are taken by the members' polls.
    /// `Complete` must be earned: the fleet must be in `Live` with a verification recorded at its
    /// current epoch ([`record_verification`](Fleet::record_verification)), or this fails with
    /// [`PhaseError::Unverified`].
    pub async fn set_goal(&self, goal: Goal) -> Result<(), FleetError> {
        set_goal(&self.control, goal).await
    }

    /// Records a verification's outcome with the fleet's record: one that earns `Complete` (whole,
    /// clean, begun in `Live`) at the epoch it began, if the fleet is still at that epoch; one that
    /// found NEW wrong withdraws any earlier one. Returns whether `Complete` may now be set as the
    /// goal.
    pub async fn record_verification(&self, report: &crate::verify::Report) -> Result<bool, FleetError> {
        record_verification(&self.control, report).await
    }

    /// Removes another instance's row: it is gone for good (a crashed host), so the fleet stops
    /// waiting for it — including to enter `Complete`. Never forget an instance that may still run.
    pub async fn forget(&self, instance: &str) -> Result<(), FleetError> {
        self.control.leave(instance).await.map_err(control)
    }

    /// Leaves the fleet: call on shutdown, once no call runs any more.
    pub async fn leave(self) -> Result<(), FleetError> {
        self.control.leave(&self.instance).await.map_err(control)
    }

    /// Polls every `every`, for as long as the returned future runs, and hands each outcome to
    /// `report` (log failures: an instance whose polls keep failing fences itself after
    /// `fence_after`). `sleep` is the runtime's timer, e.g. `tokio::time::sleep`. Spawn it next to
    /// the service and choose `every` well below `fence_after`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use zddm::fleet::{Fleet, MemoryControl};
    ///
    /// // Spawned next to the service, e.g. `tokio::spawn(async move { poll(&fleet).await })`.
    /// async fn poll(fleet: &Fleet<MemoryControl>) {
    ///     let sleep = tokio::time::sleep; // any runtime's timer
    ///     fleet
    ///         .keep_polling(Duration::from_secs(1), sleep, |outcome| {
    ///             if let Err(error) = outcome {
    ///                 eprintln!("fleet: {error}");
    ///             }
    ///         })
    ///         .await
    /// }
    /// # mod tokio { pub mod time { pub async fn sleep(_: std::time::Duration) {} } }
    /// ```
    pub async fn keep_polling<S, F>(
        &self,
        every: Duration,
        mut sleep: S,
        mut report: impl FnMut(Result<Poll, FleetError>),
    ) where
        S: FnMut(Duration) -> F,
        F: Future<Output = ()>,
    {
        loop {
            report(self.poll().await);
            sleep(every).await;
        }
    }

    /// Reads the record; applies a newer plan (once calls from two plans ago have finished);
    /// acknowledges the plan once calls from the one before have finished; and, when every live
    /// instance has acknowledged it, takes the next step toward the goal. Call it well within
    /// `fence_after`, e.g. every second.
    pub async fn poll(&self) -> Result<Poll, FleetError> {
        let record = self.control.load().await.map_err(control)?;
        if record.salt != self.gate.salt() {
            return Err(FleetError::Salt { ours: self.gate.salt().to_owned(), record: record.salt });
        }
        self.cell.touch();
        let (epoch, acknowledged) = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if record.epoch > state.0 && self.cell.switch(record.plan) {
                *state = (record.epoch, false);
                self.cell.epoch.store(record.epoch, Ordering::Release);
            }
            *state
        };
        let acknowledged = acknowledged || (epoch == record.epoch && self.cell.drained());
        // Acknowledging again is the heartbeat.
        let acked_epoch = if acknowledged { epoch } else { epoch.saturating_sub(1) };
        self.control.acknowledge(&self.instance, acked_epoch).await.map_err(control)?;
        if acknowledged {
            self.state.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
        }
        let (members, now) = self.control.members().await.map_err(control)?;
        // `Complete` only from a verified `Live`, even with the goal set: a later verification may
        // have withdrawn it.
        let next =
            record.plan.step_toward(&record.goal).filter(|next| next.phase != Phase::Complete || record.may_complete());
        let dead_after = u64::try_from(self.config.dead_after.as_millis()).unwrap_or(u64::MAX);
        // Entering `Complete` stops OLD's writes for good: it waits for every member, even silent.
        let everyone = next.is_some_and(|next| next.phase == Phase::Complete);
        let waiting_for: Vec<String> = members
            .iter()
            .filter(|m| m.epoch < record.epoch && (everyone || now.saturating_sub(m.seen_ms) < dead_after))
            .map(|m| m.instance.clone())
            .collect();
        let mut advanced = false;
        if let (Some(next), true) = (next, waiting_for.is_empty()) {
            advanced = self.control.advance(record.epoch, &next).await.map_err(control)?;
        }
        Ok(Poll { epoch, acknowledged, advanced, moving: next.is_some(), waiting_for })
    }
}

/// [`Fleet::set_goal`] for an operator who is not a member of the fleet (a command).
pub async fn set_goal<C: Control>(control: &C, goal: Goal) -> Result<(), FleetError> {
    let record = control.load().await.map_err(self::control)?;
    record.plan.check_goal(&goal)?;
    if goal.phase == Phase::Complete && !record.may_complete() {
        return Err(FleetError::Goal(PhaseError::Unverified));
    }
    control.set_goal(&goal).await.map_err(self::control)
}

/// [`Fleet::record_verification`] for an operator who is not a member of the fleet (a command
/// that ran the verification with the record's epoch in [`Report::epoch`](crate::verify::Report)).
pub async fn record_verification<C: Control>(control: &C, report: &crate::verify::Report) -> Result<bool, FleetError> {
    let record = control.load().await.map_err(self::control)?;
    if report.earns_complete() && report.epoch == record.epoch && record.plan.phase == Phase::Live {
        control.set_verified(Some(record.epoch)).await.map_err(self::control)?;
        return Ok(true);
    }
    if !report.clean() {
        control.set_verified(None).await.map_err(self::control)?;
    }
    Ok(record.may_complete())
}

macro_rules! forward {
    ($($ty:ty),*) => {$(
        impl<C: Control + ?Sized> Control for $ty {
            type Error = C::Error;

            fn open(&self, initial: &Record) -> impl Future<Output = Result<Record, Self::Error>> + Send {
                (**self).open(initial)
            }

            fn load(&self) -> impl Future<Output = Result<Record, Self::Error>> + Send {
                (**self).load()
            }

            fn advance(&self, epoch: u64, plan: &Plan) -> impl Future<Output = Result<bool, Self::Error>> + Send {
                (**self).advance(epoch, plan)
            }

            fn set_goal(&self, goal: &Goal) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).set_goal(goal)
            }

            fn acknowledge(&self, instance: &str, epoch: u64) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).acknowledge(instance, epoch)
            }

            fn members(&self) -> impl Future<Output = Result<(Vec<Member>, u64), Self::Error>> + Send {
                (**self).members()
            }

            fn leave(&self, instance: &str) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).leave(instance)
            }

            fn set_verified(&self, epoch: Option<u64>) -> impl Future<Output = Result<(), Self::Error>> + Send {
                (**self).set_verified(epoch)
            }
        }
    )*};
}

forward!(Arc<C>, &C);

/// A record's columns as text and numbers, for the SQL and Redis stores.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub(crate) fn record_from_columns(
    salt: String,
    epoch: u64,
    phase: &str,
    rates: [i64; 3],
    goal_phase: &str,
    goal_rate: i64,
    verified: Option<i64>,
) -> Result<Record, String> {
    let phase_of = |text: &str| text.parse::<Phase>().map_err(|_| text.to_owned());
    let rate_of = |ppm: i64| u32::try_from(ppm).ok().and_then(|ppm| Rate::from_ppm(ppm).ok()).ok_or(ppm.to_string());
    let plan = Plan {
        phase: phase_of(phase)?,
        read: rate_of(rates[0])?,
        write: rate_of(rates[1])?,
        invalidate: rate_of(rates[2])?,
    };
    if !plan.is_valid() {
        return Err(format!("{plan:?}"));
    }
    let verified = verified.map(|epoch| u64::try_from(epoch).map_err(|_| epoch.to_string())).transpose()?;
    Ok(Record { salt, epoch, plan, goal: Goal { phase: phase_of(goal_phase)?, rate: rate_of(goal_rate)? }, verified })
}

#[cfg(test)]
mod tests {
    use crate::error::fixtures::{Disk, Layered};
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_control_error_says_its_cause_chain_once_and_has_no_source() {
        let error = control(Layered(Disk));
        assert_eq!(error.to_string(), "the fleet's control store failed: write failed: the disk is full");
        assert!(error.source().is_none(), "the cause is in the message");
        assert!(error.control_error().and_then(|error| error.downcast_ref::<Layered>()).is_some());
        let error = FleetError::Goal(PhaseError::Unverified);
        assert!(error.source().is_none());
        assert!(error.control_error().is_none());
    }
}
