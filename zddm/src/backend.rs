//! How a repository trait's implementations are kept behind the migration.

use std::fmt;
use std::ops::Deref;

/// A store registered as a backend of a `#[zddm::migrate]` repository: `#[zddm::backend]` turns
/// `impl OrderRepo for PgOrders` into `impl OrderRepo for Backend<PgOrders>`.
///
/// Only the generated migrating type can make one, so code outside the migration cannot call the
/// repository on OLD or NEW directly: every read and write goes through the migration. It derefs
/// to the store, so the impl's bodies use `self.pool` and friends as before.
pub struct Backend<T> {
    // Named so that it cannot shadow the store's own fields (`self.0`, `self.pool`) in the impls.
    __zddm_store: T,
}

impl<T> Deref for Backend<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.__zddm_store
    }
}

impl<T: fmt::Debug> fmt::Debug for Backend<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Backend").field(&self.__zddm_store).finish()
    }
}

/// The supertrait `#[zddm::migrate]` gives a repository trait: only backends and the migrating
/// type `M` implement it, so an impl of the repository anywhere else does not compile.
#[diagnostic::on_unimplemented(
    message = "`{Self}` implements a migrating repository outside its migration `{M}`",
    label = "not registered as a backend of `{M}`",
    note = "register the impl with `#[zddm::backend]`; reads and writes then go through `{M}`, which keeps OLD and NEW consistent"
)]
pub trait Registered<M: ?Sized> {}

impl<M: ?Sized, T> Registered<M> for Backend<T> {}

/// For generated code only.
#[doc(hidden)]
pub fn register<T>(store: T) -> Backend<T> {
    Backend { __zddm_store: store }
}

// A store of a fleet mode implements zddm's store trait either on itself (any crate layout) or,
// with `#[zddm::backend]`, on its `Backend` (then only the migration reaches it; the orphan rule
// allows that where the key or value type is the impl's crate's own). Both reach the migration.
impl<K: ?Sized, V, S: crate::versioned::Source<K, V>> crate::versioned::Source<K, V> for Backend<S> {
    type Error = S::Error;

    fn get(
        &self,
        key: &K,
    ) -> impl std::future::Future<Output = Result<Option<crate::versioned::Versioned<V>>, Self::Error>> + Send {
        self.__zddm_store.get(key)
    }

    fn put(&self, key: &K, value: &V) -> impl std::future::Future<Output = Result<u64, Self::Error>> + Send {
        self.__zddm_store.put(key, value)
    }

    fn delete(&self, key: &K) -> impl std::future::Future<Output = Result<u64, Self::Error>> + Send {
        self.__zddm_store.delete(key)
    }

    fn next_version(&self, key: &K) -> impl std::future::Future<Output = Result<u64, Self::Error>> + Send {
        self.__zddm_store.next_version(key)
    }

    fn timeout(&self) -> Option<std::time::Duration> {
        crate::versioned::Source::timeout(&self.__zddm_store)
    }
}

impl<K, V, S: crate::versioned::Scan<K, V>> crate::versioned::Scan<K, V> for Backend<S> {
    fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<crate::versioned::Page<K, crate::versioned::Versioned<V>>, Self::Error>>
           + Send {
        self.__zddm_store.scan(after, limit)
    }

    fn estimate(&self) -> impl std::future::Future<Output = Result<Option<u64>, Self::Error>> + Send {
        self.__zddm_store.estimate()
    }

    fn canonical(&self) -> bool {
        crate::versioned::Scan::canonical(&self.__zddm_store)
    }
}

impl<K, S: crate::cached::ScanKeys<K>> crate::cached::ScanKeys<K> for Backend<S> {
    type Error = S::Error;

    fn scan_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<crate::versioned::Page<K, ()>, Self::Error>> + Send {
        self.__zddm_store.scan_keys(after, limit)
    }
}

impl<K, V, S: crate::versioned::ScanSlots<K, V>> crate::versioned::ScanSlots<K, V> for Backend<S> {
    fn scan_slots(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<crate::versioned::Page<K, crate::versioned::Lookup<V>>, Self::Error>> + Send
    {
        self.__zddm_store.scan_slots(after, limit)
    }

    fn canonical(&self) -> bool {
        crate::versioned::ScanSlots::canonical(&self.__zddm_store)
    }
}

impl<K: ?Sized, V, S: crate::versioned::Target<K, V>> crate::versioned::Target<K, V> for Backend<S> {
    type Error = S::Error;

    fn lookup(
        &self,
        key: &K,
    ) -> impl std::future::Future<Output = Result<crate::versioned::Lookup<V>, Self::Error>> + Send {
        self.__zddm_store.lookup(key)
    }

    fn mark(&self, key: &K, grace_ms: u64) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        self.__zddm_store.mark(key, grace_ms)
    }

    fn apply(
        &self,
        key: &K,
        change: crate::versioned::Change<&V>,
        version: u64,
        settle: bool,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        self.__zddm_store.apply(key, change, version, settle)
    }

    fn fill(
        &self,
        key: &K,
        value: Option<&V>,
        version: u64,
        token: Option<u64>,
    ) -> impl std::future::Future<Output = Result<crate::versioned::Filled, Self::Error>> + Send {
        self.__zddm_store.fill(key, value, version, token)
    }

    fn fill_many(
        &self,
        entries: &[(&K, &V, u64)],
    ) -> impl std::future::Future<Output = Result<Vec<crate::versioned::Filled>, Self::Error>> + Send
    where
        K: Sync,
        V: Sync,
    {
        self.__zddm_store.fill_many(entries)
    }

    fn pending_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<Vec<u8>>, Self::Error>> + Send {
        self.__zddm_store.pending_keys(after, limit)
    }

    fn purge(&self, older_than_ms: u64) -> impl std::future::Future<Output = Result<usize, Self::Error>> + Send {
        self.__zddm_store.purge(older_than_ms)
    }

    fn timeout(&self) -> Option<std::time::Duration> {
        crate::versioned::Target::timeout(&self.__zddm_store)
    }
}

impl<K: ?Sized, V, S: crate::cached::Cache<K, V>> crate::cached::Cache<K, V> for Backend<S> {
    type Error = S::Error;

    fn probe(&self, key: &K) -> impl std::future::Future<Output = Result<crate::cached::Probe<V>, Self::Error>> + Send {
        self.__zddm_store.probe(key)
    }

    fn mark(&self, key: &K, grace_ms: u64) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        self.__zddm_store.mark(key, grace_ms)
    }

    fn invalidate(&self, key: &K, settle: bool) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        self.__zddm_store.invalidate(key, settle)
    }

    fn fill(
        &self,
        key: &K,
        value: Option<&V>,
        token: u64,
    ) -> impl std::future::Future<Output = Result<bool, Self::Error>> + Send {
        self.__zddm_store.fill(key, value, token)
    }

    fn pending_keys(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<Vec<u8>>, Self::Error>> + Send {
        self.__zddm_store.pending_keys(after, limit)
    }

    fn timeout(&self) -> Option<std::time::Duration> {
        crate::cached::Cache::timeout(&self.__zddm_store)
    }
}

/// The stores of a `#[zddm::migrate(.., mode = versioned)]` repository, named once by the generated
/// impl: a store without its `Source` or `Target` impl is reported there, once, and every routed
/// call goes through the functions below, which rely on this impl instead of checking again.
#[doc(hidden)]
pub trait VersionedRepository {
    type Key: crate::MigrationKey + ?Sized + Sync;
    type Value: Clone + PartialEq + Send + Sync;
    type Old: crate::versioned::Source<Self::Key, Self::Value>;
    type New: crate::versioned::Target<Self::Key, Self::Value>;
}

/// The same for `mode = cached`.
#[doc(hidden)]
pub trait CachedRepository {
    type Key: crate::MigrationKey + ?Sized + Sync;
    type Value: Clone + PartialEq + Send + Sync;
    type Old: crate::Store<Self::Key, Self::Value>;
    type New: crate::cached::Cache<Self::Key, Self::Value>;
}

/// Generated code's calls, bounded by the repository's one impl.
#[doc(hidden)]
pub mod versioned {
    use super::VersionedRepository as R;
    use crate::fleet::{Control, Fleet};
    use crate::versioned::{VersionedProxy, VersionedProxyBuilder};
    use crate::{ConfigError, Error, Gate};

    pub type Proxy<M> = VersionedProxy<<M as R>::Key, <M as R>::Value, <M as R>::Old, <M as R>::New>;
    pub type Builder<M> = VersionedProxyBuilder<<M as R>::Key, <M as R>::Value, <M as R>::Old, <M as R>::New>;

    pub fn new<M: R>(old: M::Old, new: M::New, gate: Gate) -> Proxy<M> {
        VersionedProxy::new(old, new, gate)
    }

    pub fn in_fleet<M: R, C: Control>(old: M::Old, new: M::New, fleet: &Fleet<C>) -> Proxy<M> {
        VersionedProxy::in_fleet(old, new, fleet)
    }

    pub fn build<M: R>(builder: Builder<M>) -> Result<Proxy<M>, ConfigError> {
        builder.build()
    }

    pub fn builder<M: R>(old: M::Old, new: M::New, gate: Gate) -> Builder<M> {
        VersionedProxy::builder(old, new, gate)
    }

    pub fn fleet_builder<M: R, C: Control>(old: M::Old, new: M::New, fleet: &Fleet<C>) -> Builder<M> {
        VersionedProxy::fleet_builder(old, new, fleet)
    }

    pub async fn get<M: R>(proxy: &Proxy<M>, key: &M::Key) -> Result<Option<M::Value>, Error> {
        proxy.get(key).await
    }

    pub async fn put<M: R>(proxy: &Proxy<M>, key: &M::Key, value: &M::Value) -> Result<(), Error> {
        proxy.put(key, value).await
    }

    pub async fn delete<M: R>(proxy: &Proxy<M>, key: &M::Key) -> Result<(), Error> {
        proxy.delete(key).await
    }
}

/// Generated code's calls for `mode = cached`.
#[doc(hidden)]
pub mod cached {
    use super::CachedRepository as R;
    use crate::cached::CachedProxy;
    use crate::fleet::{Control, Fleet};
    use crate::{ConfigError, Error, Gate};

    pub type Proxy<M> = CachedProxy<<M as R>::Key, <M as R>::Value, <M as R>::Old, <M as R>::New>;

    pub fn new<M: R>(old: M::Old, new: M::New, gate: Gate) -> Proxy<M> {
        CachedProxy::new(old, new, gate)
    }

    pub fn in_fleet<M: R, C: Control>(old: M::Old, new: M::New, fleet: &Fleet<C>) -> Proxy<M> {
        CachedProxy::in_fleet(old, new, fleet)
    }

    pub fn with_grace<M: R>(proxy: Proxy<M>, grace: std::time::Duration) -> Result<Proxy<M>, ConfigError>
    where
        M::Old: Clone,
        M::New: Clone,
    {
        proxy.with_grace(grace)
    }

    pub async fn get<M: R>(proxy: &Proxy<M>, key: &M::Key) -> Result<Option<M::Value>, Error> {
        proxy.get(key).await
    }

    pub async fn put<M: R>(proxy: &Proxy<M>, key: &M::Key, value: &M::Value) -> Result<(), Error> {
        proxy.put(key, value).await
    }

    pub async fn delete<M: R>(proxy: &Proxy<M>, key: &M::Key) -> Result<(), Error> {
        proxy.delete(key).await
    }
}
