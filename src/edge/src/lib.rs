//! # sluice-edge: the server side of Sluice
//!
//! An SNI proxy into multiplexed SniTun tunnels, thread-per-core: each worker thread is pinned
//! to a CPU, runs its own monoio runtime on io_uring (epoll where io_uring is unavailable),
//! accepts on its own `SO_REUSEPORT` sockets and owns the tunnels it accepted. A browser
//! connection whose SNI names a tunnel on another worker is handed to that worker; route
//! changes travel as messages. Nothing else is shared on the data path. Names that other edges
//! of a fleet serve come in through [`EdgeHandle::install_remote`] and leave through
//! [`EdgeHandle::remove_remote`], which are, with [`EdgeHandle::route_events`] and
//! [`EdgeHandle::end_tunnel`], all the fleet sees of an edge.
//!
//! ```text
//!  browser ──TLS──▶ [worker k: hello peek, route] ──handover?──▶ [worker j: tunnel mux] ══▶ connector
//! ```
//!
//! What it does not do: terminate TLS (the edge never holds a tenant's key), or speak any
//! protocol itself: that is [`sluice_proto`]'s job; this crate owns sockets, loops and limits.

mod admin;
pub mod config;
pub mod events;
mod handle;
mod inspect;
mod io;
pub mod listener;
mod memory;
mod message;
pub mod metrics;
mod quota;
pub mod routes;
pub mod runtime;
mod sync;
mod worker;

pub use config::{ConfigError, EdgeConfig, IoDriver, RawConfig};
pub use events::RouteEvent;
pub use handle::{EdgeHandle, StartError, start};
pub use metrics::Metrics;
pub use runtime::Driver;
