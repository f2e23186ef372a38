//! What the proxy reports when a store fails.

use std::fmt;

/// A store's error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The store being migrated from.
    Old,
    /// The store being migrated to.
    New,
}

/// Which store operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Store::get`](crate::Store::get).
    Get,
    /// [`Store::put`](crate::Store::put).
    Put,
    /// [`Store::insert_if_absent`](crate::Store::insert_if_absent).
    Insert,
    /// [`Store::delete`](crate::Store::delete).
    Delete,
    /// [`Target::mark`](crate::versioned::Target::mark): a write marking its key pending in NEW.
    Mark,
    /// [`Target::fill`](crate::versioned::Target::fill): a read copying OLD into NEW.
    Fill,
    /// [`Scan::scan`](crate::versioned::Scan::scan): a backfill or verifier reading OLD in order.
    Scan,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Old => "OLD",
            Side::New => "NEW",
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Insert => "insert",
            Op::Delete => "delete",
            Op::Mark => "mark",
            Op::Fill => "fill",
            Op::Scan => "scan",
        })
    }
}

/// A failed proxy operation.
///
/// [`Error::Store`] means the operation failed and NEW was left honest: it holds nothing that OLD
/// does not. [`Error::Indeterminate`] means more: NEW may now hold a stale copy of the key, because
/// the write's effect on NEW is unknown and invalidating NEW's copy failed too. This process will
/// not serve that copy (it repairs the key before reading it from NEW again), but other processes
/// reading NEW directly could, until the key is written again. Treat it as "retry the write".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A store operation failed.
    #[error("{op} on the {side} store failed")]
    Store {
        /// The store that failed.
        side: Side,
        /// The operation that failed.
        op: Op,
        /// The store's error.
        #[source]
        source: BoxError,
    },
    /// A write or delete whose effect on NEW is unknown, and whose invalidation of NEW failed.
    #[error(
        "{op} is indeterminate: {}; NEW may hold a stale copy of the key and invalidating it failed too \
         (retry the {op} to settle it)",
        match old_error { None => "OLD committed it", Some(_) => "OLD failed it" }
    )]
    Indeterminate {
        /// The proxy operation: [`Op::Put`] or [`Op::Delete`].
        op: Op,
        /// OLD's error, if OLD failed too; `None` if OLD committed the write.
        old_error: Option<BoxError>,
        /// Why invalidating NEW's copy failed.
        #[source]
        source: BoxError,
    },
}

impl Error {
    pub(crate) fn store(side: Side, op: Op, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Store { side, op, source: Box::new(source) }
    }

    /// The store whose failure this is (NEW for an indeterminate write: its copy is in doubt).
    pub fn side(&self) -> Side {
        match self {
            Error::Store { side, .. } => *side,
            Error::Indeterminate { .. } => Side::New,
        }
    }

    /// The operation that failed.
    pub fn op(&self) -> Op {
        match self {
            Error::Store { op, .. } | Error::Indeterminate { op, .. } => *op,
        }
    }

    /// Whether NEW may hold a stale copy of the key (see [`Error::Indeterminate`]).
    pub fn is_indeterminate(&self) -> bool {
        matches!(self, Error::Indeterminate { .. })
    }
}
