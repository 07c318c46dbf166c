//! Edge-wide limits, counted together by every worker.
//!
//! `max_tunnels`, `max_connections` and `max_pending_handshakes` are limits of the edge, not of
//! each worker: SO_REUSEPORT spreads connections by hash, unevenly, so per-worker shares would
//! refuse a newcomer on one worker while another had room, and would let `workers * share`
//! through when a share is rounded up. Each admission takes one unit with a compare-and-swap on
//! a counter the workers share (once per connection, never per byte: the data path stays
//! share-nothing), and the unit comes back when its [`Held`] guard drops.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One edge-wide limit and what is in use of it.
#[derive(Debug)]
pub(crate) struct Quota {
    limit: usize,
    used: AtomicUsize,
}

impl Quota {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Takes one unit, or `None` at the limit. Never lets the count pass the limit, and never
    /// refuses below it.
    pub(crate) fn take(self: &Arc<Self>) -> Option<Held> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Held(self.clone()))
    }

    /// Units in use now, all workers together.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// One unit of a [`Quota`], given back on drop.
#[derive(Debug)]
pub(crate) struct Held(Arc<Quota>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The edge's limits, one counter each, shared by every worker.
#[derive(Debug, Clone)]
pub(crate) struct Quotas {
    pub(crate) tunnels: Arc<Quota>,
    pub(crate) connections: Arc<Quota>,
    pub(crate) pending: Arc<Quota>,
}

impl Quotas {
    pub(crate) fn new(limits: &crate::config::Limits) -> Self {
        Self {
            tunnels: Quota::new(limits.max_tunnels),
            connections: Quota::new(limits.max_connections),
            pending: Quota::new(limits.max_pending_handshakes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_admits_up_to_its_limit_and_takes_back_what_is_dropped() {
        let q = Quota::new(2);
        let a = q.take().expect("first");
        let b = q.take().expect("second");
        assert!(q.take().is_none(), "the third is over the limit");
        assert_eq!(q.used(), 2);
        drop(a);
        assert_eq!(q.used(), 1);
        let c = q.take().expect("room again after a drop");
        drop((b, c));
        assert_eq!(q.used(), 0);
    }

    #[test]
    fn threads_racing_for_a_quota_never_pass_it() {
        let q = Quota::new(50);
        let held: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..100).filter_map(|_| q.take()).collect::<Vec<_>>()))
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(held.len(), 50);
        assert_eq!(q.used(), 50);
        drop(held);
        assert_eq!(q.used(), 0);
    }
}
