//! The edge's defaults, in one place: [`RawConfig::resolve`](super::RawConfig::resolve) fills
//! every setting left unset from here, [`EdgeConfig::for_keys`](super::EdgeConfig::for_keys)
//! goes through the same path, and `sluice edge --help` prints these values. The
//! multiplexer's caps and watermarks come from `MuxConfig::server()` in `sluice-proto`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Where a newcomer's edge listens when nothing is configured.
pub const LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8443);
/// `workers = 0` (or unset): one worker per CPU, decided by `resolve`.
pub const WORKERS_PER_CPU: usize = 0;
/// Most worker threads an edge runs.
pub const MAX_WORKERS: usize = 1024;
/// Each worker pinned to its own CPU.
pub const PIN_WORKERS: bool = true;
/// No PROXY header expected.
pub const TRUST_PROXY_PROTOCOL: bool = false;
/// Memory freed after a burst is given back.
pub const TRIM_MEMORY: bool = true;

/// Tunnels connected at once, in the whole edge.
pub const MAX_TUNNELS: usize = 100_000;
/// Browser connections at once, in the whole edge.
pub const MAX_CONNECTIONS: usize = 1_000_000;
/// Connections in their hello or handshake, in the whole edge.
pub const MAX_PENDING_HANDSHAKES: usize = 10_000;
/// Largest ClientHello handshake message.
pub const MAX_HELLO_LEN: usize = sluice_proto::limits::DEFAULT_MAX_HELLO_LEN;
/// Smallest `max_hello_len` accepted (a real ClientHello is rarely under 512 bytes).
pub const MIN_HELLO_LEN: usize = 512;

/// Until a browser's ClientHello is complete.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Until a tunnel's token and challenge answer are in.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A tunnel silent this long is dropped (its client pings every 50 s).
pub const TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A channel idle both ways this long is closed.
pub const CHANNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A write that does not progress this long fails.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful shutdown waits for browser connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
