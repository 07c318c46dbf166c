//! The tunnel multiplexer: many channels over one authenticated tunnel connection.
//!
//! A [`Multiplexer`] is one end of one tunnel after the handshake. It owns the channels, the
//! flow-control accounting and the keepalive timers; it never touches a socket or a clock.
//! Its methods fall in four families, as in quinn-proto:
//!
//! - **inputs**: [`handle_input`](Multiplexer::handle_input) with bytes read from the tunnel
//!   socket, [`handle_timeout`](Multiplexer::handle_timeout) when [`poll_timeout`] passes;
//! - **commands** from the shell: [`open_channel`](Multiplexer::open_channel) (server),
//!   [`send`](Multiplexer::send), [`consumed`](Multiplexer::consumed),
//!   [`close`](Multiplexer::close);
//! - **outputs**: [`poll_event`](Multiplexer::poll_event), [`recv`](Multiplexer::recv),
//!   [`poll_transmit`](Multiplexer::poll_transmit) for bytes to write to the tunnel socket,
//!   [`poll_timeout`];
//! - **getters**: [`can_send`](Multiplexer::can_send), [`wants_input`](Multiplexer::wants_input),
//!   [`wants_output`](Multiplexer::wants_output), [`stats`](Multiplexer::stats).
//!
//! After any input or command, drain `poll_event`, then `poll_transmit` while `wants_output`,
//! then re-arm the timer from `poll_timeout`. Bytes from `poll_transmit` must reach the socket
//! in the order they were produced: the cipher state chains from one frame to the next.
//!
//! Flow control, both directions, per channel:
//! - incoming: bytes count from arrival until the shell reports them `consumed` (written to
//!   the local sink). At `incoming_high` a protocol-1+ peer gets PAUSE, at `incoming_low`
//!   RESUME; while the tunnel as a whole holds more than half its `tunnel_incoming_max`, a
//!   channel is paused as soon as it holds more than `incoming_low`. Past
//!   `channel_incoming_max` (a channel) or `tunnel_incoming_max` (the sum) the tunnel stops
//!   taking input, so TCP slows the peer, until the channel drains ([`Event::InputReady`]) or
//!   `stall_max` passes. Then every channel that holds bytes and took none of them is closed
//!   ([`CloseCause::Overrun`]); in protocol 1+ (the peer has been PAUSEd) so is every channel
//!   still over its cap, the largest first while the tunnel is over its own. Protocol 0 has no
//!   PAUSE, so there this is the only brake; in protocol 1+ it absorbs what an honest peer
//!   had in flight when PAUSE left, which socket buffers that autotune to tens of MiB make
//!   unbounded by any fixed allowance. One sink that does not keep up holds its neighbours
//!   up for at most `stall_max` and then costs its own channel.
//! - outgoing: queued DATA counts until it is handed to `poll_transmit`. The shell reads a
//!   channel's source only while [`Multiplexer::can_send`] says so (below `outgoing_high`,
//!   down to `outgoing_low` after a block, and never while the peer has it PAUSEd).
//!
//! [`poll_timeout`]: Multiplexer::poll_timeout

mod channel;
mod config;
mod error;
mod event;
mod input;
mod output;
pub mod shell;
#[cfg(test)]
mod tests;
mod timers;

use bytes::Bytes;
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

pub use channel::ChannelHandle;
pub use config::{MuxConfig, MuxConfigError};
pub use error::{Blame, MuxError, OpenError, SendError};
pub use event::{CloseCause, Event, Recv};
pub use output::Transmit;

use crate::crypto::{Role, TunnelCipher};
use crate::frame::ChannelId;
use crate::handshake::Session;
use crate::limits::MAX_SEND_FRAME_PAYLOAD;
use crate::random::Random;
use crate::version::ProtocolVersion;
use channel::{Channel, OutItem, Phase};
use input::InputState;

/// Most random channel ids [`Multiplexer::open_channel`] draws before giving up. Ids are 16
/// random bytes, so with a working random source even a second draw is needed about once in
/// 2^128 / `max_channels` opens; needing this many means the source is broken (or returns
/// the same bytes every time), and retrying for ever would hang the shell.
pub const MAX_CHANNEL_ID_DRAWS: u32 = 8;

/// Counters a shell exports as metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MuxStats {
    /// Frames decoded.
    pub frames_in: u64,
    /// Frames encoded.
    pub frames_out: u64,
    /// DATA payload bytes received.
    pub data_bytes_in: u64,
    /// DATA payload bytes sent.
    pub data_bytes_out: u64,
    /// PAUSE frames sent.
    pub pauses_sent: u64,
    /// PAUSE frames received.
    pub pauses_received: u64,
    /// Frames for channels that do not exist (usually late frames of a closed channel).
    pub frames_for_unknown_channels: u64,
    /// Frames with a flow byte this crate does not know (ignored).
    pub unknown_flows: u64,
    /// NEW frames a server received (ignored), or v2 NEW frames without a usable address.
    pub ignored_new: u64,
    /// NEW frames refused because of `max_channels`.
    pub refused_channels: u64,
    /// Channels closed because their sink fell behind a queue cap ([`CloseCause::Overrun`]).
    pub channels_overrun: u64,
    /// The most bytes one channel received after it was sent PAUSE and before RESUME: what
    /// was in flight when the peer heard of the PAUSE. The caps must leave room for it.
    pub pause_overshoot_max: u64,
    /// Times the tunnel stopped reading because a channel (or the tunnel) passed its cap.
    pub stalls: u64,
    /// Times the tunnel, idle for `compact_after`, dropped its expanded key schedule and spare
    /// queue capacity by itself ([`Multiplexer::compact`]).
    pub compactions: u64,
}

/// A control frame, sent before any channel's data.
#[derive(Debug, Clone, Copy)]
enum Control {
    Ping(ChannelId),
    Pong(ChannelId),
    Pause(ChannelId),
    Resume(ChannelId),
    Close(ChannelId),
}

/// One end of a tunnel: see the [module documentation](self).
#[derive(Debug)]
pub struct Multiplexer<R: Random> {
    role: Role,
    version: ProtocolVersion,
    cipher: TunnelCipher,
    config: MuxConfig,
    rng: R,
    channels: Slab<Channel>,
    by_id: HashMap<ChannelId, usize>,
    next_generation: u32,
    input: InputState,
    control: VecDeque<Control>,
    /// Round robin of channels with queued output: (slab index, generation).
    ready: VecDeque<(usize, u32)>,
    events: VecDeque<Event>,
    incoming_total: usize,
    /// Input is refused because a channel (or the tunnel) is over its cap.
    stalled: bool,
    /// When the first stall since the last grace check began. At its end plus
    /// `stall_max`, channels that hold bytes and took none since are closed.
    stall_episode: Option<Instant>,
    timers: timers::Timers,
    closed: Option<MuxError>,
    stats: MuxStats,
}

impl<R: Random> Multiplexer<R> {
    /// Starts the multiplexer of an authenticated session at `now`.
    ///
    /// The configuration must have passed [`MuxConfig::validate`].
    pub fn new(session: Session, config: MuxConfig, rng: R, now: Instant) -> Self {
        let timers = timers::Timers::new(&config, now);
        Self {
            role: session.role,
            version: session.version,
            cipher: session.cipher,
            config,
            rng,
            channels: Slab::new(),
            by_id: HashMap::new(),
            next_generation: 0,
            input: InputState::Header,
            control: VecDeque::new(),
            ready: VecDeque::new(),
            events: VecDeque::new(),
            incoming_total: 0,
            stalled: false,
            stall_episode: None,
            timers,
            closed: None,
            stats: MuxStats::default(),
        }
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The protocol version of the tunnel.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Channels that exist (open, or closing and not yet drained).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Bytes received for the local sinks and not yet reported consumed, over all channels.
    pub fn incoming_queued(&self) -> usize {
        self.incoming_total
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &MuxStats {
        &self.stats
    }

    /// Why the tunnel ended, if it has.
    pub fn close_reason(&self) -> Option<&MuxError> {
        self.closed.as_ref()
    }

    /// The caller address a channel was opened for.
    pub fn caller(&self, handle: ChannelHandle) -> Option<IpAddr> {
        self.get(handle).and_then(|c| c.caller)
    }

    /// Opens a channel for a caller (server side): queues NEW, returns the handle.
    pub fn open_channel(
        &mut self,
        caller: IpAddr,
        now: Instant,
    ) -> Result<ChannelHandle, OpenError> {
        if self.closed.is_some() {
            return Err(OpenError::TunnelClosed);
        }
        if self.role != Role::Server {
            return Err(OpenError::NotServer);
        }
        if self.channels.len() >= self.config.max_channels {
            return Err(OpenError::TooManyChannels);
        }
        let id = (0..MAX_CHANNEL_ID_DRAWS)
            .map(|_| ChannelId::random(&mut self.rng))
            .find(|id| !self.by_id.contains_key(id))
            .ok_or(OpenError::NoFreeChannelId)?;
        let handle = self.insert(id, Some(caller), now);
        self.push_out(handle.index as usize, OutItem::New);
        Ok(handle)
    }

    /// Queues data on a channel, split into frames of at most
    /// [`MAX_SEND_FRAME_PAYLOAD`] bytes. Empty data is ignored (an empty DATA means nothing).
    ///
    /// This never refuses for flow control; the shell should read its source only while
    /// [`Self::can_send`] is true, so that the queue stays near the watermarks.
    pub fn send(
        &mut self,
        handle: ChannelHandle,
        mut data: Bytes,
        now: Instant,
    ) -> Result<(), SendError> {
        if self.closed.is_some() {
            return Err(SendError::ChannelClosed);
        }
        let index = handle.index as usize;
        let ch = self.get_mut(handle).ok_or(SendError::ChannelClosed)?;
        if ch.phase != Phase::Open {
            return Err(SendError::ChannelClosed);
        }
        ch.last_activity = now;
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(MAX_SEND_FRAME_PAYLOAD));
            ch.outgoing_bytes += chunk.len();
            ch.outgoing.push_back(OutItem::Data(chunk));
        }
        self.schedule(index);
        Ok(())
    }

    /// Whether the channel's local source may be read now. When this answers false, an
    /// [`Event::Writable`] follows once it may.
    pub fn can_send(&mut self, handle: ChannelHandle) -> bool {
        let (high, low) = (self.config.outgoing_high, self.config.outgoing_low);
        let Some(ch) = self.get_mut(handle) else {
            return false;
        };
        let limit = if ch.source_blocked {
            low
        } else {
            high.saturating_sub(1)
        };
        let ok = ch.phase == Phase::Open && !ch.peer_paused && ch.outgoing_bytes <= limit;
        ch.source_blocked = !ok && ch.phase == Phase::Open;
        ok
    }

    /// The next bytes for a channel's local sink.
    pub fn recv(&mut self, handle: ChannelHandle) -> Recv {
        let Some(ch) = self.get_mut(handle) else {
            return Recv::Closed;
        };
        if let Some(chunk) = ch.incoming.pop_front() {
            return Recv::Data(chunk);
        }
        match ch.phase {
            Phase::Open => {
                ch.readable_signalled = false;
                Recv::Empty
            }
            Phase::RemoteClosed | Phase::LocalClosing => {
                if ch.phase == Phase::RemoteClosed {
                    self.remove(handle.index as usize);
                }
                Recv::Closed
            }
        }
    }

    /// Reports that `n` bytes handed out by [`Self::recv`] reached the local sink. This is what
    /// frees flow-control credit; calls with stale handles are ignored.
    pub fn consumed(&mut self, handle: ChannelHandle, n: usize) {
        let low = self.config.incoming_low;
        let Some(ch) = self.get_mut(handle) else {
            return;
        };
        let n = n.min(ch.incoming_pending);
        ch.incoming_pending -= n;
        ch.drained_in_stall |= n > 0;
        let resume = ch.pause_sent && ch.incoming_pending <= low;
        if resume {
            ch.pause_sent = false;
        }
        let id = ch.id;
        self.incoming_total -= n;
        if resume && ch_is_open(&self.channels, handle) {
            self.control.push_back(Control::Resume(id));
        }
        self.end_stall_if_drained();
    }

    /// Closes a channel from this side: queues CLOSE behind its data and forgets it. The
    /// handle is stale afterwards. Closing twice, or a channel the peer closed, is harmless.
    pub fn close(&mut self, handle: ChannelHandle) {
        let index = handle.index as usize;
        let Some(ch) = self.get_mut(handle) else {
            return;
        };
        match ch.phase {
            Phase::Open => {
                ch.phase = Phase::LocalClosing;
                ch.outgoing.push_back(OutItem::Close);
                self.drop_incoming(index);
                self.schedule(index);
            }
            Phase::RemoteClosed => self.remove(index),
            Phase::LocalClosing => {}
        }
    }

    /// Closes every channel (graceful shutdown). Returns how many were open.
    pub fn close_all(&mut self) -> usize {
        let handles: Vec<ChannelHandle> = self
            .channels
            .iter()
            .filter(|(_, c)| c.phase == Phase::Open)
            .map(|(i, c)| ChannelHandle {
                index: i as u32,
                generation: c.generation,
            })
            .collect();
        for &h in &handles {
            self.close(h);
        }
        handles.len()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether the tunnel takes input. It stops while a channel (or the tunnel) is over its
    /// cap, for at most `stall_max`, and [`Event::InputReady`] says when it takes input again
    /// (see the [module documentation](self) for what happens after the grace).
    pub fn wants_input(&self) -> bool {
        self.closed.is_none() && !self.stalled
    }

    /// Whether `poll_transmit` has anything to send.
    pub fn wants_output(&self) -> bool {
        self.closed.is_none() && (!self.control.is_empty() || !self.ready.is_empty())
    }

    fn get(&self, handle: ChannelHandle) -> Option<&Channel> {
        self.channels
            .get(handle.index as usize)
            .filter(|c| c.generation == handle.generation)
    }

    fn get_mut(&mut self, handle: ChannelHandle) -> Option<&mut Channel> {
        self.channels
            .get_mut(handle.index as usize)
            .filter(|c| c.generation == handle.generation)
    }

    fn handle_of(&self, index: usize) -> ChannelHandle {
        ChannelHandle {
            index: index as u32,
            generation: self.channels[index].generation,
        }
    }

    fn insert(&mut self, id: ChannelId, caller: Option<IpAddr>, now: Instant) -> ChannelHandle {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let index = self
            .channels
            .insert(Channel::new(id, generation, caller, now));
        self.by_id.insert(id, index);
        ChannelHandle {
            index: index as u32,
            generation,
        }
    }

    /// Forgets a channel entirely, returning its flow-control credit.
    fn remove(&mut self, index: usize) {
        self.drop_incoming(index);
        let ch = self.channels.remove(index);
        if self.by_id.get(&ch.id) == Some(&index) {
            self.by_id.remove(&ch.id);
        }
    }

    /// Discards a channel's undelivered input and its accounting.
    fn drop_incoming(&mut self, index: usize) {
        let ch = &mut self.channels[index];
        ch.incoming.clear();
        self.incoming_total -= ch.incoming_pending;
        ch.incoming_pending = 0;
        ch.pause_sent = false;
        self.end_stall_if_drained();
    }

    /// Whether an open channel, or the tunnel, holds more than its cap.
    fn over_caps(&self) -> bool {
        self.incoming_total > self.config.tunnel_incoming_max
            || self.channels.iter().any(|(_, c)| {
                c.phase == Phase::Open && c.incoming_pending > self.config.channel_incoming_max
            })
    }

    /// Ends a stall once nothing is over its cap.
    fn end_stall_if_drained(&mut self) {
        if self.stalled && !self.over_caps() {
            self.stalled = false;
            self.events.push_back(Event::InputReady);
        }
    }

    fn push_out(&mut self, index: usize, item: OutItem) {
        self.channels[index].outgoing.push_back(item);
        self.schedule(index);
    }

    fn schedule(&mut self, index: usize) {
        let ch = &mut self.channels[index];
        if !ch.scheduled && !ch.outgoing.is_empty() {
            ch.scheduled = true;
            self.ready.push_back((index, ch.generation));
        }
    }
}

fn ch_is_open(channels: &Slab<Channel>, handle: ChannelHandle) -> bool {
    channels
        .get(handle.index as usize)
        .is_some_and(|c| c.generation == handle.generation && c.phase == Phase::Open)
}
