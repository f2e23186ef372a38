//! SQLite's calls block, so a store's connection lives on a thread of its own and async callers wait
//! for it without blocking their executor, as sqlx does. Any executor works: the reply wakes the
//! waiting task, nothing needs a runtime.
//!
//! A dropped call keeps the rule every store keeps (`Store`'s docs): a call still queued is never
//! run, and one already running is waited for in `drop`, so nothing takes effect after its future
//! is gone.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use rusqlite::Connection;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The thread that owns a connection, and the queue of its calls.
pub(crate) struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    pub(crate) fn spawn(mut connection: Connection, name: &str) -> std::io::Result<Worker> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new().name(format!("zddm-sqlite-{name}")).spawn(move || {
            for job in queue {
                job(&mut connection);
            }
        })?;
        Ok(Worker { jobs: Some(jobs), thread: Some(thread) })
    }

    /// Runs `call` on the connection's thread; the future resolves to its result.
    pub(crate) fn run<T, F>(&self, call: F) -> Call<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> T + Send + 'static,
    {
        let slot = Arc::new(Slot { state: Mutex::new(State::Queued(None)), finished: Condvar::new() });
        let job_slot = Arc::clone(&slot);
        let job: Job = Box::new(move |connection| {
            {
                let mut state = job_slot.lock();
                if matches!(*state, State::Abandoned) {
                    return;
                }
                *state = State::Running(take_waker(&mut state));
            }
            // A call that panics ends as one whose thread is gone (`None`), not as one that never
            // ends; SQLite has rolled back what it left unfinished.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(connection)));
            let mut state = job_slot.lock();
            let waker = take_waker(&mut state);
            *state = match result {
                Ok(result) => State::Done(result),
                Err(_) => State::Gone,
            };
            job_slot.finished.notify_all();
            drop(state);
            if let Some(waker) = waker {
                waker.wake();
            }
        });
        let sent = self.jobs.as_ref().is_some_and(|jobs| jobs.send(job).is_ok());
        if !sent {
            *slot.lock() = State::Gone;
        }
        Call { slot }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the queue ends the thread once the calls already queued have run.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

enum State<T> {
    /// In the queue; the waker of the task waiting for it.
    Queued(Option<Waker>),
    Running(Option<Waker>),
    Done(T),
    /// Its future was dropped before it ran: it never will.
    Abandoned,
    /// Taken by the future, or never sent (the connection's thread is gone).
    Gone,
}

fn take_waker<T>(state: &mut State<T>) -> Option<Waker> {
    match state {
        State::Queued(waker) | State::Running(waker) => waker.take(),
        _ => None,
    }
}

struct Slot<T> {
    state: Mutex<State<T>>,
    finished: Condvar,
}

impl<T> Slot<T> {
    // The lock is never held across user code, so poisoning cannot leave a state half-changed.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A call on the connection's thread; `None` if it panicked or the thread is gone.
pub(crate) struct Call<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Future for Call<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.slot.lock();
        match &mut *state {
            State::Queued(waker) | State::Running(waker) => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
            State::Done(_) => match std::mem::replace(&mut *state, State::Gone) {
                State::Done(result) => Poll::Ready(Some(result)),
                _ => Poll::Ready(None),
            },
            State::Abandoned | State::Gone => Poll::Ready(None),
        }
    }
}

impl<T> Drop for Call<T> {
    fn drop(&mut self) {
        let mut state = self.slot.lock();
        match &*state {
            State::Queued(_) => *state = State::Abandoned,
            // One statement or transaction: wait for it, so that it takes effect before the drop
            // returns, never after.
            State::Running(_) => {
                while matches!(*state, State::Running(_)) {
                    state = self.slot.finished.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
            }
            _ => {}
        }
    }
}
