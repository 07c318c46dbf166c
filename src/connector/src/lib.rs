//! # sluice-connector: the home side of Sluice
//!
//! A connector dials out to an edge (Sluice's or a SniTun server), authenticates with a token,
//! and serves the channels the edge opens for browsers: each goes to a local endpoint, with
//! flow control both ways. It is a library an application embeds (as Home Assistant embeds
//! SniTun's client) and the engine of `sluice connect`.
//!
//! ```text
//!  browser ══TLS══▶ edge ══ tunnel (token, challenge, multiplexed channels) ══▶ connector
//!                                                                                │ per channel:
//!                      access list ─▶ passthrough: [PROXY v2] + the TLS bytes ──▶ home TLS server
//!                                 └─▶ terminate: rustls here, HTTP + X-Forwarded-For ──▶ home HTTP server
//! ```
//!
//! It reconnects after any failure with exponential backoff and full jitter, refreshes its
//! token from a file or a command before it expires, reports its [`State`], and connects or
//! disconnects on request ([`ConnectorHandle`], or over HTTP with [`control`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sluice_connector::Error> {
//! use sluice_connector::{Connector, CredentialSource};
//! let handle = Connector::builder("edge.example.net:443", CredentialSource::File("creds.json".into()))
//!     .passthrough("127.0.0.1:8123")
//!     .proxy_protocol(true)
//!     .build()?;
//! let mut states = handle.subscribe();
//! states.wait_for(|s| s.is_connected()).await.ok();
//! handle.disconnect();
//! # Ok(()) }
//! ```
//!
//! What it does not do: listen for browsers (the edge does), issue or verify tokens (a session
//! master does; `sluice token`), obtain certificates, or speak HTTP/2 in terminate mode (it
//! offers HTTP/1.1 only, so that it can add the caller's address to every request). The
//! protocol itself lives in [`sluice_proto`]; this crate owns sockets, tasks and timers, on
//! tokio.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod backoff;
mod buffers;
mod builder;
mod channel;
mod config;
pub mod control;
pub mod credentials;
mod error;
pub mod forwarded;
mod handle;
mod io;
mod slot;
mod state;
mod supervisor;
mod sync;
pub mod tls;
mod tunnel;

pub use access::AccessList;
pub use backoff::Backoff;
pub use builder::{Builder, Connector};
pub use config::Timeouts;
pub use credentials::{CredentialSource, Credentials, CredentialsFile};
pub use error::Error;
pub use handle::ConnectorHandle;
pub use state::State;
pub use tls::Fingerprints;
