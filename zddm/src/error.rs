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
    /// An update: a repository's own keyed write run on OLD, with NEW kept honest around it
    /// ([`VersionedProxy::update_many`](crate::versioned::VersionedProxy::update_many),
    /// [`CachedProxy::update_many`](crate::cached::CachedProxy::update_many)).
    Update,
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
            Op::Update => "update",
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
///
/// # The cause is in the message, not in `source()`
///
/// The message carries the whole cause: `get on the OLD store failed: ` then the store's message,
/// then each underlying cause that message does not already say. So `error.to_string()` alone says
/// what went wrong, and can be passed on as text (zddm's own stores never put a password in a
/// message). Because the cause is in the message, [`source`](std::error::Error::source) returns
/// `None`: a reporter that walks the chain (`anyhow`, `eyre`, a CLI's "caused by:" lines) then
/// prints each cause once. (The Rust API guidelines allow either design, never both.)
///
/// For code, the store's error stays reachable: [`Error::store_error`] returns it, to downcast to
/// the store's error type; the `source` field of each variant holds it too.
///
/// ```
/// /// Whether the store (one whose error type is `std::io::Error`) timed out.
/// fn timed_out(error: &zddm::Error) -> bool {
///     let io = error.store_error().downcast_ref::<std::io::Error>();
///     io.is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
/// }
/// ```
// Display and `std::error::Error` are written by hand, not derived with thiserror: thiserror makes
// a field named `source` the `source()`, and these fields keep that name while the cause goes in
// the message instead.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A store operation failed.
    Store {
        /// The store that failed.
        side: Side,
        /// The operation that failed.
        op: Op,
        /// The store's error: in the message, and returned by [`Error::store_error`] (not by
        /// `source()`, see [`Error`]).
        source: BoxError,
    },
    /// A write or delete whose effect on NEW is unknown, and whose invalidation of NEW failed.
    Indeterminate {
        /// The proxy operation: [`Op::Put`] or [`Op::Delete`].
        op: Op,
        /// OLD's error (an [`Error::Store`] of OLD), if OLD failed too; `None` if OLD committed the
        /// write. In the message.
        old_error: Option<BoxError>,
        /// Why invalidating NEW's copy failed (an [`Error::Store`] of NEW): in the message, and its
        /// store's error is returned by [`Error::store_error`] (not by `source()`, see [`Error`]).
        source: BoxError,
    },
    /// A call refused before either store was touched, because the phase does not allow it: an
    /// update in versioned mode's `Complete`, which writes NEW alone, by a proxy not built with
    /// [`complete_writes_old`](crate::versioned::VersionedProxyBuilder::complete_writes_old).
    Refused {
        /// The refused operation: [`Op::Update`].
        op: Op,
        /// The phase that refused it.
        phase: crate::Phase,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Store { side, op, source } => write!(f, "{op} on the {side} store failed: {}", chain(&**source)),
            Error::Indeterminate { op, old_error, source } => {
                write!(f, "{op} is indeterminate: ")?;
                match old_error {
                    None => f.write_str("OLD committed it")?,
                    Some(error) => write!(f, "OLD failed it ({})", chain(&**error))?,
                }
                write!(
                    f,
                    ", and invalidating NEW's copy of the key failed ({}), so NEW may hold a stale copy: \
                     retry the {op} to settle it",
                    chain(&**source)
                )
            }
            Error::Refused { op, phase } => write!(
                f,
                "{op} refused in {phase}: versioned mode writes NEW alone there, and an update runs the \
                 application's own method on OLD, which nobody reads any more; build every instance's proxy \
                 with `complete_writes_old(true)` (a `#[zddm::migrate]` migration with its own write methods \
                 does), or write the keys with `put` and `delete`"
            ),
        }
    }
}

/// No `source()`: the cause is in the message (see [`Error`]).
impl std::error::Error for Error {}

impl Error {
    pub(crate) fn store(side: Side, op: Op, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Store { side, op, source: Box::new(source) }
    }

    /// The store whose failure this is (NEW for an indeterminate write: its copy is in doubt; OLD for
    /// a refused update, the store it would have written).
    pub fn side(&self) -> Side {
        match self {
            Error::Store { side, .. } => *side,
            Error::Indeterminate { .. } => Side::New,
            Error::Refused { .. } => Side::Old,
        }
    }

    /// The operation that failed.
    pub fn op(&self) -> Op {
        match self {
            Error::Store { op, .. } | Error::Indeterminate { op, .. } | Error::Refused { op, .. } => *op,
        }
    }

    /// Whether NEW may hold a stale copy of the key (see [`Error::Indeterminate`]).
    pub fn is_indeterminate(&self) -> bool {
        matches!(self, Error::Indeterminate { .. })
    }

    /// The store's own error, for code to inspect: downcast it to the store's error type (e.g.
    /// `error.store_error().downcast_ref::<zddm::PostgresError>()`). For an indeterminate write,
    /// NEW's error from the failed invalidation.
    ///
    /// The message of `self` already includes this error's message (see [`Error`]). A refused call
    /// touched no store: it is its own error.
    pub fn store_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        match self {
            Error::Refused { .. } => self,
            Error::Store { source, .. } => &**source,
            Error::Indeterminate { source, .. } => match source.downcast_ref::<Error>() {
                Some(inner) => inner.store_error(),
                None => &**source,
            },
        }
    }

    /// Like [`store_error`](Error::store_error), by value.
    pub fn into_store_error(self) -> BoxError {
        match self {
            Error::Refused { .. } => Box::new(self),
            Error::Store { source, .. } => source,
            Error::Indeterminate { source, .. } => match source.downcast::<Error>() {
                Ok(inner) => inner.into_store_error(),
                Err(source) => source,
            },
        }
    }
}

/// `error`'s message, then the message of each error under it (its
/// [`source`](std::error::Error::source) chain) that is not already part of the text, `: `-separated:
/// a message that carries its whole cause once, for an error that returns no `source()` itself.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// `url` with every password in it replaced by `***`: the one in the user info of a URL
/// (`postgres://user:***@host/db`, `redis://:***@host`) and the value of every parameter whose
/// name starts with `pass` (`password=`, Redis's `pass=`), in a URL's query or in PostgreSQL's
/// key/value form (`host=h password=***`). Made for strings that may not parse, so it redacts
/// generously rather than leave a piece of a password.
#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) fn redact(url: &str) -> String {
    let mut text = url.to_owned();
    let is_url = text.contains("://");
    if let Some(scheme) = text.find("://") {
        let rest = scheme + 3;
        // The user info ends at the last '@' before the path (a password may hold an unescaped '@'
        // or '/'), and the password starts after the first ':' in it.
        let authority_end = text[rest..].rfind('@').map(|at| rest + at);
        if let Some(at) = authority_end {
            if let Some(colon) = text[rest..at].find(':').map(|colon| rest + colon) {
                text.replace_range(colon + 1..at, "***");
            }
        }
    }
    let skip_spaces = |text: &str, at: usize| at + (text[at..].len() - text[at..].trim_start().len());
    let mut from = 0;
    while let Some(found) = text[from..].to_ascii_lowercase().find("pass").map(|found| from + found) {
        // `pass`, `password`, `passwd`, …: the rest of the name.
        let name_end = text[found..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |end| found + end);
        let at = skip_spaces(&text, name_end);
        if !text[at..].starts_with('=') {
            from = at.max(found + 1);
            continue;
        }
        let start = skip_spaces(&text, at + 1);
        let end = if is_url { url_value_end(&text, start) } else { value_end(&text, start) };
        text.replace_range(start..end, "***");
        from = start + "***".len();
    }
    text
}

/// Where a URL query value starting at `start` ends: at the next '&' or '#', or the end of the text.
#[cfg(any(feature = "postgres", feature = "redis"))]
fn url_value_end(text: &str, start: usize) -> usize {
    text[start..].find(['&', '#']).map_or(text.len(), |end| start + end)
}

/// Where a key/value parameter's value starting at `start` ends: after its closing quote if quoted,
/// else at whitespace; a backslash escapes the next character; the end of the text if unterminated.
#[cfg(any(feature = "postgres", feature = "redis"))]
fn value_end(text: &str, start: usize) -> usize {
    let quoted = text[start..].starts_with('\'');
    let mut chars = text[start..].char_indices().skip(usize::from(quoted));
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '\'' if quoted => return start + i + 1,
            c if !quoted && c.is_whitespace() => return start + i,
            _ => {}
        }
    }
    text.len()
}

/// Store errors of the shapes real ones have, for the tests of every error that wraps one.
#[cfg(test)]
pub(crate) mod fixtures {
    #[derive(Debug, thiserror::Error)]
    #[error("the disk is full")]
    pub(crate) struct Disk;

    /// A store error that says its cause and returns it from `source()` too.
    #[derive(Debug, thiserror::Error)]
    #[error("write failed: {0}")]
    pub(crate) struct Repeats(#[source] pub(crate) Disk);

    /// A store error that leaves its cause to `source()`.
    #[derive(Debug, thiserror::Error)]
    #[error("write failed")]
    pub(crate) struct Layered(#[source] pub(crate) Disk);
}

#[cfg(test)]
mod tests {
    use super::fixtures::{Disk, Layered, Repeats};
    use super::*;

    #[test]
    fn a_store_error_carries_its_cause_chain_once_and_no_source() {
        let error = Error::store(Side::Old, Op::Get, Layered(Disk));
        assert_eq!(error.to_string(), "get on the OLD store failed: write failed: the disk is full");
        assert!(std::error::Error::source(&error).is_none(), "the cause is in the message");
        let error = Error::store(Side::New, Op::Put, Repeats(Disk));
        assert_eq!(error.to_string(), "put on the NEW store failed: write failed: the disk is full");
        assert!(error.store_error().downcast_ref::<Repeats>().is_some());
        assert!(error.into_store_error().downcast::<Repeats>().is_ok());
    }

    #[test]
    fn an_indeterminate_write_carries_both_causes() {
        let invalidation = Box::new(Error::store(Side::New, Op::Delete, Layered(Disk)));
        let error = Error::Indeterminate { op: Op::Put, old_error: None, source: invalidation };
        assert_eq!(
            error.to_string(),
            "put is indeterminate: OLD committed it, and invalidating NEW's copy of the key failed (delete on \
             the NEW store failed: write failed: the disk is full), so NEW may hold a stale copy: retry the put \
             to settle it"
        );
        assert!(std::error::Error::source(&error).is_none());
        assert!(error.store_error().downcast_ref::<Layered>().is_some(), "NEW's own error");

        let old = Box::new(Error::store(Side::Old, Op::Delete, Repeats(Disk)));
        let invalidation = Box::new(Error::store(Side::New, Op::Delete, Layered(Disk)));
        let error = Error::Indeterminate { op: Op::Delete, old_error: Some(old), source: invalidation };
        let message = error.to_string();
        assert!(
            message.starts_with("delete is indeterminate: OLD failed it (delete on the OLD store failed: write failed: the disk is full), and invalidating"),
            "{message}"
        );
        assert!(error.into_store_error().downcast::<Layered>().is_ok());
    }

    #[cfg(any(feature = "postgres", feature = "redis"))]
    #[test]
    fn redact_replaces_every_password() {
        for (url, shown) in [
            ("postgres://u:secret@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgres://u:se@cret@h/db", "postgres://u:***@h/db"),
            ("postgres://u@h/db?password=secret&sslmode=disable", "postgres://u@h/db?password=***&sslmode=disable"),
            ("host=h password = 'sec\\' ret' port=1", "host=h password = *** port=1"),
            ("host=h password='secret", "host=h password=***"),
            ("redis://:secret@h:6379/0", "redis://:***@h:6379/0"),
            ("redis://user:secret@h", "redis://user:***@h"),
            ("redis+unix:///run/redis.sock?db=1&pass=secret", "redis+unix:///run/redis.sock?db=1&pass=***"),
            ("redis://h:6379/0", "redis://h:6379/0"),
            ("postgres://passer@h/passes", "postgres://passer@h/passes"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }
}
