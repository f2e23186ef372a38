//! Zero-downtime data migration.
//!
//! An application keeps serving traffic while its data moves from an OLD store to a NEW one. Every
//! read and write goes through a proxy; a deterministic per-key [`Gate`] picks which keys take part;
//! for those keys NEW becomes a read-through / write-through cache of OLD until NEW holds everything.
//!
//! The gate must decide the same in every process, on every platform and in every language, so keys
//! have a canonical byte encoding ([`MigrationKey`], `docs/key-encoding.md`) and the bucket is a
//! SHA-256 prefix of it, never a hasher whose output changes between releases.
//!
//! ```
//! use zddm::{Gate, MigrationKey, Rate};
//!
//! #[derive(MigrationKey)]
//! struct OrderKey {
//!     tenant: u32,
//!     order: String,
//! }
//!
//! let gate = Gate::new("orders-v2", Rate::percent(5.0)?);
//! let key = OrderKey { tenant: 42, order: "A-1001".into() };
//! // The same answer in every process of the fleet, and in every language.
//! let migrate = gate.admits(&key);
//! # let _ = migrate;
//! # Ok::<(), zddm::RateError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod gate;
mod key;
mod proxy;
mod rate;
mod store;

pub use error::{BoxError, Error, Op, Side};
pub use gate::{Admission, Gate};
pub use key::{schema_fields, ByteKey, Bytes, KeyError, KeySink, MigrationKey};
pub use proxy::{block_on, BlockingProxy, ConfigError, Mismatch, Phase, PhaseError, Proxy, ProxyBuilder, Stats};
pub use rate::{Rate, RateError};
pub use store::{Blocking, BlockingStore, MemoryStore, Store};

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

/// Not public API: what the macros' expansions refer to. Absolute paths only, so user code
/// shadowing `core`, `Result` or `String` cannot break an expansion.
#[doc(hidden)]
pub mod __private {
    pub use crate::key::{schema_fields, ByteKey, KeySink, MigrationKey};
    pub use ::std::string::String;
}
