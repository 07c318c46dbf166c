//! Single-thread wakeups between a worker's tasks. Workers share nothing, so these are `Cell`s
//! and wakers, never atomics or locks.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Wakes one waiting task; a notification sent while nobody waits is kept for the next wait.
#[derive(Default)]
pub(crate) struct Notify {
    pending: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notify")
            .field("pending", &self.pending.get())
            .finish()
    }
}

impl Notify {
    pub(crate) fn notify(&self) {
        self.pending.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.pending.replace(false) {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

/// A one-way switch many tasks can wait on: once set, every wait returns at once.
#[derive(Debug, Default)]
pub(crate) struct Latch {
    set: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Latch {
    pub(crate) fn set(&self) {
        if !self.set.replace(true) {
            for w in self.wakers.borrow_mut().drain(..) {
                w.wake();
            }
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.get()
    }

    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.get() {
                Poll::Ready(())
            } else {
                let mut wakers = self.wakers.borrow_mut();
                // A task re-polled without being woken must not pile up wakers.
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }
}
