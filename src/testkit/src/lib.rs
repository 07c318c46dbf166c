//! # sluice-testkit: real SniTun peers, a TLS origin, certificates and curl, on loopback
//!
//! The one home of the fixtures of Sluice's integration tests (edge, connector, CLI, load
//! generator). It runs the *real* SniTun server and client from PyPI (releases 0.40.0 and
//! 0.47.0, each in a cached venv), a real origin (HTTPS or plain HTTP, PROXY v2 aware;
//! tokio-rustls), an echo server, throwaway certificates (rcgen) and the real `curl`, all on
//! 127.0.0.1 with port 0. It also starts child processes with their logs captured
//! ([`LoggedChild`]), reads `sluice edge`'s ready line ([`EdgeReady`]), writes key files and
//! waits, sync or async. Every child process runs in its own process group and is killed on
//! drop; every wait is bounded; logs land in temporary run folders that are kept when a test
//! panics.
//!
//! What it needs on the machine: `python3` ≥ 3.10 (and, for snitun 0.47.0, a Python ≥ 3.13),
//! PyPI the first time (venvs are cached, see [`peers`]), and `curl`.
//!
//! Environment:
//! - `SLUICE_PEER_CACHE`: where the venvs live (default
//!   `${XDG_CACHE_HOME:-$HOME/.cache}/sluice/snitun-peers`);
//! - `PEER040_PYTHON`, `PEER047_PYTHON`: the interpreter to build each venv with;
//! - `SLUICE_TESTKIT_KEEP`: keep every run folder (logs, configs, certificates), not only
//!   those of failing tests.
//!
//! Beside them, [`tunnel_peer`] is a tunnel client of ours for the edge's tests: the real
//! handshake and multiplexer on a thread with std sockets, one of the two loops around
//! `sluice_proto::mux::shell::ClientShell`.
//!
//! The Python side is two small scripts of ours in `peers/` (`server.py`, `client.py`) that
//! drive the unmodified PyPI releases; see their module docs for the lines they print.
//!
//! ```no_run
//! use std::net::Ipv4Addr;
//! use std::time::Duration;
//! use sluice_testkit::{Credentials, Curl, Mode, RealClient, RealServer, Release, SnitunPeers, TestCa, TlsOrigin};
//!
//! # fn main() -> sluice_testkit::Result<()> {
//! let peers = SnitunPeers::get();
//! let Some(peer) = peers.peer(Release::V040) else {
//!     eprintln!("skipped: {}", peers.unavailable_reason(Release::V040).unwrap_or_default());
//!     return Ok(());
//! };
//! let ca = TestCa::new()?;
//! let origin = TlsOrigin::start(&ca.leaf(&["a.example.test"])?)?;
//! let creds = Credentials::new("a.example.test")?;
//! let server = RealServer::start(peer, Mode::Single, &[creds.fernet_key.clone()])?;
//! let client = RealClient::start(peer, &creds.client_config(), server.tunnel_addr(), origin.addr)?;
//! client.wait_connected(Duration::from_secs(20))?;
//! server.wait_peer_registered("a.example.test", 1, Duration::from_secs(10))?;
//! let got = Curl::get(format!("https://a.example.test:{}/", server.port))
//!     .resolve("a.example.test", server.port, Ipv4Addr::LOCALHOST.into())
//!     .cacert(ca.ca_pem_path())
//!     .run()?;
//! assert!(got.ok(), "{got:?}");
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod credentials;
pub mod curl;
pub mod error;
pub mod net;
pub mod origin;
pub mod peers;
pub mod process;
pub mod ready;
pub mod real_client;
pub mod real_server;
pub mod rundir;
pub mod tls;
pub mod tunnel_peer;
pub mod wait;

pub use credentials::{Credentials, CredentialsBuilder, write_key_file};
pub use curl::{Curl, CurlResult, curl_available, sha256_of_pattern};
pub use error::{Error, Result};
pub use net::{EchoServer, http_get, metric_sum, read_until};
pub use nix::sys::signal::Signal;
pub use origin::{OriginOptions, RequestRecord, TlsOrigin};
pub use peers::{Peer, Release, SnitunPeers};
pub use process::{LoggedChild, STOP_GRACE};
pub use ready::EdgeReady;
pub use real_client::{ClientConfig, RealClient};
pub use real_server::{Mode, RealServer};
pub use rundir::RunDir;
pub use tls::{Leaf, TestCa};
pub use wait::{wait_for, wait_for_value, wait_until};
