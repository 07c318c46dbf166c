//! The `Directory`: one edge's view of the fleet's directory, as a state machine.
//!
//! Method families, as in `quinn-proto`'s `Connection`:
//! - local inputs, from the edge's route events: [`Directory::handle_claimed`],
//!   [`Directory::handle_released`]; and [`Directory::handle_shutdown`] when it stops;
//! - store inputs, the answers to the operations it asked for and the watch:
//!   `handle_lease_granted`, `handle_lease_renewed`, `handle_lease_lost`, `handle_claim`,
//!   `handle_done`, `handle_snapshot`, `handle_watch`, `handle_watch_lost`, `handle_failed`;
//! - time: [`Directory::poll_timeout`] says when to call [`Directory::handle_timeout`];
//! - outputs, drained after every input: [`Directory::poll_store`] (operations to run),
//!   [`Directory::poll_edge`] (what to do to the edge), [`Directory::poll_warning`].
//!
//! `now` is monotonic and passed in; nothing here reads a clock.
//!
//! A claim's life, per name:
//!
//! ```text
//!  claimed, replica not live ── Blind ──snapshot──┐
//!  claimed, replica live ────────────────────────▶ Unpublished{over revision B} ──lease held──▶ InFlight
//!  InFlight ──won at R──▶ Held{R}
//!  InFlight ──lost: key gone, or an older claim of this edge's──▶ Unpublished{its revision, or 0}
//!  InFlight ──lost to another edge──▶ yield
//!  Held{R} ──another edge's put after R seen──▶ yield      Held{R} ──lease lost──▶ Unpublished{R}
//!  yield: a primary name ends the tunnel (and its claims); an alias becomes Yielded,
//!  Yielded ──key deleted──▶ Reclaim, Unpublished{0}
//! ```
//!
//! The state is soft: nothing is ever taken away from the edge because the store is out of
//! reach. A failed operation backs off for `retry_after`, then everything still needed is
//! asked for again (a lease, the edge's key, unpublished claims, releases, a resync).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sluice_proto::{EdgeId, Hostname};

mod rules;
mod state;

use crate::io::{ClaimOutcome, EdgeAction, KeyValue, LeaseId, OpId, StoreOp, WatchEvent};
use crate::schema::{self, Blame, DecodeError, Key, RouteValue};
use state::{Claim, ClaimState, Lease, Pending, Release, Step, Watch};

/// Most routes one replica holds; names beyond it are refused and counted (the edge's own
/// cap, `MAX_REMOTE_ROUTES`, is the same).
pub const MAX_REPLICA_ROUTES: usize = 1_000_000;
/// Most edges one replica knows.
pub const MAX_REPLICA_EDGES: usize = 10_000;
/// Most warnings held for [`Directory::poll_warning`]; more are counted and dropped.
pub const MAX_QUEUED_WARNINGS: usize = 1024;

/// How a directory runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// This edge.
    pub me: EdgeId,
    /// Where the other edges reach this one.
    pub fleet_addr: SocketAddr,
    /// The lease's time to live (whole seconds, at least one); kept alive every third of it.
    pub lease_ttl: Duration,
    /// How long to wait after a failed operation before asking again.
    pub retry_after: Duration,
}

/// Something the directory read and did not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Warning {
    /// An entry that does not decode; treated as absent.
    #[error("{0}")]
    Malformed(DecodeError),
    /// A watch event below a revision already seen; ignored.
    #[error("watch event at revision {got}, after {seen}")]
    RevisionBackwards {
        /// The event's revision.
        got: u64,
        /// The revision already seen.
        seen: u64,
    },
    /// A new name beyond [`MAX_REPLICA_ROUTES`] or edge beyond [`MAX_REPLICA_EDGES`].
    #[error("replica full")]
    ReplicaFull,
}

impl Warning {
    /// Who caused it.
    pub fn blame(&self) -> Blame {
        match self {
            Self::Malformed(e) => e.blame(),
            Self::RevisionBackwards { .. } => Blame::Store,
            Self::ReplicaFull => Blame::Writer,
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Names yielded to another edge's newer claim.
    pub yielded: u64,
    /// Claims put in the store.
    pub won: u64,
    /// Full resyncs from a snapshot.
    pub resyncs: u64,
    /// Operations that failed (store out of reach).
    pub failed: u64,
    /// Warnings dropped because nobody polled them.
    pub warnings_dropped: u64,
}

/// A route as the replica holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Who claimed it.
    pub value: RouteValue,
    /// Under which lease.
    pub lease: Option<LeaseId>,
    /// At which revision.
    pub revision: u64,
}

/// One edge's directory. See the module doc.
#[derive(Debug)]
pub struct Directory {
    config: Config,
    lease: Lease,
    registered: Step,
    watch: Watch,
    /// The store's revision as far as the replica has seen it.
    revision: u64,
    replica: BTreeMap<Hostname, Route>,
    edges: BTreeMap<EdgeId, SocketAddr>,
    claims: BTreeMap<Hostname, Claim>,
    /// Route keys of this edge that no tunnel claims: deleted if still at that revision.
    releases: BTreeMap<Hostname, Release>,
    /// What the edge was told: its remote routes.
    installed: BTreeMap<Hostname, (EdgeId, u64)>,
    /// Names whose claim or release may need an operation.
    todo: BTreeSet<Hostname>,
    /// After `handle_shutdown`: nothing more goes out.
    stopped: bool,
    ops: HashMap<OpId, Pending>,
    next_op: u64,
    backoff_until: Option<Instant>,
    store_out: VecDeque<StoreOp>,
    edge_out: VecDeque<EdgeAction>,
    warnings: VecDeque<Warning>,
    stats: Stats,
}

impl Directory {
    /// A directory that knows nothing yet: its first outputs ask for a lease and a snapshot.
    pub fn new(config: Config, now: Instant) -> Self {
        let mut d = Self {
            config,
            lease: Lease::None,
            registered: Step::No,
            watch: Watch::Down,
            revision: 0,
            replica: BTreeMap::new(),
            edges: BTreeMap::new(),
            claims: BTreeMap::new(),
            releases: BTreeMap::new(),
            installed: BTreeMap::new(),
            todo: BTreeSet::new(),
            stopped: false,
            ops: HashMap::new(),
            next_op: 0,
            backoff_until: None,
            store_out: VecDeque::new(),
            edge_out: VecDeque::new(),
            warnings: VecDeque::new(),
            stats: Stats::default(),
        };
        d.pump(now);
        d
    }

    // Getters.

    /// The routes the replica holds.
    pub fn routes(&self) -> impl Iterator<Item = (&Hostname, &Route)> {
        self.replica.iter()
    }

    /// The remote routes the edge was told to hold.
    pub fn remote_routes(&self) -> impl Iterator<Item = (&Hostname, &EdgeId, u64)> {
        self.installed.iter().map(|(n, (e, r))| (n, e, *r))
    }

    /// Where another edge's fleet listener is, if its key is in the replica.
    pub fn edge_addr(&self, edge: &EdgeId) -> Option<SocketAddr> {
        self.edges.get(edge).copied()
    }

    /// The store revision the replica reflects.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Whether the replica follows the store now (a watch is live).
    pub fn is_live(&self) -> bool {
        matches!(self.watch, Watch::Live(_))
    }

    /// The lease, while one is held.
    pub fn lease(&self) -> Option<LeaseId> {
        match self.lease {
            Lease::Held { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Whether every claim of this edge is in the store under its lease (a yielded alias is
    /// not).
    pub fn is_published(&self) -> bool {
        self.claims
            .values()
            .all(|c| matches!(c.state, ClaimState::Held { .. }))
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    // Local inputs.

    /// A tunnel on `worker` with registration sequence `seq` claimed `names` (primary first):
    /// the edge's `RouteEvent::Claimed`. Each name is put in the store over the claim this
    /// edge knows of now, so a claim the store took in the meantime wins over it.
    pub fn handle_claimed(&mut self, now: Instant, names: &[Hostname], worker: usize, seq: u64) {
        if self.stopped {
            return;
        }
        for (i, name) in names.iter().enumerate() {
            let mut basis = self.replica.get(name).map_or(0, |r| r.revision);
            if let Some(old) = self.claims.get(name) {
                if old.seq > seq {
                    continue;
                }
                if let ClaimState::Held { revision, .. } = old.state {
                    basis = basis.max(revision);
                }
            }
            self.releases.remove(name);
            self.todo.insert(name.clone());
            // A claim made blind would replace claims the store took that this edge has not
            // seen: it waits for the replica to catch up.
            let state = if self.is_live() {
                ClaimState::Unpublished { basis }
            } else {
                ClaimState::Blind
            };
            self.claims.insert(
                name.clone(),
                Claim {
                    worker,
                    seq,
                    primary: i == 0,
                    state,
                },
            );
        }
        self.pump(now);
    }

    /// The tunnel `(worker, seq)` is gone: its names are deleted from the store where they are
    /// still its own.
    pub fn handle_released(&mut self, now: Instant, names: &[Hostname], worker: usize, seq: u64) {
        if self.stopped {
            return;
        }
        for name in names {
            let Some(c) = self.claims.get(name) else {
                continue;
            };
            if c.worker != worker || c.seq != seq {
                continue;
            }
            let state = c.state;
            self.claims.remove(name);
            match state {
                ClaimState::Held { revision, .. } => self.release(name, revision),
                // An answer still to come releases it (`handle_claim`); the watch catches it
                // otherwise (`settle`).
                ClaimState::InFlight { .. }
                | ClaimState::Unpublished { .. }
                | ClaimState::Blind
                | ClaimState::Yielded => {}
            }
        }
        self.pump(now);
    }

    // Store inputs.

    /// The store granted `lease` for `ttl`.
    pub fn handle_lease_granted(&mut self, now: Instant, op: OpId, lease: LeaseId, ttl: Duration) {
        if self.stopped {
            return;
        }
        if !matches!(self.ops.remove(&op), Some(Pending::Grant)) {
            return;
        }
        let sent = match self.lease {
            Lease::Granting { sent } => sent,
            _ => now,
        };
        self.lease = Lease::Held {
            id: lease,
            ttl,
            expires: sent + ttl,
            renew_at: sent + ttl / 3,
            renewing: None,
        };
        self.registered = Step::No;
        self.pump(now);
    }

    /// The store refreshed the lease for another `ttl`.
    pub fn handle_lease_renewed(&mut self, now: Instant, op: OpId, ttl: Duration) {
        if self.stopped {
            return;
        }
        if !matches!(self.ops.remove(&op), Some(Pending::KeepAlive)) {
            return;
        }
        if let Lease::Held {
            ttl: t,
            expires,
            renew_at,
            renewing,
            ..
        } = &mut self.lease
        {
            let sent = renewing.take().unwrap_or(now);
            *t = ttl;
            *expires = sent + ttl;
            *renew_at = sent + ttl / 3;
        }
        self.pump(now);
    }

    /// The store no longer has `lease` (a keepalive, a claim or the registration said so):
    /// its keys are or will be deleted. A new one is asked for, and every claim published
    /// again under it. Operations under it still unanswered are forgotten.
    pub fn handle_lease_lost(&mut self, now: Instant, lease: LeaseId) {
        if self.stopped {
            return;
        }
        if self.lease() == Some(lease) {
            self.lose_lease();
        }
        self.pump(now);
    }

    /// The answer to a [`StoreOp::Claim`].
    pub fn handle_claim(&mut self, now: Instant, op: OpId, outcome: ClaimOutcome) {
        if self.stopped {
            return;
        }
        let Some(Pending::Claim { name, seq }) = self.ops.remove(&op) else {
            return;
        };
        self.todo.insert(name.clone());
        let current_lease = self.lease();
        let Some(claim) = self.claims.get_mut(&name) else {
            // Released while in flight: delete it if we won.
            if let ClaimOutcome::Won { revision } = outcome {
                self.release(&name, revision);
            }
            self.pump(now);
            return;
        };
        let ClaimState::InFlight { op: o, lease, .. } = claim.state else {
            self.pump(now);
            return;
        };
        if o != op || claim.seq != seq {
            self.pump(now);
            return;
        }
        let renew = |revision| {
            if current_lease == Some(lease) {
                ClaimState::Held { revision }
            } else {
                // Put under a lease that is gone since: put it again.
                ClaimState::Unpublished { basis: revision }
            }
        };
        match outcome {
            ClaimOutcome::Won { revision } => {
                claim.state = renew(revision);
                self.stats.won += 1;
                self.settle(&name, self.revision);
            }
            ClaimOutcome::Lost { current: None } => {
                claim.state = ClaimState::Unpublished { basis: 0 };
            }
            ClaimOutcome::Lost { current: Some(kv) } => {
                let rev = kv.mod_revision;
                match RouteValue::decode(&kv.value) {
                    // Junk under our name: put ours over it.
                    Err(error) => {
                        claim.state = ClaimState::Unpublished { basis: rev };
                        let key = Key::Route(name.clone());
                        self.warn(Warning::Malformed(DecodeError::Value { key, error }));
                    }
                    Ok(v) if v.edge == self.config.me => {
                        claim.state = if kv.lease == Some(lease) && v.tunnel == seq {
                            renew(rev)
                        } else {
                            // An older tunnel of ours, or a past life of this edge.
                            ClaimState::Unpublished { basis: rev }
                        };
                    }
                    // Another edge claimed it after the claim this one was made over.
                    Ok(_) => self.give_up(&name),
                }
            }
        }
        self.pump(now);
    }

    /// A [`StoreOp::Release`] or [`StoreOp::Register`] was run.
    pub fn handle_done(&mut self, now: Instant, op: OpId) {
        if self.stopped {
            return;
        }
        match self.ops.remove(&op) {
            Some(Pending::Release { name })
                if self.releases.get(&name).is_some_and(|r| r.op == Some(op)) =>
            {
                self.releases.remove(&name);
            }
            Some(Pending::Register) => self.registered = Step::Done,
            _ => {}
        }
        self.pump(now);
    }

    /// The answer to a [`StoreOp::Snapshot`]: everything under the prefix at `revision`.
    /// The replica becomes it, the edge is told the difference, and the watch restarts
    /// after it.
    pub fn handle_snapshot(&mut self, now: Instant, op: OpId, kvs: Vec<KeyValue>, revision: u64) {
        if self.stopped {
            return;
        }
        if self.ops.remove(&op).is_none() || self.watch != Watch::Snapshotting(op) {
            return;
        }
        let before: BTreeSet<Hostname> = self.replica.keys().cloned().collect();
        self.replica.clear();
        self.edges.clear();
        for kv in kvs {
            self.apply_put(kv);
        }
        self.revision = revision;
        self.stats.resyncs += 1;
        for (name, c) in self.claims.iter_mut() {
            if c.state == ClaimState::Blind {
                self.todo.insert(name.clone());
                let basis = self.replica.get(name).map_or(0, |r| r.revision);
                c.state = ClaimState::Unpublished { basis };
            }
        }
        let mut touched = before;
        touched.extend(self.replica.keys().cloned());
        touched.extend(self.claims.keys().cloned());
        touched.extend(self.installed.keys().cloned());
        touched.extend(self.releases.keys().cloned());
        for name in &touched {
            self.settle(name, revision);
        }
        let op = self.op(Pending::Watch);
        self.watch = Watch::Live(op);
        self.store_out.push_back(StoreOp::Watch {
            op,
            prefix: schema::PREFIX.as_bytes().to_vec(),
            from_revision: revision + 1,
        });
        self.pump(now);
    }

    /// One event of the watch.
    pub fn handle_watch(&mut self, now: Instant, event: WatchEvent) {
        if self.stopped {
            return;
        }
        if !self.is_live() {
            return;
        }
        let revision = match &event {
            WatchEvent::Put(kv) => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
        };
        // One transaction (or one lease's expiry) makes several events at one revision.
        if revision < self.revision {
            self.warn(Warning::RevisionBackwards {
                got: revision,
                seen: self.revision,
            });
            return;
        }
        self.revision = revision;
        let name = match event {
            WatchEvent::Put(kv) => self.apply_put(kv),
            WatchEvent::Delete { key, .. } => match self.decode_key(&key) {
                Some(Key::Route(name)) => {
                    self.replica.remove(&name);
                    Some(name)
                }
                Some(Key::Edge(id)) => {
                    self.edges.remove(&id);
                    None
                }
                None => None,
            },
        };
        if let Some(name) = name {
            self.settle(&name, revision);
        }
        self.pump(now);
    }

    /// The watch ended (broken, or the store compacted past it): resync from a snapshot.
    /// Until then the edge keeps the routes it has.
    pub fn handle_watch_lost(&mut self, now: Instant) {
        if self.stopped {
            return;
        }
        if let Watch::Live(op) | Watch::Snapshotting(op) = self.watch {
            self.ops.remove(&op);
        }
        self.watch = Watch::Down;
        self.pump(now);
    }

    /// The store could not be reached to run `op`; it is assumed not to have happened.
    pub fn handle_failed(&mut self, now: Instant, op: OpId) {
        if self.stopped {
            return;
        }
        let Some(pending) = self.ops.remove(&op) else {
            return;
        };
        self.stats.failed += 1;
        match pending {
            Pending::Claim { name, .. } => {
                self.todo.insert(name.clone());
                if let Some(c) = self.claims.get_mut(&name)
                    && let ClaimState::InFlight { op: o, basis, .. } = c.state
                    && o == op
                {
                    c.state = ClaimState::Unpublished { basis };
                }
            }
            Pending::Release { name } => {
                self.todo.insert(name.clone());
                if let Some(r) = self.releases.get_mut(&name)
                    && r.op == Some(op)
                {
                    r.op = None;
                }
            }
            Pending::Grant => self.lease = Lease::None,
            Pending::KeepAlive => {
                if let Lease::Held {
                    renewing, renew_at, ..
                } = &mut self.lease
                {
                    *renewing = None;
                    *renew_at = now + self.config.retry_after;
                }
            }
            Pending::Register => self.registered = Step::No,
            // Unrevoked, the lease runs out within its TTL.
            Pending::Revoke => {}
            Pending::Snapshot | Pending::Watch => {
                if matches!(self.watch, Watch::Live(o) | Watch::Snapshotting(o) if o == op) {
                    self.watch = Watch::Down;
                }
            }
        }
        self.backoff_until = Some(now + self.config.retry_after);
        self.pump(now);
    }

    /// The edge is stopping (SIGTERM): revoke the lease, so every name of this edge leaves
    /// the store at once and the other edges drop their routes to it, before the edge ends
    /// its tunnels (whose connectors then claim their names elsewhere). Nothing more is asked
    /// of the store after it; later inputs are ignored.
    pub fn handle_shutdown(&mut self, now: Instant) {
        let _ = now;
        if let Some(lease) = self.lease() {
            let op = self.op(Pending::Revoke);
            self.store_out.push_back(StoreOp::Revoke { op, lease });
        }
        self.stopped = true;
        self.lease = Lease::None;
        self.claims.clear();
        self.releases.clear();
        self.todo.clear();
    }

    /// Whether [`Directory::handle_shutdown`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    // Time.

    /// When [`Directory::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let lease = match self.lease {
            Lease::Held {
                expires,
                renew_at,
                renewing,
                ..
            } => Some(if renewing.is_some() {
                expires
            } else {
                renew_at.min(expires)
            }),
            _ => None,
        };
        [lease, self.backoff_until].into_iter().flatten().min()
    }

    /// Runs what is due at `now`: lease keepalive and expiry, retries after a failure.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.stopped {
            return;
        }
        if let Lease::Held { expires, .. } = self.lease
            && now >= expires
        {
            // Unrenewed for a whole TTL: the store has let it go (or will any moment).
            self.lose_lease();
        }
        self.pump(now);
    }

    // Outputs.

    /// The next store operation to run.
    pub fn poll_store(&mut self) -> Option<StoreOp> {
        self.store_out.pop_front()
    }

    /// The next thing to do to the edge.
    pub fn poll_edge(&mut self) -> Option<EdgeAction> {
        self.edge_out.pop_front()
    }

    /// The next warning.
    pub fn poll_warning(&mut self) -> Option<Warning> {
        self.warnings.pop_front()
    }
}

#[cfg(test)]
mod tests;
