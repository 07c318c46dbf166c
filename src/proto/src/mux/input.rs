//! Reading frames off the tunnel: decrypt headers, stream payloads to their channels, and
//! judge what the peer sends.
//!
//! DATA payloads are not buffered until complete: each read's share of a payload is handed to
//! its channel at once (`split_to` of the read buffer, no copy), so memory does not grow with
//! the frame size and a 4 MiB frame (SniTun's in-process TLS sends such) costs nothing extra.

use bytes::{Buf, Bytes, BytesMut};
use std::net::IpAddr;
use std::time::Instant;

use super::channel::{ChannelHandle, Phase};
use super::{CloseCause, Control, Event, Multiplexer, MuxError};
use crate::crypto::{AEAD_OVERHEAD, CryptoError, Role};
use crate::frame::{self, ChannelId, Flow, HEADER_LEN, Header, PONG_MARK};
use crate::limits::{MAX_CONTROL_PAYLOAD, MAX_NEW_DATA_LEN};
use crate::random::Random;

/// Below this, a chunk for a channel that is already lagging is copied out of the read buffer,
/// so that a slow reader holding many small chunks cannot pin many large read buffers.
const COMPACT_BELOW: usize = 16 * 1024;

/// Where the decoder is in the byte stream.
#[derive(Debug, Clone, Copy)]
pub(super) enum InputState {
    /// Waiting for a header unit.
    Header,
    /// Waiting for the encrypted payload of a protocol-2 NEW.
    NewPayload { header: Header },
    /// Inside a DATA payload for a channel.
    Payload {
        index: usize,
        generation: u32,
        remaining: u32,
    },
    /// Inside a payload nobody wants.
    Skip { remaining: u32 },
}

impl<R: Random> Multiplexer<R> {
    /// Consumes whole frames (and any payload bytes) from the front of `buf`, the bytes read
    /// from the tunnel socket, at time `now`. Leaves a partial frame in `buf` for next time;
    /// stops early while [`Self::wants_input`] is false.
    ///
    /// An error ends the tunnel: close the socket and every channel's sink.
    pub fn handle_input(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), MuxError> {
        if let Some(e) = &self.closed {
            return Err(if *e == MuxError::Closed {
                MuxError::Closed
            } else {
                e.clone()
            });
        }
        if !buf.is_empty() {
            self.timers.received(now);
        }
        let result = self.consume(buf, now);
        if let Err(e) = &result {
            self.closed = Some(e.clone());
        }
        result
    }

    fn consume(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), MuxError> {
        loop {
            if self.stalled {
                // Over a cap: the rest waits in `buf` (and the socket).
                return Ok(());
            }
            match self.input {
                InputState::Header => {
                    let unit = HEADER_LEN + self.cipher.overhead();
                    if buf.len() < unit {
                        return Ok(());
                    }
                    let mut raw = [0; HEADER_LEN + AEAD_OVERHEAD];
                    raw[..unit].copy_from_slice(&buf[..unit]);
                    buf.advance(unit);
                    let plain = self
                        .cipher
                        .open(&mut raw[..unit])
                        .map_err(MuxError::Crypto)?;
                    let plain: &[u8; HEADER_LEN] = plain
                        .try_into()
                        .map_err(|_| MuxError::Crypto(CryptoError::BadLength))?;
                    self.stats.frames_in += 1;
                    self.timers.framed(now);
                    self.input = self.on_header(Header::decode(plain), now)?;
                }
                InputState::NewPayload { header } => {
                    let unit = header.size as usize + self.cipher.overhead();
                    if buf.len() < unit {
                        return Ok(());
                    }
                    let mut raw = buf.split_to(unit);
                    let plain = self.cipher.open(&mut raw).map_err(MuxError::Crypto)?;
                    let caller = frame::caller_from_new_payload(plain);
                    self.input = InputState::Header;
                    self.on_new(header.channel, caller, now);
                }
                InputState::Payload {
                    index,
                    generation,
                    remaining,
                } => {
                    if buf.is_empty() {
                        return Ok(());
                    }
                    let n = buf.len().min(remaining as usize);
                    let chunk = buf.split_to(n);
                    self.deliver(index, generation, chunk, now);
                    let remaining = remaining - n as u32;
                    self.input = if remaining == 0 {
                        InputState::Header
                    } else {
                        InputState::Payload {
                            index,
                            generation,
                            remaining,
                        }
                    };
                }
                InputState::Skip { remaining } => {
                    if buf.is_empty() {
                        return Ok(());
                    }
                    let n = buf.len().min(remaining as usize);
                    buf.advance(n);
                    let remaining = remaining - n as u32;
                    self.input = if remaining == 0 {
                        InputState::Header
                    } else {
                        InputState::Skip { remaining }
                    };
                }
            }
        }
    }

    /// Acts on a header; returns what the bytes after it are.
    fn on_header(&mut self, header: Header, now: Instant) -> Result<InputState, MuxError> {
        let skip = |size: u32| {
            if size == 0 {
                InputState::Header
            } else {
                InputState::Skip { remaining: size }
            }
        };
        match header.flow {
            // Protocol 2 puts the caller in a payload, 0 and 1 in EXTRA with SIZE 0. A NEW in
            // the other format means the server ignores the token's version: every channel
            // it opened would be misread or ignored, so say so rather than serve none.
            Flow::New
                if self.role == Role::Client
                    && self.version.has_new_payload() != (header.size > 0) =>
            {
                Err(MuxError::VersionMismatch {
                    token: self.version,
                })
            }
            Flow::Data => {
                if header.size > self.config.max_frame_size {
                    return Err(MuxError::FrameTooLarge {
                        size: header.size,
                        max: self.config.max_frame_size,
                    });
                }
                if header.size == 0 {
                    return Ok(InputState::Header);
                }
                match self.by_id.get(&header.channel).copied() {
                    Some(index) => {
                        let ch = &mut self.channels[index];
                        self.stats.data_bytes_in += u64::from(header.size);
                        Ok(InputState::Payload {
                            index,
                            generation: ch.generation,
                            remaining: header.size,
                        })
                    }
                    None => {
                        self.stats.frames_for_unknown_channels += 1;
                        tracing::trace!(channel = %header.channel, "DATA for an unknown channel");
                        Ok(skip(header.size))
                    }
                }
            }
            Flow::New if self.version.has_new_payload() && header.size > 0 => {
                let size_ok = header.size <= MAX_NEW_DATA_LEN
                    && (self.cipher.overhead() > 0 || header.size.is_multiple_of(16));
                if !size_ok {
                    return Err(MuxError::BadNewPayload(header.size));
                }
                Ok(InputState::NewPayload { header })
            }
            flow => {
                if header.size > MAX_CONTROL_PAYLOAD {
                    return Err(MuxError::FrameTooLarge {
                        size: header.size,
                        max: MAX_CONTROL_PAYLOAD,
                    });
                }
                match flow {
                    Flow::New if self.version.has_new_payload() => {
                        // A protocol-2 NEW without its address payload, at a server (clients
                        // refused it above): servers ignore NEW.
                        self.stats.ignored_new += 1;
                    }
                    Flow::New => {
                        let caller = frame::caller_from_extra(&header.extra);
                        self.on_new(header.channel, Some(caller), now);
                    }
                    Flow::Close => self.on_close(header.channel),
                    Flow::Ping => {
                        if header.extra.starts_with(PONG_MARK) {
                            self.timers.pong_received();
                        } else {
                            self.control.push_back(Control::Pong(header.channel));
                        }
                    }
                    Flow::Pause | Flow::Resume => {
                        self.on_pause(header.channel, header.flow == Flow::Pause)
                    }
                    Flow::Unknown(byte) => {
                        self.stats.unknown_flows += 1;
                        tracing::debug!(flow = byte, "ignoring a frame of unknown flow");
                    }
                    Flow::Data => {}
                }
                Ok(skip(header.size))
            }
        }
    }

    fn on_new(&mut self, id: ChannelId, caller: Option<IpAddr>, now: Instant) {
        if self.role == Role::Server || caller.is_none() {
            // Servers do not accept channels; a NEW without an address is ignored by SniTun.
            self.stats.ignored_new += 1;
            return;
        }
        if let Some(&index) = self.by_id.get(&id) {
            // Two channels under one id cannot be told apart: close the old one and refuse
            // the newcomer; the CLOSE tells the peer both are gone.
            let handle = self.handle_of(index);
            self.kill(index, CloseCause::DuplicateId);
            self.events.push_back(Event::Closed {
                channel: handle,
                cause: CloseCause::DuplicateId,
            });
            return;
        }
        if self.channels.len() >= self.config.max_channels {
            self.stats.refused_channels += 1;
            self.control.push_back(Control::Close(id));
            return;
        }
        let channel = self.insert(id, caller, now);
        self.events.push_back(Event::Opened { channel, caller });
    }

    fn on_close(&mut self, id: ChannelId) {
        let Some(index) = self.by_id.get(&id).copied() else {
            return;
        };
        match self.channels[index].phase {
            Phase::Open => {
                let handle = self.handle_of(index);
                self.mark_remote_closed(index);
                self.events.push_back(Event::Closed {
                    channel: handle,
                    cause: CloseCause::PeerClosed,
                });
            }
            // Both sides closed at once: nothing left to say.
            Phase::LocalClosing => self.remove(index),
            Phase::RemoteClosed => {}
        }
    }

    fn on_pause(&mut self, id: ChannelId, pause: bool) {
        if pause {
            self.stats.pauses_received += 1;
        }
        let Some(index) = self.by_id.get(&id).copied() else {
            return;
        };
        let ch = &mut self.channels[index];
        ch.peer_paused = pause;
        if !pause {
            self.maybe_writable(index);
        }
    }

    /// Closes a channel on the multiplexer's own initiative: CLOSE goes out now, undelivered
    /// input is dropped, and the shell learns of it through an event the caller pushes.
    pub(super) fn kill(&mut self, index: usize, cause: CloseCause) {
        let id = self.channels[index].id;
        tracing::debug!(channel = %id, ?cause, "closing channel");
        self.control.push_back(Control::Close(id));
        self.drop_incoming(index);
        self.mark_remote_closed(index);
    }

    /// The peer is gone from this channel: no more output, no more input by id.
    fn mark_remote_closed(&mut self, index: usize) {
        let ch = &mut self.channels[index];
        ch.phase = Phase::RemoteClosed;
        ch.outgoing.clear();
        ch.outgoing_bytes = 0;
        ch.readable_signalled = true;
        let id = ch.id;
        self.by_id.remove(&id);
    }

    fn deliver(&mut self, index: usize, generation: u32, chunk: BytesMut, now: Instant) {
        let Some(ch) = self
            .channels
            .get_mut(index)
            .filter(|c| c.generation == generation)
        else {
            return;
        };
        if ch.phase != Phase::Open {
            return;
        }
        let n = chunk.len();
        let chunk = if !ch.incoming.is_empty() && n < COMPACT_BELOW {
            Bytes::copy_from_slice(&chunk)
        } else {
            chunk.freeze()
        };
        ch.incoming.push_back(chunk);
        ch.incoming_pending += n;
        ch.last_activity = now;
        self.incoming_total += n;
        if !ch.readable_signalled {
            ch.readable_signalled = true;
            let channel = ChannelHandle {
                index: index as u32,
                generation,
            };
            self.events.push_back(Event::Readable { channel });
        }
        if ch.pause_sent {
            ch.since_pause += n;
            let overshoot = ch.since_pause as u64;
            self.stats.pause_overshoot_max = self.stats.pause_overshoot_max.max(overshoot);
        }
        // Under tunnel-wide pressure, pause early: what is in flight for every channel must fit
        // under the tunnel's cap, not just each channel's.
        let pressure = self.incoming_total >= self.config.tunnel_incoming_max / 2;
        let over_watermark = ch.incoming_pending >= self.config.incoming_high
            || (pressure && ch.incoming_pending > self.config.incoming_low);
        if self.version.has_flow_control() && !ch.pause_sent && over_watermark {
            ch.pause_sent = true;
            ch.since_pause = 0;
            let id = ch.id;
            self.stats.pauses_sent += 1;
            self.control.push_back(Control::Pause(id));
        }
        // Past a cap, stop reading the tunnel and let TCP slow the peer down; after the grace
        // the timers close what took nothing (protocol 1+: and what is still over a cap).
        // Protocol 0 has no PAUSE.
        // In protocol 1+ an honest peer still overshoots by whatever was in flight when PAUSE
        // left, and that is bounded by the socket buffers, which autotune to tens of MiB: a
        // fixed allowance would cut honest downloads on a busy host. Either way the tunnel holds
        // at most one frame past the caps, and a peer that ignores PAUSE slows only itself.
        if !self.stalled && self.over_caps() {
            self.stalled = true;
            self.stats.stalls += 1;
            if self.stall_episode.is_none() {
                self.stall_episode = Some(now);
                for (_, c) in self.channels.iter_mut() {
                    c.drained_in_stall = false;
                }
            }
        }
    }

    /// The open channel holding the most undelivered bytes.
    fn largest_incoming(&self) -> Option<usize> {
        self.channels
            .iter()
            .filter(|(_, c)| c.phase == Phase::Open && c.incoming_pending > 0)
            .max_by_key(|(_, c)| c.incoming_pending)
            .map(|(i, _)| i)
    }

    /// `stall_max` after the first stall of an episode: closes every channel that holds bytes
    /// and took none of them since (a sink that does not read at all), then reads on.
    /// Protocol 0: a slow sink that drained something keeps its channel and every byte; if it
    /// is still over its cap the next frame for it stalls the tunnel again, so the tunnel moves
    /// at its pace (protocol 0 has no other brake). Protocol 1+: the peer has been PAUSEd, so
    /// what is over a cap now is the overshoot of a peer that ignores PAUSE or a sink that
    /// cannot absorb an honest one within the grace: those channels go too (the largest first
    /// while the tunnel is over its cap), and the neighbours never wait longer than the grace.
    /// Either way what is held never passes the caps by more than one frame.
    pub(super) fn end_stall(&mut self) {
        let flow_control = self.version.has_flow_control();
        let cap = self.config.channel_incoming_max;
        let dead: Vec<usize> = self
            .channels
            .iter()
            .filter(|(_, c)| {
                c.phase == Phase::Open
                    && c.incoming_pending > 0
                    && (!c.drained_in_stall || (flow_control && c.incoming_pending > cap))
            })
            .map(|(i, _)| i)
            .collect();
        for index in dead {
            self.overrun(index);
        }
        while flow_control && self.incoming_total > self.config.tunnel_incoming_max {
            let Some(hog) = self.largest_incoming() else {
                break;
            };
            self.overrun(hog);
        }
        self.stall_episode = None;
        if std::mem::take(&mut self.stalled) {
            self.events.push_back(Event::InputReady);
        }
    }

    /// Closes a channel whose sink fell behind a cap; the rest of the tunnel reads on.
    fn overrun(&mut self, index: usize) {
        let channel = self.handle_of(index);
        self.stats.channels_overrun += 1;
        self.kill(index, CloseCause::Overrun);
        self.events.push_back(Event::Closed {
            channel,
            cause: CloseCause::Overrun,
        });
    }
}
