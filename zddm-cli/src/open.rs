//! From URLs to stores and control records.

use std::path::PathBuf;

use zddm::fleet::{PostgresControl, RedisControl, SqliteControl};
use zddm::versioned::{PostgresSource, PostgresTarget, RedisTarget, SqliteSource, SqliteTarget};
use zddm::RawKey;

use crate::fail::{redact, Failure};
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
}

/// OLD: a versioned source zddm laid out.
pub enum Old {
    Sqlite(SqliteSource<RawKey, Json>),
    Postgres(PostgresSource<RawKey, Json>),
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

pub async fn old(url: &Url, table: &str, connections: usize) -> Result<Old, Failure> {
    Ok(match url {
        Url::Sqlite(path) => Old::Sqlite(SqliteSource::open(path, table).map_err(Failure::store)?),
        Url::Postgres(url) => {
            Old::Postgres(PostgresSource::connect(url, table, connections).await.map_err(Failure::store)?)
        }
        Url::Redis(_) => {
            return Err(Failure::Input(
                "--old on Redis cannot be scanned in key order, which backfill and verify need: the Redis source \
                 has no ordered scan yet; keep OLD on SQLite or PostgreSQL"
                    .into(),
            ))
        }
    })
}

pub async fn new(url: &Url, table: &str, connections: usize) -> Result<New, Failure> {
    Ok(match url {
        Url::Sqlite(path) => New::Sqlite(SqliteTarget::open(path, table).map_err(Failure::store)?),
        Url::Postgres(url) => {
            New::Postgres(PostgresTarget::connect(url, table, connections).await.map_err(Failure::store)?)
        }
        Url::Redis(url) => New::Redis(RedisTarget::connect(url, table).await.map_err(Failure::store)?),
    })
}

pub async fn control(url: &Url, fleet: &str) -> Result<Control, Failure> {
    Ok(match url {
        Url::Sqlite(path) => Control::Sqlite(SqliteControl::open(path, fleet).map_err(Failure::store)?),
        Url::Postgres(url) => Control::Postgres(PostgresControl::connect(url, fleet).await.map_err(Failure::store)?),
        Url::Redis(url) => Control::Redis(RedisControl::connect(url, fleet).await.map_err(Failure::store)?),
    })
}

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
