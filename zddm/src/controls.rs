//! What a migrating repository hands out: the controls of its proxy, never its stores.

use std::fmt;
use std::time::Duration;

use crate::backfill::Pass;
use crate::cached::CachedProxy;
use crate::error::Error;
use crate::fleet::Plan;
use crate::gate::Gate;
use crate::key::MigrationKey;
use crate::proxy::{Phase, PhaseError, Proxy, Stats};
use crate::rate::Rate;
use crate::store::Store;
use crate::verify::Compare;
use crate::versioned::{Copied, Page, VersionedProxy};

/// The handle a `#[zddm::migrate]` migration gives out with `proxy()`: its gate, phase and plan,
/// stats and keys in doubt, and what a backfill and a verification need. It never hands out a
/// store: a write to OLD or NEW alone would leave them out of step, and the migration exists so
/// that no code can make one.
///
/// ```
/// # use zddm::{Gate, Phase, Rate};
/// # #[derive(Debug)] pub struct RepoError;
/// # impl std::fmt::Display for RepoError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("e") } }
/// # impl std::error::Error for RepoError {}
/// # impl From<zddm::Error> for RepoError { fn from(_: zddm::Error) -> Self { RepoError } }
/// # #[derive(Default)] pub struct OldUsers(std::sync::Mutex<std::collections::HashMap<u64, String>>);
/// # #[derive(Default)] pub struct NewUsers(std::sync::Mutex<std::collections::HashMap<u64, String>>);
/// #[zddm::migrate(old = OldUsers, new = NewUsers)]
/// pub trait Users {
///     fn get_user(&self, id: &u64) -> Result<Option<String>, RepoError>;
///     fn put_user(&self, id: &u64, name: &String) -> Result<(), RepoError>;
///     fn delete_user(&self, id: &u64) -> Result<(), RepoError>;
/// }
/// # macro_rules! users { ($s:ident) => {
/// # #[zddm::backend] impl Users for $s {
/// #     fn get_user(&self, id: &u64) -> Result<Option<String>, RepoError> { Ok(self.0.lock().unwrap().get(id).cloned()) }
/// #     fn put_user(&self, id: &u64, name: &String) -> Result<(), RepoError> { self.0.lock().unwrap().insert(*id, name.clone()); Ok(()) }
/// #     fn delete_user(&self, id: &u64) -> Result<(), RepoError> { self.0.lock().unwrap().remove(id); Ok(()) }
/// # } } }
/// # users!(OldUsers); users!(NewUsers);
///
/// let users = UsersMigration::new(OldUsers::default(), NewUsers::default(), Gate::new("users", Rate::NONE));
/// users.proxy().gate().set_rate(Rate::ALL)?;
/// users.proxy().set_phase(Phase::Live)?;
/// assert_eq!(users.proxy().stats().reads_from_old, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[repr(transparent)]
pub struct Controls<P>(P);

impl<P> Controls<P> {
    pub(crate) fn new(proxy: P) -> Self {
        Controls(proxy)
    }

    /// The proxy, for the routed calls of generated code (inside this crate only).
    pub(crate) fn inner(&self) -> &P {
        &self.0
    }

    pub(crate) fn into_inner(self) -> P {
        self.0
    }
}

/// What every proxy's controls give: the gate, phase and plan, and the stats.
macro_rules! controls {
    ($($proxy:ident),*) => {$(
        impl<K: ?Sized, V, Old, New> Controls<$proxy<K, V, Old, New>> {
            #[doc = concat!("See [`", stringify!($proxy), "::gate`].")]
            pub fn gate(&self) -> &Gate {
                self.0.gate()
            }

            #[doc = concat!("See [`", stringify!($proxy), "::phase`].")]
            pub fn phase(&self) -> Phase {
                self.0.phase()
            }

            #[doc = concat!("See [`", stringify!($proxy), "::plan`].")]
            pub fn plan(&self) -> Plan {
                self.0.plan()
            }

            #[doc = concat!("See [`", stringify!($proxy), "::set_phase`].")]
            pub fn set_phase(&self, phase: Phase) -> Result<Phase, PhaseError> {
                self.0.set_phase(phase)
            }

            #[doc = concat!("See [`", stringify!($proxy), "::stats`].")]
            pub fn stats(&self) -> Stats {
                self.0.stats()
            }
        }
    )*};
}

controls!(Proxy, VersionedProxy, CachedProxy);

impl<K: ?Sized, V, Old, New> Controls<Proxy<K, V, Old, New>> {
    /// See [`Proxy::set_shadow_sample`].
    pub fn set_shadow_sample(&self, rate: Rate) {
        self.0.set_shadow_sample(rate);
    }

    /// See [`Proxy::keys_in_doubt`].
    pub fn keys_in_doubt(&self) -> usize {
        self.0.keys_in_doubt()
    }
}

/// The routed calls of a migration in one process, for its generated code.
impl<K, V, Old, New> Controls<Proxy<K, V, Old, New>>
where
    K: MigrationKey + ?Sized + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Store<K, V>,
    New: Store<K, V>,
{
    #[doc(hidden)]
    pub async fn get(&self, key: &K) -> Result<Option<V>, Error> {
        self.0.get(key).await
    }

    #[doc(hidden)]
    pub async fn put(&self, key: &K, value: &V) -> Result<(), Error> {
        self.0.put(key, value).await
    }

    #[doc(hidden)]
    pub async fn delete(&self, key: &K) -> Result<(), Error> {
        self.0.delete(key).await
    }

    /// A write of several keys: see `Proxy::update_many`.
    #[doc(hidden)]
    pub async fn update_many<R>(
        &self,
        keys: &[&K],
        on_old: impl std::future::Future<Output = R>,
        on_new: impl std::future::Future<Output = R>,
    ) -> Result<R, Error> {
        self.0.update_many(keys, on_old, on_new).await
    }

    /// Another keyed write: see `Proxy::update`.
    #[doc(hidden)]
    pub async fn update<R>(
        &self,
        key: &K,
        on_old: impl std::future::Future<Output = R>,
        on_new: impl std::future::Future<Output = R>,
    ) -> Result<R, Error> {
        self.0.update(key, on_old, on_new).await
    }
}

impl<K: ?Sized, V, Old, New> Controls<VersionedProxy<K, V, Old, New>> {
    /// See [`VersionedProxy::grace`].
    pub fn grace(&self) -> Duration {
        self.0.grace()
    }
}

/// A backfill over a migration: `Backfill::new(migration.proxy())`.
impl<P: Pass> Pass for Controls<P> {
    type Key = P::Key;
    type Entry = P::Entry;

    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Page<P::Key, P::Entry>, Error>> + Send {
        self.0.scan(after, limit)
    }

    fn copy_many(
        &self,
        entries: &[(P::Key, P::Entry)],
        scanned: crate::backfill::Scanned,
    ) -> impl std::future::Future<Output = Result<Vec<Copied>, Error>> + Send {
        self.0.copy_many(entries, scanned)
    }

    fn estimate(&self) -> impl std::future::Future<Output = Option<u64>> + Send {
        self.0.estimate()
    }

    fn canonical(&self) -> bool {
        self.0.canonical()
    }
}

impl<P: Compare> crate::verify::sealed::Sealed for Controls<P> {}

/// A verification over a migration: `Verify::new(migration.proxy())`.
impl<P: Compare> Compare for Controls<P> {
    type Key = P::Key;
    type Old = P::Old;
    type New = P::New;

    fn plan(&self) -> Plan {
        self.0.plan()
    }

    fn epoch(&self) -> u64 {
        self.0.epoch()
    }

    fn canonical(&self) -> bool {
        Compare::canonical(&self.0)
    }

    fn pending(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<Vec<u8>>, Error>> + Send {
        self.0.pending(after, limit)
    }

    fn scan_old(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Page<P::Key, P::Old>, Error>> + Send {
        self.0.scan_old(after, limit)
    }

    fn scan_new(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Page<P::Key, P::New>, Error>> + Send {
        self.0.scan_new(after, limit)
    }

    fn judge(old: Option<&P::Old>, new: Option<&P::New>) -> Option<crate::verify::Verdict> {
        P::judge(old, new)
    }

    fn answers(new: &P::New) -> bool {
        P::answers(new)
    }

    fn look_new(&self, key: &P::Key) -> impl std::future::Future<Output = Result<Option<P::New>, Error>> + Send {
        self.0.look_new(key)
    }

    fn old_holds(&self, key: &P::Key) -> impl std::future::Future<Output = Result<bool, Error>> + Send {
        self.0.old_holds(key)
    }

    fn look(&self, key: &P::Key) -> impl std::future::Future<Output = Result<crate::verify::Verdict, Error>> + Send {
        self.0.look(key)
    }

    fn repair(&self, key: &P::Key) -> impl std::future::Future<Output = Result<Copied, Error>> + Send {
        Compare::repair(&self.0, key)
    }

    fn record(&self, epoch: u64) {
        self.0.record(epoch);
    }

    fn revoke(&self) {
        self.0.revoke();
    }
}

impl<P: fmt::Debug> fmt::Debug for Controls<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Controls").field(&self.0).finish()
    }
}
