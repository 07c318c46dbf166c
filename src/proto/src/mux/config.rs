//! Multiplexer knobs, with defaults sized for an edge that serves many tenants.

use std::time::Duration;

use crate::limits::*;

/// Limits, watermarks and timers of one multiplexer.
///
/// The defaults bound what one tunnel can make the other end hold: SniTun lets a channel
/// queue 65 MiB (256 MiB for protocol 0); here a channel holds at most
/// [`DEFAULT_CHANNEL_INCOMING_MAX`] and a tunnel [`DEFAULT_TUNNEL_INCOMING_MAX`]: past them the
/// tunnel stops reading (TCP slows the peer) until the channel drains, and after `stall_max`
/// a channel that took nothing (in protocol 1+, one still over its cap) is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxConfig {
    /// Largest frame payload accepted; larger is a protocol violation that ends the tunnel.
    pub max_frame_size: u32,
    /// Most channels open at once; newcomers beyond it are refused.
    pub max_channels: usize,
    /// A channel's undelivered incoming bytes at which a protocol-1+ peer is sent PAUSE.
    pub incoming_high: usize,
    /// ... and at or below which it is sent RESUME.
    pub incoming_low: usize,
    /// A channel's undelivered incoming bytes above which the tunnel stops reading (see
    /// `stall_max`). Leave room above `incoming_high` for what is in flight when PAUSE is sent.
    pub channel_incoming_max: usize,
    /// The tunnel's undelivered incoming bytes (all channels) above which the tunnel stops
    /// reading; above half of it, channels are paused at `incoming_low`.
    pub tunnel_incoming_max: usize,
    /// A channel's queued outgoing bytes at which its local source should stop being read.
    pub outgoing_high: usize,
    /// ... and at or below which it may be read again.
    pub outgoing_low: usize,
    /// How often to send a keepalive PING (SniTun clients: 50 s; servers never ping).
    pub ping_interval: Option<Duration>,
    /// How long a PING may go unanswered before the tunnel is declared dead.
    pub ping_timeout: Duration,
    /// How long the tunnel may receive nothing before it is declared dead.
    pub idle_timeout: Option<Duration>,
    /// How long a channel may carry no data either way before it is closed.
    pub channel_idle_timeout: Option<Duration>,
    /// Once the tunnel has stopped reading because a channel (or the tunnel) is over its cap,
    /// how long before the channels that took none of their bytes (protocol 1+: and those
    /// still over a cap) are closed. A protocol-0 slow reader that drains keeps its channel and
    /// gets every byte; one that never reads holds its tunnel's other channels up for at most
    /// this long.
    pub stall_max: Duration,
    /// After this long without a frame either way, the tunnel drops its expanded key schedule
    /// and spare queue capacity (about 1 KiB); the next frame rebuilds them.
    pub compact_after: Option<Duration>,
}

impl MuxConfig {
    /// Defaults for the server (edge) side: answers pings, never sends them.
    pub fn server() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_channels: DEFAULT_MAX_CHANNELS,
            incoming_high: DEFAULT_INCOMING_HIGH,
            incoming_low: DEFAULT_INCOMING_LOW,
            channel_incoming_max: DEFAULT_CHANNEL_INCOMING_MAX,
            tunnel_incoming_max: DEFAULT_TUNNEL_INCOMING_MAX,
            outgoing_high: DEFAULT_OUTGOING_HIGH,
            outgoing_low: DEFAULT_OUTGOING_LOW,
            ping_interval: None,
            ping_timeout: Duration::from_secs(30),
            // SniTun drops a tunnel 90-120 s after its last read or write; its clients ping
            // every 50 s.
            idle_timeout: Some(Duration::from_secs(120)),
            channel_idle_timeout: Some(Duration::from_secs(120)),
            compact_after: Some(Duration::from_secs(2)),
            stall_max: DEFAULT_STALL_MAX,
        }
    }

    /// Defaults for the client (connector) side: pings every 50 s as SniTun's client does.
    pub fn client() -> Self {
        Self {
            ping_interval: Some(Duration::from_secs(50)),
            ..Self::server()
        }
    }

    /// Checks that the knobs are consistent and within the crate's ceilings.
    pub fn validate(&self) -> Result<(), MuxConfigError> {
        let fail = |what: &'static str| Err(MuxConfigError(what));
        if self.max_frame_size == 0 || self.max_frame_size > MAX_FRAME_SIZE_LIMIT {
            return fail("max_frame_size must be between 1 and 64 MiB");
        }
        if self.max_channels == 0 {
            return fail("max_channels must be at least 1");
        }
        if self.incoming_low >= self.incoming_high {
            return fail("incoming_low must be below incoming_high");
        }
        if self.channel_incoming_max < self.incoming_high {
            return fail("channel_incoming_max must be at least incoming_high");
        }
        if self.tunnel_incoming_max < self.channel_incoming_max {
            return fail("tunnel_incoming_max must be at least channel_incoming_max");
        }
        if self.outgoing_low >= self.outgoing_high {
            return fail("outgoing_low must be below outgoing_high");
        }
        if self.ping_timeout.is_zero() || self.ping_interval.is_some_and(|d| d.is_zero()) {
            return fail("keepalive durations must be positive");
        }
        if self.idle_timeout.is_some_and(|d| d.is_zero())
            || self.channel_idle_timeout.is_some_and(|d| d.is_zero())
            || self.compact_after.is_some_and(|d| d.is_zero())
        {
            return fail("idle timeouts must be positive");
        }
        if self.stall_max.is_zero() {
            return fail("stall_max must be positive");
        }
        Ok(())
    }
}

impl Default for MuxConfig {
    fn default() -> Self {
        Self::server()
    }
}

/// An inconsistent [`MuxConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid multiplexer configuration: {0}")]
pub struct MuxConfigError(pub &'static str);
