use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::error::Error;
use crate::key::MigrationKey;
use crate::proxy::Proxy;
use crate::store::Store;

/// Runs a future to completion on the current thread, parking it while the future waits.
///
/// This is how synchronous code drives the proxy over [`BlockingStore`](crate::BlockingStore)s
/// (see [`Proxy::blocking`]). It is a minimal executor: do not call it from inside an async runtime's
/// worker thread, which it would block.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// The proxy for synchronous code: the same protocol, driven by [`block_on`]. Its stores are
/// [`BlockingStore`](crate::BlockingStore)s wrapped in [`Blocking`](crate::Blocking), or any
/// [`Store`] whose futures do not wait on a runtime, such as [`MemoryStore`](crate::MemoryStore)
/// and `SqliteStore`:
///
/// ```
/// use zddm::{Gate, MemoryStore, Proxy, Rate};
///
/// let proxy = Proxy::new(
///     MemoryStore::<u64, String>::new(),
///     MemoryStore::<u64, String>::new(),
///     Gate::new("users", Rate::ALL),
/// );
/// let users = proxy.blocking();
/// users.put(&7, &"ada".to_string())?;
/// assert_eq!(users.get(&7)?, Some("ada".to_string()));
/// # Ok::<(), zddm::Error>(())
/// ```
pub struct BlockingProxy<K: ?Sized, V, Old, New> {
    proxy: Proxy<K, V, Old, New>,
}

impl<K, V, Old, New> Proxy<K, V, Old, New>
where
    K: MigrationKey + ?Sized + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Store<K, V>,
    New: Store<K, V>,
{
    /// A synchronous handle on this proxy (sharing its gate, phase, locks and stats).
    pub fn blocking(&self) -> BlockingProxy<K, V, Old, New> {
        BlockingProxy { proxy: self.clone() }
    }
}

impl<K, V, Old, New> BlockingProxy<K, V, Old, New>
where
    K: MigrationKey + ?Sized + Sync,
    V: Clone + PartialEq + Send + Sync,
    Old: Store<K, V>,
    New: Store<K, V>,
{
    /// See [`Proxy::get`].
    pub fn get(&self, key: &K) -> Result<Option<V>, Error> {
        block_on(self.proxy.get(key))
    }

    /// See [`Proxy::put`].
    pub fn put(&self, key: &K, value: &V) -> Result<(), Error> {
        block_on(self.proxy.put(key, value))
    }

    /// See [`Proxy::delete`].
    pub fn delete(&self, key: &K) -> Result<(), Error> {
        block_on(self.proxy.delete(key))
    }

    /// The async proxy behind this handle.
    pub fn proxy(&self) -> &Proxy<K, V, Old, New> {
        &self.proxy
    }
}
