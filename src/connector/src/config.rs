//! What a tunnel needs to serve its channels: where they go, who may use them, and every
//! bound on a wait. Plain data, a leaf: the builder fills it, the tunnel and channel tasks
//! read it, and it imports neither of them.

use std::time::Duration;
use tokio_rustls::TlsAcceptor;

use sluice_proto::mux::MuxConfig;

use crate::access::AccessList;

/// Every wait the connector does has a bound; these are they.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connection to the edge.
    pub connect: Duration,
    /// Token, challenge and answer, once connected.
    pub handshake: Duration,
    /// TCP connection to the local endpoint.
    pub endpoint_connect: Duration,
    /// The TLS handshake with a browser (terminate mode).
    pub tls_handshake: Duration,
    /// A write (to the edge or the endpoint) that makes no progress this long fails.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
            endpoint_connect: Duration::from_secs(10),
            tls_handshake: Duration::from_secs(15),
            write: Duration::from_secs(60),
        }
    }
}

/// Where channels go.
#[derive(Clone)]
pub(crate) enum Endpoint {
    /// The TLS bytes go as they are to a local TLS server.
    Passthrough { addr: String },
    /// The connector terminates TLS and sends plain HTTP to a local server.
    Terminate {
        tls: TlsAcceptor,
        http: String,
        forwarded_headers: bool,
    },
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Passthrough { addr } => write!(f, "passthrough to {addr}"),
            Self::Terminate {
                http,
                forwarded_headers,
                ..
            } => write!(
                f,
                "terminate TLS, HTTP to {http} (forwarded headers: {forwarded_headers})"
            ),
        }
    }
}

/// What a tunnel needs to serve its channels.
#[derive(Debug)]
pub(crate) struct ServeConfig {
    pub(crate) endpoint: Endpoint,
    pub(crate) proxy_protocol: bool,
    pub(crate) access: AccessList,
    pub(crate) timeouts: Timeouts,
    pub(crate) mux: MuxConfig,
}
