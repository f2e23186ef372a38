//! A public repository trait written the way rustc's `async_fn_in_trait` lint suggests,
//! `fn …(…) -> impl Future<Output = …> + Send`, migrates like one of `async fn`s: the migration's
//! futures are `Send`, so they run on a multi-threaded runtime's tasks.

#![allow(clippy::ptr_arg)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use zddm::{Gate, Rate};
use zddm_suite::ui::RepoError;

#[zddm::migrate(old = Ledger, new = Journal)]
pub trait Notes {
    fn get_note(&self, id: &u64) -> impl Future<Output = Result<Option<String>, RepoError>> + Send;
    fn put_note(&self, id: &u64, text: &String) -> impl Future<Output = Result<(), RepoError>> + Send;
    fn delete_note(&self, id: &u64) -> impl Future<Output = Result<(), RepoError>> + Send;
    #[zddm(write)]
    fn append(&self, id: &u64, more: &str) -> impl Future<Output = Result<bool, RepoError>> + Send;
    #[zddm(old)]
    fn count(&self) -> impl Future<Output = usize> + Send;
}

#[derive(Default)]
pub struct Ledger(Mutex<BTreeMap<u64, String>>);
#[derive(Default)]
pub struct Journal(Mutex<BTreeMap<u64, String>>);

macro_rules! notes {
    ($store:ident) => {
        #[zddm::backend]
        impl Notes for $store {
            async fn get_note(&self, id: &u64) -> Result<Option<String>, RepoError> {
                Ok(self.0.lock().unwrap().get(id).cloned())
            }
            async fn put_note(&self, id: &u64, text: &String) -> Result<(), RepoError> {
                self.0.lock().unwrap().insert(*id, text.clone());
                Ok(())
            }
            async fn delete_note(&self, id: &u64) -> Result<(), RepoError> {
                self.0.lock().unwrap().remove(id);
                Ok(())
            }
            async fn append(&self, id: &u64, more: &str) -> Result<bool, RepoError> {
                let mut map = self.0.lock().unwrap();
                let Some(text) = map.get_mut(id) else { return Ok(false) };
                text.push_str(more);
                Ok(true)
            }
            async fn count(&self) -> usize {
                self.0.lock().unwrap().len()
            }
        }
    };
}

notes!(Ledger);
notes!(Journal);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desugared_methods_are_routed_and_their_futures_are_send() {
    let notes =
        std::sync::Arc::new(NotesMigration::new(Ledger::default(), Journal::default(), Gate::new("notes", Rate::ALL)));
    notes.put_note(&1, &"ada".into()).await.unwrap();
    // On another task of the runtime: the future is `Send`.
    let spawned = tokio::spawn({
        let notes = notes.clone();
        async move { notes.get_note(&1).await }
    });
    assert_eq!(spawned.await.unwrap().unwrap(), Some("ada".into()));
    assert!(notes.append(&1, " lovelace").await.unwrap());
    assert_eq!(notes.get_note(&1).await.unwrap(), Some("ada lovelace".into()), "NEW's copy was removed");
    assert_eq!(notes.count().await, 1);
    notes.delete_note(&1).await.unwrap();
    assert_eq!(notes.get_note(&1).await.unwrap(), None);
}
