//! A second keyed write of the application's own (`archive`), routed by a migration in one
//! process: it runs on OLD with the key locked, then NEW's copy is removed, so no read serves the
//! value from before it; in `Live` the key stays in doubt until a read copies it back, and
//! `Complete` waits for that. Over SQLite, in memory and in files.

// The repository's value is a `String`, which the routed write takes by reference as `&Value`.
#![allow(clippy::ptr_arg)]

use zddm::verify::Verify;
use zddm::{BlockingStore, Gate, Phase, PhaseError, Rate, SqliteStore};
use zddm_suite::ui::RepoError;

#[zddm::migrate(old = OldAccounts, new = NewAccounts)]
pub trait Accounts {
    fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError>;
    fn put_account(&self, id: &u64, name: &String) -> Result<(), RepoError>;
    fn delete_account(&self, id: &u64) -> Result<(), RepoError>;
    /// Another write of the same key: marks the account archived, says whether it existed.
    #[zddm(write)]
    fn archive(&self, id: &u64, reason: &str) -> Result<bool, RepoError>;
}

/// Each side is a SQLite table (a file, or in memory).
pub struct OldAccounts(SqliteStore<u64, String>);
pub struct NewAccounts(SqliteStore<u64, String>);

macro_rules! accounts {
    ($store:ident) => {
        #[zddm::backend]
        impl Accounts for $store {
            fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError> {
                BlockingStore::get(&self.0, id).map_err(|_| RepoError)
            }
            fn put_account(&self, id: &u64, name: &String) -> Result<(), RepoError> {
                BlockingStore::put(&self.0, id, name).map_err(|_| RepoError)
            }
            fn delete_account(&self, id: &u64) -> Result<(), RepoError> {
                BlockingStore::delete(&self.0, id).map_err(|_| RepoError)
            }
            fn archive(&self, id: &u64, reason: &str) -> Result<bool, RepoError> {
                let Some(name) = BlockingStore::get(&self.0, id).map_err(|_| RepoError)? else { return Ok(false) };
                BlockingStore::put(&self.0, id, &format!("{name} (archived: {reason})")).map_err(|_| RepoError)?;
                Ok(true)
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
    let (truth, copy) = (BlockingStore::get(old, &id).unwrap(), BlockingStore::get(new, &id).unwrap());
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
    assert_eq!(BlockingStore::get(&old, &1).unwrap(), Some("ada".into()), "OLD is no longer written");
    assert_eq!(BlockingStore::get(&new, &1).unwrap(), Some("ada (archived: done)".into()));
}
