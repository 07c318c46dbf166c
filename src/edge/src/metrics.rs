//! Counters and gauges, one block per worker, rendered in the Prometheus text format.
//!
//! Each worker writes only its own block (relaxed atomics on its own cache lines: no
//! contention); the admin thread reads them all when scraped.

use crate::memory::TrimStats;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};

use crate::runtime::Driver;

macro_rules! labelled {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $label:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),* }
        impl $name {
            /// Every value, in label order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// The Prometheus label value.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),* }
            }
        }
    };
}

labelled! {
    /// Why a connection was turned away.
    Refusal {
        /// SNI names no connected tunnel.
        UnknownHost = "unknown_host",
        /// SNI names a route on another edge, and edges do not forward to each other yet.
        RemoteRoute = "remote_route",
        /// A ClientHello without SNI.
        NoSni = "no_sni",
        /// Neither TLS nor a tunnel token.
        NotTls = "not_tls",
        /// A broken ClientHello or an invalid server name.
        MalformedHello = "malformed_hello",
        /// A ClientHello over the size cap.
        HelloTooLarge = "hello_too_large",
        /// No complete ClientHello in time.
        HelloTimeout = "hello_timeout",
        /// Closed before the ClientHello was complete.
        ClosedEarly = "closed_early",
        /// The ClientHello came in more reads than any real client needs.
        HelloTrickled = "hello_trickled",
        /// A missing or malformed PROXY header on a trusted listener.
        BadProxyHeader = "bad_proxy_header",
        /// A token on a browser-only listener.
        TunnelOnPublicPort = "tunnel_on_public_port",
        /// TLS on a tunnel-only listener.
        TlsOnTunnelPort = "tls_on_tunnel_port",
        /// The edge's `max_tunnels`.
        TunnelLimit = "tunnel_limit",
        /// The tunnel's `max_channels_per_tunnel`.
        ChannelLimit = "channel_limit",
        /// The edge's `max_connections`.
        ConnectionLimit = "connection_limit",
        /// The edge's `max_pending_handshakes`.
        PendingLimit = "pending_limit",
        /// The edge is shutting down.
        ShuttingDown = "shutting_down",
    }
}

labelled! {
    /// Why a channel (one proxied browser connection) ended.
    ChannelEnd {
        /// The browser closed or reset its connection.
        BrowserClosed = "browser_closed",
        /// The connector closed the channel (the home server is done).
        HomeClosed = "home_closed",
        /// No data either way for the channel idle timeout.
        Idle = "idle",
        /// The browser fell further behind than the channel's or the tunnel's queue cap.
        Overrun = "overrun",
        /// A write to the browser failed or made no progress in time.
        WriteFailed = "write_failed",
        /// The connector opened a second channel under the same id.
        DuplicateId = "duplicate_id",
        /// Its tunnel ended.
        TunnelEnded = "tunnel_ended",
    }
}

labelled! {
    /// Why a tunnel handshake failed.
    HandshakeFailure {
        /// Not a token, or malformed.
        InvalidToken = "invalid_token",
        /// Not signed by any configured key.
        WrongKey = "wrong_key",
        /// Past its `valid` time.
        Expired = "expired",
        /// The challenge answer was wrong or did not decrypt.
        ChallengeFailed = "challenge_failed",
        /// Token or answer not received in time.
        Timeout = "timeout",
        /// The connection closed or failed during the handshake.
        Io = "io",
    }
}

labelled! {
    /// Why a tunnel ended.
    TunnelEnd {
        /// The peer closed the connection.
        PeerClosed = "peer_closed",
        /// The peer broke the protocol.
        ProtocolError = "protocol_error",
        /// Idle, unanswered keepalive, or a write that did not progress.
        Timeout = "timeout",
        /// Its token expired.
        Expired = "expired",
        /// A newer tunnel for its host name connected.
        Replaced = "replaced",
        /// A socket error.
        Io = "io",
        /// The edge shut down.
        Shutdown = "shutdown",
        /// The edge's owner ended it (`EdgeHandle::end_tunnel`).
        Ended = "ended",
    }
}

/// One worker's counters.
#[derive(Debug)]
#[repr(align(128))]
pub struct WorkerMetrics {
    driver: AtomicU8,
    /// Tunnels connected now.
    pub tunnels: AtomicI64,
    /// Channels (proxied browser connections) open now.
    pub channels: AtomicI64,
    /// Browser connections accepted.
    pub browsers_accepted: AtomicU64,
    /// Tunnels that completed the handshake.
    pub tunnels_accepted: AtomicU64,
    /// Connections handed to another worker.
    pub handovers_out: AtomicU64,
    /// Connections received from another worker.
    pub handovers_in: AtomicU64,
    /// Bytes from browsers into tunnels.
    pub bytes_to_tunnels: AtomicU64,
    /// Bytes from tunnels to browsers.
    pub bytes_to_browsers: AtomicU64,
    /// Bytes received from tunnels and not yet written to browsers (the multiplexers' queues).
    pub queued_to_browsers: AtomicI64,
    /// The most bytes one channel received after it was sent PAUSE: what was in flight.
    pub pause_overshoot_max: AtomicU64,
    /// Times a quiet tunnel gave its read buffer's memory back.
    pub tunnel_buffers_shed: AtomicU64,
    /// PAUSE frames sent to tunnels (a channel's browser fell behind).
    pub pauses_sent: AtomicU64,
    /// Times an idle tunnel's multiplexer dropped its expanded key schedule and spare capacity.
    pub tunnels_compacted: AtomicU64,
    /// Sockets this worker accepts connections on now; 0 once a drain has begun and every
    /// accept loop has let go of its socket.
    pub listeners: AtomicI64,
    /// Reads made while classifying new connections (PROXY header, then hello or token): a
    /// hello trickled in one-byte writes costs one each.
    pub preamble_reads: AtomicU64,
    /// Names in this worker's directory served by this edge's tunnels.
    routes_local: AtomicU64,
    /// Names in this worker's directory served by other edges.
    routes_remote: AtomicU64,
    /// Remote routes refused for being over `MAX_REMOTE_ROUTES`.
    pub remote_routes_refused: AtomicU64,
    refusals: [AtomicU64; Refusal::ALL.len()],
    handshake_failures: [AtomicU64; 6],
    tunnel_ends: [AtomicU64; TunnelEnd::ALL.len()],
    channel_ends: [AtomicU64; 7],
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self {
            driver: AtomicU8::new(0),
            tunnels: AtomicI64::new(0),
            channels: AtomicI64::new(0),
            browsers_accepted: AtomicU64::new(0),
            tunnels_accepted: AtomicU64::new(0),
            handovers_out: AtomicU64::new(0),
            handovers_in: AtomicU64::new(0),
            bytes_to_tunnels: AtomicU64::new(0),
            bytes_to_browsers: AtomicU64::new(0),
            queued_to_browsers: AtomicI64::new(0),
            pause_overshoot_max: AtomicU64::new(0),
            tunnel_buffers_shed: AtomicU64::new(0),
            pauses_sent: AtomicU64::new(0),
            tunnels_compacted: AtomicU64::new(0),
            listeners: AtomicI64::new(0),
            preamble_reads: AtomicU64::new(0),
            routes_local: AtomicU64::new(0),
            routes_remote: AtomicU64::new(0),
            remote_routes_refused: AtomicU64::new(0),
            refusals: Default::default(),
            handshake_failures: Default::default(),
            tunnel_ends: Default::default(),
            channel_ends: Default::default(),
        }
    }
}

const _: () = assert!(
    Refusal::ALL.len() == 17
        && HandshakeFailure::ALL.len() == 6
        && TunnelEnd::ALL.len() == 8
        && ChannelEnd::ALL.len() == 7
);

impl WorkerMetrics {
    /// Adds one to a counter.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(c: &AtomicU64, n: usize) {
        c.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Moves a gauge.
    pub fn gauge(g: &AtomicI64, delta: i64) {
        g.fetch_add(delta, Ordering::Relaxed);
    }

    /// Counts a refusal.
    pub fn refused(&self, why: Refusal) {
        Self::inc(&self.refusals[why as usize]);
    }

    /// Counts a failed handshake.
    pub fn handshake_failed(&self, why: HandshakeFailure) {
        Self::inc(&self.handshake_failures[why as usize]);
    }

    /// Counts an ended tunnel.
    pub fn tunnel_ended(&self, why: TunnelEnd) {
        Self::inc(&self.tunnel_ends[why as usize]);
    }

    /// Counts an ended channel.
    pub fn channel_ended(&self, why: ChannelEnd) {
        Self::inc(&self.channel_ends[why as usize]);
    }

    /// Channel ends so far for a cause.
    pub fn channel_ends(&self, why: ChannelEnd) -> u64 {
        self.channel_ends[why as usize].load(Ordering::Relaxed)
    }

    /// Bytes waiting in the multiplexers' queues for browsers now.
    pub fn queued_to_browsers(&self) -> u64 {
        self.queued_to_browsers.load(Ordering::Relaxed).max(0) as u64
    }

    /// Refusals so far for a reason.
    pub fn refusals(&self, why: Refusal) -> u64 {
        self.refusals[why as usize].load(Ordering::Relaxed)
    }

    /// Handshake failures so far for a reason.
    pub fn handshake_failures(&self, why: HandshakeFailure) -> u64 {
        self.handshake_failures[why as usize].load(Ordering::Relaxed)
    }

    /// Tunnel ends so far for a reason.
    pub fn tunnel_ends(&self, why: TunnelEnd) -> u64 {
        self.tunnel_ends[why as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn set_routes(&self, local: usize, remote: usize) {
        self.routes_local.store(local as u64, Ordering::Relaxed);
        self.routes_remote.store(remote as u64, Ordering::Relaxed);
    }

    /// The names in this worker's directory: (served here, served by other edges).
    pub fn routes(&self) -> (u64, u64) {
        (
            self.routes_local.load(Ordering::Relaxed),
            self.routes_remote.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn set_driver(&self, d: Driver) {
        self.driver.store(
            match d {
                Driver::IoUring => 1,
                Driver::Epoll => 2,
            },
            Ordering::Relaxed,
        );
    }

    /// The driver the worker runs on, once started.
    pub fn driver(&self) -> Option<Driver> {
        match self.driver.load(Ordering::Relaxed) {
            1 => Some(Driver::IoUring),
            2 => Some(Driver::Epoll),
            _ => None,
        }
    }
}

/// Every worker's counters.
#[derive(Debug)]
pub struct Metrics {
    workers: Vec<WorkerMetrics>,
    memory: TrimStats,
}

impl Metrics {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            workers: (0..workers).map(|_| WorkerMetrics::default()).collect(),
            memory: TrimStats::default(),
        }
    }

    /// What the memory trimmer did.
    pub fn memory(&self) -> &TrimStats {
        &self.memory
    }

    /// One worker's block.
    pub fn worker(&self, i: usize) -> &WorkerMetrics {
        &self.workers[i]
    }

    /// All blocks.
    pub fn workers(&self) -> &[WorkerMetrics] {
        &self.workers
    }

    /// Sums a counter over the workers.
    pub fn total(&self, f: impl Fn(&WorkerMetrics) -> u64) -> u64 {
        self.workers.iter().map(f).sum()
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let gload = |a: &AtomicI64| a.load(Ordering::Relaxed);
        let mut family =
            |name: &str,
             kind: &str,
             help: &str,
             rows: &mut dyn Iterator<Item = (String, String)>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for (labels, value) in rows {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            };
        let per = |f: &dyn Fn(&WorkerMetrics) -> String| -> Vec<(String, String)> {
            self.workers
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("worker=\"{i}\""), f(w)))
                .collect()
        };
        family(
            "sluice_io_driver",
            "gauge",
            "The I/O driver of each worker (1 for the one in use).",
            &mut self.workers.iter().enumerate().map(|(i, w)| {
                let d = w.driver().map_or("starting", Driver::name);
                (format!("worker=\"{i}\",driver=\"{d}\""), "1".to_owned())
            }),
        );
        family(
            "sluice_listeners",
            "gauge",
            "Sockets each worker accepts connections on (0 once a drain has begun).",
            &mut per(&|w| gload(&w.listeners).to_string()).into_iter(),
        );
        family(
            "sluice_tunnels",
            "gauge",
            "Tunnels connected.",
            &mut per(&|w| gload(&w.tunnels).to_string()).into_iter(),
        );
        family(
            "sluice_channels",
            "gauge",
            "Browser connections proxied into tunnels now.",
            &mut per(&|w| gload(&w.channels).to_string()).into_iter(),
        );
        family(
            "sluice_routes",
            "gauge",
            "Names in each worker's directory, served by this edge (local) or another (remote).",
            &mut self.workers.iter().enumerate().flat_map(|(i, w)| {
                let (local, remote) = w.routes();
                [
                    (format!("worker=\"{i}\",kind=\"local\""), local.to_string()),
                    (
                        format!("worker=\"{i}\",kind=\"remote\""),
                        remote.to_string(),
                    ),
                ]
            }),
        );
        family(
            "sluice_remote_routes_refused_total",
            "counter",
            "Remote routes refused for being over the per-worker cap.",
            &mut per(&|w| load(&w.remote_routes_refused).to_string()).into_iter(),
        );
        family(
            "sluice_queued_to_browsers_bytes",
            "gauge",
            "Bytes received from tunnels and not yet written to browsers.",
            &mut per(&|w| w.queued_to_browsers().to_string()).into_iter(),
        );
        family(
            "sluice_pause_overshoot_max_bytes",
            "gauge",
            "The most bytes one channel received after its PAUSE was sent (in flight).",
            &mut per(&|w| load(&w.pause_overshoot_max).to_string()).into_iter(),
        );
        family(
            "sluice_tunnel_buffers_shed_total",
            "counter",
            "Times a quiet tunnel gave its read buffer's memory back.",
            &mut per(&|w| load(&w.tunnel_buffers_shed).to_string()).into_iter(),
        );
        family(
            "sluice_tunnel_compactions_total",
            "counter",
            "Times an idle tunnel dropped its expanded key schedule and spare queue capacity.",
            &mut per(&|w| load(&w.tunnels_compacted).to_string()).into_iter(),
        );
        family(
            "sluice_pauses_sent_total",
            "counter",
            "PAUSE frames sent to tunnels because a browser fell behind.",
            &mut per(&|w| load(&w.pauses_sent).to_string()).into_iter(),
        );
        family(
            "sluice_preamble_reads_total",
            "counter",
            "Reads made while classifying new connections (PROXY header, hello or token).",
            &mut per(&|w| load(&w.preamble_reads).to_string()).into_iter(),
        );
        family(
            "sluice_browser_connections_total",
            "counter",
            "Browser connections accepted.",
            &mut per(&|w| load(&w.browsers_accepted).to_string()).into_iter(),
        );
        family(
            "sluice_tunnel_connections_total",
            "counter",
            "Tunnels that completed the handshake.",
            &mut per(&|w| load(&w.tunnels_accepted).to_string()).into_iter(),
        );
        family(
            "sluice_handovers_sent_total",
            "counter",
            "Connections handed to the worker owning their tunnel.",
            &mut per(&|w| load(&w.handovers_out).to_string()).into_iter(),
        );
        family(
            "sluice_handovers_received_total",
            "counter",
            "Connections received from another worker.",
            &mut per(&|w| load(&w.handovers_in).to_string()).into_iter(),
        );
        family(
            "sluice_bytes_total",
            "counter",
            "Payload bytes proxied, by direction.",
            &mut self.workers.iter().enumerate().flat_map(|(i, w)| {
                [
                    (
                        format!("worker=\"{i}\",direction=\"to_tunnel\""),
                        load(&w.bytes_to_tunnels).to_string(),
                    ),
                    (
                        format!("worker=\"{i}\",direction=\"to_browser\""),
                        load(&w.bytes_to_browsers).to_string(),
                    ),
                ]
            }),
        );
        family(
            "sluice_refusals_total",
            "counter",
            "Connections turned away, by reason.",
            &mut self.workers.iter().enumerate().flat_map(|(i, w)| {
                Refusal::ALL.iter().map(move |r| {
                    (
                        format!("worker=\"{i}\",reason=\"{}\"", r.label()),
                        w.refusals(*r).to_string(),
                    )
                })
            }),
        );
        family(
            "sluice_handshake_failures_total",
            "counter",
            "Tunnel handshakes that failed, by reason.",
            &mut self.workers.iter().enumerate().flat_map(|(i, w)| {
                HandshakeFailure::ALL.iter().map(move |r| {
                    (
                        format!("worker=\"{i}\",reason=\"{}\"", r.label()),
                        w.handshake_failures(*r).to_string(),
                    )
                })
            }),
        );
        family(
            "sluice_tunnel_ends_total",
            "counter",
            "Tunnels that ended, by cause.",
            &mut self.workers.iter().enumerate().flat_map(|(i, w)| {
                TunnelEnd::ALL.iter().map(move |r| {
                    (
                        format!("worker=\"{i}\",cause=\"{}\"", r.label()),
                        w.tunnel_ends(*r).to_string(),
                    )
                })
            }),
        );
        family(
            "sluice_channel_ends_total",
            "counter",
            "Channels (proxied browser connections) that ended, by cause.",
            &mut self.workers.iter().enumerate().flat_map(|(i, w)| {
                ChannelEnd::ALL.iter().map(move |r| {
                    (
                        format!("worker=\"{i}\",cause=\"{}\"", r.label()),
                        w.channel_ends(*r).to_string(),
                    )
                })
            }),
        );
        for (name, help, value) in [
            (
                "sluice_memory_trims_total",
                "Times freed memory was returned to the system after a burst.",
                load(&self.memory.trims),
            ),
            (
                "sluice_memory_trimmed_bytes_total",
                "Free bytes the allocator held when it was trimmed, summed.",
                load(&self.memory.freed_bytes),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        out
    }
}
