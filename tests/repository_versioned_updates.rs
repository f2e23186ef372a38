//! `mode = versioned`: a second write of the table's keys (`archive`, `put_many`, keys from an
//! iterator) is routed as a verifier's repair settles a key — each key marked in NEW, the store's
//! own method run once on OLD, then a version drawn from OLD's counter and OLD's state of each key
//! applied to NEW at it — so NEW stays exact (not merely invalidated) for every instance, even when
//! the method changes OLD's rows without bumping their versions. A trait with such methods keeps
//! writing OLD in `Complete`; a proxy built without that refuses updates there.
//!
//! OLD is the application's table in a SQLite file, with a version column and a counter; NEW is
//! zddm's `SqliteTarget`. Each instance opens its own connections, as a separate process would.

#![allow(clippy::ptr_arg)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use zddm::backfill::{Backfill, MemoryCheckpoint};
use zddm::verify::Verify;
use zddm::versioned::{
    Filled, Lookup, MemorySource, MemoryTarget, Page, Scan, Source, SqliteTarget, Target, Versioned, VersionedProxy,
};
use zddm::{Gate, MigrationKey, Op, Phase, Rate};
use zddm_suite::ui::RepoError;

#[zddm::migrate(old = Legacy, new = SqliteTarget<u64, String>, mode = versioned)]
#[allow(async_fn_in_trait)]
pub trait Accounts {
    async fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError>;
    async fn put_account(&self, id: &u64, name: &String) -> Result<(), RepoError>;
    async fn delete_account(&self, id: &u64) -> Result<(), RepoError>;
    /// Marks the account archived in place: the row's version is left as it was.
    #[zddm(write)]
    async fn archive(&self, id: &u64) -> Result<bool, RepoError>;
    async fn put_many(&self, entries: &[(u64, String)]) -> Result<(), RepoError>;
    /// Deletes the accounts that exist; deletes leave no version in OLD.
    #[zddm(delete)]
    async fn purge_each<'a>(&self, ids: impl IntoIterator<Item = &'a u64>) -> Result<usize, RepoError>;
}

/// The same table without a write method of its own: its `Complete` writes NEW alone.
#[zddm::migrate(old = Legacy, new = SqliteTarget<u64, String>, mode = versioned)]
#[allow(async_fn_in_trait)]
pub trait PlainAccounts {
    async fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError>;
    async fn put_account(&self, id: &u64, name: &String) -> Result<(), RepoError>;
    async fn delete_account(&self, id: &u64) -> Result<(), RepoError>;
}

/// OLD: `accounts (id, name, version)` and a one-row clock that versions every write.
pub struct Legacy {
    db: Mutex<Connection>,
}

impl Legacy {
    pub fn open(path: &Path) -> Legacy {
        let db = Connection::open(path).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        db.pragma_update(None, "journal_mode", "WAL").unwrap();
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS clock (one INTEGER PRIMARY KEY CHECK (one = 1), version INTEGER NOT NULL);
             INSERT OR IGNORE INTO clock VALUES (1, 0);",
        )
        .unwrap();
        Legacy { db: Mutex::new(db) }
    }

    /// One transaction: the clock's next version, then `change` at it.
    fn write(&self, change: impl FnOnce(&Connection, i64) -> rusqlite::Result<()>) -> rusqlite::Result<u64> {
        let mut db = self.db.lock().unwrap();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 =
            tx.query_row("UPDATE clock SET version = version + 1 RETURNING version", [], |r| r.get(0))?;
        change(&tx, version)?;
        tx.commit()?;
        Ok(version as u64)
    }

    fn save(&self, id: u64, name: &str) -> rusqlite::Result<u64> {
        self.write(|tx, version| {
            tx.execute(
                "INSERT INTO accounts VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, version = excluded.version",
                params![id as i64, name, version],
            )
            .map(drop)
        })
    }

    fn read(&self, id: u64) -> rusqlite::Result<Option<Versioned<String>>> {
        self.db
            .lock()
            .unwrap()
            .query_row("SELECT name, version FROM accounts WHERE id = ?1", [id as i64], |row| {
                Ok(Versioned { value: row.get(0)?, version: row.get::<_, i64>(1)? as u64 })
            })
            .optional()
    }
}

// On the store itself: the orphan rule refuses one on `Backend<Legacy>` with a key and value of
// other crates. The trait's own methods are registered with `#[zddm::backend]` below.
impl Source<u64, String> for Legacy {
    type Error = rusqlite::Error;

    async fn get(&self, id: &u64) -> rusqlite::Result<Option<Versioned<String>>> {
        self.read(*id)
    }

    async fn put(&self, id: &u64, name: &String) -> rusqlite::Result<u64> {
        self.save(*id, name)
    }

    async fn delete(&self, id: &u64) -> rusqlite::Result<u64> {
        self.write(|tx, _| tx.execute("DELETE FROM accounts WHERE id = ?1", [*id as i64]).map(drop))
    }

    async fn next_version(&self, _id: &u64) -> rusqlite::Result<u64> {
        self.write(|_, _| Ok(()))
    }
}

/// In id order, which is canonical order for `u64` keys: what backfill and verify need.
impl Scan<u64, String> for Legacy {
    async fn scan(&self, after: Option<&[u8]>, limit: usize) -> rusqlite::Result<Page<u64, Versioned<String>>> {
        let after = after.map_or(-1, |bytes| u64::from_key_bytes(bytes).map_or(i64::MAX, |id| id as i64));
        let db = self.db.lock().unwrap();
        let mut statement =
            db.prepare_cached("SELECT id, name, version FROM accounts WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let entries = statement
            .query_map(params![after, limit as i64], |row| {
                let version = row.get::<_, i64>(2)? as u64;
                Ok((row.get::<_, i64>(0)? as u64, Versioned { value: row.get(1)?, version }))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let next = entries.last().filter(|_| entries.len() == limit).map(|(id, _)| id.key_bytes());
        Ok(Page { entries, next })
    }
}

fn failed(_: rusqlite::Error) -> RepoError {
    RepoError
}

/// The application's repository on OLD, as it was before the migration: the routed methods of
/// both traits, and `Accounts`'s own writes.
macro_rules! legacy_repository {
    ($($repository:ident { $($extra:item)* })*) => {$(
        #[zddm::backend]
        impl $repository for Legacy {
            async fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError> {
                Ok(self.read(*id).map_err(failed)?.map(|found| found.value))
            }
            async fn put_account(&self, id: &u64, name: &String) -> Result<(), RepoError> {
                self.save(*id, name).map(drop).map_err(failed)
            }
            async fn delete_account(&self, id: &u64) -> Result<(), RepoError> {
                Source::delete(self, id).await.map(drop).map_err(failed)
            }
            $($extra)*
        }
    )*};
}

legacy_repository! {
    PlainAccounts {}
    Accounts {
        async fn archive(&self, id: &u64) -> Result<bool, RepoError> {
            let db = self.db.lock().unwrap();
            let changed = db
                .execute("UPDATE accounts SET name = name || ' (archived)' WHERE id = ?1", [*id as i64])
                .map_err(failed)?;
            Ok(changed == 1)
        }
        async fn put_many(&self, entries: &[(u64, String)]) -> Result<(), RepoError> {
            for (id, name) in entries {
                self.save(*id, name).map_err(failed)?;
            }
            Ok(())
        }
        async fn purge_each<'a>(&self, ids: impl IntoIterator<Item = &'a u64>) -> Result<usize, RepoError> {
            let db = self.db.lock().unwrap();
            let mut purged = 0;
            for id in ids {
                purged += db.execute("DELETE FROM accounts WHERE id = ?1", [*id as i64]).map_err(failed)?;
            }
            Ok(purged)
        }
    }
}

fn new_store(dir: &Path) -> SqliteTarget<u64, String> {
    SqliteTarget::open(dir.join("new.db"), "accounts").unwrap()
}

/// One instance: its own connections to the shared files.
fn instance(dir: &Path) -> AccountsMigration {
    AccountsMigration::new(Legacy::open(&dir.join("old.db")), new_store(dir), Gate::new("accounts", Rate::ALL))
}

/// What NEW answers for `id`, read on a connection of its own.
async fn in_new(dir: &Path, id: u64) -> Lookup<String> {
    new_store(dir).lookup(&id).await.unwrap()
}

/// NEW must hold exactly OLD's state of every key: a value, or a delete where OLD has none.
async fn assert_new_exact(dir: &Path, ids: impl IntoIterator<Item = u64>) {
    let old = Legacy::open(&dir.join("old.db"));
    for id in ids {
        let expected = match old.read(id).unwrap() {
            Some(found) => Lookup::Hit(found.value),
            None => Lookup::Deleted,
        };
        assert_eq!(in_new(dir, id).await, expected, "NEW's slot of account {id}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn updates_on_one_instance_leave_new_exact_for_another() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = (instance(dir.path()), instance(dir.path()));
    for id in 0..6u64 {
        writer.put_account(&id, &format!("user {id}")).await.unwrap();
        assert_eq!(reader.get_account(&id).await.unwrap(), Some(format!("user {id}")));
    }
    let unbumped = Legacy::open(&dir.path().join("old.db")).read(1).unwrap().unwrap().version;

    assert!(writer.archive(&1).await.unwrap(), "the store's own answer comes back");
    assert!(!writer.archive(&99).await.unwrap());
    writer.put_many(&[(2, "two".into()), (3, "three".into())]).await.unwrap();
    assert_eq!(writer.purge_each([4, 5, 98].iter()).await.unwrap(), 2);

    let expected = |id: u64| match id {
        1 => Some("user 1 (archived)".to_string()),
        2 => Some("two".to_string()),
        3 => Some("three".to_string()),
        4 | 5 => None,
        id => Some(format!("user {id}")),
    };
    let served = reader.proxy().stats();
    for id in 0..6u64 {
        assert_eq!(reader.get_account(&id).await.unwrap(), expected(id), "account {id}, read by the other instance");
    }
    assert_eq!(reader.proxy().stats().since(&served).reads_from_new, 6, "NEW answers for every key, deletes too");
    assert_new_exact(dir.path(), 0..6).await;
    assert_eq!(in_new(dir.path(), 98).await, Lookup::Deleted, "a key the purge named is known absent");

    // A read-through that read OLD before the archive (at the row's version, which the archive
    // left as it was) and fills NEW only now cannot bring the old name back.
    let late = new_store(dir.path()).fill(&1, Some(&"user 1".to_string()), unbumped, None).await.unwrap();
    assert_eq!(late, Filled::Refused);
    assert_eq!(reader.get_account(&1).await.unwrap(), expected(1));
}

/// Control: the same update run on OLD without the migration leaves NEW serving the old name.
#[tokio::test(flavor = "current_thread")]
async fn without_the_routing_new_serves_the_name_from_before_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let reader = instance(dir.path());
    reader.put_account(&1, &"user 1".to_string()).await.unwrap();
    let old = zddm::Backend::unguarded(Legacy::open(&dir.path().join("old.db")));
    assert!(old.archive(&1).await.unwrap());
    assert_eq!(reader.get_account(&1).await.unwrap().as_deref(), Some("user 1"), "stale, as expected without routing");
}

/// An update by an instance behind the fleet's coverage only invalidates NEW (phase `Off`, with the
/// gate's high-water mark at 100 %): another instance still reading NEW then reads OLD's new state.
#[tokio::test(flavor = "current_thread")]
async fn an_update_that_only_invalidates_never_leaves_the_old_copy_served() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = (instance(dir.path()), instance(dir.path()));
    for id in 0..3u64 {
        writer.put_account(&id, &format!("user {id}")).await.unwrap();
    }
    writer.proxy().set_phase(Phase::Off).unwrap();
    assert!(writer.archive(&1).await.unwrap());
    writer.put_many(&[(2, "two".into())]).await.unwrap();
    assert_eq!(in_new(dir.path(), 1).await, Lookup::Miss, "invalidated, not written");
    assert_eq!(reader.get_account(&1).await.unwrap().as_deref(), Some("user 1 (archived)"));
    assert_eq!(reader.get_account(&2).await.unwrap().as_deref(), Some("two"));
    assert_eq!(reader.get_account(&0).await.unwrap().as_deref(), Some("user 0"));
}

/// Through backfill and verification to `Complete`, where a trait with updates keeps writing OLD
/// first, so that its methods still find OLD current; a trait without them writes NEW alone.
#[tokio::test(flavor = "current_thread")]
async fn complete_keeps_writing_old_when_the_trait_has_updates() {
    let dir = tempfile::tempdir().unwrap();
    let old = Legacy::open(&dir.path().join("old.db"));
    for id in 0..20u64 {
        old.save(id, &format!("user {id}")).unwrap();
    }
    let migration = instance(dir.path());
    migration.proxy().set_phase(Phase::Live).unwrap();
    Backfill::new(migration.proxy()).batch(8).run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {}).await.unwrap();
    let report = Verify::new(migration.proxy()).batch(8).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(report.earns_complete(), "{report}");
    migration.proxy().set_phase(Phase::Complete).unwrap();

    assert!(migration.archive(&1).await.unwrap());
    migration.put_account(&2, &"two".to_string()).await.unwrap();
    migration.delete_account(&3).await.unwrap();
    assert_eq!(migration.purge_each([4].iter()).await.unwrap(), 1);
    assert_eq!(old.read(1).unwrap().map(|found| found.value).as_deref(), Some("user 1 (archived)"));
    assert_eq!(old.read(2).unwrap().map(|found| found.value).as_deref(), Some("two"), "a put reaches OLD too");
    assert_eq!(old.read(3).unwrap(), None);
    assert_new_exact(dir.path(), 0..20).await;
    assert_eq!(migration.get_account(&1).await.unwrap().as_deref(), Some("user 1 (archived)"));

    // Without updates, `Complete` writes NEW alone, as before.
    let plain = PlainAccountsMigration::new(
        Legacy::open(&dir.path().join("old.db")),
        new_store(dir.path()),
        Gate::new("accounts", Rate::ALL),
    );
    plain.proxy().set_phase(Phase::Live).unwrap();
    let report = Verify::new(plain.proxy()).batch(8).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(report.earns_complete(), "{report}");
    plain.proxy().set_phase(Phase::Complete).unwrap();
    plain.put_account(&5, &"five".to_string()).await.unwrap();
    assert_eq!(plain.get_account(&5).await.unwrap().as_deref(), Some("five"));
    assert_eq!(old.read(5).unwrap().map(|found| found.value).as_deref(), Some("user 5"), "OLD no longer written");
}

/// A proxy built by hand writes NEW alone in `Complete`: an update there is refused before its
/// method runs, with an error that names the option; with the option it runs.
#[tokio::test(flavor = "current_thread")]
async fn an_update_in_complete_is_refused_unless_complete_writes_old() {
    let build = |keeps_old: bool| {
        let old = Arc::new(MemorySource::<u64, String>::new());
        let builder = VersionedProxy::builder(Arc::clone(&old), MemoryTarget::new(), Gate::new("t", Rate::ALL));
        (old, builder.phase(Phase::Complete).complete_writes_old(keeps_old).build().unwrap())
    };
    let (old, proxy) = build(false);
    let ran = AtomicBool::new(false);
    let refused = proxy.update(&1, async { ran.store(true, Ordering::SeqCst) }).await.unwrap_err();
    assert!(matches!(refused, zddm::Error::Refused { op: Op::Update, phase: Phase::Complete }), "{refused:?}");
    assert!(!ran.load(Ordering::SeqCst), "refused before the method ran");
    assert!(refused.to_string().contains("complete_writes_old(true)"), "{refused}");
    assert!(old.is_empty());

    let (old, proxy) = build(true);
    let written = proxy.update_many(&[&1, &2], async { old.put(&1, &"one".to_string()).await }).await.unwrap();
    assert!(written.is_ok());
    assert_eq!(proxy.get(&1).await.unwrap().as_deref(), Some("one"));
    assert_eq!(proxy.get(&2).await.unwrap(), None, "OLD has no value: NEW knows it is absent");
}

/// Two instances on two threads write the same keys at once, one with puts and deletes, the other
/// with its own methods. Once they are done, NEW holds exactly what OLD holds, for every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_and_updates_leave_new_equal_to_old() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (Arc::new(instance(dir.path())), Arc::new(instance(dir.path())));
    const KEYS: u64 = 8;
    let writes = tokio::spawn({
        let first = Arc::clone(&first);
        async move {
            for round in 0..40u64 {
                for id in 0..KEYS {
                    if (round + id) % 7 == 0 {
                        first.delete_account(&id).await.unwrap();
                    } else {
                        first.put_account(&id, &format!("{id}.{round}")).await.unwrap();
                    }
                }
            }
        }
    });
    let updates = tokio::spawn({
        let second = Arc::clone(&second);
        async move {
            for round in 0..40u64 {
                let id = round % KEYS;
                second.archive(&id).await.unwrap();
                second
                    .put_many(&[(id, format!("many {round}")), ((id + 3) % KEYS, format!("many {round}"))])
                    .await
                    .unwrap();
                let purged = [(id + 5) % KEYS];
                second.purge_each(&purged).await.unwrap();
                assert!(second.get_account(&id).await.is_ok());
            }
        }
    });
    writes.await.unwrap();
    updates.await.unwrap();
    assert_new_exact(dir.path(), 0..KEYS).await;
    for id in 0..KEYS {
        let old = Legacy::open(&dir.path().join("old.db")).read(id).unwrap().map(|found| found.value);
        assert_eq!(first.get_account(&id).await.unwrap(), old);
    }
}
