//! `mode = cached`: a second write of the table's keys (`archive`, `put_many`, keys from an
//! iterator) is routed as a write is — each key marked in NEW, the store's own method run once on
//! OLD, each key's copy invalidated — so that no instance of the fleet serves a copy from before
//! it. Two instances over the same SQLite files: one reads (filling NEW), the other updates.

#![allow(clippy::ptr_arg)]

use zddm::cached::SqliteCache;
use zddm::{block_on, Gate, Rate, SqliteStore, Store};
use zddm_suite::ui::RepoError;

#[zddm::migrate(old = Legacy, new = SqliteCache<u64, String>, mode = cached)]
#[allow(async_fn_in_trait)]
pub trait Accounts {
    async fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError>;
    async fn put_account(&self, id: &u64, name: &String) -> Result<(), RepoError>;
    async fn delete_account(&self, id: &u64) -> Result<(), RepoError>;
    #[zddm(write)]
    async fn archive(&self, id: &u64) -> Result<bool, RepoError>;
    async fn put_many(&self, entries: &[(u64, String)]) -> Result<(), RepoError>;
    #[zddm(delete)]
    async fn purge_each<'a>(&self, ids: impl IntoIterator<Item = &'a u64>) -> Result<usize, RepoError>;
}

/// OLD: a table in a SQLite file.
pub struct Legacy(SqliteStore<u64, String>);

#[zddm::backend]
impl Accounts for Legacy {
    async fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError> {
        self.0.get(id).await.map_err(|_| RepoError)
    }
    async fn put_account(&self, id: &u64, name: &String) -> Result<(), RepoError> {
        self.0.put(id, name).await.map_err(|_| RepoError)
    }
    async fn delete_account(&self, id: &u64) -> Result<(), RepoError> {
        self.0.delete(id).await.map_err(|_| RepoError)
    }
    async fn archive(&self, id: &u64) -> Result<bool, RepoError> {
        let Some(name) = self.get_account(id).await? else { return Ok(false) };
        self.put_account(id, &format!("{name} (archived)")).await?;
        Ok(true)
    }
    async fn put_many(&self, entries: &[(u64, String)]) -> Result<(), RepoError> {
        for (id, name) in entries {
            self.put_account(id, name).await?;
        }
        Ok(())
    }
    async fn purge_each<'a>(&self, ids: impl IntoIterator<Item = &'a u64>) -> Result<usize, RepoError> {
        let mut purged = 0;
        for id in ids {
            if self.get_account(id).await?.is_some() {
                self.delete_account(id).await?;
                purged += 1;
            }
        }
        Ok(purged)
    }
}

/// One instance of the fleet: its own connections to the shared files.
fn instance(dir: &std::path::Path) -> AccountsMigration {
    AccountsMigration::new(
        Legacy(SqliteStore::open(dir.join("old.db"), "accounts").unwrap()),
        SqliteCache::open(dir.join("cache.db"), "accounts").unwrap(),
        Gate::new("accounts", Rate::ALL),
    )
}

#[tokio::test(flavor = "current_thread")]
async fn updates_on_one_instance_are_never_served_stale_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = (instance(dir.path()), instance(dir.path()));
    for id in 0..6u64 {
        writer.put_account(&id, &format!("user {id}")).await.unwrap();
        // The reader fills NEW with each account.
        assert_eq!(reader.get_account(&id).await.unwrap(), Some(format!("user {id}")));
    }
    let before = writer.proxy().stats();
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
    for id in 0..6u64 {
        assert_eq!(reader.get_account(&id).await.unwrap(), expected(id), "account {id}, read by the other instance");
    }
    let old = SqliteStore::<u64, String>::open(dir.path().join("old.db"), "accounts").unwrap();
    for id in 0..6u64 {
        assert_eq!(block_on(old.get(&id)).unwrap(), expected(id), "OLD holds every update");
    }
    // Every key the updates named was invalidated once (settled: NEW takes copies again).
    assert_eq!(writer.proxy().stats().since(&before).invalidations, 7);
    let served = reader.proxy().stats();
    assert_eq!(reader.get_account(&1).await.unwrap(), expected(1));
    assert_eq!(reader.proxy().stats().since(&served).reads_from_new, 1, "copied back into NEW, and served from it");
}

/// The routed futures are `Send`, iterators of borrowed keys included: a server's handler can
/// spawn them on a multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_run_in_spawned_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = std::sync::Arc::new(instance(dir.path()));
    accounts.put_account(&1, &"one".to_string()).await.unwrap();
    let spawned = tokio::spawn({
        let accounts = std::sync::Arc::clone(&accounts);
        async move {
            let ids = [1u64, 2];
            assert!(accounts.archive(&1).await.unwrap());
            accounts.put_many(&[(2, "two".into())]).await.unwrap();
            accounts.purge_each(&ids).await.unwrap()
        }
    });
    assert_eq!(spawned.await.unwrap(), 2);
    assert_eq!(accounts.get_account(&1).await.unwrap(), None);
}
