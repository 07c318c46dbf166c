//! The SNI routing table of one worker.
//!
//! Every worker holds the whole directory: for each host name, which worker's tunnel serves
//! it, under which registration sequence number, and (on that worker) which local tunnel. A
//! lookup is one hash probe; a connection for another worker's tunnel is handed over once.
//! Changes travel between workers as messages and are ordered by the sequence number, which
//! every registration draws from one edge-wide counter:
//! - a claim wins a name only over an older claim;
//! - a release removes a name only while the releasing tunnel still holds it, so an alias is
//!   only ever removed by the tunnel that owns it (SniTun removes it regardless);
//! - a newer tunnel whose *primary* name is an older tunnel's primary name replaces that
//!   tunnel, on whichever worker it lives; aliases are simply taken over, as in SniTun.

use std::collections::HashMap;

use sluice_proto::Hostname;

/// Where a name is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The worker owning the tunnel.
    pub worker: usize,
    /// The tunnel's registration sequence number.
    pub seq: u64,
    /// The tunnel's key in this worker's tunnel table, when `worker` is this worker.
    pub tunnel: Option<usize>,
    /// Whether the name is the tunnel's primary name.
    pub primary: bool,
}

/// One worker's copy of the directory (public for the benches).
#[derive(Debug)]
pub struct Routes {
    me: usize,
    map: HashMap<Hostname, Route>,
}

impl Routes {
    /// An empty directory for worker `me`.
    pub fn new(me: usize) -> Self {
        Self {
            me,
            map: HashMap::new(),
        }
    }

    /// Where `name` is served.
    pub fn lookup(&self, name: &Hostname) -> Option<Route> {
        self.map.get(name).copied()
    }

    /// Applies a tunnel's claim on `names` (primary first). `tunnel` is its local key when the
    /// tunnel lives on this worker. Returns the local tunnels it replaces.
    pub fn claim(
        &mut self,
        names: &[Hostname],
        worker: usize,
        seq: u64,
        tunnel: Option<usize>,
    ) -> Vec<usize> {
        debug_assert_eq!(tunnel.is_some(), worker == self.me);
        let mut replaced = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let primary = i == 0;
            if let Some(old) = self.map.get(name) {
                if old.seq > seq {
                    continue;
                }
                if primary && old.primary && old.seq < seq {
                    replaced.extend(old.tunnel);
                }
            }
            self.map.insert(
                name.clone(),
                Route {
                    worker,
                    seq,
                    tunnel,
                    primary,
                },
            );
        }
        replaced
    }

    /// Removes the names that tunnel `(worker, seq)` still holds.
    pub fn release(&mut self, names: &[Hostname], worker: usize, seq: u64) {
        for name in names {
            if self
                .map
                .get(name)
                .is_some_and(|r| r.worker == worker && r.seq == seq)
            {
                self.map.remove(name);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Hostname> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn at(r: &Routes, name: &str) -> Option<(usize, u64, Option<usize>)> {
        r.lookup(&name.parse().unwrap())
            .map(|r| (r.worker, r.seq, r.tunnel))
    }

    #[test]
    fn a_newer_primary_replaces_and_an_older_claim_loses() {
        let mut r = Routes::new(0);
        assert!(
            r.claim(&names(&["a.test", "b.test"]), 0, 1, Some(10))
                .is_empty()
        );
        // A reconnect of a.test on worker 1 replaces local tunnel 10 and takes its alias? No:
        // only the names it claims.
        assert_eq!(r.claim(&names(&["a.test"]), 1, 2, None), vec![10]);
        assert_eq!(at(&r, "a.test"), Some((1, 2, None)));
        assert_eq!(at(&r, "b.test"), Some((0, 1, Some(10))));
        // A claim that arrives late (older sequence) changes nothing.
        assert!(r.claim(&names(&["a.test"]), 0, 1, Some(10)).is_empty());
        assert_eq!(at(&r, "a.test"), Some((1, 2, None)));
    }

    #[test]
    fn aliases_move_without_replacing_their_tunnel() {
        let mut r = Routes::new(0);
        r.claim(&names(&["a.test", "shared.test"]), 0, 1, Some(1));
        // Another tunnel claims the alias (or even a.test as an alias): nobody is replaced.
        assert!(
            r.claim(&names(&["c.test", "shared.test", "a.test"]), 0, 2, Some(2))
                .is_empty()
        );
        assert_eq!(at(&r, "shared.test"), Some((0, 2, Some(2))));
        assert_eq!(at(&r, "a.test"), Some((0, 2, Some(2))));
    }

    #[test]
    fn only_the_owner_releases_a_name() {
        let mut r = Routes::new(0);
        r.claim(&names(&["a.test", "shared.test"]), 0, 1, Some(1));
        r.claim(&names(&["b.test", "shared.test"]), 1, 2, None);
        // Tunnel 1 goes away: it must not take shared.test, now tunnel 2's, with it.
        r.release(&names(&["a.test", "shared.test"]), 0, 1);
        assert_eq!(at(&r, "a.test"), None);
        assert_eq!(at(&r, "shared.test"), Some((1, 2, None)));
        // A release that overtakes nothing is harmless.
        r.release(&names(&["b.test"]), 1, 99);
        assert_eq!(at(&r, "b.test"), Some((1, 2, None)));
        r.release(&names(&["b.test", "shared.test"]), 1, 2);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn messages_in_any_order_converge() {
        // Worker 2's view while worker 0 registers seq 1 and worker 1 seq 2 for the same name.
        let n = names(&["a.test"]);
        let mut x = Routes::new(2);
        x.claim(&n, 1, 2, None);
        x.claim(&n, 0, 1, None);
        x.release(&n, 0, 1);
        let mut y = Routes::new(2);
        y.claim(&n, 0, 1, None);
        y.release(&n, 0, 1);
        y.claim(&n, 1, 2, None);
        assert_eq!(at(&x, "a.test"), at(&y, "a.test"));
        assert_eq!(at(&x, "a.test"), Some((1, 2, None)));
    }
}
