//! The line `sluice edge` prints on stdout once it listens, parsed: where a test started on
//! port 0 finds its edge.
//!
//! ```
//! let line = "sluice edge ready listen=127.0.0.1:4000,127.0.0.1:4001 \
//!             tunnel_listen=127.0.0.1:4000,127.0.0.1:4001 admin=none workers=2 driver=epoll";
//! let ready = sluice_testkit::EdgeReady::parse(line).unwrap();
//! assert_eq!(ready.listen.len(), 2);
//! assert_eq!((ready.admin, ready.workers, ready.driver.as_str()), (None, 2, "epoll"));
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::process::LoggedChild;

/// What the ready line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeReady {
    /// The browser addresses.
    pub listen: Vec<SocketAddr>,
    /// Where tunnels connect.
    pub tunnel_listen: Vec<SocketAddr>,
    /// The admin endpoint, if any.
    pub admin: Option<SocketAddr>,
    /// How many workers run.
    pub workers: usize,
    /// The I/O driver they run on: `io_uring`, `epoll`, or `mixed` (a fallback on some workers).
    pub driver: String,
}

/// How the line starts.
pub const READY_PREFIX: &str = "sluice edge ready ";

impl EdgeReady {
    /// Parses the line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Self> {
        let fields = line.trim_end().strip_prefix(READY_PREFIX)?;
        let field = |name: &str| {
            fields
                .split(' ')
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        };
        let addrs = |name: &str| -> Option<Vec<SocketAddr>> {
            // An edge with no listener of that kind prints the field empty.
            let list = field(name)?;
            if list.is_empty() {
                return Some(Vec::new());
            }
            list.split(',').map(|a| a.parse().ok()).collect()
        };
        let admin = match field("admin")? {
            "none" => None,
            a => Some(a.parse().ok()?),
        };
        Some(Self {
            listen: addrs("listen")?,
            tunnel_listen: addrs("tunnel_listen")?,
            admin,
            workers: field("workers")?.parse().ok()?,
            driver: field("driver")?.to_owned(),
        })
    }

    /// Waits for the ready line of an edge started as `child`.
    pub fn wait(child: &mut LoggedChild, timeout: Duration) -> Result<Self> {
        let line = child.next_line("the edge's ready line", timeout, |l| {
            Self::parse(l).is_some()
        })?;
        Self::parse(&line).ok_or_else(|| Error::Other(format!("not a ready line: {line}")))
    }
}
