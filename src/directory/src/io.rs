//! The vocabulary between the directory and its shell: store operations out, their results
//! and watch events in, edge actions out.

use sluice_proto::{EdgeId, Hostname};

/// Names one store operation, so its result can be matched to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// A lease as the store numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

/// An entry as the store holds it (etcd's `KeyValue`, the fields the directory reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key's bytes.
    pub key: Vec<u8>,
    /// The value's bytes.
    pub value: Vec<u8>,
    /// The revision of the key's last change.
    pub mod_revision: u64,
    /// The lease the key was put under (`None`: none).
    pub lease: Option<LeaseId>,
}

/// What the shell must run against the store. Each is answered once, by the matching
/// `Directory::handle_*`, or by `handle_failed` when the store could not be reached (the
/// directory then assumes it had no effect and retries what still matters), or, for an
/// operation under a lease the store no longer has, by `handle_lease_lost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Release a name if it is still ours: a transaction that deletes `key` only if its mod
    /// revision is `if_mod_revision`. Answered by `handle_done` whatever the compare said
    /// (the watch tells the rest).
    Release {
        /// The operation.
        op: OpId,
        /// The route key.
        key: Vec<u8>,
        /// The revision of our claim.
        if_mod_revision: u64,
    },
    /// Claim a name: a transaction that puts `value` at `key` under `lease` if the key's mod
    /// revision is `if_mod_revision` (0: the key does not exist), and otherwise reads the key.
    /// Answered by `handle_claim`.
    Claim {
        /// The operation.
        op: OpId,
        /// The route key.
        key: Vec<u8>,
        /// The route value.
        value: Vec<u8>,
        /// Our lease.
        lease: LeaseId,
        /// The revision the claim replaces.
        if_mod_revision: u64,
    },
    /// Grant a lease of `ttl_secs`. Answered by `handle_lease_granted`.
    Grant {
        /// The operation.
        op: OpId,
        /// Its time to live.
        ttl_secs: u64,
    },
    /// Refresh the lease. Answered by `handle_lease_renewed`, or `handle_lease_lost` when the
    /// store no longer has it.
    KeepAlive {
        /// The operation.
        op: OpId,
        /// The lease.
        lease: LeaseId,
    },
    /// Put this edge's key (its fleet address) under its lease. Answered by `handle_done`.
    Register {
        /// The operation.
        op: OpId,
        /// The edge key.
        key: Vec<u8>,
        /// The edge value.
        value: Vec<u8>,
        /// Our lease.
        lease: LeaseId,
    },
    /// Revoke the lease: the store deletes every key under it (this edge's claims and its
    /// edge key) in one revision. Asked for once, by `handle_shutdown`; no answer is needed.
    Revoke {
        /// The operation.
        op: OpId,
        /// The lease.
        lease: LeaseId,
    },
    /// Read everything under `prefix`, and the store's revision at that read. Answered by
    /// `handle_snapshot`.
    Snapshot {
        /// The operation.
        op: OpId,
        /// The schema's prefix.
        prefix: Vec<u8>,
    },
    /// Watch everything under `prefix` from `from_revision` on (the snapshot's revision + 1),
    /// replacing any watch before it. Events go to `handle_watch`; if the watch breaks or
    /// the store compacted past `from_revision`, `handle_watch_lost`.
    Watch {
        /// The operation.
        op: OpId,
        /// The schema's prefix.
        prefix: Vec<u8>,
        /// The first revision to deliver.
        from_revision: u64,
    },
}

impl StoreOp {
    /// The operation's id.
    pub fn id(&self) -> OpId {
        match self {
            Self::Release { op, .. }
            | Self::Claim { op, .. }
            | Self::Grant { op, .. }
            | Self::KeepAlive { op, .. }
            | Self::Register { op, .. }
            | Self::Revoke { op, .. }
            | Self::Snapshot { op, .. }
            | Self::Watch { op, .. } => *op,
        }
    }
}

/// The answer to a [`StoreOp::Claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The compare held: the name was put at this revision.
    Won {
        /// The revision of the put.
        revision: u64,
    },
    /// The compare failed: the key as it is now (`None`: it does not exist).
    Lost {
        /// The key now.
        current: Option<KeyValue>,
    },
}

/// One event of the prefix watch, in revision order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A put.
    Put(KeyValue),
    /// A delete (by a transaction or a lease's expiry).
    Delete {
        /// The key's bytes.
        key: Vec<u8>,
        /// The revision of the delete.
        revision: u64,
    },
}

/// What the shell must do to its edge (`EdgeHandle`'s methods of the same names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeAction {
    /// Stop serving `name` from the local tunnel `(worker, seq)` because another edge's
    /// newer claim took it. For the tunnel's primary name the tunnel ends (`end_tunnel`); for
    /// an alias only the name moves (the edge has no call for that yet: see the crate doc).
    Yield {
        /// The name.
        name: Hostname,
        /// The tunnel's worker.
        worker: usize,
        /// The tunnel's registration sequence number.
        seq: u64,
        /// Whether `name` is the tunnel's primary name: if so, end the tunnel.
        primary: bool,
    },
    /// Serve `name` from the local tunnel `(worker, seq)` again: an alias it yielded is free
    /// and claimed for it anew. (The edge has no call for this yet either.)
    Reclaim {
        /// The name.
        name: Hostname,
        /// The tunnel's worker.
        worker: usize,
        /// The tunnel's registration sequence number.
        seq: u64,
    },
    /// `install_remote(&[name], &edge, revision)`.
    InstallRemote {
        /// The name.
        name: Hostname,
        /// The edge serving it.
        edge: EdgeId,
        /// The revision of its claim.
        revision: u64,
    },
    /// `remove_remote(&[name], &edge, Some(revision))`.
    RemoveRemote {
        /// The name.
        name: Hostname,
        /// The edge it was routed to.
        edge: EdgeId,
        /// The revision of the change that removed it.
        revision: u64,
    },
}
