//! What the edge tells the world outside its process about its routes: the fleet (issue 12)
//! mirrors them into the directory. Each worker keeps its own list of observers, so a claim
//! costs one channel send per observer and nothing is shared on the data path.

use sluice_proto::Hostname;

/// A route change on this edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteEvent {
    /// A tunnel registered on `worker` and claims `names` (primary first).
    Claimed {
        /// The names, primary first.
        names: Vec<Hostname>,
        /// The worker that owns the tunnel.
        worker: usize,
        /// The tunnel's registration sequence number (later wins).
        seq: u64,
    },
    /// The tunnel `(worker, seq)` is gone, and with it its claims on `names`.
    Released {
        /// The names it had claimed.
        names: Vec<Hostname>,
        /// The worker that owned it.
        worker: usize,
        /// Its registration sequence number.
        seq: u64,
    },
}
