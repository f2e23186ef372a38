// A backfill's copy step takes what its own scan read: called by hand on the migration's handle,
// it would put any value into NEW, so it needs a `Scanned` that only zddm's backfill makes.
use zddm::backfill::{Pass, Scanned};
use zddm::versioned::{MemorySource, MemoryTarget, Versioned};
use zddm::{Gate, Rate};
use zddm_suite::ui::RepoError;

#[zddm::migrate(old = MemorySource<u64, String>, new = MemoryTarget<u64, String>, mode = versioned)]
pub trait Accounts {
    fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError>;
    fn put_account(&self, id: &u64, name: &String) -> Result<(), RepoError>;
    fn delete_account(&self, id: &u64) -> Result<(), RepoError>;
}

fn main() {
    let accounts = AccountsMigration::new(MemorySource::new(), MemoryTarget::new(), Gate::new("a", Rate::ALL));
    let forged = [(1u64, Versioned { value: "ghost".to_string(), version: 1_000_000 })];
    let _ = accounts.proxy().copy_many(&forged);
    let _ = accounts.proxy().copy_many(&forged, Scanned(()));
}
