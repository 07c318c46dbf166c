//! # sluice-testkit: real SniTun peers on loopback
//!
//! Test support for Sluice's edge and connector integration tests. It runs the *real* SniTun
//! server and client from PyPI (releases 0.40.0 and 0.47.0, each in a cached venv), all on
//! 127.0.0.1 with port 0. Every child process runs in its own process group and is killed on
//! drop; every wait is bounded; logs land in temporary run folders that are kept when a test
//! panics.
//!
//! What it needs on the machine: `python3` ≥ 3.10 (and, for snitun 0.47.0, a Python ≥ 3.13),
//! PyPI the first time (venvs are cached, see [`peers`]).
//!
//! Environment:
//! - `SLUICE_PEER_CACHE`: where the venvs live (default
//!   `${XDG_CACHE_HOME:-$HOME/.cache}/sluice/snitun-peers`);
//! - `PEER040_PYTHON`, `PEER047_PYTHON`: the interpreter to build each venv with;
//! - `SLUICE_TESTKIT_KEEP`: keep every run folder (logs, configs), not only
//!   those of failing tests.
//!
//! The Python side is two small scripts of ours in `peers/` (`server.py`, `client.py`) that
//! drive the unmodified PyPI releases; see their module docs for the lines they print.
//!

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod credentials;
pub mod error;
pub mod peers;
mod process;
pub mod real_client;
pub mod real_server;
pub mod rundir;
pub mod wait;

pub use credentials::{Credentials, CredentialsBuilder};
pub use error::{Error, Result};
pub use peers::{Peer, Release, SnitunPeers};
pub use process::STOP_GRACE;
pub use real_client::{ClientConfig, RealClient};
pub use real_server::{Mode, RealServer};
pub use rundir::RunDir;
pub use wait::{wait_for, wait_for_value};
