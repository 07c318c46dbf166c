//! A browser whose name another edge of the fleet serves (a remote route).
//!
//! This is where edge-to-edge forwarding (issue 12) plugs in: it gets everything `conn`
//! knows about the browser and the route to the edge that owns the name. Until then the
//! browser is refused exactly like an unknown name (a fatal `unrecognized_name` alert), but
//! counted under its own reason, `remote_route`, so an operator can tell the two apart.

use bytes::Bytes;
use monoio::net::TcpStream;
use std::net::IpAddr;
use std::rc::Rc;
use tracing::debug;

use sluice_proto::sni::AlertDescription;

use super::Worker;
use super::admission::{Refused, refuse};
use crate::metrics::Refusal;
use crate::routes::RemoteRoute;

/// Serves a browser for a remote route. Issue 12 replaces the refusal with forwarding of the
/// preamble and the socket to `route.edge`, with `caller` as the browser's address.
pub(super) async fn forward(
    w: Rc<Worker>,
    stream: TcpStream,
    _preamble: Bytes,
    _caller: IpAddr,
    record_version: u16,
    route: RemoteRoute,
) {
    debug!(edge = %route.edge, rev = route.rev, "served by another edge; no forwarding yet");
    refuse(
        &w,
        stream,
        Refused::tls(
            Refusal::RemoteRoute,
            AlertDescription::UnrecognizedName,
            record_version,
        ),
    )
    .await
}
