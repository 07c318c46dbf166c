//! Listening sockets: one `SO_REUSEPORT` socket per address per worker, all bound before any
//! worker starts, so that a bad address fails the start and port 0 resolves to one port that
//! every worker shares.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};

/// Pending connections the kernel queues per socket.
const BACKLOG: i32 = 4096;

/// What a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Browsers, and tunnels too when there is no peer port (single-port mode).
    Public {
        /// Whether tunnels are accepted here as well.
        tunnels: bool,
    },
    /// Tunnels only (dual-port mode).
    Peer,
}

/// One configured address, bound once per worker.
#[derive(Debug)]
pub(crate) struct BoundAddr {
    pub(crate) addr: SocketAddr,
    pub(crate) kind: ListenerKind,
    pub(crate) per_worker: Vec<TcpListener>,
}

/// Binds every address `workers` times.
pub(crate) fn bind_all(
    public: &[SocketAddr],
    peer: &[SocketAddr],
    workers: usize,
) -> io::Result<Vec<BoundAddr>> {
    let tunnels_on_public = peer.is_empty();
    let mut out = Vec::new();
    for (&addr, kind) in public
        .iter()
        .map(|a| {
            (
                a,
                ListenerKind::Public {
                    tunnels: tunnels_on_public,
                },
            )
        })
        .chain(peer.iter().map(|a| (a, ListenerKind::Peer)))
    {
        let first = bind_one(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        let actual = first.local_addr()?;
        let mut per_worker = vec![first];
        for _ in 1..workers {
            per_worker.push(bind_one(actual)?);
        }
        out.push(BoundAddr {
            addr: actual,
            kind,
            per_worker,
        });
    }
    Ok(out)
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // `[::]` must not also claim IPv4, or `0.0.0.0` on the same port could not be listed.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
