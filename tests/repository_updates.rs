//! A second keyed write of the application's own (`archive`), routed by a migration in one
//! process: it runs on OLD with the key locked, then NEW's copy is removed, so no read serves the
//! value from before it; in `Live` the key stays in doubt until a read copies it back, and
//! `Complete` waits for that. Over SQLite, in memory and in files.

// The repository's value is a `String`, which the routed write takes by reference as `&Value`.
#![allow(clippy::ptr_arg)]

use zddm::verify::Verify;
use zddm::{block_on, Gate, Phase, PhaseError, Rate, SqliteStore, Store};
use zddm_suite::ui::RepoError;

#[zddm::migrate(old = OldAccounts, new = NewAccounts)]
pub trait Accounts {
    fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError>;
    fn put_account(&self, id: &u64, name: &String) -> Result<(), RepoError>;
    fn delete_account(&self, id: &u64) -> Result<(), RepoError>;
    /// Another write of the same key: marks the account archived, says whether it existed.
    #[zddm(write)]
    fn archive(&self, id: &u64, reason: &str) -> Result<bool, RepoError>;
    /// Writes of many keys at once.
    fn put_many(&self, entries: &[(u64, String)]) -> Result<(), RepoError>;
    #[zddm(delete)]
    fn purge(&self, ids: &[u64]) -> Result<usize, RepoError>;
    /// Keys from an iterator, borrowed or owned, and from a `&Vec`.
    #[zddm(delete)]
    fn purge_each<'a>(&self, ids: impl IntoIterator<Item = &'a u64>) -> Result<usize, RepoError>;
    #[zddm(write)]
    fn put_each(&self, entries: impl IntoIterator<Item = (u64, String)>) -> Result<(), RepoError>;
    #[zddm(write)]
    fn rename(&self, ids: &Vec<u64>, suffix: &str) -> Result<(), RepoError>;
}

/// Each side is a SQLite table (a file, or in memory).
pub struct OldAccounts(SqliteStore<u64, String>);
pub struct NewAccounts(SqliteStore<u64, String>);

macro_rules! accounts {
    ($store:ident) => {
        #[zddm::backend]
        impl Accounts for $store {
            fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError> {
                block_on(Store::get(&self.0, id)).map_err(|_| RepoError)
            }
            fn put_account(&self, id: &u64, name: &String) -> Result<(), RepoError> {
                block_on(Store::put(&self.0, id, name)).map_err(|_| RepoError)
            }
            fn delete_account(&self, id: &u64) -> Result<(), RepoError> {
                block_on(Store::delete(&self.0, id)).map_err(|_| RepoError)
            }
            fn archive(&self, id: &u64, reason: &str) -> Result<bool, RepoError> {
                let Some(name) = block_on(Store::get(&self.0, id)).map_err(|_| RepoError)? else { return Ok(false) };
                block_on(Store::put(&self.0, id, &format!("{name} (archived: {reason})"))).map_err(|_| RepoError)?;
                Ok(true)
            }
            fn put_many(&self, entries: &[(u64, String)]) -> Result<(), RepoError> {
                for (id, name) in entries {
                    block_on(Store::put(&self.0, id, name)).map_err(|_| RepoError)?;
                }
                Ok(())
            }
            fn purge(&self, ids: &[u64]) -> Result<usize, RepoError> {
                let mut purged = 0;
                for id in ids {
                    if block_on(Store::get(&self.0, id)).map_err(|_| RepoError)?.is_some() {
                        block_on(Store::delete(&self.0, id)).map_err(|_| RepoError)?;
                        purged += 1;
                    }
                }
                Ok(purged)
            }
            fn purge_each<'a>(&self, ids: impl IntoIterator<Item = &'a u64>) -> Result<usize, RepoError> {
                let ids: Vec<u64> = ids.into_iter().copied().collect();
                self.purge(&ids)
            }
            fn put_each(&self, entries: impl IntoIterator<Item = (u64, String)>) -> Result<(), RepoError> {
                let entries: Vec<(u64, String)> = entries.into_iter().collect();
                self.put_many(&entries)
            }
            fn rename(&self, ids: &Vec<u64>, suffix: &str) -> Result<(), RepoError> {
                for id in ids {
                    if let Some(name) = block_on(Store::get(&self.0, id)).map_err(|_| RepoError)? {
                        block_on(Store::put(&self.0, id, &format!("{name}{suffix}"))).map_err(|_| RepoError)?;
                    }
                }
                Ok(())
            }
        }

        impl zddm::cached::ScanKeys<u64> for $store {
            type Error = zddm::SqliteError;

            async fn scan_keys(
                &self,
                after: Option<&[u8]>,
                limit: usize,
            ) -> Result<zddm::versioned::Page<u64, ()>, Self::Error> {
                zddm::cached::ScanKeys::scan_keys(&self.0, after, limit).await
            }
        }
    };
}

accounts!(OldAccounts);
accounts!(NewAccounts);

fn in_step(accounts: &AccountsMigration, old: &SqliteStore<u64, String>, new: &SqliteStore<u64, String>, id: u64) {
    let (truth, copy) = (block_on(Store::get(old, &id)).unwrap(), block_on(Store::get(new, &id)).unwrap());
    assert!(copy.is_none() || copy == truth, "NEW holds {copy:?} for {id}, OLD {truth:?}");
    assert_eq!(accounts.get_account(&id).unwrap(), truth, "a read of {id} answers OLD's value");
}

fn check(old_path: Option<std::path::PathBuf>, new_path: Option<std::path::PathBuf>) {
    let open = |path: &Option<std::path::PathBuf>| match path {
        Some(path) => SqliteStore::open(path, "accounts").unwrap(),
        None => SqliteStore::open_in_memory("accounts").unwrap(),
    };
    // Handles of the test's own on the same files, to look at each side (in memory: the same
    // handle is moved in, so the test looks through the migration only).
    let accounts = AccountsMigration::new(
        OldAccounts(open(&old_path)),
        NewAccounts(open(&new_path)),
        Gate::new("accounts", Rate::ALL),
    );
    accounts.put_account(&1, &"ada".into()).unwrap();
    assert_eq!(accounts.get_account(&1).unwrap(), Some("ada".into()));
    assert!(accounts.archive(&1, "closed").unwrap(), "the store's own answer comes back");
    assert!(!accounts.archive(&2, "closed").unwrap());
    assert_eq!(accounts.get_account(&1).unwrap(), Some("ada (archived: closed)".into()), "NEW's old copy was removed");
    let stats = accounts.proxy().stats();
    assert!(stats.invalidations >= 1, "{stats:?}");
    if let (Some(old), Some(new)) = (&old_path, &new_path) {
        let (old, new) = (open(&Some(old.clone())), open(&Some(new.clone())));
        in_step(&accounts, &old, &new, 1);
        in_step(&accounts, &old, &new, 2);
    }

    // Many keys at once: every copy NEW held of them is removed.
    for id in [4, 5, 6] {
        accounts.put_account(&id, &format!("user {id}")).unwrap();
        accounts.get_account(&id).unwrap();
    }
    accounts.put_many(&[(4, "four".into()), (5, "five".into()), (7, "seven".into())]).unwrap();
    for (id, name) in [(4, "four"), (5, "five"), (6, "user 6"), (7, "seven")] {
        assert_eq!(accounts.get_account(&id).unwrap(), Some(name.to_string()), "account {id} after put_many");
    }
    assert_eq!(accounts.purge(&[5, 6, 8]).unwrap(), 2, "the store's own count");
    for id in [5, 6, 8] {
        assert_eq!(accounts.get_account(&id).unwrap(), None, "account {id} after purge");
    }
    if let (Some(old), Some(new)) = (&old_path, &new_path) {
        let (old, new) = (open(&Some(old.clone())), open(&Some(new.clone())));
        for id in 1..=8 {
            in_step(&accounts, &old, &new, id);
        }
    }

    // Keys from iterators (borrowed, then owned) and from a `&Vec`: each key read first, so that
    // NEW holds a copy the write must remove.
    for id in 10..16 {
        accounts.put_account(&id, &format!("user {id}")).unwrap();
        accounts.get_account(&id).unwrap();
    }
    assert_eq!(accounts.purge_each([10, 11, 99].iter()).unwrap(), 2);
    accounts.put_each((12..14).map(|id| (id, format!("renamed {id}")))).unwrap();
    accounts.rename(&vec![14, 15], " (moved)").unwrap();
    let expected = |id: u64| match id {
        10 | 11 => None,
        12 | 13 => Some(format!("renamed {id}")),
        _ => Some(format!("user {id} (moved)")),
    };
    for id in 10..16 {
        assert_eq!(accounts.get_account(&id).unwrap(), expected(id), "account {id} after the iterators");
    }
    if let (Some(old), Some(new)) = (&old_path, &new_path) {
        let (old, new) = (open(&Some(old.clone())), open(&Some(new.clone())));
        for id in 10..16 {
            in_step(&accounts, &old, &new, id);
        }
    }

    // In `Live`, the key the update invalidated stays in doubt until a read copies it back.
    accounts.proxy().set_phase(Phase::Live).unwrap();
    accounts.put_account(&3, &"grace".into()).unwrap();
    assert!(accounts.archive(&3, "moved").unwrap());
    assert_eq!(accounts.proxy().keys_in_doubt(), 1);
    assert_eq!(accounts.proxy().set_phase(Phase::Complete), Err(PhaseError::KeysInDoubt { count: 1 }));
    assert_eq!(accounts.get_account(&3).unwrap(), Some("grace (archived: moved)".into()));
    assert_eq!(accounts.proxy().keys_in_doubt(), 0);
}

#[test]
fn a_second_write_keeps_new_in_step_in_memory() {
    check(None, None);
}

#[test]
fn a_second_write_keeps_new_in_step_over_sqlite_files() {
    let dir = tempfile::tempdir().unwrap();
    check(Some(dir.path().join("old.db")), Some(dir.path().join("new.db")));
}

/// With its stores scanning keys, the migration is then verified and completed; the update
/// in `Complete` goes to NEW alone.
#[test]
fn after_complete_the_second_write_goes_to_new() {
    let dir = tempfile::tempdir().unwrap();
    let (old_path, new_path) = (dir.path().join("old.db"), dir.path().join("new.db"));
    let accounts = AccountsMigration::new(
        OldAccounts(SqliteStore::open(&old_path, "accounts").unwrap()),
        NewAccounts(SqliteStore::open(&new_path, "accounts").unwrap()),
        Gate::new("accounts", Rate::ALL),
    );
    accounts.put_account(&1, &"ada".into()).unwrap();
    accounts.proxy().set_phase(Phase::Live).unwrap();
    let report = zddm::block_on(Verify::new(accounts.proxy()).run(|_| async {}, |_| {})).unwrap();
    assert!(report.earns_complete(), "{report}");
    accounts.proxy().set_phase(Phase::Complete).unwrap();
    assert!(accounts.archive(&1, "done").unwrap());
    let old = SqliteStore::<u64, String>::open(&old_path, "accounts").unwrap();
    let new = SqliteStore::<u64, String>::open(&new_path, "accounts").unwrap();
    assert_eq!(block_on(Store::get(&old, &1)).unwrap(), Some("ada".into()), "OLD is no longer written");
    assert_eq!(block_on(Store::get(&new, &1)).unwrap(), Some("ada (archived: done)".into()));
}

/// Writes of many keys lock every key's stripe in one order: two threads writing the same keys in
/// opposite orders, over and over, both finish, and NEW holds nothing older than OLD.
#[test]
fn writes_of_many_keys_in_opposite_orders_do_not_wait_on_each_other() {
    let accounts = std::sync::Arc::new(AccountsMigration::new(
        OldAccounts(SqliteStore::open_in_memory("accounts").unwrap()),
        NewAccounts(SqliteStore::open_in_memory("accounts").unwrap()),
        Gate::new("accounts", Rate::ALL),
    ));
    let threads: Vec<_> = [false, true]
        .into_iter()
        .map(|reversed| {
            let accounts = accounts.clone();
            std::thread::spawn(move || {
                for round in 0..50 {
                    let mut entries: Vec<(u64, String)> = (0..40).map(|id| (id, format!("{id} in {round}"))).collect();
                    if reversed {
                        entries.reverse();
                    }
                    accounts.put_many(&entries).unwrap();
                    accounts.get_account(&(round % 40)).unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|thread| thread.join().unwrap());
    assert_eq!(accounts.proxy().keys_in_doubt(), 0);
    for id in 0..40 {
        assert_eq!(accounts.get_account(&id).unwrap(), Some(format!("{id} in 49")), "account {id}");
    }
}
