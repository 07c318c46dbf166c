//! A seeded, single-threaded simulation of a fleet: N edges, each a `Directory` driving a
//! model of the edge (its local claims, remote routes and tunnels), an in-memory store with
//! etcd's semantics, connectors that reconnect to a random edge, and faults. Time is virtual
//! (ticks of `TICK`); nothing sleeps.
//!
//! Faults: tunnels that drop silently (the edge keeps a stale tunnel) or close, watches that
//! break, compaction, whole-store outages, one edge cut off from the store alone, lease
//! expiries, edge crashes, graceful stops (revoke, then end the tunnels) and restarts, and
//! answers lost after the store applied the
//! operation. Watches lag but never reorder (etcd does not).
//!
//! What it checks:
//! - the bound, all along: no edge in reach of the store serves from a local tunnel a name
//!   whose route key names another edge for longer than one lease TTL (the clock stops while
//!   the whole store is down, and starts again when an edge cut off alone is back: until
//!   then it keeps what it has, by design);
//! - convergence, once the faults stop and the fleet settles: every connector is connected,
//!   every name is owned in the store by exactly its connector's live tunnel under its edge's
//!   live lease, no route key is left over, no stale tunnel is left on any edge, and every
//!   edge's replica and remote routes agree with the store.

#![allow(dead_code)]

pub mod rng;
pub mod store;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use sluice_directory::schema::{Key, ROUTES, RouteValue};
use sluice_directory::{ClaimOutcome, Config, Directory, EdgeAction, KeyValue, LeaseId, StoreOp};
use sluice_proto::{EdgeId, Hostname};

use rng::Rng;
use store::{Refusal, Store};

/// One step of virtual time.
pub const TICK: Duration = Duration::from_millis(20);
/// The lease TTL every edge asks for.
pub const TTL: Duration = Duration::from_secs(2);
/// How long a directory waits after a failed operation.
pub const RETRY: Duration = Duration::from_millis(400);
/// Most directory outputs handled after one input before the run is declared looping.
const MAX_DRIVE: usize = 100_000;
/// Lines of history a failure prints.
const LOG_LINES: usize = 400;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub edges: usize,
    pub connectors: usize,
    /// Faults are injected during this long, then none.
    pub faults: Duration,
    /// How long the fleet gets to settle after the last fault.
    pub settle: Duration,
    /// Faults per thousand ticks.
    pub fault_rate: u64,
}

impl Params {
    /// The parameters a seed picks: 2 to 5 edges, 4 to 15 connectors.
    pub fn for_seed(seed: u64) -> Self {
        let mut r = Rng::new(seed ^ 0x5eed);
        Self {
            edges: r.range(2, 6) as usize,
            connectors: r.range(4, 16) as usize,
            faults: Duration::from_secs(20),
            settle: Duration::from_secs(12),
            fault_rate: r.range(20, 80),
        }
    }
}

/// What the store answered, before it is told (or lost).
enum Reply {
    Granted(LeaseId, Duration),
    Renewed(Duration),
    LeaseLost(LeaseId),
    Done,
    Claim(ClaimOutcome),
    Snapshot(Vec<KeyValue>, u64),
    Failed,
}

#[derive(Debug)]
struct Tunnel {
    connector: usize,
    names: Vec<Hostname>,
}

#[derive(Debug)]
struct Edge {
    id: EdgeId,
    alive: bool,
    incarnation: u32,
    dir: Directory,
    next_seq: u64,
    tunnels: BTreeMap<u64, Tunnel>,
    /// The edge's local claims: name -> (tunnel seq, primary).
    local: BTreeMap<Hostname, (u64, bool)>,
    /// The edge's remote routes: name -> (edge, revision).
    remote: BTreeMap<Hostname, (EdgeId, u64)>,
    /// The next revision the watch delivers, while one runs.
    watch: Option<u64>,
    restart_at: Option<Instant>,
    /// Cut off from the store (alone) until then: its operations fail, its watch breaks.
    cut_until: Option<Instant>,
}

#[derive(Debug)]
struct Connector {
    names: Vec<Hostname>,
    /// (edge, incarnation, seq) of its tunnel.
    current: Option<(usize, u32, u64)>,
    reconnect_at: Option<Instant>,
}

pub struct World {
    seed: u64,
    params: Params,
    rng: Rng,
    base: Instant,
    now: Instant,
    store: Store,
    edges: Vec<Edge>,
    connectors: Vec<Connector>,
    /// Operations in flight: (due, order) -> (edge, incarnation, op).
    ops: BTreeMap<(Instant, u64), (usize, u32, StoreOp)>,
    order: u64,
    outage_until: Option<Instant>,
    /// (edge, name) -> how long it has served a name another edge owns, store up.
    conflicts: BTreeMap<(usize, Hostname), Duration>,
    log: VecDeque<String>,
    /// A failure found where it could not be returned at once.
    error: Option<String>,
    pub worst_conflict: Duration,
    /// How many of each fault took effect.
    pub faults: BTreeMap<&'static str, u64>,
    /// Yields that ended the tunnel its connector was using (the cost of a race lost to a
    /// stale claim: the connector reconnects).
    pub live_yields: u64,
}

fn config(id: &EdgeId, i: usize) -> Config {
    Config {
        me: id.clone(),
        fleet_addr: format!("10.0.0.{}:4443", i + 1).parse().unwrap(),
        lease_ttl: TTL,
        retry_after: RETRY,
    }
}

impl World {
    pub fn new(seed: u64, params: Params) -> Self {
        // The one reading of a clock: an origin for virtual time. Only offsets from it matter.
        #[allow(clippy::disallowed_methods)]
        let base = Instant::now();
        let edges = (0..params.edges)
            .map(|i| {
                let id: EdgeId = format!("edge-{i}").parse().unwrap();
                let dir = Directory::new(config(&id, i), base);
                Edge {
                    id,
                    alive: true,
                    incarnation: 0,
                    dir,
                    next_seq: 1,
                    tunnels: BTreeMap::new(),
                    local: BTreeMap::new(),
                    remote: BTreeMap::new(),
                    watch: None,
                    restart_at: None,
                    cut_until: None,
                }
            })
            .collect();
        let mut rng = Rng::new(seed);
        let connectors = (0..params.connectors)
            .map(|c| {
                let mut names = vec![format!("home-{c}.test").parse().unwrap()];
                if c % 2 == 1 {
                    names.push(format!("alias-{c}.test").parse().unwrap());
                }
                Connector {
                    names,
                    current: None,
                    reconnect_at: Some(base + Duration::from_millis(rng.range(0, 1000))),
                }
            })
            .collect();
        let mut w = Self {
            seed,
            params,
            rng,
            base,
            now: base,
            store: Store::new(),
            edges,
            connectors,
            ops: BTreeMap::new(),
            order: 0,
            outage_until: None,
            conflicts: BTreeMap::new(),
            log: VecDeque::new(),
            error: None,
            worst_conflict: Duration::ZERO,
            faults: BTreeMap::new(),
            live_yields: 0,
        };
        for e in 0..w.edges.len() {
            w.drive_later(e);
        }
        w
    }

    fn ms(&self) -> u128 {
        (self.now - self.base).as_millis()
    }

    fn note(&mut self, line: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        let ms = self.ms();
        self.log.push_back(format!("{ms:>6} {line}"));
    }

    fn fail(&self, why: String) -> String {
        let mut s = format!(
            "seed {} failed at {} ms: {why}\n  replay: SIM_SEED={} cargo test -p sluice-directory --test simulation replay -- --nocapture\n  {:?}\n",
            self.seed,
            self.ms(),
            self.seed,
            self.params
        );
        for l in &self.log {
            let _ = writeln!(s, "  {l}");
        }
        s
    }

    /// Runs the whole scenario: faults, then settling, then the convergence check.
    pub fn run(&mut self) -> Result<(), String> {
        let fault_end = self.base + self.params.faults;
        let end = fault_end + self.params.settle;
        let mut steps = 0u64;
        while self.now < end {
            steps += 1;
            assert!(steps < 1_000_000, "bounded");
            self.now += TICK;
            self.step(self.now < fault_end)?;
        }
        if let Some(report) = self.error.take() {
            return Err(report);
        }
        self.check_converged()
    }

    fn step(&mut self, faults: bool) -> Result<(), String> {
        let now = self.now;
        if self.outage_until.is_some_and(|t| t <= now) {
            self.outage_until = None;
            self.store.set_up(now, true);
            self.note("store up".into());
        }
        for e in 0..self.edges.len() {
            if self.edges[e].restart_at.is_some_and(|t| t <= now) {
                self.restart(e);
            }
        }
        for edge in &mut self.edges {
            if edge.cut_until.is_some_and(|t| t <= now) {
                edge.cut_until = None;
            }
        }
        for c in 0..self.connectors.len() {
            if self.connectors[c].reconnect_at.is_some_and(|t| t <= now) {
                self.reconnect(c);
            }
        }
        self.run_ops(faults)?;
        self.store.expire(now);
        self.deliver_watches()?;
        for e in 0..self.edges.len() {
            if self.edges[e].alive && self.edges[e].dir.poll_timeout().is_some_and(|t| t <= now) {
                self.edges[e].dir.handle_timeout(now);
                self.drive(e)?;
            }
        }
        if faults && self.rng.range(0, 1000) < self.params.fault_rate {
            self.fault()?;
        }
        if let Some(report) = self.error.take() {
            return Err(report);
        }
        self.check_bound()
    }

    // The edge model.

    /// Feeds a directory's outputs to the store queue and the edge, until it has none.
    fn drive(&mut self, e: usize) -> Result<(), String> {
        for _ in 0..MAX_DRIVE {
            let edge = &mut self.edges[e];
            if let Some(w) = edge.dir.poll_warning() {
                return Err(self.fail(format!("edge {e} warned: {w}")));
            }
            if let Some(op) = edge.dir.poll_store() {
                let inc = edge.incarnation;
                let due = self.now + TICK * self.rng.range(0, 4) as u32;
                self.order += 1;
                self.ops.insert((due, self.order), (e, inc, op));
                continue;
            }
            if let Some(action) = edge.dir.poll_edge() {
                self.apply(e, action)?;
                continue;
            }
            return Ok(());
        }
        Err(self.fail(format!("edge {e}'s directory never stops producing output")))
    }

    fn drive_later(&mut self, e: usize) {
        if let Err(report) = self.drive(e) {
            self.error.get_or_insert(report);
        }
    }

    fn apply(&mut self, e: usize, action: EdgeAction) -> Result<(), String> {
        match action {
            EdgeAction::Yield {
                name, seq, primary, ..
            } => {
                self.note(format!(
                    "edge {e} yields {name} (tunnel {seq}, primary {primary})"
                ));
                if primary {
                    let inc = self.edges[e].incarnation;
                    if self
                        .connectors
                        .iter()
                        .any(|c| c.current == Some((e, inc, seq)))
                    {
                        self.live_yields += 1;
                    }
                    self.end_tunnel(e, seq);
                } else if self.edges[e].local.get(&name).is_some_and(|l| l.0 == seq) {
                    self.edges[e].local.remove(&name);
                }
            }
            EdgeAction::Reclaim { name, seq, .. } => {
                self.note(format!("edge {e} reclaims {name} (tunnel {seq})"));
                let edge = &mut self.edges[e];
                if edge.tunnels.contains_key(&seq)
                    && edge.local.get(&name).is_none_or(|l| l.0 <= seq)
                {
                    edge.local.insert(name, (seq, false));
                }
            }
            EdgeAction::InstallRemote {
                name,
                edge,
                revision,
            } => {
                let remote = &mut self.edges[e].remote;
                if remote.get(&name).is_none_or(|(_, r)| *r <= revision) {
                    remote.insert(name, (edge, revision));
                }
            }
            EdgeAction::RemoveRemote {
                name,
                edge,
                revision,
            } => {
                let remote = &mut self.edges[e].remote;
                if remote
                    .get(&name)
                    .is_some_and(|(x, r)| *x == edge && *r <= revision)
                {
                    remote.remove(&name);
                }
            }
        }
        Ok(())
    }

    /// Ends tunnel `seq` of edge `e`, as the edge does: its names released, its connector
    /// told (if this is still its tunnel).
    fn end_tunnel(&mut self, e: usize, seq: u64) {
        let edge = &mut self.edges[e];
        let Some(t) = edge.tunnels.remove(&seq) else {
            return;
        };
        for name in &t.names {
            if edge.local.get(name).is_some_and(|l| l.0 == seq) {
                edge.local.remove(name);
            }
        }
        let inc = edge.incarnation;
        let now = self.now;
        edge.dir.handle_released(now, &t.names, 0, seq);
        let c = &mut self.connectors[t.connector];
        if c.current == Some((e, inc, seq)) {
            c.current = None;
            c.reconnect_at = Some(now + Duration::from_millis(self.rng.range(20, 300)));
        }
        self.note(format!(
            "edge {e} ends tunnel {seq} of connector {}",
            t.connector
        ));
        self.drive_later(e);
    }

    fn reconnect(&mut self, c: usize) {
        self.connectors[c].reconnect_at = None;
        let alive: Vec<usize> = (0..self.edges.len())
            .filter(|&e| self.edges[e].alive)
            .collect();
        if alive.is_empty() {
            self.connectors[c].reconnect_at = Some(self.now + Duration::from_millis(500));
            return;
        }
        let e = alive[self.rng.pick(alive.len())];
        let edge = &mut self.edges[e];
        let seq = edge.next_seq;
        edge.next_seq += 1;
        let names = self.connectors[c].names.clone();
        let mut replaced = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let primary = i == 0;
            if let Some(&(old, old_primary)) = edge.local.get(name) {
                if old > seq {
                    continue;
                }
                if primary && old_primary && old < seq {
                    replaced.push(old);
                }
            }
            edge.local.insert(name.clone(), (seq, primary));
        }
        edge.tunnels.insert(
            seq,
            Tunnel {
                connector: c,
                names: names.clone(),
            },
        );
        let inc = edge.incarnation;
        edge.dir.handle_claimed(self.now, &names, 0, seq);
        self.connectors[c].current = Some((e, inc, seq));
        self.note(format!("connector {c} connects to edge {e} (tunnel {seq})"));
        self.drive_later(e);
        for old in replaced {
            self.end_tunnel(e, old);
        }
    }

    fn restart(&mut self, e: usize) {
        let now = self.now;
        let edge = &mut self.edges[e];
        edge.restart_at = None;
        edge.alive = true;
        edge.incarnation += 1;
        edge.dir = Directory::new(config(&edge.id, e), now);
        edge.next_seq = 1;
        edge.tunnels.clear();
        edge.local.clear();
        edge.remote.clear();
        edge.watch = None;
        edge.cut_until = None;
        self.note(format!("edge {e} restarts"));
        self.drive_later(e);
    }

    // The store side.

    fn run_ops(&mut self, faults: bool) -> Result<(), String> {
        let now = self.now;
        loop {
            let Some((&key, _)) = self.ops.first_key_value() else {
                return Ok(());
            };
            if key.0 > now {
                return Ok(());
            }
            let Some((_, (e, inc, op))) = self.ops.pop_first() else {
                return Ok(());
            };
            if !self.edges[e].alive || self.edges[e].incarnation != inc {
                continue;
            }
            if self.edges[e].cut_until.is_some() {
                self.edges[e].dir.handle_failed(now, op.id());
            } else {
                let lose_reply = faults && self.rng.range(0, 1000) < self.params.fault_rate / 2;
                self.run_op(e, op, lose_reply);
            }
            self.drive(e)?;
        }
    }

    /// Runs `op` against the store and answers the directory; with `lose_reply` the store
    /// applies it but the answer is lost (an etcd client's timeout after the commit), so the
    /// directory hears "failed" for something that happened.
    fn run_op(&mut self, e: usize, op: StoreOp, lose_reply: bool) {
        let now = self.now;
        let id = op.id();
        let store = &mut self.store;
        let reply = match op {
            StoreOp::Grant { ttl_secs, .. } => {
                let ttl = Duration::from_secs(ttl_secs);
                match store.grant(now, ttl) {
                    Ok(lease) => Reply::Granted(lease, ttl),
                    Err(_) => Reply::Failed,
                }
            }
            StoreOp::KeepAlive { lease, .. } => match store.keep_alive(now, lease) {
                Ok(ttl) => Reply::Renewed(ttl),
                Err(Refusal::NoLease) => Reply::LeaseLost(lease),
                Err(Refusal::Down) => Reply::Failed,
            },
            StoreOp::Register {
                key, value, lease, ..
            } => match store.register(key, value, lease) {
                Ok(()) => Reply::Done,
                Err(Refusal::NoLease) => Reply::LeaseLost(lease),
                Err(Refusal::Down) => Reply::Failed,
            },
            StoreOp::Claim {
                key,
                value,
                lease,
                if_mod_revision,
                ..
            } => match store.claim(key, value, lease, if_mod_revision) {
                Ok(outcome) => Reply::Claim(outcome),
                Err(Refusal::NoLease) => Reply::LeaseLost(lease),
                Err(Refusal::Down) => Reply::Failed,
            },
            StoreOp::Release {
                key,
                if_mod_revision,
                ..
            } => match store.release(key, if_mod_revision) {
                Ok(()) => Reply::Done,
                Err(_) => Reply::Failed,
            },
            StoreOp::Snapshot { prefix, .. } => match store.snapshot(&prefix) {
                Ok((kvs, revision)) => Reply::Snapshot(kvs, revision),
                Err(_) => Reply::Failed,
            },
            StoreOp::Watch { from_revision, .. } if store.up => {
                self.edges[e].watch = Some(from_revision);
                return;
            }
            StoreOp::Watch { .. } => Reply::Failed,
            StoreOp::Revoke { lease, .. } => {
                if store.up {
                    store.revoke(lease);
                }
                return;
            }
        };
        let dir = &mut self.edges[e].dir;
        if lose_reply && !matches!(reply, Reply::Failed) {
            *self.faults.entry("lost reply").or_default() += 1;
            dir.handle_failed(now, id);
            return;
        }
        match reply {
            Reply::Granted(lease, ttl) => dir.handle_lease_granted(now, id, lease, ttl),
            Reply::Renewed(ttl) => dir.handle_lease_renewed(now, id, ttl),
            Reply::LeaseLost(lease) => dir.handle_lease_lost(now, lease),
            Reply::Done => dir.handle_done(now, id),
            Reply::Claim(outcome) => dir.handle_claim(now, id, outcome),
            Reply::Snapshot(kvs, revision) => dir.handle_snapshot(now, id, kvs, revision),
            Reply::Failed => dir.handle_failed(now, id),
        }
    }

    fn deliver_watches(&mut self) -> Result<(), String> {
        let now = self.now;
        for e in 0..self.edges.len() {
            let Some(from) = self.edges[e].watch else {
                continue;
            };
            if !self.edges[e].alive {
                continue;
            }
            if !self.store.up || self.edges[e].cut_until.is_some() {
                self.edges[e].watch = None;
                self.edges[e].dir.handle_watch_lost(now);
                self.drive(e)?;
                continue;
            }
            // Watches lag now and then (by a tick), never reorder.
            if self.rng.chance(30) {
                continue;
            }
            match self.store.events_from(from) {
                None => {
                    self.note(format!("edge {e}'s watch compacted away"));
                    self.edges[e].watch = None;
                    self.edges[e].dir.handle_watch_lost(now);
                }
                Some(events) => {
                    self.edges[e].watch = Some(self.store.revision() + 1);
                    for ev in events {
                        self.edges[e].dir.handle_watch(now, ev);
                    }
                }
            }
            self.drive(e)?;
        }
        Ok(())
    }

    // Faults.

    fn fault(&mut self) -> Result<(), String> {
        let now = self.now;
        let kind = self.rng.range(0, 100);
        match kind {
            // A tunnel dies silently: the connector moves on, its edge keeps the stale tunnel.
            0..25 => {
                let c = self.rng.pick(self.connectors.len());
                if self.connectors[c].current.take().is_some() {
                    self.note(format!("fault: connector {c} drops its tunnel silently"));
                    *self.faults.entry("silent drop").or_default() += 1;
                    self.connectors[c].reconnect_at =
                        Some(now + Duration::from_millis(self.rng.range(20, 300)));
                }
            }
            // A tunnel closes, both ends know.
            25..40 => {
                let c = self.rng.pick(self.connectors.len());
                if let Some((e, inc, seq)) = self.connectors[c].current
                    && self.edges[e].incarnation == inc
                {
                    self.note(format!("fault: connector {c}'s tunnel closes"));
                    *self.faults.entry("tunnel close").or_default() += 1;
                    self.end_tunnel(e, seq);
                }
            }
            40..55 => {
                let e = self.rng.pick(self.edges.len());
                if self.edges[e].alive && self.edges[e].watch.take().is_some() {
                    self.note(format!("fault: edge {e}'s watch breaks"));
                    *self.faults.entry("watch break").or_default() += 1;
                    self.edges[e].dir.handle_watch_lost(now);
                    self.drive(e)?;
                }
            }
            55..65 => {
                if self.outage_until.is_none() {
                    let d = Duration::from_millis(self.rng.range(200, 4000));
                    self.note(format!("fault: store down for {} ms", d.as_millis()));
                    *self.faults.entry("store outage").or_default() += 1;
                    self.store.set_up(now, false);
                    self.outage_until = Some(now + d);
                }
            }
            65..75 => {
                let e = self.rng.pick(self.edges.len());
                if let Some(lease) = self.edges[e].dir.lease()
                    && self.edges[e].alive
                {
                    self.note(format!("fault: edge {e}'s lease {} expires", lease.0));
                    *self.faults.entry("lease expiry").or_default() += 1;
                    self.store.revoke(lease);
                }
            }
            75..81 => {
                let e = self.rng.pick(self.edges.len());
                if self.edges[e].alive {
                    self.crash(e);
                }
            }
            81..85 => {
                let e = self.rng.pick(self.edges.len());
                if self.edges[e].alive {
                    self.stop(e);
                }
            }
            // One edge loses the store while the others keep it (its tunnels stay up).
            85..92 => {
                let e = self.rng.pick(self.edges.len());
                if self.edges[e].alive && self.edges[e].cut_until.is_none() {
                    let d = Duration::from_millis(self.rng.range(200, 5000));
                    self.note(format!(
                        "fault: edge {e} cut off from the store for {} ms",
                        d.as_millis()
                    ));
                    *self.faults.entry("edge cut off").or_default() += 1;
                    self.edges[e].cut_until = Some(now + d);
                }
            }
            _ => {
                self.note("fault: store compacts".into());
                *self.faults.entry("compaction").or_default() += 1;
                self.store.compact();
            }
        }
        Ok(())
    }

    /// SIGTERM: the lease is revoked (when the store can be reached), then the tunnels end,
    /// so their connectors move at once; the edge comes back later.
    fn stop(&mut self, e: usize) {
        let now = self.now;
        self.note(format!("fault: edge {e} stops"));
        *self.faults.entry("graceful stop").or_default() += 1;
        self.edges[e].dir.handle_shutdown(now);
        while let Some(op) = self.edges[e].dir.poll_store() {
            if let StoreOp::Revoke { lease, .. } = op
                && self.store.up
                && self.edges[e].cut_until.is_none()
            {
                self.store.revoke(lease);
            }
        }
        let edge = &mut self.edges[e];
        edge.alive = false;
        edge.watch = None;
        edge.restart_at = Some(now + Duration::from_millis(self.rng.range(500, 3000)));
        let seqs: Vec<u64> = edge.tunnels.keys().copied().collect();
        for seq in seqs {
            self.end_tunnel(e, seq);
        }
    }

    fn crash(&mut self, e: usize) {
        let now = self.now;
        self.note(format!("fault: edge {e} crashes"));
        *self.faults.entry("edge crash").or_default() += 1;
        let edge = &mut self.edges[e];
        edge.alive = false;
        edge.watch = None;
        edge.restart_at = Some(now + Duration::from_millis(self.rng.range(500, 3000)));
        let inc = edge.incarnation;
        for c in &mut self.connectors {
            if c.current.is_some_and(|(ce, ci, _)| ce == e && ci == inc) {
                c.current = None;
                // The connector notices by its tunnel's keepalive.
                c.reconnect_at = Some(now + Duration::from_millis(self.rng.range(100, 1500)));
            }
        }
    }

    // Checks.

    fn owner(&self, name: &Hostname) -> Option<(RouteValue, Option<LeaseId>, u64)> {
        let key = Key::Route(name.clone()).encode();
        self.store
            .entries()
            .find(|(k, ..)| **k == key)
            .map(|(_, v, lease, rev)| (RouteValue::decode(v).unwrap(), lease, rev))
    }

    fn check_bound(&mut self) -> Result<(), String> {
        let mut seen = Vec::new();
        for (e, edge) in self.edges.iter().enumerate() {
            // An edge cut off keeps serving what it has (soft state); its clock stops.
            if !edge.alive || edge.cut_until.is_some() {
                continue;
            }
            for name in edge.local.keys() {
                if let Some((v, ..)) = self.owner(name)
                    && v.edge != edge.id
                {
                    seen.push((e, name.clone()));
                }
            }
        }
        self.conflicts.retain(|k, _| seen.contains(k));
        let up = self.store.up;
        for k in seen {
            let d = self.conflicts.entry(k.clone()).or_default();
            if up {
                *d += TICK;
            }
            let d = *d;
            self.worst_conflict = self.worst_conflict.max(d);
            if d > TTL {
                return Err(self.fail(format!(
                    "edge {} serves {} for {} ms while another edge owns it",
                    k.0,
                    k.1,
                    d.as_millis()
                )));
            }
        }
        Ok(())
    }

    fn check_converged(&self) -> Result<(), String> {
        let mut owned = BTreeMap::new();
        for (c, conn) in self.connectors.iter().enumerate() {
            let Some((e, inc, seq)) = conn.current else {
                return Err(self.fail(format!("connector {c} is not connected")));
            };
            let edge = &self.edges[e];
            if !edge.alive || edge.incarnation != inc || !edge.tunnels.contains_key(&seq) {
                return Err(self.fail(format!("connector {c}'s tunnel is not live")));
            }
            let lease = edge.dir.lease();
            if lease.is_none_or(|l| !self.store.lease_alive(l)) {
                return Err(self.fail(format!("edge {e} has no live lease")));
            }
            for name in &conn.names {
                let Some((v, l, _)) = self.owner(name) else {
                    return Err(self.fail(format!("{name} has no route")));
                };
                if v.edge != edge.id || v.tunnel != seq || l != lease {
                    return Err(self.fail(format!(
                        "{name} is routed to {:?} (lease {l:?}), its tunnel is edge {e}'s {seq}",
                        v
                    )));
                }
                if edge.local.get(name).is_none_or(|x| x.0 != seq) {
                    return Err(self.fail(format!("edge {e} does not serve {name}")));
                }
                owned.insert(Key::Route(name.clone()).encode(), ());
            }
        }
        for (k, ..) in self.store.entries() {
            if k.starts_with(ROUTES.as_bytes()) && !owned.contains_key(k) {
                return Err(self.fail(format!(
                    "a route is left over: {}",
                    String::from_utf8_lossy(k)
                )));
            }
        }
        for (e, edge) in self.edges.iter().enumerate() {
            if !edge.alive {
                return Err(self.fail(format!("edge {e} did not restart")));
            }
            let stale = edge.tunnels.iter().find(|(seq, t)| {
                self.connectors[t.connector].current != Some((e, edge.incarnation, **seq))
            });
            if let Some((seq, t)) = stale {
                return Err(self.fail(format!(
                    "edge {e} still has connector {}'s stale tunnel {seq}",
                    t.connector
                )));
            }
            if !edge.dir.is_live() {
                return Err(self.fail(format!("edge {e}'s replica does not follow the store")));
            }
            let mut replica = Vec::new();
            for (name, r) in edge.dir.routes() {
                replica.push((
                    Key::Route(name.clone()).encode(),
                    r.value.clone(),
                    r.lease,
                    r.revision,
                ));
            }
            let mut store = Vec::new();
            let mut remote = BTreeMap::new();
            for (k, v, lease, rev) in self.store.entries() {
                if let Ok(Key::Route(name)) = Key::decode(k) {
                    let v = RouteValue::decode(v).unwrap();
                    if v.edge != edge.id {
                        remote.insert(name, (v.edge.clone(), rev));
                    }
                    store.push((k.clone(), v, lease, rev));
                }
            }
            if replica != store {
                return Err(self.fail(format!(
                    "edge {e}'s replica differs from the store:\n  {replica:?}\n  {store:?}"
                )));
            }
            if edge.remote != remote {
                return Err(self.fail(format!(
                    "edge {e}'s remote routes differ from the store:\n  {:?}\n  {remote:?}",
                    edge.remote
                )));
            }
            if !edge.dir.is_published() {
                return Err(self.fail(format!("edge {e} has unpublished claims")));
            }
        }
        Ok(())
    }
}
