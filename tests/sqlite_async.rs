//! `SqliteStore` in async code: its calls run on the connection's own thread, so a call that waits
//! (here for another connection's lock) leaves the caller's executor free; and a call whose future
//! is dropped before it ran never runs.

use std::future::Future;
use std::task::{Context, Waker};

use zddm::{block_on, SqliteStore, Store};

/// A second connection to the same file, holding its write lock until `COMMIT`.
fn lock(path: &std::path::Path) -> zddm::rusqlite::Connection {
    let blocker = zddm::rusqlite::Connection::open(path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    blocker
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiting_call_leaves_the_runtime_free() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let store = SqliteStore::<u64, String>::open(&path, "orders").unwrap();
    let blocker = lock(&path);
    // One thread runs both: the write waits for the lock while the release runs. A store that
    // blocked its caller would hold this thread until SQLite's busy timeout, and fail with it.
    let release = async {
        tokio::task::yield_now().await;
        blocker.execute_batch("COMMIT").unwrap();
    };
    let ada = "ada".to_string();
    let (written, ()) = tokio::join!(store.put(&1, &ada), release);
    written.unwrap();
    assert_eq!(store.get(&1).await.unwrap(), Some("ada".to_string()));
}

#[test]
fn a_call_dropped_before_it_ran_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let store = SqliteStore::<u64, String>::open(&path, "orders").unwrap();
    let blocker = lock(&path);
    let mut cx = Context::from_waker(Waker::noop());
    // The first write runs, waiting for the lock; the second waits behind it, and is dropped.
    let (ada, bob) = ("ada".to_string(), "bob".to_string());
    let mut first = Box::pin(store.put(&1, &ada));
    assert!(first.as_mut().poll(&mut cx).is_pending());
    let mut second = Box::pin(store.put(&2, &bob));
    assert!(second.as_mut().poll(&mut cx).is_pending());
    drop(second);
    blocker.execute_batch("COMMIT").unwrap();
    block_on(first).unwrap();
    assert_eq!(block_on(store.get(&1)).unwrap(), Some("ada".to_string()));
    assert_eq!(block_on(store.get(&2)).unwrap(), None, "the dropped write ran");
}

#[test]
fn synchronous_code_waits_with_block_on() {
    let store = SqliteStore::<u64, String>::open_in_memory("orders").unwrap();
    block_on(store.put_many(&[(&1, &"ada".to_string()), (&2, &"bob".to_string())])).unwrap();
    assert_eq!(block_on(store.len()).unwrap(), 2);
    assert_eq!(block_on(store.get_many(&[&2, &3])).unwrap(), vec![Some("bob".to_string()), None]);
}
