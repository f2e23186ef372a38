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
