//! Single-thread wakeups between a worker's tasks. Workers share nothing, so these are `Cell`s
//! and wakers, never atomics or locks.

use slab::Slab;
use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

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
///
/// A wait that is dropped before the latch is set (the losing branch of a `select!`) takes its
/// waker out again: a latch waited on by every channel of a tunnel must not keep a waker, and
/// with it the task's memory, for each channel that ever waited.
#[derive(Debug, Default)]
pub(crate) struct Latch {
    set: Cell<bool>,
    waiters: RefCell<Slab<Waker>>,
}

impl Latch {
    pub(crate) fn set(&self) {
        if !self.set.replace(true) {
            for w in self.waiters.borrow_mut().drain() {
                w.wake();
            }
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.get()
    }

    pub(crate) fn wait(&self) -> LatchWait<'_> {
        LatchWait {
            latch: self,
            key: None,
        }
    }

    #[cfg(test)]
    fn waiters(&self) -> usize {
        self.waiters.borrow().len()
    }
}

/// The future of [`Latch::wait`].
pub(crate) struct LatchWait<'a> {
    latch: &'a Latch,
    key: Option<usize>,
}

impl Future for LatchWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.latch.set.get() {
            self.key = None;
            return Poll::Ready(());
        }
        let mut waiters = self.latch.waiters.borrow_mut();
        match self.key.and_then(|k| waiters.get_mut(k)) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => *w = cx.waker().clone(),
            None => {
                let key = waiters.insert(cx.waker().clone());
                drop(waiters);
                self.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for LatchWait<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // `set` drains the slab: the key may be gone already.
            self.latch.waiters.borrow_mut().try_remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn dropped_waits_leave_no_waker_behind() {
        let latch = Latch::default();
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..100 {
            let mut w = std::pin::pin!(latch.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(latch.waiters(), 0, "each dropped wait removed its waker");
        let mut kept = std::pin::pin!(latch.wait());
        assert!(kept.as_mut().poll(&mut cx).is_pending());
        assert_eq!(latch.waiters(), 1);
        latch.set();
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst), "woken");
        assert!(kept.as_mut().poll(&mut cx).is_ready());
        assert!(latch.wait().now_or_never_ready());
    }

    trait Ready {
        fn now_or_never_ready(self) -> bool;
    }
    impl<F: Future> Ready for F {
        fn now_or_never_ready(self) -> bool {
            let waker = Waker::noop();
            let mut cx = Context::from_waker(waker);
            std::pin::pin!(self).poll(&mut cx).is_ready()
        }
    }
}
