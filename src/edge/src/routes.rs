//! The SNI routing table of one worker.
//!
//! Every worker holds the whole directory: for each host name, either a tunnel on this edge
//! (which worker's, under which registration sequence number, and on that worker which
//! local tunnel) or another edge of the fleet that serves it. A lookup is one hash probe for
//! a name served here; a connection for another worker's tunnel is handed over once.
//!
//! Local routes change by messages between workers, ordered by the sequence number, which
//! every registration draws from one edge-wide counter:
//! - a claim wins a name only over an older claim;
//! - a release removes a name only while the releasing tunnel still holds it, so an alias is
//!   only ever removed by the tunnel that owns it (SniTun removes it regardless);
//! - a newer tunnel whose *primary* name is an older tunnel's primary name replaces that
//!   tunnel, on whichever worker it lives; aliases are simply taken over, as in SniTun.
//!
//! Remote routes are installed and removed from outside (the fleet, through `EdgeHandle`),
//! ordered by the directory's revision:
//! - an install wins a name over an install of an older revision, whichever edge it names;
//! - a removal removes a name only while it is that edge's at that revision or an older one,
//!   so a removal that arrives late never deletes a newer install;
//! - a local tunnel's claim always beats a remote route for the same name: the local tunnel
//!   is the one this edge can serve, and which edge owns the name is the directory's to sort
//!   out. The remote route stays underneath and shows again once the local tunnel is gone,
//!   until the fleet removes it;
//! - at most [`MAX_REMOTE_ROUTES`] per worker: installs of new names beyond it are refused
//!   and counted, so a runaway directory costs a bounded amount of memory on every worker.

use std::collections::HashMap;

use sluice_proto::{EdgeId, Hostname};

/// Most remote routes one worker holds. Every worker keeps its own full copy, so at the cap an
/// edge holds this many per worker.
/// About 100 bytes each with a short name: 1M is some 100 MiB per worker, and more names
/// than one fleet serves today.
pub const MAX_REMOTE_ROUTES: usize = 1_000_000;

/// A name served by a tunnel on this edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalRoute {
    /// The worker owning the tunnel.
    pub worker: usize,
    /// The tunnel's registration sequence number.
    pub seq: u64,
    /// The tunnel's key in this worker's tunnel table, when `worker` is this worker.
    pub tunnel: Option<usize>,
    /// Whether the name is the tunnel's primary name.
    pub primary: bool,
}

/// A name served by another edge of the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRoute {
    /// The edge whose tunnel serves it.
    pub edge: EdgeId,
    /// The directory revision the route was installed at (later wins).
    pub rev: u64,
}

/// Where a name is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// By a tunnel on this edge.
    Local(LocalRoute),
    /// By another edge.
    Remote(RemoteRoute),
}

/// One worker's copy of the directory (public for the benches).
#[derive(Debug)]
pub struct Routes {
    me: usize,
    local: HashMap<Hostname, LocalRoute>,
    // A map of its own rather than a variant in `local`: a local claim shadows a remote route
    // without losing it, and the names served here stay one probe.
    remote: HashMap<Hostname, RemoteRoute>,
    remote_cap: usize,
}

impl Routes {
    /// An empty directory for worker `me`.
    pub fn new(me: usize) -> Self {
        Self::with_remote_cap(me, MAX_REMOTE_ROUTES)
    }

    fn with_remote_cap(me: usize, remote_cap: usize) -> Self {
        Self {
            me,
            local: HashMap::new(),
            remote: HashMap::new(),
            remote_cap,
        }
    }

    /// Where `name` is served: a local tunnel's claim first, then a remote route.
    pub fn lookup(&self, name: &Hostname) -> Option<Found> {
        if let Some(r) = self.local.get(name) {
            return Some(Found::Local(*r));
        }
        self.remote.get(name).cloned().map(Found::Remote)
    }

    /// Which tunnel on this edge serves `name`, if one does.
    pub fn lookup_local(&self, name: &Hostname) -> Option<LocalRoute> {
        self.local.get(name).copied()
    }

    /// How many names are served here and how many by other edges (a name with both counts
    /// in each).
    pub fn counts(&self) -> (usize, usize) {
        (self.local.len(), self.remote.len())
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
            if let Some(old) = self.local.get(name) {
                if old.seq > seq {
                    continue;
                }
                if primary && old.primary && old.seq < seq {
                    replaced.extend(old.tunnel);
                }
            }
            self.local.insert(
                name.clone(),
                LocalRoute {
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
                .local
                .get(name)
                .is_some_and(|r| r.worker == worker && r.seq == seq)
            {
                self.local.remove(name);
            }
        }
    }

    /// Routes `names` to `edge` as of directory revision `rev`, except names whose remote
    /// route is newer. Returns how many new names were refused for being over
    /// [`MAX_REMOTE_ROUTES`].
    pub fn install_remote(&mut self, names: &[Hostname], edge: &EdgeId, rev: u64) -> usize {
        let mut refused = 0;
        for name in names {
            let route = RemoteRoute {
                edge: edge.clone(),
                rev,
            };
            let full = self.remote.len() >= self.remote_cap;
            match self.remote.get_mut(name) {
                Some(old) if old.rev <= rev => *old = route,
                Some(_) => {}
                None if full => refused += 1,
                None => {
                    self.remote.insert(name.clone(), route);
                }
            }
        }
        refused
    }

    /// Removes the remote routes of `names` that are `edge`'s, installed at `rev` or before
    /// (any revision when `rev` is `None`).
    pub fn remove_remote(&mut self, names: &[Hostname], edge: &EdgeId, rev: Option<u64>) {
        for name in names {
            if self
                .remote
                .get(name)
                .is_some_and(|r| r.edge == *edge && rev.is_none_or(|rev| r.rev <= rev))
            {
                self.remote.remove(name);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.local.len() + self.remote.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Hostname> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn at(r: &Routes, name: &str) -> Option<(usize, u64, Option<usize>)> {
        r.lookup_local(&name.parse().unwrap())
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

    fn edge(id: &str) -> EdgeId {
        id.parse().unwrap()
    }

    fn remote(r: &Routes, name: &str) -> Option<(String, u64)> {
        match r.lookup(&name.parse().unwrap()) {
            Some(Found::Remote(r)) => Some((r.edge.to_string(), r.rev)),
            _ => None,
        }
    }

    #[test]
    fn a_local_claim_beats_a_remote_route_and_uncovers_it_when_released() {
        let mut r = Routes::new(0);
        let n = names(&["a.test", "b.test"]);
        assert_eq!(r.install_remote(&n, &edge("eu-2"), 7), 0);
        assert_eq!(remote(&r, "a.test"), Some(("eu-2".into(), 7)));
        // A tunnel here claims a.test: it serves, whichever came first.
        r.claim(&names(&["a.test"]), 1, 3, None);
        assert!(matches!(
            r.lookup(&"a.test".parse().unwrap()),
            Some(Found::Local(LocalRoute {
                worker: 1,
                seq: 3,
                ..
            }))
        ));
        // A later install does not take the name from the local tunnel either.
        r.install_remote(&names(&["a.test"]), &edge("eu-3"), 9);
        assert_eq!(at(&r, "a.test"), Some((1, 3, None)));
        assert_eq!(r.counts(), (1, 2));
        // Once the tunnel is gone the directory's last word shows again.
        r.release(&names(&["a.test"]), 1, 3);
        assert_eq!(remote(&r, "a.test"), Some(("eu-3".into(), 9)));
        assert_eq!(remote(&r, "b.test"), Some(("eu-2".into(), 7)));
    }

    #[test]
    fn a_late_install_or_removal_never_undoes_a_newer_install() {
        let mut r = Routes::new(0);
        let n = names(&["a.test"]);
        r.install_remote(&n, &edge("eu-2"), 5);
        // The name moved to eu-3 at revision 8; eu-2's older install arrives late.
        r.install_remote(&n, &edge("eu-3"), 8);
        r.install_remote(&n, &edge("eu-2"), 6);
        assert_eq!(remote(&r, "a.test"), Some(("eu-3".into(), 8)));
        // Removals for eu-2, however new, leave eu-3's route alone.
        r.remove_remote(&n, &edge("eu-2"), Some(100));
        r.remove_remote(&n, &edge("eu-2"), None);
        assert_eq!(remote(&r, "a.test"), Some(("eu-3".into(), 8)));
        // A removal of eu-3's route older than its install is stale too.
        r.remove_remote(&n, &edge("eu-3"), Some(7));
        assert_eq!(remote(&r, "a.test"), Some(("eu-3".into(), 8)));
        r.remove_remote(&n, &edge("eu-3"), Some(8));
        assert_eq!(r.lookup(&"a.test".parse().unwrap()), None);
        // And without a revision, whatever that edge holds goes.
        r.install_remote(&n, &edge("eu-3"), 12);
        r.remove_remote(&n, &edge("eu-3"), None);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn installs_over_the_cap_are_refused_and_counted_updates_are_not() {
        let mut r = Routes::with_remote_cap(0, 2);
        let e = edge("eu-2");
        assert_eq!(
            r.install_remote(&names(&["a.test", "b.test", "c.test", "d.test"]), &e, 1),
            2
        );
        assert_eq!(r.counts(), (0, 2));
        assert_eq!(remote(&r, "c.test"), None);
        // Names already held may still move: that takes no room.
        assert_eq!(r.install_remote(&names(&["a.test"]), &edge("eu-3"), 2), 0);
        assert_eq!(remote(&r, "a.test"), Some(("eu-3".into(), 2)));
        // Room made by a removal is usable again.
        r.remove_remote(&names(&["b.test"]), &e, None);
        assert_eq!(r.install_remote(&names(&["c.test"]), &e, 3), 0);
        assert_eq!(remote(&r, "c.test"), Some(("eu-2".into(), 3)));
        // Local claims are not remote routes: the cap does not hold them back.
        r.claim(&names(&["x.test", "y.test", "z.test"]), 0, 1, Some(1));
        assert_eq!(r.counts(), (3, 2));
    }
}
