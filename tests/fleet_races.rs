//! The interleavings that break a fleet, each forced between two instances that share OLD and NEW
//! but nothing else (separate handles; over SQLite, separate connections to the same files).
//! Versioned mode must show no violation; today's per-process `Proxy` on each instance is the
//! control, and must show the race — so each scenario is shown to exercise it.

use std::path::Path;
use std::sync::Arc;

use zddm::versioned::{MemorySource, MemoryTarget, SqliteSource, SqliteTarget};
use zddm::{Blocking, MemoryStore, SqliteStore};
use zddm_suite::fleet::{self, Fleet, Unversioned, Versioned};

type MemV = Versioned<Arc<MemorySource<u64, u64>>, Arc<MemoryTarget<u64, u64>>>;
type MemC = Unversioned<Arc<MemoryStore<u64, u64>>, Arc<MemoryStore<u64, u64>>>;
type SqlV = Versioned<SqliteSource<u64, u64>, SqliteTarget<u64, u64>>;
type SqlC = Unversioned<Blocking<SqliteStore<u64, u64>>, Blocking<SqliteStore<u64, u64>>>;

fn memory_versioned() -> Fleet<MemV> {
    let (old, new) = (Arc::new(MemorySource::new()), Arc::new(MemoryTarget::new()));
    let pair = || (old.clone(), new.clone());
    Fleet::new(pair(), pair(), pair())
}

fn memory_control() -> Fleet<MemC> {
    let (old, new) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
    let pair = || (old.clone(), new.clone());
    Fleet::new(pair(), pair(), pair())
}

/// Three connections to each of two SQLite files in `dir`, named after `name`.
fn sqlite_versioned(dir: &Path, name: &str) -> Fleet<SqlV> {
    let pair = || {
        (
            SqliteSource::open(dir.join(format!("{name}-old.db")), "entries").unwrap(),
            SqliteTarget::open(dir.join(format!("{name}-new.db")), "entries").unwrap(),
        )
    };
    Fleet::new(pair(), pair(), pair())
}

fn sqlite_control(dir: &Path, name: &str) -> Fleet<SqlC> {
    let pair = || {
        (
            Blocking(SqliteStore::open(dir.join(format!("{name}-old-c.db")), "entries").unwrap()),
            Blocking(SqliteStore::open(dir.join(format!("{name}-new-c.db")), "entries").unwrap()),
        )
    };
    Fleet::new(pair(), pair(), pair())
}

/// The scenario holds in versioned mode and breaks the control.
macro_rules! check {
    ($scenario:ident, $versioned:expr, $control:expr) => {{
        let versioned = fleet::$scenario(&$versioned).await;
        assert_eq!(versioned.violations(), Vec::<String>::new(), "versioned mode: {versioned:?}");
        let control = fleet::$scenario(&$control).await;
        assert!(!control.violations().is_empty(), "the control must show the race: {control:?}");
    }};
}

macro_rules! races {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "current_thread")]
                async fn $scenario() {
                    check!($scenario, memory_versioned(), memory_control());
                }
            )*
        }

        #[tokio::test(flavor = "current_thread")]
        async fn every_race_over_sqlite_files() {
            let dir = tempfile::tempdir().unwrap();
            $( check!($scenario, sqlite_versioned(dir.path(), stringify!($scenario)), sqlite_control(dir.path(), stringify!($scenario))); )*
        }
    };
}

races!(put_vs_put, put_vs_delete, read_through_vs_delete, abandoned_write);
