//! From URLs to stores and control records.

use std::path::PathBuf;

use zddm::fleet::{PostgresControl, RedisControl, SqliteControl};
use zddm::versioned::{
    PostgresSource, PostgresTable, PostgresTarget, RedisSource, RedisTarget, SqliteSource, SqliteTable, SqliteTarget,
};
use zddm::RawKey;

use crate::fail::{redact, redact_url, Failure};
use crate::json::Json;

/// Where a store or a control record is.
#[derive(Debug, Clone)]
pub enum Url {
    Sqlite(PathBuf),
    Postgres(String),
    Redis(String),
}

const FORMS: &str = "sqlite:PATH (or a path ending in .db), postgres://user@host:port/db or redis://host:port";

impl Url {
    /// Reads `text`, the value of `--{flag}`.
    pub fn parse(text: &str, flag: &str) -> Result<Url, Failure> {
        let lower = text.to_ascii_lowercase();
        if let Some(path) = text.strip_prefix("sqlite://").or_else(|| text.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(Failure::Input(format!("--{flag} {text:?} names no file: write sqlite:PATH")));
            }
            return Ok(Url::Sqlite(PathBuf::from(path)));
        }
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Url::Postgres(text.to_owned()));
        }
        if lower.starts_with("redis://") || lower.starts_with("rediss://") {
            return Ok(Url::Redis(text.to_owned()));
        }
        if !text.contains("://")
            && (lower.ends_with(".db") || lower.ends_with(".sqlite") || lower.ends_with(".sqlite3"))
        {
            return Ok(Url::Sqlite(PathBuf::from(text)));
        }
        Err(Failure::Input(format!("--{flag} {:?} is not a store this command knows: write {FORMS}", redact(text))))
    }

    /// The store's location as given, for a message: never a password.
    pub fn shown(&self) -> String {
        match self {
            Url::Sqlite(path) => format!("sqlite:{}", path.display()),
            Url::Postgres(url) | Url::Redis(url) => redact_url(url),
        }
    }
}

/// OLD: a versioned source zddm laid out, or an existing table read through its key columns.
pub enum Old {
    Sqlite(SqliteSource<RawKey, Json>),
    Postgres(PostgresSource<RawKey, Json>),
    Table(PostgresTable<RawKey, Json>),
    SqliteTable(SqliteTable<RawKey, Json>),
    Redis(RedisSource<RawKey, Json>),
}

/// An existing table's key and version columns.
pub struct Columns<'a> {
    pub keys: &'a [String],
    pub version: &'a str,
    pub sequence: Option<&'a str>,
}

/// NEW: a versioned target zddm laid out.
pub enum New {
    Sqlite(SqliteTarget<RawKey, Json>),
    Postgres(PostgresTarget<RawKey, Json>),
    Redis(RedisTarget<RawKey, Json>),
}

/// A fleet's control record.
pub enum Control {
    Sqlite(SqliteControl),
    Postgres(PostgresControl),
    Redis(RedisControl),
}

pub async fn old(url: &Url, table: &str, columns: Option<Columns<'_>>, connections: usize) -> Result<Old, Failure> {
    if let Some(columns) = columns {
        let keys: Vec<&str> = columns.keys.iter().map(String::as_str).collect();
        let failure = |error| match error {
            zddm::versioned::TableError::Postgres(error) => Failure::store_at("OLD store", &url.shown(), error),
            zddm::versioned::TableError::Sqlite(error) => Failure::store_at("OLD store", &url.shown(), error),
            other => Failure::Input(other.to_string()),
        };
        return match url {
            Url::Postgres(url) => {
                let sequence =
                    columns.sequence.map_or_else(|| format!("{table}_{}_seq", columns.version), str::to_owned);
                let source = PostgresTable::connect(url, table, &keys, columns.version, &sequence, connections).await;
                Ok(Old::Table(source.map_err(failure)?))
            }
            Url::Sqlite(_) if columns.sequence.is_some() => Err(Failure::Input(
                "--version-sequence names a PostgreSQL sequence: SQLite has none, and an existing SQLite table's \
                 versions come from its row in zddm_versions (see docs/backfill.md)"
                    .into(),
            )),
            Url::Sqlite(path) => {
                Ok(Old::SqliteTable(SqliteTable::open(path, table, &keys, columns.version).map_err(failure)?))
            }
            Url::Redis(_) => Err(Failure::Input(
                "--key-columns reads an existing table of any schema, on PostgreSQL or SQLite: on Redis, OLD must be \
                 the keys zddm's versioned source laid out"
                    .into(),
            )),
        };
    }
    Ok(match url {
        Url::Sqlite(path) => Old::Sqlite(SqliteSource::open(path, table).map_err(failing("OLD store", url))?),
        Url::Postgres(text) => {
            Old::Postgres(PostgresSource::connect(text, table, connections).await.map_err(failing("OLD store", url))?)
        }
        Url::Redis(text) => Old::Redis(RedisSource::connect(text, table).await.map_err(failing("OLD store", url))?),
    })
}

pub async fn new(url: &Url, table: &str, connections: usize) -> Result<New, Failure> {
    Ok(match url {
        Url::Sqlite(path) => New::Sqlite(SqliteTarget::open(path, table).map_err(failing("NEW store", url))?),
        Url::Postgres(text) => {
            New::Postgres(PostgresTarget::connect(text, table, connections).await.map_err(failing("NEW store", url))?)
        }
        Url::Redis(text) => New::Redis(RedisTarget::connect(text, table).await.map_err(failing("NEW store", url))?),
    })
}

pub async fn control(url: &Url, fleet: &str) -> Result<Control, Failure> {
    Ok(match url {
        Url::Sqlite(path) => {
            Control::Sqlite(SqliteControl::open(path, fleet).map_err(failing("the fleet's control record", url))?)
        }
        Url::Postgres(text) => Control::Postgres(
            PostgresControl::connect(text, fleet).await.map_err(failing("the fleet's control record", url))?,
        ),
        Url::Redis(text) => Control::Redis(
            RedisControl::connect(text, fleet).await.map_err(failing("the fleet's control record", url))?,
        ),
    })
}

/// Wraps a store's error as the failure of the store `store` at `url`.
fn failing<E: std::error::Error + Send + Sync + 'static>(store: &'static str, url: &Url) -> impl FnOnce(E) -> Failure {
    let shown = url.shown();
    move |error| Failure::store_at(store, &shown, error)
}

/// Runs `$body` with `$o` and `$n` bound to OLD's and NEW's stores, whatever their kinds.
macro_rules! with_stores {
    ($old:expr, $new:expr, $o:ident, $n:ident => $body:expr) => {
        match $old {
            $crate::open::Old::Sqlite($o) => $crate::open::with_new!($new, $n => $body),
            $crate::open::Old::Postgres($o) => $crate::open::with_new!($new, $n => $body),
            $crate::open::Old::Table($o) => $crate::open::with_new!($new, $n => $body),
            $crate::open::Old::SqliteTable($o) => $crate::open::with_new!($new, $n => $body),
            $crate::open::Old::Redis($o) => $crate::open::with_new!($new, $n => $body),
        }
    };
}
pub(crate) use with_stores;

macro_rules! with_new {
    ($new:expr, $n:ident => $body:expr) => {
        match $new {
            $crate::open::New::Sqlite($n) => $body,
            $crate::open::New::Postgres($n) => $body,
            $crate::open::New::Redis($n) => $body,
        }
    };
}
pub(crate) use with_new;

/// Runs `$body` with `$c` bound to the control record's store, whatever its kind.
macro_rules! with_control {
    ($control:expr, $c:ident => $body:expr) => {
        match $control {
            $crate::open::Control::Sqlite($c) => $body,
            $crate::open::Control::Postgres($c) => $body,
            $crate::open::Control::Redis($c) => $body,
        }
    };
}
pub(crate) use with_control;
