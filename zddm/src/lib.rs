//! Zero-downtime data migration: move a live application's data from an OLD store to a NEW one
//! while it keeps serving traffic.
//!
//! Every read and write goes through a [`Proxy`] over the two stores; a deterministic per-key
//! [`Gate`] picks which keys take part; for those keys NEW becomes a read-through / write-through
//! cache of OLD until NEW holds everything. You raise the gate at your own pace, then a backfill
//! copies the keys nobody read, a verification shows NEW holds everything, and `Complete` switches
//! reads and writes to NEW alone.
//!
//! ```
//! use std::sync::Arc;
//! use zddm::{Gate, MemoryStore, MigrationKey, Phase, Proxy, Rate, Store};
//!
//! #[derive(MigrationKey)]
//! struct OrderKey {
//!     tenant: u32,
//!     order: String,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Any two stores implementing `zddm::Store`: `SqliteStore`, `PostgresStore`, `RedisStore`,
//! // `MemoryStore`, or your own.
//! let old = Arc::new(MemoryStore::<OrderKey, String>::new());
//! let new = Arc::new(MemoryStore::<OrderKey, String>::new());
//! let key = OrderKey { tenant: 42, order: "A-1001".into() };
//! old.put(&key, &"1 item".to_string()).await?; // data from before the migration
//!
//! let orders = Proxy::new(old, new.clone(), Gate::new("orders-v2", Rate::percent(5.0)?));
//! orders.gate().set_rate(Rate::ALL)?; // ramp at your own pace
//! assert_eq!(orders.get(&key).await?, Some("1 item".to_string())); // from OLD, now in NEW too
//! orders.put(&key, &"2 items".to_string()).await?; // OLD, then NEW
//! assert_eq!(new.get(&key).await?, Some("2 items".to_string()));
//! orders.set_phase(Phase::Live)?; // NEW answers; `zddm::backfill` and `zddm::verify` finish
//! # Ok(())
//! # }
//! ```
//!
//! An application that reads and writes through a repository trait of its own annotates it
//! instead: [`macro@migrate`] generates `<Trait>Migration`, which implements the trait by routing
//! every call through the proxy, and a write that goes around it does not compile.
//!
//! The gate must decide the same in every process, on every platform and in every language, so keys
//! have a canonical byte encoding ([`MigrationKey`]) and the bucket is a SHA-256 prefix of it, never
//! a hasher whose output changes between releases. A fleet of instances shares one plan
//! ([`fleet`]) and a versioned protocol ([`versioned`]); see [`Proxy`] for what one process
//! guarantees.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | (none) | keys, [`Gate`], [`Rate`], [`Proxy`], [`MemoryStore`], the macros, the fleet modes with in-memory stores, [`backfill`], [`verify`] |
//! | `sqlite` | `SqliteStore` and the SQLite sources, targets, caches and control records (bundled SQLite); re-exports `rusqlite` |
//! | `postgres` | `PostgresStore` and the PostgreSQL sources, targets, caches, control records and backfill workers |
//! | `redis` | `RedisStore` and the Redis targets, caches and control records |
//! | `uuid` | `uuid::Uuid` as a key field |
//!
//! Items that need a feature say so in these docs. Values of the SQLite, PostgreSQL and Redis
//! stores are JSON (`serde`).
//!
//! # Guides
//!
//! In the `docs/` directory of the package (and of the repository): `repository-macro.md` (migrating a repository trait, every
//! compile error and its fix), `consistency.md` (the guarantees per mode and failure),
//! `backfill.md` (backfill, verification, the `zddm` command), `key-encoding.md` (the byte format
//! for other languages), `performance.md` and `decisions.md`.

#![cfg_attr(docsrs, feature(doc_auto_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
pub mod backfill;
pub mod cached;
mod controls;
mod error;
pub mod fleet;
mod gate;
mod key;
mod proxy;
mod rate;
mod store;
pub mod verify;
pub mod versioned;

pub use backend::Backend;
pub use controls::Controls;
pub use error::{BoxError, Error, Op, Side};
pub use gate::{Admission, Gate};
pub use key::{schema_fields, ByteKey, Bytes, KeyError, KeyReader, KeySink, MigrationKey, RawKey};
pub use proxy::{block_on, BlockingProxy, ConfigError, Mismatch, Phase, PhaseError, Proxy, ProxyBuilder, Stats};
pub use rate::{Rate, RateError};
/// The SQLite bindings `SqliteStore::with_connection` takes a connection of (the same version zddm
/// links, which a `cargo add rusqlite` of another version would clash with).
#[cfg(feature = "sqlite")]
pub use rusqlite;
pub use store::{Blocking, BlockingStore, MemoryStore, Store};
#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
pub use store::{DecodeError, EncodeError};
#[cfg(feature = "postgres")]
pub use store::{PostgresConnectError, PostgresError, PostgresStore};
#[cfg(feature = "redis")]
pub use store::{RedisError, RedisStore};
#[cfg(feature = "sqlite")]
pub use store::{SqliteError, SqliteStore};

/// `#[derive(MigrationKey)]`: the canonical encoding for a struct or an enum.
///
/// Fields are encoded in declaration order; names are never encoded, so renaming a field is free.
/// Mark byte fields with `#[zddm(bytes)]` (otherwise a `Vec<u8>` is a sequence of integers). Every
/// enum variant needs an explicit, unique `#[zddm(tag = N)]` (a u32): the tag is what the encoding
/// stores, so reordering variants never moves a key to another bucket.
///
/// ```
/// use zddm::MigrationKey;
///
/// #[derive(MigrationKey)]
/// enum Owner {
///     #[zddm(tag = 1)]
///     User { id: u64 },
///     #[zddm(tag = 2)]
///     Team(#[zddm(bytes)] Vec<u8>),
///     #[zddm(tag = 3)]
///     System,
/// }
///
/// assert_eq!(Owner::System.key_bytes(), [0, 0, 0, 3]);
/// assert_eq!(Owner::schema(), "enum{1:(u64),2:(bytes),3:()}");
/// ```
pub use zddm_macros::MigrationKey;

/// `#[zddm::migrate(old = OldStore, new = NewStore)]` on a repository trait: generates
/// `<Trait>Migration`, which implements the trait by routing every call through a [`Proxy`] between
/// the two stores, and makes the stores reachable only through it.
///
/// Each method is classified by an attribute — `#[zddm(read)]`, `#[zddm(write)]`, `#[zddm(delete)]`,
/// or `#[zddm(old)]` / `#[zddm(new)]` to pass it through to one store — or by its name (`get_…`,
/// `put_…`, `delete_…` and the other verbs in `docs/repository-macro.md`); methods with a default
/// body need neither. The read, write and delete share one key type (a [`MigrationKey`]), one value
/// type and one error type, which must implement `From<zddm::Error>`. Both stores implement the trait
/// through [`macro@backend`], which implements the companion trait `<Trait>Backend` declared beside
/// it. Without `old` and `new` (`#[zddm::migrate]`), the migrating type is generic over its stores,
/// which may then live in crates that depend on the trait's; the stores named are its defaults.
///
/// ```
/// use zddm::{Gate, MigrationKey, Rate};
///
/// #[derive(MigrationKey)]
/// pub struct UserId(u64);
///
/// #[derive(Debug)]
/// pub struct RepoError(String);
/// impl std::fmt::Display for RepoError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) }
/// }
/// impl std::error::Error for RepoError {}
/// impl From<zddm::Error> for RepoError {
///     fn from(error: zddm::Error) -> Self { RepoError(error.to_string()) }
/// }
///
/// #[zddm::migrate(old = Legacy, new = Modern)]
/// pub trait Users {
///     fn get_user(&self, id: &UserId) -> Result<Option<String>, RepoError>;
///     fn put_user(&self, id: &UserId, name: &String) -> Result<(), RepoError>;
///     fn delete_user(&self, id: &UserId) -> Result<(), RepoError>;
/// }
///
/// # #[derive(Default)]
/// pub struct Legacy(std::sync::Mutex<std::collections::HashMap<u64, String>>);
/// # #[derive(Default)]
/// pub struct Modern(std::sync::Mutex<std::collections::HashMap<u64, String>>);
///
/// #[zddm::backend]
/// impl Users for Legacy {
///     fn get_user(&self, id: &UserId) -> Result<Option<String>, RepoError> {
///         Ok(self.0.lock().unwrap().get(&id.0).cloned())
///     }
///     fn put_user(&self, id: &UserId, name: &String) -> Result<(), RepoError> {
///         self.0.lock().unwrap().insert(id.0, name.clone());
///         Ok(())
///     }
///     fn delete_user(&self, id: &UserId) -> Result<(), RepoError> {
///         self.0.lock().unwrap().remove(&id.0);
///         Ok(())
///     }
/// }
/// # #[zddm::backend]
/// # impl Users for Modern {
/// #     fn get_user(&self, id: &UserId) -> Result<Option<String>, RepoError> { Ok(self.0.lock().unwrap().get(&id.0).cloned()) }
/// #     fn put_user(&self, id: &UserId, name: &String) -> Result<(), RepoError> { self.0.lock().unwrap().insert(id.0, name.clone()); Ok(()) }
/// #     fn delete_user(&self, id: &UserId) -> Result<(), RepoError> { self.0.lock().unwrap().remove(&id.0); Ok(()) }
/// # }
///
/// let users = UsersMigration::new(Legacy::default(), Modern::default(), Gate::new("users", Rate::ALL));
/// users.put_user(&UserId(7), &"ada".to_string())?;
/// assert_eq!(users.get_user(&UserId(7))?, Some("ada".to_string()));
/// assert_eq!(users.proxy().stats().reads_from_new, 1);
/// # Ok::<(), RepoError>(())
/// ```
pub use zddm_macros::migrate;

/// `#[zddm::backend]` on `impl Repo for Store`: registers the store as a backend of `Repo`'s migration
/// (the impl becomes `impl RepoBackend for Store`, whose methods take the store as a
/// [`Backend`], which only the migration makes). It may live in another crate than `Repo`. An impl
/// of a migrating trait without it does not compile. See [`macro@migrate`].
pub use zddm_macros::backend;

/// Not public API: what the macros' expansions refer to. Absolute paths only, so user code
/// shadowing `core`, `Result` or `String` cannot break an expansion.
#[doc(hidden)]
pub mod __private {
    pub use crate::backend::{
        cached, local, versioned, CachedRepository, Held, Migration, Registered, VersionedRepository,
    };
    pub use crate::cached::{Cache, CachedProxy, ScanKeys};
    pub use crate::fleet::{Control, Fleet};
    pub use crate::key::{schema_fields, ByteKey, KeyError, KeyReader, KeySink, MigrationKey};
    pub use crate::proxy::{block_on, Proxy, ProxyBuilder};
    pub use crate::store::Store;
    pub use crate::versioned::{Page, Source, Target, VersionedProxy, VersionedProxyBuilder};
    pub use crate::{ConfigError, Error, Gate};
    pub use ::core::convert::From;
    pub use ::core::future::Future;
    pub use ::core::marker::{Send, Sized, Sync};
    pub use ::core::option::Option;
    pub use ::core::result::Result;
    pub use ::core::time::Duration;
    pub use ::std::string::String;
    pub use ::std::sync::Arc;
    pub use ::tokio::sync::Mutex as AsyncMutex;

    /// What a repository's error type must be for its stores to sit behind the proxy; generated
    /// code names it at the error type, so that a type that is no `std::error::Error` is reported
    /// with this message, there.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a migrating repository's error type: it is not a `std::error::Error`",
        label = "the stores' failures are reported as this type, which must implement `std::error::Error + Send + Sync + 'static`",
        note = "derive it (`#[derive(Debug, thiserror::Error)]` with an `#[error(\"…\")]` message), or implement `std::fmt::Display` and `std::error::Error` for {Self}"
    )]
    pub trait RepositoryError: std::error::Error + Send + Sync + 'static {}

    impl<E: std::error::Error + Send + Sync + 'static> RepositoryError for E {}

    /// How a repository's error type receives the migration's failures; generated code names it
    /// explicitly so that a missing `From<zddm::Error>` is reported with this message.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot carry the migration's failures",
        label = "a migrating repository's error type must implement `From<zddm::Error>`",
        note = "add `impl From<zddm::Error> for {Self}`: a call through the migration can fail on either store, and the failure reaches the caller as this type"
    )]
    pub trait CarriesMigrationError: Sized {
        fn from_migration(error: Error) -> Self;
    }

    impl<E: From<Error>> CarriesMigrationError for E {
        fn from_migration(error: Error) -> Self {
            E::from(error)
        }
    }

    /// The migration's result in the repository's error type.
    pub fn carry<T, E: CarriesMigrationError>(result: Result<T, Error>) -> Result<T, E> {
        result.map_err(E::from_migration)
    }

    /// The same for a routed call that answers with the store's own result.
    pub fn carry_update<T, E: CarriesMigrationError>(result: Result<Result<T, E>, Error>) -> Result<T, E> {
        result.unwrap_or_else(|error| Err(E::from_migration(error)))
    }
}
