//! `#[zddm::migrate(.., mode = versioned)]` and `mode = cached`: a repository trait migrated by a
//! fleet of instances over the application's own tables. OLD is an `accounts` table with a version
//! column (a SQLite file, as a user's existing table would be), NEW an `accounts_v2` table that keeps
//! `zddm::versioned::Slot`'s columns beside the row; both implement the versioned traits in plain
//! SQL, as an application would. Each instance has its own connections, as separate processes
//! would.
//!
//! The interleavings of the fleet issue are replayed through generated migrations, with the
//! default (one-process) mode over the very same stores as the failing control.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;
use zddm::backfill::{Backfill, MemoryCheckpoint};
use zddm::cached::{Cache, Probe, SqliteCache};
use zddm::fleet::{Fleet, FleetConfig, Goal, MemoryControl};
use zddm::verify::Verify;
use zddm::versioned::{Change, Filled, Lookup, Page, Scan, ScanSlots, Slot, Source, Target, Versioned};
use zddm::{Gate, MigrationKey, Phase, Rate};
use zddm_suite::history::{Event, History, Kind};

#[derive(Debug, Clone, PartialEq, Eq, MigrationKey)]
pub struct AccountId {
    pub id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    pub owner: String,
    pub balance: i64,
}

#[derive(Debug)]
pub struct RepoError(String);

impl std::fmt::Display for RepoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RepoError {}

impl From<zddm::Error> for RepoError {
    fn from(error: zddm::Error) -> Self {
        RepoError(error.to_string())
    }
}

impl From<rusqlite::Error> for RepoError {
    fn from(error: rusqlite::Error) -> Self {
        RepoError(error.to_string())
    }
}

/// The application's repository, migrated by a fleet.
#[zddm::migrate(old = LegacyAccounts, new = AccountsV2, mode = versioned)]
#[allow(async_fn_in_trait)]
pub trait Accounts {
    async fn get_account(&self, key: &AccountId) -> Result<Option<Account>, RepoError>;
    async fn save_account(&self, key: &AccountId, account: &Account) -> Result<(), RepoError>;
    async fn delete_account(&self, key: &AccountId) -> Result<(), RepoError>;
    #[zddm(old)]
    async fn count_accounts(&self) -> Result<usize, RepoError>;
}

/// The same repository in the default mode: correct in one process only. The failing control.
#[zddm::migrate(old = LegacyAccounts, new = AccountsV2)]
#[allow(async_fn_in_trait)]
pub trait LocalAccounts {
    async fn get_account(&self, key: &AccountId) -> Result<Option<Account>, RepoError>;
    async fn save_account(&self, key: &AccountId, account: &Account) -> Result<(), RepoError>;
    async fn delete_account(&self, key: &AccountId) -> Result<(), RepoError>;
}

/// The same repository with NEW as a cache with leased fills (OLD needs no version).
#[zddm::migrate(old = LegacyAccounts, new = AccountsCache, mode = cached)]
#[allow(async_fn_in_trait)]
pub trait CachedAccounts {
    async fn get_account(&self, key: &AccountId) -> Result<Option<Account>, RepoError>;
    async fn save_account(&self, key: &AccountId, account: &Account) -> Result<(), RepoError>;
    async fn delete_account(&self, key: &AccountId) -> Result<(), RepoError>;
    #[zddm(new)]
    async fn cached_entries(&self) -> Result<usize, RepoError>;
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    Ok(connection)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn id(key: &AccountId) -> i64 {
    i64::try_from(key.id).expect("test ids fit SQLite's integers")
}

/// The existing table, given a version column and a clock (a delete leaves no row, so versions
/// come from a counter): every write bumps the clock in the same transaction.
pub struct LegacyAccounts {
    db: Mutex<Connection>,
    /// Fault injection: the next write waits for this after OLD committed it (a slow or dropped
    /// caller between the two stores).
    pause_after_commit: Mutex<Option<oneshot::Receiver<()>>>,
    /// Fault injection: every write yields to the executor once after OLD committed it, so that a
    /// caller can drop it there.
    yield_after_commit: bool,
}

impl LegacyAccounts {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let db = open(path)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL, version INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS accounts_clock (one INTEGER PRIMARY KEY CHECK (one = 1), version INTEGER NOT NULL);
             INSERT OR IGNORE INTO accounts_clock VALUES (1, 0);",
        )?;
        Ok(LegacyAccounts { db: Mutex::new(db), pause_after_commit: Mutex::new(None), yield_after_commit: false })
    }

    /// Every write yields once after its commit.
    pub fn yielding(self) -> Self {
        LegacyAccounts { yield_after_commit: true, ..self }
    }

    /// The next write stops after OLD committed it, until `release` fires (or forever, if it is
    /// kept and never fired).
    pub fn pause_next_write(&self) -> oneshot::Sender<()> {
        let (release, wait) = oneshot::channel();
        *self.pause_after_commit.lock().unwrap() = Some(wait);
        release
    }

    fn write(&self, change: impl FnOnce(&Connection, i64) -> rusqlite::Result<()>) -> rusqlite::Result<u64> {
        let mut db = self.db.lock().unwrap();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 =
            tx.query_row("UPDATE accounts_clock SET version = version + 1 RETURNING version", [], |row| row.get(0))?;
        change(&tx, version)?;
        tx.commit()?;
        Ok(version as u64)
    }

    async fn after_commit(&self) {
        let wait = self.pause_after_commit.lock().unwrap().take();
        if let Some(wait) = wait {
            let _ = wait.await;
        }
        if self.yield_after_commit {
            tokio::task::yield_now().await;
        }
    }

    fn read(&self, key: &AccountId) -> rusqlite::Result<Option<Versioned<Account>>> {
        self.db
            .lock()
            .unwrap()
            .query_row("SELECT owner, balance, version FROM accounts WHERE id = ?1", [id(key)], |row| {
                Ok(Versioned {
                    value: Account { owner: row.get(0)?, balance: row.get(1)? },
                    version: row.get::<_, i64>(2)? as u64,
                })
            })
            .optional()
    }

    fn save(&self, key: &AccountId, account: &Account) -> rusqlite::Result<u64> {
        self.write(|tx, version| {
            tx.execute(
                "INSERT INTO accounts VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, balance = excluded.balance, version = excluded.version",
                params![id(key), account.owner, account.balance, version],
            )
            .map(drop)
        })
    }

    fn remove(&self, key: &AccountId) -> rusqlite::Result<u64> {
        self.write(|tx, _| tx.execute("DELETE FROM accounts WHERE id = ?1", [id(key)]).map(drop))
    }

    fn rows(&self) -> Vec<(u64, Account)> {
        let db = self.db.lock().unwrap();
        let mut statement = db.prepare("SELECT id, owner, balance FROM accounts ORDER BY id").unwrap();
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)? as u64, Account { owner: row.get(1)?, balance: row.get(2)? }))
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    }
}

#[zddm::backend]
impl Source<AccountId, Account> for LegacyAccounts {
    type Error = rusqlite::Error;

    async fn get(&self, key: &AccountId) -> Result<Option<Versioned<Account>>, rusqlite::Error> {
        self.read(key)
    }

    async fn put(&self, key: &AccountId, value: &Account) -> Result<u64, rusqlite::Error> {
        let version = self.save(key, value)?;
        self.after_commit().await;
        Ok(version)
    }

    async fn delete(&self, key: &AccountId) -> Result<u64, rusqlite::Error> {
        let version = self.remove(key)?;
        self.after_commit().await;
        Ok(version)
    }

    async fn next_version(&self, _key: &AccountId) -> Result<u64, rusqlite::Error> {
        self.write(|_, _| Ok(()))
    }
}

/// The existing table scanned in its own key order (`id`; the position is the last id's 8 bytes),
/// which is also canonical order for `AccountId { id: u64 }`: so backfill and verify reach it.
#[zddm::backend]
impl Scan<AccountId, Account> for LegacyAccounts {
    async fn scan(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<AccountId, Versioned<Account>>, rusqlite::Error> {
        let after = after.map_or(-1, |bytes| i64::from_be_bytes(bytes.try_into().unwrap_or([0; 8])));
        let db = self.db.lock().unwrap();
        let mut statement =
            db.prepare_cached("SELECT id, owner, balance, version FROM accounts WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let entries = statement
            .query_map(params![after, limit as i64], |row| {
                let id: i64 = row.get(0)?;
                let value = Account { owner: row.get(1)?, balance: row.get(2)? };
                Ok((AccountId { id: id as u64 }, Versioned { value, version: row.get::<_, i64>(3)? as u64 }))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let next =
            entries.last().filter(|_| entries.len() == limit).map(|(key, _)| (key.id as i64).to_be_bytes().to_vec());
        Ok(Page { entries, next })
    }
}

/// The application's trait on OLD, as it was before the migration.
macro_rules! legacy_repository {
    ($($repository:ident { $($extra:item)* })*) => {$(
        #[zddm::backend]
        impl $repository for LegacyAccounts {
            $($extra)*

            async fn get_account(&self, key: &AccountId) -> Result<Option<Account>, RepoError> {
                Ok(self.read(key)?.map(|row| row.value))
            }

            async fn save_account(&self, key: &AccountId, account: &Account) -> Result<(), RepoError> {
                self.save(key, account)?;
                self.after_commit().await;
                Ok(())
            }

            async fn delete_account(&self, key: &AccountId) -> Result<(), RepoError> {
                self.remove(key)?;
                self.after_commit().await;
                Ok(())
            }
        }
    )*};
}

legacy_repository! {
    LocalAccounts {}
    CachedAccounts {
        async fn cached_entries(&self) -> Result<usize, RepoError> {
            Err(RepoError("OLD is not a cache".into()))
        }
    }
}

#[zddm::backend]
impl Accounts for LegacyAccounts {
    async fn get_account(&self, key: &AccountId) -> Result<Option<Account>, RepoError> {
        Ok(self.read(key)?.map(|row| row.value))
    }

    async fn save_account(&self, key: &AccountId, account: &Account) -> Result<(), RepoError> {
        self.save(key, account).map(drop).map_err(RepoError::from)
    }

    async fn delete_account(&self, key: &AccountId) -> Result<(), RepoError> {
        self.remove(key).map(drop).map_err(RepoError::from)
    }

    async fn count_accounts(&self) -> Result<usize, RepoError> {
        Ok(self.db.lock().unwrap().query_row("SELECT count(*) FROM accounts", [], |row| row.get::<_, i64>(0))? as usize)
    }
}

/// The new table: the row plus the columns of `zddm::versioned::Slot`. Every operation runs one of
/// `Slot`'s functions in one immediate transaction, which makes it atomic across instances.
pub struct AccountsV2 {
    db: Mutex<Connection>,
}

impl AccountsV2 {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let db = open(path)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS accounts_v2 (
                 id INTEGER PRIMARY KEY, owner TEXT, balance INTEGER,
                 deleted INTEGER NOT NULL, version INTEGER NOT NULL,
                 pending INTEGER NOT NULL, pending_until INTEGER NOT NULL, changed_at INTEGER NOT NULL)",
        )?;
        Ok(AccountsV2 { db: Mutex::new(db) })
    }

    fn load(db: &Connection, key: i64) -> rusqlite::Result<Slot<Account>> {
        let slot = db
            .query_row(
                "SELECT owner, balance, deleted, version, pending, pending_until, changed_at FROM accounts_v2 WHERE id = ?1",
                [key],
                |row| {
                    let owner: Option<String> = row.get(0)?;
                    let balance: Option<i64> = row.get(1)?;
                    Ok(Slot {
                        value: owner.zip(balance).map(|(owner, balance)| Account { owner, balance }),
                        deleted: row.get(2)?,
                        version: row.get::<_, i64>(3)? as u64,
                        pending: row.get(4)?,
                        pending_until: row.get::<_, i64>(5)? as u64,
                        changed_at: row.get::<_, i64>(6)? as u64,
                    })
                },
            )
            .optional()?;
        Ok(slot.unwrap_or_default())
    }

    fn change<T>(&self, key: &AccountId, change: impl FnOnce(&mut Slot<Account>, u64) -> T) -> rusqlite::Result<T> {
        let mut db = self.db.lock().unwrap();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut slot = Self::load(&tx, id(key))?;
        let result = change(&mut slot, now_ms());
        tx.execute(
            "INSERT OR REPLACE INTO accounts_v2 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id(key),
                slot.value.as_ref().map(|a| a.owner.clone()),
                slot.value.as_ref().map(|a| a.balance),
                slot.deleted,
                slot.version as i64,
                slot.pending,
                slot.pending_until as i64,
                slot.changed_at as i64,
            ],
        )?;
        tx.commit()?;
        Ok(result)
    }

    fn slot(&self, key: u64) -> Slot<Account> {
        Self::load(&self.db.lock().unwrap(), key as i64).unwrap()
    }
}

/// NEW's slots in `id` order, for verification.
#[zddm::backend]
impl ScanSlots<AccountId, Account> for AccountsV2 {
    async fn scan_slots(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<AccountId, Lookup<Account>>, rusqlite::Error> {
        let after = after.map_or(-1, |bytes| AccountId::from_key_bytes(bytes).map_or(i64::MAX, |key| id(&key)));
        let ids: Vec<i64> = {
            let db = self.db.lock().unwrap();
            let mut statement = db.prepare_cached("SELECT id FROM accounts_v2 WHERE id > ?1 ORDER BY id LIMIT ?2")?;
            let ids = statement
                .query_map(params![after, limit as i64], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            ids
        };
        let db = self.db.lock().unwrap();
        let mut entries = Vec::with_capacity(ids.len());
        for key in &ids {
            entries.push((AccountId { id: *key as u64 }, AccountsV2::load(&db, *key)?.lookup(now_ms())));
        }
        let next = entries.last().filter(|_| entries.len() == limit).map(|(key, _)| key.key_bytes());
        Ok(Page { entries, next })
    }
}

#[zddm::backend]
impl Target<AccountId, Account> for AccountsV2 {
    type Error = rusqlite::Error;

    async fn lookup(&self, key: &AccountId) -> Result<Lookup<Account>, rusqlite::Error> {
        Ok(AccountsV2::load(&self.db.lock().unwrap(), id(key))?.lookup(now_ms()))
    }

    async fn mark(&self, key: &AccountId, grace_ms: u64) -> Result<(), rusqlite::Error> {
        self.change(key, |slot, now| slot.mark(now, grace_ms))
    }

    async fn apply(
        &self,
        key: &AccountId,
        change: Change<&Account>,
        version: u64,
        settle: bool,
    ) -> Result<(), rusqlite::Error> {
        self.change(key, |slot, now| {
            slot.apply(change.cloned(), version, settle, now);
        })
    }

    async fn fill(
        &self,
        key: &AccountId,
        value: Option<&Account>,
        version: u64,
        token: Option<u64>,
    ) -> Result<Filled, rusqlite::Error> {
        self.change(key, |slot, now| slot.fill(value.cloned(), version, token, now))
    }

    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, rusqlite::Error> {
        let db = self.db.lock().unwrap();
        let mut statement = db.prepare("SELECT id FROM accounts_v2 WHERE pending > 0")?;
        let ids = statement.query_map([], |row| row.get::<_, i64>(0))?.collect::<Result<Vec<_>, _>>()?;
        let mut keys: Vec<Vec<u8>> = ids
            .into_iter()
            .map(|id| AccountId { id: id as u64 }.key_bytes())
            .filter(|key| after.is_none_or(|after| key.as_slice() > after))
            .collect();
        keys.sort();
        keys.truncate(limit);
        Ok(keys)
    }

    async fn purge(&self, older_than_ms: u64) -> Result<usize, rusqlite::Error> {
        let horizon = now_ms().saturating_sub(older_than_ms) as i64;
        self.db
            .lock()
            .unwrap()
            .execute("DELETE FROM accounts_v2 WHERE owner IS NULL AND pending = 0 AND changed_at <= ?1", [horizon])
    }
}

impl AccountsV2 {
    /// The application's own write, once NEW is all it has: the next version, settled.
    fn write(&self, key: &AccountId, change: Change<Account>) -> Result<(), RepoError> {
        Ok(self.change(key, |slot, now| {
            let version = slot.version + 1;
            slot.apply(change, version, false, now);
        })?)
    }

    fn value(&self, key: &AccountId) -> Result<Option<Account>, RepoError> {
        Ok(AccountsV2::load(&self.db.lock().unwrap(), id(key))?.value)
    }
}

/// The application's trait on NEW: what it runs on once the migration is over.
#[zddm::backend]
impl LocalAccounts for AccountsV2 {
    async fn get_account(&self, key: &AccountId) -> Result<Option<Account>, RepoError> {
        self.value(key)
    }

    async fn save_account(&self, key: &AccountId, account: &Account) -> Result<(), RepoError> {
        self.write(key, Change::Put(account.clone()))
    }

    async fn delete_account(&self, key: &AccountId) -> Result<(), RepoError> {
        self.write(key, Change::Delete)
    }
}

#[zddm::backend]
impl Accounts for AccountsV2 {
    async fn get_account(&self, key: &AccountId) -> Result<Option<Account>, RepoError> {
        self.value(key)
    }

    async fn save_account(&self, key: &AccountId, account: &Account) -> Result<(), RepoError> {
        self.write(key, Change::Put(account.clone()))
    }

    async fn delete_account(&self, key: &AccountId) -> Result<(), RepoError> {
        self.write(key, Change::Delete)
    }

    async fn count_accounts(&self) -> Result<usize, RepoError> {
        let db = self.db.lock().unwrap();
        Ok(db.query_row("SELECT count(*) FROM accounts_v2 WHERE owner IS NOT NULL", [], |row| row.get::<_, i64>(0))?
            as usize)
    }
}

/// NEW for the cached mode: zddm's leased cache in a SQLite file, wrapped by the application.
pub struct AccountsCache {
    cache: SqliteCache<AccountId, Account>,
    path: PathBuf,
}

#[zddm::backend]
impl Cache<AccountId, Account> for AccountsCache {
    type Error = zddm::SqliteError;

    async fn probe(&self, key: &AccountId) -> Result<Probe<Account>, Self::Error> {
        self.cache.probe(key).await
    }

    async fn mark(&self, key: &AccountId, grace_ms: u64) -> Result<(), Self::Error> {
        self.cache.mark(key, grace_ms).await
    }

    async fn invalidate(&self, key: &AccountId, settle: bool) -> Result<(), Self::Error> {
        self.cache.invalidate(key, settle).await
    }

    async fn fill(&self, key: &AccountId, value: Option<&Account>, token: u64) -> Result<bool, Self::Error> {
        self.cache.fill(key, value, token).await
    }

    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, Self::Error> {
        self.cache.pending_keys(after, limit).await
    }
}

#[zddm::backend]
impl CachedAccounts for AccountsCache {
    async fn get_account(&self, _key: &AccountId) -> Result<Option<Account>, RepoError> {
        Err(RepoError("a cache is read through the migration".into()))
    }

    async fn save_account(&self, _key: &AccountId, _account: &Account) -> Result<(), RepoError> {
        Err(RepoError("a cache is written through the migration".into()))
    }

    async fn delete_account(&self, _key: &AccountId) -> Result<(), RepoError> {
        Err(RepoError("a cache is written through the migration".into()))
    }

    async fn cached_entries(&self) -> Result<usize, RepoError> {
        Ok(open(&self.path)?.query_row("SELECT count(*) FROM accounts_cache", [], |row| row.get::<_, i64>(0))? as usize)
    }
}

/// Where the instances' connections go.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files { dir: tempfile::tempdir().unwrap() }
    }

    fn old(&self) -> LegacyAccounts {
        LegacyAccounts::open(&self.dir.path().join("old.db")).unwrap()
    }

    fn new_store(&self) -> AccountsV2 {
        AccountsV2::open(&self.dir.path().join("new.db")).unwrap()
    }

    fn cache(&self) -> AccountsCache {
        let path = self.dir.path().join("cache.db");
        AccountsCache { cache: SqliteCache::open(&path, "accounts_cache").unwrap(), path }
    }
}

fn account(owner: &str, balance: i64) -> Account {
    Account { owner: owner.to_string(), balance }
}

const KEY: AccountId = AccountId { id: 7 };

/// Two instances of the versioned migration over the same files, each with its own connections.
fn versioned_pair(files: &Files) -> (AccountsMigration, AccountsMigration) {
    let a = AccountsMigration::new(files.old(), files.new_store(), Gate::new("accounts", Rate::ALL));
    let b = AccountsMigration::new(files.old(), files.new_store(), Gate::new("accounts", Rate::ALL));
    (a, b)
}

#[tokio::test]
async fn a_versioned_migration_routes_through_old_versions() {
    let files = Files::new();
    let (a, b) = versioned_pair(&files);
    a.save_account(&KEY, &account("ada", 10)).await.unwrap();
    assert_eq!(b.get_account(&KEY).await.unwrap(), Some(account("ada", 10)));
    let new = files.new_store();
    let slot = new.slot(KEY.id);
    assert_eq!(slot.value, Some(account("ada", 10)));
    assert_eq!(slot.version, 1, "NEW holds OLD's version");
    assert_eq!(slot.pending, 0, "the write settled");
    assert_eq!(a.count_accounts().await.unwrap(), 1, "passed through to OLD");

    b.delete_account(&KEY).await.unwrap();
    assert_eq!(a.get_account(&KEY).await.unwrap(), None);
    let slot = new.slot(KEY.id);
    assert!(slot.deleted && slot.version == 2, "a versioned tombstone: {slot:?}");
    assert_eq!(files.old().rows(), vec![]);
}

/// Interleaving 3: A's write reaches OLD first and NEW last. With versions NEW ends in OLD's order;
/// the one-process migration ends with OLD b1 and NEW a1.
#[tokio::test]
async fn put_against_put_lands_in_olds_order() {
    async fn run(versioned: bool) -> (Vec<(u64, Account)>, Option<Account>) {
        let files = Files::new();
        let (old_a, old_b) = (files.old(), files.old());
        let release = old_a.pause_next_write();
        let gate = || Gate::new("accounts", Rate::ALL);
        if versioned {
            let a = AccountsMigration::new(old_a, files.new_store(), gate());
            let b = AccountsMigration::new(old_b, files.new_store(), gate());
            let slow = tokio::spawn(async move { a.save_account(&KEY, &account("a1", 1)).await });
            tokio::time::sleep(Duration::from_millis(50)).await;
            b.save_account(&KEY, &account("b1", 2)).await.unwrap();
            release.send(()).unwrap();
            slow.await.unwrap().unwrap();
            (files.old().rows(), b.get_account(&KEY).await.unwrap())
        } else {
            let a = LocalAccountsMigration::new(old_a, files.new_store(), gate());
            let b = LocalAccountsMigration::new(old_b, files.new_store(), gate());
            let slow = tokio::spawn(async move { a.save_account(&KEY, &account("a1", 1)).await });
            tokio::time::sleep(Duration::from_millis(50)).await;
            b.save_account(&KEY, &account("b1", 2)).await.unwrap();
            release.send(()).unwrap();
            slow.await.unwrap().unwrap();
            (files.old().rows(), b.get_account(&KEY).await.unwrap())
        }
    }
    let (old, read) = run(true).await;
    assert_eq!(old, vec![(KEY.id, account("b1", 2))]);
    assert_eq!(read, Some(account("b1", 2)), "NEW took OLD's order");

    let (old, read) = run(false).await;
    assert_eq!(old, vec![(KEY.id, account("b1", 2))]);
    assert_eq!(read, Some(account("a1", 1)), "control: without versions NEW ends with the older write");
}

/// Interleaving 6: A's write is dropped after OLD took it. Versioned: the key stays pending in NEW
/// and B answers from OLD. One-process: B serves the value NEW held before.
#[tokio::test]
async fn an_abandoned_write_is_not_served_stale_by_another_instance() {
    let files = Files::new();
    let gate = || Gate::new("accounts", Rate::ALL);
    let (old_a, old_b) = (files.old(), files.old());
    let a = AccountsMigration::new(old_a, files.new_store(), gate());
    a.save_account(&KEY, &account("a1", 1)).await.unwrap();
    let b = AccountsMigration::new(old_b, files.new_store(), gate());
    assert_eq!(b.get_account(&KEY).await.unwrap(), Some(account("a1", 1)));

    // The pause is set on a fresh handle of A's OLD: the migration owns the one it was given.
    let old_a = files.old();
    let _never = old_a.pause_next_write();
    let a = AccountsMigration::new(old_a, files.new_store(), gate());
    let dropped = tokio::time::timeout(Duration::from_millis(100), a.save_account(&KEY, &account("a2", 2))).await;
    assert!(dropped.is_err(), "the write was dropped between OLD and NEW");
    assert_eq!(files.old().rows(), vec![(KEY.id, account("a2", 2))], "OLD took it");
    assert_eq!(files.new_store().slot(KEY.id).pending, 1, "NEW keeps the key in doubt, for every instance");
    assert_eq!(b.get_account(&KEY).await.unwrap(), Some(account("a2", 2)), "B answers from OLD");

    // Control: the same drop through the one-process migration.
    let files = Files::new();
    let (old_a, old_b) = (files.old(), files.old());
    let a = LocalAccountsMigration::new(old_a, files.new_store(), gate());
    a.save_account(&KEY, &account("a1", 1)).await.unwrap();
    let b = LocalAccountsMigration::new(old_b, files.new_store(), gate());
    let old_a = files.old();
    let _never = old_a.pause_next_write();
    let a = LocalAccountsMigration::new(old_a, files.new_store(), gate());
    let dropped = tokio::time::timeout(Duration::from_millis(100), a.save_account(&KEY, &account("a2", 2))).await;
    assert!(dropped.is_err());
    assert_eq!(b.get_account(&KEY).await.unwrap(), Some(account("a1", 1)), "control: B serves NEW's stale copy");
}

/// One instance's migration, in the mode under test.
#[derive(Clone)]
enum Instance {
    Versioned(Arc<AccountsMigration>),
    Local(Arc<LocalAccountsMigration>),
}

impl Instance {
    async fn get(&self, key: &AccountId) -> Result<Option<Account>, RepoError> {
        match self {
            Instance::Versioned(m) => m.get_account(key).await,
            Instance::Local(m) => m.get_account(key).await,
        }
    }

    async fn write(&self, key: &AccountId, value: Option<u64>) -> Result<(), RepoError> {
        match (self, value) {
            (Instance::Versioned(m), Some(v)) => m.save_account(key, &account("w", v as i64)).await,
            (Instance::Versioned(m), None) => m.delete_account(key).await,
            (Instance::Local(m), Some(v)) => m.save_account(key, &account("w", v as i64)).await,
            (Instance::Local(m), None) => m.delete_account(key).await,
        }
    }
}

/// Fifteen rounds; in each, two workers per instance make 10 calls each over 4 keys: 40 % reads,
/// the rest puts and deletes, one write in ten abandoned once OLD committed it. Between rounds,
/// with no call in flight, NEW is compared with OLD ([`stale_in_new`]). Returns the history, how
/// many writes were abandoned, and the stale keys found at the checkpoints.
async fn workload(instances: &[Instance], files: &Files) -> (History, u64, Vec<u64>) {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    let history = Arc::new(History::default());
    let clock = Arc::new(AtomicU64::new(0));
    let next_value = Arc::new(AtomicU64::new(1));
    let drops = Arc::new(AtomicU64::new(0));
    let mut stale = Vec::new();
    for round in 0..15u64 {
        let mut workers = Vec::new();
        for (i, instance) in instances.iter().enumerate() {
            for worker in 0..2u64 {
                let (instance, history, clock, next_value, drops) =
                    (instance.clone(), history.clone(), clock.clone(), next_value.clone(), drops.clone());
                workers.push(tokio::spawn(async move {
                    let mut seed = (i as u64 + 1) * 7919 + worker * 104_729 + round * 15_485_863;
                    for _ in 0..10 {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        let key = AccountId { id: (seed >> 33) % 4 };
                        let roll = (seed >> 20) % 10;
                        let start = clock.fetch_add(1, SeqCst);
                        let (kind, ok, dropped) = if roll < 4 {
                            let read = instance.get(&key).await;
                            let ok = read.is_ok();
                            (Kind::Read(read.ok().flatten().map(|account| account.balance as u64)), ok, false)
                        } else {
                            let value = (roll != 9).then(|| next_value.fetch_add(1, SeqCst));
                            let call = std::pin::pin!(instance.write(&key, value));
                            if roll == 5 {
                                let done = poll_once(call).await;
                                drops.fetch_add(u64::from(done.is_none()), SeqCst);
                                (Kind::Write(value), matches!(done, Some(Ok(()))), done.is_none())
                            } else {
                                (Kind::Write(value), call.await.is_ok(), false)
                            }
                        };
                        let end = clock.fetch_add(1, SeqCst);
                        history.record(Event { key: key.id, kind, start, end, ok, dropped });
                    }
                }));
            }
        }
        for worker in workers {
            worker.await.unwrap();
        }
        stale.extend(stale_in_new(files));
    }
    let history = Arc::try_unwrap(history).unwrap_or_else(|_| panic!("every worker is done"));
    (history, drops.load(SeqCst), stale)
}

/// A fleet of three instances, each its own migration and fleet membership, ramping to `Live`
/// while writers, readers and abandoned writes run: the history has no stale read, and NEW never
/// answers with a value OLD does not hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_generated_migrations_stays_consistent() {
    let files = Files::new();
    let control = MemoryControl::new();
    let mut fleets = Vec::new();
    let mut instances = Vec::new();
    for name in ["a", "b", "c"] {
        let fleet = Arc::new(Fleet::join(control.clone(), name, "accounts", FleetConfig::default()).await.unwrap());
        let migration = AccountsMigration::in_fleet(files.old().yielding(), files.new_store(), &fleet);
        instances.push(Instance::Versioned(Arc::new(migration)));
        fleets.push(fleet);
    }
    fleets[0].set_goal(Goal { phase: Phase::Live, rate: Rate::ALL }).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pollers: Vec<_> = fleets
        .iter()
        .map(|fleet| {
            let (fleet, stop) = (fleet.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    fleet.poll().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    let (history, drops, stale) = workload(&instances, &files).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for poller in pollers {
        poller.await.unwrap();
    }
    assert_eq!(fleets[0].plan().phase, Phase::Live, "the fleet reached Live while the workload ran");
    assert!(drops > 10, "writes were abandoned midway: {drops}");
    let violations = history.violations();
    assert!(violations.is_empty(), "{} violations in {} calls: {violations:#?}", violations.len(), history.len());

    assert_eq!(stale, Vec::<u64>::new(), "between rounds, NEW answered for these keys with a value OLD did not hold");
}

/// Keys for which NEW answers (a settled value or delete) with something other than OLD's state.
fn stale_in_new(files: &Files) -> Vec<u64> {
    let new = files.new_store();
    let old: std::collections::HashMap<u64, Account> = files.old().rows().into_iter().collect();
    (0..4)
        .filter(|id| {
            let slot = new.slot(*id);
            slot.pending == 0 && (slot.value.is_some() || slot.deleted) && slot.value.as_ref() != old.get(id)
        })
        .collect()
}

/// The control: the same workload through the one-process migration, every instance in `Live`,
/// leaves NEW answering with values OLD no longer holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_workload_breaks_the_one_process_migration() {
    let files = Files::new();
    let instances: Vec<_> = (0..3)
        .map(|_| {
            let migration = LocalAccountsMigration::build(
                files.old().yielding(),
                files.new_store(),
                Gate::new("accounts", Rate::ALL),
                |o| o.phase(Phase::Live),
            )
            .unwrap();
            Instance::Local(Arc::new(migration))
        })
        .collect();
    let (_, _, stale) = workload(&instances, &files).await;
    assert!(!stale.is_empty(), "the check catches NEW left stale by racing and abandoned writes");
}

/// Polls `future` once (up to its first yield); `None` if it was not done then.
async fn poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut future = Some(future);
    std::future::poll_fn(move |cx| {
        let polled = future.take().expect("polled once").poll(cx);
        std::task::Poll::Ready(match polled {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// The cached mode: OLD through the trait, NEW a leased cache. A write dropped after OLD took it
/// leaves the key busy, so another instance reads OLD; a passed-through method reaches NEW.
#[tokio::test]
async fn a_cached_migration_never_serves_an_abandoned_write_stale() {
    let files = Files::new();
    let gate = || Gate::new("accounts", Rate::ALL);
    let a = CachedAccountsMigration::new(files.old(), files.cache(), gate());
    a.save_account(&KEY, &account("a1", 1)).await.unwrap();
    let b =
        CachedAccountsMigration::new(files.old(), files.cache(), gate()).with_grace(Duration::from_secs(60)).unwrap();
    assert_eq!(b.get_account(&KEY).await.unwrap(), Some(account("a1", 1)));
    assert_eq!(b.cached_entries().await.unwrap(), 1, "the read filled NEW under its lease");

    let old_a = files.old();
    let _never = old_a.pause_next_write();
    let a = CachedAccountsMigration::new(old_a, files.cache(), gate());
    let dropped = tokio::time::timeout(Duration::from_millis(100), a.save_account(&KEY, &account("a2", 2))).await;
    assert!(dropped.is_err());
    assert_eq!(b.get_account(&KEY).await.unwrap(), Some(account("a2", 2)), "B answers from OLD");
    assert!(b.proxy().stats().reads_from_old > 0);
}

#[tokio::test]
async fn a_migration_in_a_fleet_follows_the_fleets_plan() {
    let files = Files::new();
    let control = MemoryControl::new();
    let fleet = Fleet::join(control.clone(), "only", "accounts", FleetConfig::default()).await.unwrap();
    let migration = AccountsMigration::build_in_fleet(files.old(), files.new_store(), &fleet, |options| {
        options.grace(Duration::from_secs(45))
    })
    .unwrap();
    assert_eq!(migration.proxy().grace(), Duration::from_secs(45));
    assert_eq!(migration.proxy().plan().read, Rate::NONE, "a new fleet starts with nothing migrated");
    fleet.set_goal(Goal { phase: Phase::Live, rate: Rate::ALL }).await.unwrap();
    for _ in 0..100 {
        if fleet.plan().phase == Phase::Live {
            break;
        }
        fleet.poll().await.unwrap();
    }
    assert_eq!(migration.proxy().phase(), Phase::Live);
    assert!(migration.proxy().set_phase(Phase::ReadThrough).is_err(), "in a fleet, phases move fleet-wide");
    migration.save_account(&KEY, &account("ada", 1)).await.unwrap();
    assert_eq!(files.new_store().slot(KEY.id).value, Some(account("ada", 1)));

    let short = AccountsMigration::build(files.old(), files.new_store(), Gate::new("accounts", Rate::ALL), |options| {
        options.grace(Duration::ZERO)
    });
    assert!(matches!(short, Err(zddm::ConfigError::Grace { .. })));
}

/// A repository trait's own stores, with the scans their owner declared: backfilled, verified,
/// and completed through the generated migration's proxy.
#[tokio::test]
async fn a_repository_migration_is_backfilled_verified_and_completed() {
    let files = Files::new();
    let old = files.old();
    for key in 1..=50 {
        old.save(&AccountId { id: key }, &account("before the migration", key as i64)).unwrap();
    }
    let migration = AccountsMigration::new(files.old(), files.new_store(), Gate::new("accounts", Rate::ALL));
    migration.proxy().set_phase(Phase::Live).unwrap();
    assert_eq!(migration.get_account(&AccountId { id: 3 }).await.unwrap(), Some(account("before the migration", 3)));
    assert_eq!(migration.proxy().set_phase(Phase::Complete), Err(zddm::PhaseError::Unverified));

    let backfill = Backfill::new(migration.proxy()).batch(8);
    let done = backfill.run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {}).await.unwrap();
    assert_eq!((done.scanned, done.copied, done.newer), (50, 49, 1), "key 3 was read through already");
    let report = Verify::new(migration.proxy()).batch(8).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(report.earns_complete() && report.checked == 50, "{report}");
    migration.proxy().set_phase(Phase::Complete).unwrap();
    assert_eq!(files.new_store().slot(50).value, Some(account("before the migration", 50)));
    assert_eq!(migration.get_account(&AccountId { id: 49 }).await.unwrap(), Some(account("before the migration", 49)));
}
