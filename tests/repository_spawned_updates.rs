//! A migration in one process, with an async trait: its routed futures are `Send`, updates with
//! keys from iterators (borrowed or owned) included, so that a server's handler can spawn them on a
//! multi-threaded runtime. rustc cannot prove that for a call through a generic parameter bounded
//! by `IntoIterator<Item = &'a K>` (rust-lang/rust#100013); the stores' methods take such an
//! iterator as a `std::vec::IntoIter` instead, which this test holds the macros to.

// The repository's value is a `String`, which the routed write takes by reference as `&Value`.
#![allow(clippy::ptr_arg)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use zddm::{Gate, Rate};
use zddm_suite::ui::RepoError;

#[zddm::migrate(old = Ledger, new = Ledger)]
#[allow(async_fn_in_trait)]
pub trait Accounts {
    async fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError>;
    async fn put_account(&self, id: &u64, name: &String) -> Result<(), RepoError>;
    async fn delete_account(&self, id: &u64) -> Result<(), RepoError>;
    #[zddm(delete)]
    async fn purge_each<'a>(&self, ids: impl IntoIterator<Item = &'a u64>) -> Result<usize, RepoError>;
    #[zddm(write)]
    async fn put_each(&self, entries: impl IntoIterator<Item = (u64, String)>) -> Result<(), RepoError>;
    #[zddm(write)]
    async fn put_pairs<'a>(&self, entries: impl Iterator<Item = (&'a u64, &'a String)>) -> Result<(), RepoError>;
    /// Passed through, with an iterator of borrowed items that is not the keys.
    #[zddm(old)]
    async fn count_named<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<usize, RepoError>;
}

#[derive(Default)]
pub struct Ledger(Mutex<BTreeMap<u64, String>>);

async fn yield_once() {
    tokio::task::yield_now().await;
}

#[zddm::backend]
impl Accounts for Ledger {
    async fn get_account(&self, id: &u64) -> Result<Option<String>, RepoError> {
        yield_once().await;
        Ok(self.0.lock().unwrap().get(id).cloned())
    }
    async fn put_account(&self, id: &u64, name: &String) -> Result<(), RepoError> {
        yield_once().await;
        self.0.lock().unwrap().insert(*id, name.clone());
        Ok(())
    }
    async fn delete_account(&self, id: &u64) -> Result<(), RepoError> {
        self.0.lock().unwrap().remove(id);
        Ok(())
    }
    async fn purge_each<'a>(&self, ids: impl IntoIterator<Item = &'a u64>) -> Result<usize, RepoError> {
        let ids: Vec<&u64> = ids.into_iter().collect();
        yield_once().await;
        let mut map = self.0.lock().unwrap();
        Ok(ids.into_iter().filter(|id| map.remove(id).is_some()).count())
    }
    async fn put_each(&self, entries: impl IntoIterator<Item = (u64, String)>) -> Result<(), RepoError> {
        let entries: Vec<_> = entries.into_iter().collect();
        yield_once().await;
        self.0.lock().unwrap().extend(entries);
        Ok(())
    }
    async fn put_pairs<'a>(&self, entries: impl Iterator<Item = (&'a u64, &'a String)>) -> Result<(), RepoError> {
        let entries: Vec<_> = entries.map(|(id, name)| (*id, name.clone())).collect();
        yield_once().await;
        self.0.lock().unwrap().extend(entries);
        Ok(())
    }
    async fn count_named<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<usize, RepoError> {
        let names: Vec<&str> = names.into_iter().collect();
        yield_once().await;
        Ok(self.0.lock().unwrap().values().filter(|name| names.contains(&name.as_str())).count())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_with_iterators_run_in_spawned_tasks() {
    let accounts = Arc::new(AccountsMigration::new(Ledger::default(), Ledger::default(), Gate::new("a", Rate::ALL)));
    let spawned = tokio::spawn({
        let accounts = Arc::clone(&accounts);
        async move {
            accounts.put_each([(1, "one".to_string()), (2, "two".to_string())]).await.unwrap();
            let (three, name) = (3u64, "three".to_string());
            accounts.put_pairs([(&three, &name)].into_iter()).await.unwrap();
            let ids = [1u64, 9];
            let purged = accounts.purge_each(&ids).await.unwrap();
            let counted = accounts.count_named(["two", "three", "one"]).await.unwrap();
            (purged, counted)
        }
    });
    assert_eq!(spawned.await.unwrap(), (1, 2));
    assert_eq!(accounts.get_account(&1).await.unwrap(), None);
    assert_eq!(accounts.get_account(&3).await.unwrap().as_deref(), Some("three"));
}
