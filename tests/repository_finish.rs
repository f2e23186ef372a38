//! A repository trait migrated in one process (`#[zddm::migrate]` without a mode) is finished like
//! any `Proxy`: its stores declare how their keys are scanned (`zddm::cached::ScanKeys`, on the
//! store itself), and the migration's `proxy()` is backfilled, verified and completed.

// The repository's value is a `String`, which the routed write takes by reference as `&Value`.
#![allow(clippy::ptr_arg)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use zddm::backfill::{Backfill, MemoryCheckpoint};
use zddm::cached::ScanKeys;
use zddm::verify::Verify;
use zddm::versioned::Page;
use zddm::{Gate, MigrationKey, Phase, PhaseError, Rate};
use zddm_suite::ui::RepoError;

#[zddm::migrate(old = OldAccounts, new = NewAccounts)]
trait Accounts {
    async fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError>;
    async fn save_account(&self, id: &u64, name: &String) -> Result<(), RepoError>;
    async fn delete_account(&self, id: &u64) -> Result<(), RepoError>;
}

#[derive(Default)]
struct OldAccounts(Mutex<BTreeMap<u64, String>>);
#[derive(Default)]
struct NewAccounts(Mutex<BTreeMap<u64, String>>);

macro_rules! accounts {
    ($store:ident) => {
        #[zddm::backend]
        impl Accounts for $store {
            async fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError> {
                Ok(self.0.lock().unwrap().get(id).cloned())
            }
            async fn save_account(&self, id: &u64, name: &String) -> Result<(), RepoError> {
                self.0.lock().unwrap().insert(*id, name.clone());
                Ok(())
            }
            async fn delete_account(&self, id: &u64) -> Result<(), RepoError> {
                self.0.lock().unwrap().remove(id);
                Ok(())
            }
        }

        /// The scan the migration needs to finish: ids in canonical key order (a `u64`'s bytes
        /// are big-endian, so numeric order), resumed after a position.
        impl ScanKeys<u64> for $store {
            type Error = std::convert::Infallible;

            async fn scan_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<u64, ()>, Self::Error> {
                let after = after.map(|bytes| u64::from_key_bytes(bytes).expect("a position this scan gave"));
                let map = self.0.lock().unwrap();
                let keys: Vec<u64> = match after {
                    Some(after) => map.range(after + 1..).map(|(id, _)| *id).take(limit).collect(),
                    None => map.keys().copied().take(limit).collect(),
                };
                let next = keys.last().filter(|_| keys.len() == limit).map(|id| id.key_bytes());
                Ok(Page { entries: keys.into_iter().map(|id| (id, ())).collect(), next })
            }
        }
    };
}

accounts!(OldAccounts);
accounts!(NewAccounts);

#[tokio::test]
async fn a_repository_in_one_process_is_backfilled_verified_and_completed() {
    let old = OldAccounts::default();
    for id in 0..50u64 {
        old.0.lock().unwrap().insert(id, format!("account {id}"));
    }
    let accounts = AccountsMigration::new(old, NewAccounts::default(), Gate::new("accounts", Rate::ALL));
    assert_eq!(accounts.get_account(&7).await.unwrap(), Some("account 7".into()));
    accounts.save_account(&100, &"opened during the migration".into()).await.unwrap();
    accounts.proxy().set_phase(Phase::Live).unwrap();
    assert_eq!(accounts.proxy().set_phase(Phase::Complete), Err(PhaseError::Unverified));

    let report = Verify::new(accounts.proxy()).repair(false).recheck_after(std::time::Duration::ZERO);
    let report = report.run(tokio::time::sleep, |_| {}).await.unwrap();
    assert_eq!((report.checked, report.missing.count), (51, 49), "{report}");

    let (backfill, checkpoint) = (Backfill::new(accounts.proxy()).batch(8), MemoryCheckpoint::new());
    let done = backfill.run(&checkpoint, tokio::time::sleep, |_| {}).await.unwrap();
    assert_eq!((done.scanned, done.copied, done.newer), (51, 49, 2), "{done}");
    let report = Verify::new(accounts.proxy()).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(report.earns_complete(), "{report}");
    accounts.proxy().set_phase(Phase::Complete).unwrap();
    for id in 0..50u64 {
        assert_eq!(accounts.get_account(&id).await.unwrap(), Some(format!("account {id}")), "account {id}");
    }
}
