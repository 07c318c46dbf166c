//! The directory's private state: where the lease, the watch and each claim stand.

use std::time::{Duration, Instant};

use sluice_proto::Hostname;

use crate::io::{LeaseId, OpId};

/// The edge's lease, as far as this side knows. `expires` is counted from when the last
/// grant or keepalive was *sent*, so it runs out here no later than in the store.
#[derive(Debug)]
pub(super) enum Lease {
    None,
    Granting {
        sent: Instant,
    },
    Held {
        id: LeaseId,
        ttl: Duration,
        expires: Instant,
        renew_at: Instant,
        /// When the keepalive in flight was sent.
        renewing: Option<Instant>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Where the edge key's put stands (once per lease).
pub(super) enum Step {
    No,
    InFlight,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Whether the replica follows the store: resyncing first, then watching.
pub(super) enum Watch {
    Down,
    Snapshotting(OpId),
    Live(OpId),
}

#[derive(Debug, Clone)]
/// A local tunnel's claim on one name: which tunnel (as the edge's route events name it)
/// and how far the store has it.
pub(super) struct Claim {
    pub(super) worker: usize,
    pub(super) seq: u64,
    pub(super) primary: bool,
    pub(super) state: ClaimState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClaimState {
    /// To be put, replacing the key at `basis` (0: absent) and nothing newer.
    Unpublished { basis: u64 },
    /// Asked for, under `lease`: if that lease is lost meanwhile, a win is put again.
    InFlight {
        op: OpId,
        basis: u64,
        lease: LeaseId,
    },
    /// In the store, put at `revision`.
    Held { revision: u64 },
    /// Claimed while the replica was not following the store: what it replaces is known
    /// once a snapshot is in.
    Blind,
    /// An alias another edge's claim took while this tunnel keeps its primary name: claimed
    /// again once the store holds it for nobody.
    Yielded,
}

#[derive(Debug, Clone, Copy)]
/// A route key of this edge's that no tunnel claims, to delete if still at `revision`.
pub(super) struct Release {
    pub(super) revision: u64,
    pub(super) op: Option<OpId>,
}

#[derive(Debug, Clone)]
/// What an operation in flight was for, so its answer finds its way.
pub(super) enum Pending {
    Claim { name: Hostname, seq: u64 },
    Release { name: Hostname },
    Grant,
    KeepAlive,
    Register,
    Revoke,
    Snapshot,
    Watch,
}
