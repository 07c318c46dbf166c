//! # sluice-proto: the sans-I/O core of Sluice
//!
//! Everything Sluice knows about bytes on the wire lives here, with no async runtime, no
//! sockets, no clock and no random generator of its own. Callers pass bytes, the current time
//! and a [`Random`] source in; they get parsed values, events and bytes to send out.
//!
//! What it does:
//! - [`hostname`]: the normalized, validated host names that routing works on;
//! - [`edge_id`]: the operator-given name of one edge of a fleet;
//! - [`sni`]: an incremental ClientHello parser that finds the SNI;
//! - [`proxy`]: PROXY protocol v1 and v2, parse and emit;
//! - [`http1`]: terminate mode's HTTP/1 request rewriter (the caller's address on every
//!   request) and the response watcher that tells it when a connection stops being HTTP.
//!
//! What it does not do: open sockets, read clocks, spawn tasks, log to anything but `tracing`,
//! or terminate TLS. The edge and the connector are the shells that do those things.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(
    test,
    allow(clippy::disallowed_methods, clippy::disallowed_types, clippy::panic)
)]

pub mod crypto;
pub mod edge_id;
pub mod frame;
pub mod handshake;
pub mod hostname;
pub mod http1;
pub mod limits;
pub mod mux;
pub mod peek;
pub mod preamble;
pub mod proxy;
pub mod random;
pub mod sni;
#[cfg(test)]
mod test_vectors;
pub mod token;
pub mod version;

pub use edge_id::{EdgeId, EdgeIdError};
pub use hostname::{Hostname, HostnameError};
pub use peek::Peek;
pub use random::Random;
