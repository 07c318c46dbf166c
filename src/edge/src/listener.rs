//! Listening sockets: one `SO_REUSEPORT` socket per address per worker, all bound before any
//! worker starts, so that a bad address fails the start and port 0 resolves to one port that
//! every worker shares.

use serde::Deserialize;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};

/// Pending connections the kernel queues per socket.
const BACKLOG: i32 = 4096;

/// What a listener accepts and trusts, as its workers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerKind {
    /// Browsers (TLS) may connect here.
    pub browsers: bool,
    /// Tunnels (a token) may connect here.
    pub tunnels: bool,
    /// A PROXY header must come first, and names the caller.
    pub trust_proxy: bool,
}

/// Who a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Browsers and tunnels, told apart by their first byte (single-port mode).
    #[default]
    Both,
    /// Browsers only.
    Browsers,
    /// Tunnels only.
    Tunnels,
}

/// One listener as configured: its address, who it serves, whether it trusts a PROXY header
/// (only behind a balancer, or from other edges of the fleet, that you trust).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSpec {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Who it serves.
    #[serde(default)]
    pub role: Role,
    /// Require a PROXY protocol v1/v2 header on every connection and take the caller from it.
    #[serde(default)]
    pub trust_proxy_protocol: bool,
}

impl ListenerSpec {
    /// What its workers accept.
    pub fn kind(&self) -> ListenerKind {
        ListenerKind {
            browsers: self.role != Role::Tunnels,
            tunnels: self.role != Role::Browsers,
            trust_proxy: self.trust_proxy_protocol,
        }
    }
}

/// One configured address, bound once per worker.
#[derive(Debug)]
pub(crate) struct BoundAddr {
    pub(crate) addr: SocketAddr,
    pub(crate) kind: ListenerKind,
    pub(crate) per_worker: Vec<TcpListener>,
}

/// Binds every listener `workers` times.
pub(crate) fn bind_all(specs: &[ListenerSpec], workers: usize) -> io::Result<Vec<BoundAddr>> {
    let mut out = Vec::new();
    for (&addr, kind) in specs.iter().map(|s| (&s.addr, s.kind())) {
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
