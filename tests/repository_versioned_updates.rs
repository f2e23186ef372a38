//! `mode = versioned`: a second write of the table's keys (`archive`, `put_many`, keys from an
//! iterator) is routed as a verifier's repair settles a key — each key marked in NEW, the store's
//! own method run once on OLD, then a version drawn from OLD's counter and OLD's state of each key
//! applied to NEW at it — so NEW stays exact (not merely invalidated) for every instance, even when
//! the method changes OLD's rows without bumping their versions. A trait with such methods keeps
//! writing OLD in `Complete`; a proxy built without that refuses updates there.
//!
//! OLD is the application's table in a SQLite file, with a version column and a counter; NEW is
//! zddm's `SqliteTarget`. The last test runs the same migration over PostgreSQL: OLD a
//! `PostgresSource` table that the application's methods change in plain SQL, NEW a
//! `PostgresTarget`. Each instance opens its own connections, as a separate process would.

#![allow(clippy::ptr_arg)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

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
    /// Fault injection: the next archive says it has started, then waits before changing the row.
    pause_archive: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
    /// Fault injection: every archive hangs once it has changed the row (its caller gives up).
    hang_after_archive: bool,
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
        Legacy { db: Mutex::new(db), pause_archive: Mutex::new(None), hang_after_archive: false }
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
            let pause = self.pause_archive.lock().unwrap().take();
            if let Some((started, resume)) = pause {
                let _ = started.send(());
                let _ = resume.await;
            }
            let changed = self
                .db
                .lock()
                .unwrap()
                .execute("UPDATE accounts SET name = name || ' (archived)' WHERE id = ?1", [*id as i64])
                .map_err(failed)?;
            if self.hang_after_archive {
                std::future::pending::<()>().await;
            }
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

/// Another instance's write lands between the update's marks and its method: the method changes
/// the row that write left, and NEW ends with that — not the write's value alone, which a version
/// drawn before the method would have kept (the write's version would be the newer one).
#[tokio::test(flavor = "current_thread")]
async fn a_write_that_lands_while_the_method_waits_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (started, wait_started) = oneshot::channel();
    let (resume, wait_resume) = oneshot::channel();
    let paused = Legacy::open(&dir.path().join("old.db"));
    *paused.pause_archive.lock().unwrap() = Some((started, wait_resume));
    let updater = AccountsMigration::new(paused, new_store(dir.path()), Gate::new("accounts", Rate::ALL));
    let writer = instance(dir.path());
    writer.put_account(&1, &"a".to_string()).await.unwrap();

    let (archived, ()) = tokio::join!(updater.archive(&1), async {
        wait_started.await.unwrap();
        writer.put_account(&1, &"b".to_string()).await.unwrap();
        resume.send(()).unwrap();
    });
    assert!(archived.unwrap());
    let old = Legacy::open(&dir.path().join("old.db")).read(1).unwrap().map(|found| found.value);
    assert_eq!(old.as_deref(), Some("b (archived)"));
    assert_new_exact(dir.path(), [1]).await;
    assert_eq!(writer.get_account(&1).await.unwrap().as_deref(), Some("b (archived)"));
}

/// An update abandoned after its method changed OLD (the caller gave up, the task was cancelled)
/// leaves its key marked: no instance serves NEW's copy from before it (once the mark's grace has
/// passed, a read repairs NEW, as after an abandoned write).
#[tokio::test(flavor = "current_thread")]
async fn an_update_abandoned_after_its_method_never_leaves_the_old_copy_served() {
    let dir = tempfile::tempdir().unwrap();
    let hanging = Legacy { hang_after_archive: true, ..Legacy::open(&dir.path().join("old.db")) };
    let updater = AccountsMigration::new(hanging, new_store(dir.path()), Gate::new("accounts", Rate::ALL));
    let reader = instance(dir.path());
    reader.put_account(&1, &"a".to_string()).await.unwrap();
    assert_eq!(in_new(dir.path(), 1).await, Lookup::Hit("a".to_string()));

    let gave_up = tokio::time::timeout(Duration::from_millis(50), updater.archive(&1)).await;
    assert!(gave_up.is_err(), "the archive hangs after changing OLD");
    assert!(matches!(in_new(dir.path(), 1).await, Lookup::Pending { .. }), "marked before OLD changed");
    assert_eq!(reader.get_account(&1).await.unwrap().as_deref(), Some("a (archived)"), "served by OLD");
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

/// Two instances of one migration on two threads, over the same keys: `first` puts and deletes
/// every key each round, `second` archives, writes many and purges. Returns once both are done.
macro_rules! race {
    ($first:expr, $second:expr, keys = $keys:expr, rounds = $rounds:expr) => {{
        let (keys, rounds): (u64, u64) = ($keys, $rounds);
        let writes = tokio::spawn({
            let first = Arc::clone(&$first);
            async move {
                for round in 0..rounds {
                    for id in 0..keys {
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
            let second = Arc::clone(&$second);
            async move {
                for round in 0..rounds {
                    let id = round % keys;
                    second.archive(&id).await.unwrap();
                    let many = [(id, format!("many {round}")), ((id + 3) % keys, format!("many {round}"))];
                    second.put_many(&many).await.unwrap();
                    let purged = [(id + 5) % keys];
                    second.purge_each(&purged).await.unwrap();
                    assert!(second.get_account(&id).await.is_ok());
                }
            }
        });
        writes.await.unwrap();
        updates.await.unwrap();
    }};
}

/// Two instances on two threads write the same keys at once, one with puts and deletes, the other
/// with its own methods. Once they are done, NEW holds exactly what OLD holds, for every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_and_updates_leave_new_equal_to_old() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (Arc::new(instance(dir.path())), Arc::new(instance(dir.path())));
    const KEYS: u64 = 8;
    race!(first, second, keys = KEYS, rounds = 40);
    assert_new_exact(dir.path(), 0..KEYS).await;
    for id in 0..KEYS {
        let old = Legacy::open(&dir.path().join("old.db")).read(id).unwrap().map(|found| found.value);
        assert_eq!(first.get_account(&id).await.unwrap(), old);
    }
}

/// OLD on PostgreSQL: zddm's `PostgresSource` for the routed calls, and the application's own SQL
/// (on a connection of its own) for its updates — which leave the rows' versions as they were.
pub struct PgLegacy {
    source: zddm::versioned::PostgresSource<u64, String>,
    sql: tokio_postgres::Client,
}

impl PgLegacy {
    async fn connect(url: &str) -> PgLegacy {
        let source = zddm::versioned::PostgresSource::connect(url, "accounts", 2).await.unwrap();
        let (sql, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        PgLegacy { source, sql }
    }

    async fn value(&self, id: u64) -> Option<String> {
        self.source.get(&id).await.unwrap().map(|found| found.value)
    }
}

impl Source<u64, String> for PgLegacy {
    type Error = zddm::PostgresError;

    async fn get(&self, id: &u64) -> Result<Option<Versioned<String>>, Self::Error> {
        self.source.get(id).await
    }
    async fn put(&self, id: &u64, name: &String) -> Result<u64, Self::Error> {
        self.source.put(id, name).await
    }
    async fn delete(&self, id: &u64) -> Result<u64, Self::Error> {
        self.source.delete(id).await
    }
    async fn next_version(&self, id: &u64) -> Result<u64, Self::Error> {
        self.source.next_version(id).await
    }
}

#[zddm::backend]
impl Accounts for PgLegacy {
    async fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError> {
        Ok(self.source.get(id).await.map_err(|_| RepoError)?.map(|found| found.value))
    }
    async fn put_account(&self, id: &u64, name: &String) -> Result<(), RepoError> {
        self.source.put(id, name).await.map(drop).map_err(|_| RepoError)
    }
    async fn delete_account(&self, id: &u64) -> Result<(), RepoError> {
        self.source.delete(id).await.map(drop).map_err(|_| RepoError)
    }
    async fn archive(&self, id: &u64) -> Result<bool, RepoError> {
        // The value is the name as JSON text.
        let changed = self
            .sql
            .execute(
                "UPDATE accounts SET value = to_jsonb((value::jsonb #>> '{}') || ' (archived)')::text WHERE key = $1",
                &[&id.key_bytes()],
            )
            .await
            .map_err(|_| RepoError)?;
        Ok(changed == 1)
    }
    async fn put_many(&self, entries: &[(u64, String)]) -> Result<(), RepoError> {
        for (id, name) in entries {
            self.source.put(id, name).await.map_err(|_| RepoError)?;
        }
        Ok(())
    }
    async fn purge_each<'a>(&self, ids: impl IntoIterator<Item = &'a u64>) -> Result<usize, RepoError> {
        let mut purged = 0;
        for id in ids {
            let deleted = self.sql.execute("DELETE FROM accounts WHERE key = $1", &[&id.key_bytes()]).await;
            purged += deleted.map_err(|_| RepoError)? as usize;
        }
        Ok(purged)
    }
}

type PgAccounts = AccountsMigration<PgLegacy, zddm::versioned::PostgresTarget<u64, String>>;

async fn pg_instance(url: &str) -> PgAccounts {
    let new = zddm::versioned::PostgresTarget::connect(url, "accounts_v2", 2).await.unwrap();
    AccountsMigration::new(PgLegacy::connect(url).await, new, Gate::new("accounts", Rate::ALL))
}

/// Over PostgreSQL: two instances write and update the same keys from two threads; then NEW's
/// slots hold exactly OLD's rows, and the archive's in-place change (no new version) is in NEW.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_postgres_updates_leave_new_equal_to_old() {
    let server = zddm_suite::servers::PostgresServer::start();
    let url = server.url();
    let (first, second) = (Arc::new(pg_instance(&url).await), Arc::new(pg_instance(&url).await));
    const KEYS: u64 = 6;
    for id in 0..KEYS {
        first.put_account(&id, &format!("user {id}")).await.unwrap();
    }
    assert!(second.archive(&1).await.unwrap());
    assert_eq!(first.get_account(&1).await.unwrap().as_deref(), Some("user 1 (archived)"));

    race!(first, second, keys = KEYS, rounds = 25);

    let old = PgLegacy::connect(&url).await;
    let new = zddm::versioned::PostgresTarget::<u64, String>::connect(&url, "accounts_v2", 1).await.unwrap();
    for id in 0..KEYS {
        let expected = match old.value(id).await {
            Some(name) => Lookup::Hit(name),
            None => Lookup::Deleted,
        };
        assert_eq!(new.lookup(&id).await.unwrap(), expected, "NEW's slot of account {id}");
    }
}
