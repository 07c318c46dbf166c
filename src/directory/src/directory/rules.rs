//! The rules behind the inputs: what a change in the replica means for a claim, a release
//! and the edge's remote routes, and what to ask the store for next.

use std::time::Instant;

use sluice_proto::Hostname;

use super::state::{ClaimState, Lease, Pending, Release, Step, Watch};
use super::{
    Directory, MAX_QUEUED_WARNINGS, MAX_REPLICA_EDGES, MAX_REPLICA_ROUTES, Route, Warning,
};
use crate::io::{EdgeAction, KeyValue, LeaseId, OpId, StoreOp};
use crate::schema::{self, DecodeError, EdgeValue, Key, RouteValue};

impl Directory {
    pub(super) fn op(&mut self, pending: Pending) -> OpId {
        self.next_op += 1;
        let op = OpId(self.next_op);
        self.ops.insert(op, pending);
        op
    }

    pub(super) fn warn(&mut self, w: Warning) {
        if self.warnings.len() < MAX_QUEUED_WARNINGS {
            self.warnings.push_back(w);
        } else {
            self.stats.warnings_dropped += 1;
        }
    }

    pub(super) fn decode_key(&mut self, raw: &[u8]) -> Option<Key> {
        match Key::decode(raw) {
            Ok(k) => Some(k),
            // A section a newer version added.
            Err(schema::KeyError::UnknownSection) => None,
            Err(error) => {
                let key = schema::lossy(raw);
                self.warn(Warning::Malformed(DecodeError::Key { key, error }));
                None
            }
        }
    }

    /// Puts `kv` in the replica; the route's name, if it was one (a malformed value removes
    /// the name: it routes nowhere).
    pub(super) fn apply_put(&mut self, kv: KeyValue) -> Option<Hostname> {
        match self.decode_key(&kv.key)? {
            Key::Route(name) => {
                match RouteValue::decode(&kv.value) {
                    Ok(value) => {
                        if self.replica.len() >= MAX_REPLICA_ROUTES
                            && !self.replica.contains_key(&name)
                        {
                            self.warn(Warning::ReplicaFull);
                            return None;
                        }
                        let route = Route {
                            value,
                            lease: kv.lease,
                            revision: kv.mod_revision,
                        };
                        self.replica.insert(name.clone(), route);
                    }
                    Err(error) => {
                        self.replica.remove(&name);
                        let key = Key::Route(name.clone());
                        self.warn(Warning::Malformed(DecodeError::Value { key, error }));
                    }
                }
                Some(name)
            }
            Key::Edge(id) => {
                match EdgeValue::decode(&kv.value) {
                    Ok(v)
                        if self.edges.len() < MAX_REPLICA_EDGES || self.edges.contains_key(&id) =>
                    {
                        self.edges.insert(id, v.addr);
                    }
                    Ok(_) => self.warn(Warning::ReplicaFull),
                    Err(error) => {
                        self.edges.remove(&id);
                        let key = Key::Edge(id);
                        self.warn(Warning::Malformed(DecodeError::Value { key, error }));
                    }
                }
                None
            }
        }
    }

    /// Brings the claim, the release and the edge's remote route for `name` in line with the
    /// replica, after a change at `revision`.
    pub(super) fn settle(&mut self, name: &Hostname, revision: u64) {
        self.todo.insert(name.clone());
        let me = self.config.me.clone();
        let lease = self.lease();
        let held = self.claims.get(name).and_then(|c| match c.state {
            ClaimState::Held { revision } => Some((revision, c.seq)),
            _ => None,
        });
        if let Some((held, seq)) = held {
            let next = match self.replica.get(name) {
                // Deleted after we put it (lease expiry seen late, or an operator): again.
                None if revision > held => Some(ClaimState::Unpublished { basis: 0 }),
                Some(r) if r.revision > held => {
                    if r.value.edge != me {
                        None
                    } else if lease.is_some() && r.lease == lease && r.value.tunnel == seq {
                        Some(ClaimState::Held {
                            revision: r.revision,
                        })
                    } else {
                        Some(ClaimState::Unpublished { basis: r.revision })
                    }
                }
                _ => Some(ClaimState::Held { revision: held }),
            };
            match next {
                Some(state) => {
                    if let Some(c) = self.claims.get_mut(name) {
                        c.state = state;
                    }
                }
                None => self.give_up(name),
            }
        }
        if !self.replica.contains_key(name)
            && let Some(c) = self.claims.get_mut(name)
            && c.state == ClaimState::Yielded
        {
            c.state = ClaimState::Unpublished { basis: 0 };
            self.edge_out.push_back(EdgeAction::Reclaim {
                name: name.clone(),
                worker: c.worker,
                seq: c.seq,
            });
        }
        let route = self.replica.get(name);
        // Our key, but no tunnel of ours claims it: delete it if it is still that one.
        match route {
            Some(r) if r.value.edge == me && !self.claims.contains_key(name) => {
                if self
                    .releases
                    .get(name)
                    .is_none_or(|x| x.revision != r.revision)
                {
                    self.releases.insert(
                        name.clone(),
                        Release {
                            revision: r.revision,
                            op: None,
                        },
                    );
                }
            }
            _ => {
                if self.releases.get(name).is_some_and(|x| x.op.is_none()) {
                    self.releases.remove(name);
                }
            }
        }
        let want = route
            .filter(|r| r.value.edge != me)
            .map(|r| (r.value.edge.clone(), r.revision));
        let have = self.installed.get(name);
        match (have, want) {
            (have, Some(want)) if have != Some(&want) => {
                self.edge_out.push_back(EdgeAction::InstallRemote {
                    name: name.clone(),
                    edge: want.0.clone(),
                    revision: want.1,
                });
                self.installed.insert(name.clone(), want);
            }
            (Some((edge, _)), None) => {
                self.edge_out.push_back(EdgeAction::RemoveRemote {
                    name: name.clone(),
                    edge: edge.clone(),
                    revision,
                });
                self.installed.remove(name);
            }
            _ => {}
        }
    }

    pub(super) fn release(&mut self, name: &Hostname, revision: u64) {
        self.todo.insert(name.clone());
        self.releases
            .insert(name.clone(), Release { revision, op: None });
    }

    /// Another edge's newer claim took `name`: the edge stops serving it. A primary name
    /// ends its tunnel (and the claim); an alias waits to be free again, since the tunnel
    /// that took it may be one that is about to lose its own primary name (two claims of
    /// one connector's names, interleaved).
    pub(super) fn give_up(&mut self, name: &Hostname) {
        let Some(c) = self.claims.get_mut(name) else {
            return;
        };
        self.stats.yielded += 1;
        self.edge_out.push_back(EdgeAction::Yield {
            name: name.clone(),
            worker: c.worker,
            seq: c.seq,
            primary: c.primary,
        });
        if c.primary {
            self.claims.remove(name);
        } else {
            c.state = ClaimState::Yielded;
        }
    }

    pub(super) fn lose_lease(&mut self) {
        self.lease = Lease::None;
        self.registered = Step::No;
        self.ops
            .retain(|_, p| !matches!(p, Pending::KeepAlive | Pending::Register));
        for (name, c) in self.claims.iter_mut() {
            self.todo.insert(name.clone());
            match c.state {
                ClaimState::Held { revision } => {
                    c.state = ClaimState::Unpublished { basis: revision };
                }
                ClaimState::InFlight { op, basis, .. } => {
                    self.ops.remove(&op);
                    c.state = ClaimState::Unpublished { basis };
                }
                ClaimState::Unpublished { .. } | ClaimState::Blind | ClaimState::Yielded => {}
            }
        }
    }

    /// Asks for everything still needed, unless backing off after a failure.
    pub(super) fn pump(&mut self, now: Instant) {
        if self.stopped {
            self.todo.clear();
            return;
        }
        if let Some(until) = self.backoff_until {
            if now < until {
                return;
            }
            self.backoff_until = None;
        }
        if matches!(self.lease, Lease::None) {
            let op = self.op(Pending::Grant);
            self.lease = Lease::Granting { sent: now };
            let ttl_secs = self.config.lease_ttl.as_secs().max(1);
            self.store_out.push_back(StoreOp::Grant { op, ttl_secs });
        }
        if let Lease::Held {
            id,
            renew_at,
            renewing: None,
            ..
        } = self.lease
            && now >= renew_at
        {
            let op = self.op(Pending::KeepAlive);
            if let Lease::Held { renewing, .. } = &mut self.lease {
                *renewing = Some(now);
            }
            self.store_out
                .push_back(StoreOp::KeepAlive { op, lease: id });
        }
        if let Some(lease) = self.lease()
            && self.registered == Step::No
        {
            let op = self.op(Pending::Register);
            self.registered = Step::InFlight;
            let value = EdgeValue {
                addr: self.config.fleet_addr,
            };
            self.store_out.push_back(StoreOp::Register {
                op,
                key: Key::Edge(self.config.me.clone()).encode(),
                value: value.encode(),
                lease,
            });
        }
        // Only the names an input touched, so an edge with many routes pays per change, not
        // per route.
        let lease = self.lease();
        for name in std::mem::take(&mut self.todo) {
            if let Some(r) = self.releases.get(&name)
                && r.op.is_none()
            {
                let revision = r.revision;
                let op = self.op(Pending::Release { name: name.clone() });
                if let Some(r) = self.releases.get_mut(&name) {
                    r.op = Some(op);
                }
                self.store_out.push_back(StoreOp::Release {
                    op,
                    key: Key::Route(name.clone()).encode(),
                    if_mod_revision: revision,
                });
            }
            if self
                .claims
                .get(&name)
                .is_some_and(|c| matches!(c.state, ClaimState::Unpublished { .. }))
            {
                match lease {
                    Some(lease) => self.publish(&name, lease),
                    // Published once a lease is granted.
                    None => {
                        self.todo.insert(name);
                    }
                }
            }
        }
        if self.watch == Watch::Down {
            let op = self.op(Pending::Snapshot);
            self.watch = Watch::Snapshotting(op);
            self.store_out.push_back(StoreOp::Snapshot {
                op,
                prefix: schema::PREFIX.as_bytes().to_vec(),
            });
        }
    }

    pub(super) fn publish(&mut self, name: &Hostname, lease: LeaseId) {
        let Some(c) = self.claims.get(name) else {
            return;
        };
        let ClaimState::Unpublished { basis } = c.state else {
            return;
        };
        let value = RouteValue {
            edge: self.config.me.clone(),
            tunnel: c.seq,
            primary: c.primary,
        };
        let seq = c.seq;
        let op = self.op(Pending::Claim {
            name: name.clone(),
            seq,
        });
        if let Some(c) = self.claims.get_mut(name) {
            c.state = ClaimState::InFlight { op, basis, lease };
        }
        self.store_out.push_back(StoreOp::Claim {
            op,
            key: Key::Route(name.clone()).encode(),
            value: value.encode(),
            lease,
            if_mod_revision: basis,
        });
    }
}
