//! # sluice-directory: the fleet's directory as a sans-I/O state machine
//!
//! Each edge of a fleet keeps a *replica* of one shared directory in a store with etcd's
//! semantics: which edge's tunnel serves each host name. This crate is that model for one
//! edge, [`Directory`]: what it writes (the [`schema`]), when, and what it tells its edge.
//!
//! ```text
//!  edge's route events ──handle_claimed / handle_released──▶ ┌───────────┐ ──poll_store──▶ shell runs it on etcd
//!  etcd answers, watch ──handle_claim / handle_watch / …───▶ │ Directory │ ──poll_edge───▶ EdgeHandle: install_remote,
//!  time ────────────────handle_timeout (poll_timeout) ─────▶ └───────────┘                 remove_remote, end_tunnel
//! ```
//!
//! The rules:
//! - **Claim.** A tunnel's names are put under the edge's *lease*, each in a transaction that
//!   compares the route key's mod revision with the claim this edge knew of when the tunnel
//!   registered (the key absent: 0). A tunnel that reconnected elsewhere thus takes its names
//!   over from the edge it left, and a claim that the store took in the meantime (a newer
//!   tunnel) wins over it: the loser is told to [`EdgeAction::Yield`] (its primary name: end
//!   the tunnel; an alias: stop serving it, and [`EdgeAction::Reclaim`] it once it is free,
//!   since the tunnel that took it may be one about to lose its own primary name). An edge
//!   whose replica is not following the store claims nothing until a snapshot is in (a
//!   blind claim could replace one it has not seen).
//! - **Release.** A released name is deleted only if its key is still the one this edge put
//!   (a transaction on the mod revision), so a release never removes a newer claim.
//! - **Lease.** Routes die with their edge's lease: the store deletes them, every replica sees
//!   the deletes and removes its remote routes. An edge whose lease is lost gets a new one and
//!   claims its names again, over the revisions it held (not over newer claims).
//! - **Soft state.** While the store is out of reach nothing is taken from the edge: it keeps
//!   its tunnels and the remote routes it last knew; failed operations are retried after
//!   `retry_after`, claims republished when a lease is back.
//! - **Resync.** A watch that breaks or is compacted away is replaced by a snapshot of the
//!   prefix at a revision R, a diff against what the edge was told, and a watch from R + 1.
//!
//! What it does not do: talk to etcd, open sockets, read a clock, spawn anything, or draw
//! random numbers. The etcd client and the glue to `EdgeHandle` are `src/fleet`'s (issue 12,
//! later). The edge has no call yet to give up, or take back, one alias of a tunnel that
//! keeps running: [`EdgeAction::Yield`] of an alias and [`EdgeAction::Reclaim`] need one
//! (`end_tunnel` would end the primary too).
//!
//! The simulation in `tests/simulation.rs` runs N of these against an in-memory store with
//! etcd's semantics and faults, and checks that the fleet converges.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::panic))]

mod directory;
pub mod io;
pub mod schema;

pub use directory::{
    Config, Directory, MAX_QUEUED_WARNINGS, MAX_REPLICA_EDGES, MAX_REPLICA_ROUTES, Route, Stats,
    Warning,
};
pub use io::{ClaimOutcome, EdgeAction, KeyValue, LeaseId, OpId, StoreOp, WatchEvent};
