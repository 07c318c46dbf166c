//! Keepalive, idle timeouts and the token deadline, driven by the `now` the shell passes in.

use std::time::{Duration, Instant};

use super::channel::Phase;
use super::{CloseCause, Control, Event, Multiplexer, MuxConfig, MuxError};
use crate::frame::ChannelId;
use crate::random::Random;

/// How often idle channels are looked for, at most.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct Timers {
    last_rx: Instant,
    /// Last frame either way, for compaction.
    last_frame: Instant,
    next_ping: Option<Instant>,
    pong_due: Option<Instant>,
    next_sweep: Option<Instant>,
    deadline: Option<Instant>,
}

impl Timers {
    pub(super) fn new(config: &MuxConfig, now: Instant) -> Self {
        Self {
            last_rx: now,
            last_frame: now,
            next_ping: config.ping_interval.map(|d| now + d),
            pong_due: None,
            next_sweep: config.channel_idle_timeout.map(|d| now + sweep_interval(d)),
            deadline: None,
        }
    }

    pub(super) fn received(&mut self, now: Instant) {
        self.last_rx = now;
    }

    pub(super) fn framed(&mut self, now: Instant) {
        self.last_frame = now;
    }

    pub(super) fn pong_received(&mut self) {
        self.pong_due = None;
    }
}

fn sweep_interval(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(10), MAX_SWEEP_INTERVAL)
}

impl<R: Random> Multiplexer<R> {
    /// Ends the tunnel at `deadline` (the token's expiry) unless it ends sooner.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.timers.deadline = Some(deadline);
    }

    /// When [`Self::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let t = &self.timers;
        [
            t.deadline,
            t.next_ping,
            t.pong_due,
            self.config.idle_timeout.map(|d| t.last_rx + d),
            t.next_sweep.filter(|_| !self.channels.is_empty()),
            self.stall_episode
                .map(|since| since + self.config.stall_max),
            self.config
                .compact_after
                .filter(|_| self.cipher.is_expanded())
                .map(|d| t.last_frame + d),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers that are due at `now`: sends keepalives, closes idle channels, and
    /// ends the tunnel when it is silent, its ping unanswered, or its token expired.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), MuxError> {
        if let Some(e) = &self.closed {
            return Err(e.clone());
        }
        let result = self.run_timers(now);
        if let Err(e) = &result {
            self.closed = Some(e.clone());
        }
        result
    }

    fn run_timers(&mut self, now: Instant) -> Result<(), MuxError> {
        if self
            .stall_episode
            .is_some_and(|since| now >= since + self.config.stall_max)
        {
            self.end_stall();
        }
        let t = &mut self.timers;
        if t.deadline.is_some_and(|d| now >= d) {
            return Err(MuxError::Expired);
        }
        if t.pong_due.is_some_and(|d| now >= d) {
            return Err(MuxError::KeepaliveTimeout);
        }
        if self
            .config
            .idle_timeout
            .is_some_and(|d| now >= t.last_rx + d)
        {
            return Err(MuxError::IdleTimeout);
        }
        if let (Some(at), Some(interval)) = (t.next_ping, self.config.ping_interval)
            && now >= at
        {
            t.next_ping = Some(now + interval);
            if t.pong_due.is_none() {
                t.pong_due = Some(now + self.config.ping_timeout);
            }
            let id = ChannelId::random(&mut self.rng);
            self.control.push_back(Control::Ping(id));
        }
        if let (Some(at), Some(idle)) = (self.timers.next_sweep, self.config.channel_idle_timeout)
            && now >= at
        {
            self.timers.next_sweep = Some(now + sweep_interval(idle));
            self.close_idle_channels(now, idle);
        }
        if self
            .config
            .compact_after
            .is_some_and(|d| now >= self.timers.last_frame + d)
            && self.cipher.is_expanded()
        {
            self.stats.compactions += 1;
            self.compact();
        }
        Ok(())
    }

    fn close_idle_channels(&mut self, now: Instant, idle: Duration) {
        let stale: Vec<usize> = self
            .channels
            .iter()
            .filter(|(_, c)| c.phase == Phase::Open && now >= c.last_activity + idle)
            .map(|(i, _)| i)
            .collect();
        for index in stale {
            let channel = self.handle_of(index);
            self.kill(index, CloseCause::Idle);
            self.events.push_back(Event::Closed {
                channel,
                cause: CloseCause::Idle,
            });
        }
    }
}

impl<R: Random> Multiplexer<R> {
    /// Drops what an idle tunnel does not need: the expanded key schedule and spare queue
    /// capacity. Runs by itself after `compact_after`; harmless at any time.
    pub fn compact(&mut self) {
        self.cipher.compact();
        self.control.shrink_to_fit();
        self.ready.shrink_to_fit();
        self.events.shrink_to_fit();
        if self.channels.is_empty() {
            self.channels.shrink_to_fit();
            self.by_id.shrink_to_fit();
        }
    }
}
