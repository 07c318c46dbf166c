//! What crosses between workers: connections handed to the worker that owns their tunnel,
//! route changes (this edge's claims and releases, other edges' routes from the handle), key
//! reloads, the admin's questions and shutdown. Nothing else does.

use bytes::Bytes;
use std::net::{IpAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use sluice_proto::token::FernetKey;
use sluice_proto::{EdgeId, Hostname};

/// A message to a worker.
#[derive(Debug)]
pub(crate) enum Message {
    /// A browser connection for a tunnel on the receiving worker.
    Handover(Handover),
    /// A tunnel on `worker` claims `names` (primary first).
    RouteClaim {
        names: Arc<[Hostname]>,
        worker: usize,
        seq: u64,
    },
    /// The tunnel `(worker, seq)` is gone.
    RouteRelease {
        names: Arc<[Hostname]>,
        worker: usize,
        seq: u64,
    },
    /// `names` are served by `edge`, as of directory revision `rev` (sent to every worker).
    RemoteInstall {
        names: Arc<[Hostname]>,
        edge: EdgeId,
        rev: u64,
    },
    /// `edge` no longer serves `names`, as of revision `rev` (any revision when `None`).
    RemoteRemove {
        names: Arc<[Hostname]>,
        edge: EdgeId,
        rev: Option<u64>,
    },
    /// New Fernet keys.
    Keys(Arc<[FernetKey]>),
    /// Tell this observer of every route claimed or released on this worker from now on.
    Observe(std::sync::mpsc::Sender<crate::events::RouteEvent>),
    /// End the tunnel that owns `name` if it is on this worker; answer whether it was.
    EndTunnel {
        name: Hostname,
        reply: std::sync::mpsc::SyncSender<bool>,
    },
    /// The admin asks for views of the worker's tunnels.
    Inspect(crate::inspect::Inspect),
    /// Stop accepting; let connections finish for `grace`, then close everything.
    Shutdown { grace: Duration },
}

/// A browser connection whose hello has been read, on its way to the tunnel's worker.
#[derive(Debug)]
pub(crate) struct Handover {
    pub(crate) stream: TcpStream,
    /// Everything read so far, from the first byte of the ClientHello.
    pub(crate) preamble: Bytes,
    pub(crate) caller: IpAddr,
    pub(crate) sni: Hostname,
    pub(crate) record_version: u16,
    /// Workers it has visited; bounded, in case routes move while it travels.
    pub(crate) hops: u8,
}
