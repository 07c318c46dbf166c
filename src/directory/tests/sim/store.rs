//! An in-memory store with the etcd semantics the directory relies on: one revision counter,
//! leases with a TTL whose expiry deletes their keys (in one revision), transactions that
//! compare a key's mod revision, prefix reads, watches from a revision, compaction, and
//! outages (every operation fails, every watch breaks; back up, leases get a fresh TTL, as an
//! etcd leader extends them when elected).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice_directory::{ClaimOutcome, KeyValue, LeaseId, WatchEvent};

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    mod_revision: u64,
    lease: Option<LeaseId>,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    ttl: Duration,
    expires: Instant,
}

/// Why the store refused an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Out of reach.
    Down,
    /// The lease named is not (or no longer) there.
    NoLease,
}

#[derive(Debug)]
pub struct Store {
    pub up: bool,
    revision: u64,
    kv: BTreeMap<Vec<u8>, Entry>,
    leases: BTreeMap<LeaseId, Lease>,
    next_lease: i64,
    /// Every event after `compacted`, in revision order.
    history: Vec<(u64, WatchEvent)>,
    compacted: u64,
}

impl Store {
    pub fn new() -> Self {
        Self {
            up: true,
            revision: 1,
            kv: BTreeMap::new(),
            leases: BTreeMap::new(),
            next_lease: 100,
            history: Vec::new(),
            compacted: 0,
        }
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn check(&self) -> Result<(), Refusal> {
        if self.up { Ok(()) } else { Err(Refusal::Down) }
    }

    fn check_lease(&self, lease: LeaseId) -> Result<(), Refusal> {
        self.check()?;
        if self.leases.contains_key(&lease) {
            Ok(())
        } else {
            Err(Refusal::NoLease)
        }
    }

    pub fn grant(&mut self, now: Instant, ttl: Duration) -> Result<LeaseId, Refusal> {
        self.check()?;
        self.next_lease += 1;
        let id = LeaseId(self.next_lease);
        self.leases.insert(
            id,
            Lease {
                ttl,
                expires: now + ttl,
            },
        );
        Ok(id)
    }

    pub fn keep_alive(&mut self, now: Instant, lease: LeaseId) -> Result<Duration, Refusal> {
        self.check_lease(lease)?;
        let l = self.leases.get_mut(&lease).ok_or(Refusal::NoLease)?;
        l.expires = now + l.ttl;
        Ok(l.ttl)
    }

    pub fn lease_alive(&self, lease: LeaseId) -> bool {
        self.leases.contains_key(&lease)
    }

    /// Revokes `lease` now (a fault: the edge paused past its TTL), deleting its keys.
    pub fn revoke(&mut self, lease: LeaseId) {
        if self.leases.remove(&lease).is_some() {
            self.delete_lease_keys(lease);
        }
    }

    pub fn expire(&mut self, now: Instant) {
        if !self.up {
            return;
        }
        let dead: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.revoke(id);
        }
    }

    fn delete_lease_keys(&mut self, lease: LeaseId) {
        let keys: Vec<Vec<u8>> = self
            .kv
            .iter()
            .filter(|(_, e)| e.lease == Some(lease))
            .map(|(k, _)| k.clone())
            .collect();
        if keys.is_empty() {
            return;
        }
        self.revision += 1;
        for key in keys {
            self.kv.remove(&key);
            let revision = self.revision;
            self.history
                .push((revision, WatchEvent::Delete { key, revision }));
        }
    }

    pub fn set_up(&mut self, now: Instant, up: bool) {
        if up && !self.up {
            for l in self.leases.values_mut() {
                l.expires = now + l.ttl;
            }
        }
        self.up = up;
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>, lease: LeaseId) -> u64 {
        self.revision += 1;
        let e = Entry {
            value,
            mod_revision: self.revision,
            lease: Some(lease),
        };
        let kv = to_kv(&key, &e);
        self.kv.insert(key, e);
        self.history.push((self.revision, WatchEvent::Put(kv)));
        self.revision
    }

    fn mod_revision(&self, key: &[u8]) -> u64 {
        self.kv.get(key).map_or(0, |e| e.mod_revision)
    }

    pub fn claim(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        lease: LeaseId,
        if_mod_revision: u64,
    ) -> Result<ClaimOutcome, Refusal> {
        self.check_lease(lease)?;
        if self.mod_revision(&key) == if_mod_revision {
            let revision = self.put(key, value, lease);
            Ok(ClaimOutcome::Won { revision })
        } else {
            let current = self.kv.get(&key).map(|e| to_kv(&key, e));
            Ok(ClaimOutcome::Lost { current })
        }
    }

    pub fn register(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        lease: LeaseId,
    ) -> Result<(), Refusal> {
        self.check_lease(lease)?;
        self.put(key, value, lease);
        Ok(())
    }

    pub fn release(&mut self, key: Vec<u8>, if_mod_revision: u64) -> Result<(), Refusal> {
        self.check()?;
        if self.kv.contains_key(&key) && self.mod_revision(&key) == if_mod_revision {
            self.revision += 1;
            self.kv.remove(&key);
            let revision = self.revision;
            self.history
                .push((revision, WatchEvent::Delete { key, revision }));
        }
        Ok(())
    }

    pub fn snapshot(&self, prefix: &[u8]) -> Result<(Vec<KeyValue>, u64), Refusal> {
        self.check()?;
        let kvs = self
            .kv
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| to_kv(k, e))
            .collect();
        Ok((kvs, self.revision))
    }

    /// Events from revision `from` on, or `None` if compacted past it.
    pub fn events_from(&self, from: u64) -> Option<Vec<WatchEvent>> {
        if from <= self.compacted {
            return None;
        }
        let start = self.history.partition_point(|(r, _)| *r < from);
        Some(
            self.history[start..]
                .iter()
                .map(|(_, e)| e.clone())
                .collect(),
        )
    }

    pub fn compact(&mut self) {
        self.compacted = self.revision;
        self.history.clear();
    }

    /// The route entries: key, value, lease, mod revision.
    pub fn entries(&self) -> impl Iterator<Item = (&Vec<u8>, &[u8], Option<LeaseId>, u64)> {
        self.kv
            .iter()
            .map(|(k, e)| (k, e.value.as_slice(), e.lease, e.mod_revision))
    }
}

fn to_kv(key: &[u8], e: &Entry) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        value: e.value.clone(),
        mod_revision: e.mod_revision,
        lease: e.lease,
    }
}
