//! Writing frames to the tunnel: control frames first, then one frame per channel in turn.
//!
//! Frames are gathered into a [`Transmit`]: encrypted headers and small payloads are packed
//! into one buffer, large payloads ride along as the `Bytes` the shell read them into, so the
//! shell can hand the whole batch to one vectored write without copying payloads.

use bytes::{Bytes, BytesMut};
use std::time::Instant;

use super::channel::{OutItem, Phase};
use super::{Control, Event, Multiplexer, MuxError};
use crate::crypto::CryptoError;
use crate::frame::{self, EXTRA_LEN, Flow, HEADER_LEN, Header, PING_MARK, PONG_MARK};
use crate::random::Random;

/// Payloads up to this size are copied next to their header: one segment instead of two.
const INLINE_PAYLOAD_MAX: usize = 1024;
/// Most segments in one batch (well under the kernel's IOV_MAX of 1024).
pub const MAX_SEGMENTS: usize = 256;

/// A batch of bytes to write to the tunnel socket, in order.
#[derive(Debug, Default)]
pub struct Transmit {
    inline: BytesMut,
    segments: Vec<Bytes>,
    len: usize,
}

impl Transmit {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Segments the batch would be written as.
    pub fn segment_count(&self) -> usize {
        self.segments.len() + usize::from(!self.inline.is_empty())
    }

    /// Takes the batch as segments for a vectored write, leaving it empty. The inline buffer's
    /// allocation is reused for the next batch once these segments are dropped.
    pub fn take_segments(&mut self) -> Vec<Bytes> {
        self.flush_inline();
        self.len = 0;
        std::mem::take(&mut self.segments)
    }

    fn unit_mut(&mut self, n: usize) -> &mut [u8] {
        let start = self.inline.len();
        self.inline.resize(start + n, 0);
        self.len += n;
        &mut self.inline[start..]
    }

    fn payload(&mut self, data: Bytes) {
        self.len += data.len();
        if data.len() <= INLINE_PAYLOAD_MAX {
            self.inline.extend_from_slice(&data);
        } else {
            self.flush_inline();
            self.segments.push(data);
        }
    }

    fn flush_inline(&mut self) {
        if !self.inline.is_empty() {
            self.segments.push(self.inline.split().freeze());
        }
    }
}

impl<R: Random> Multiplexer<R> {
    /// Encodes queued frames into `tx` until it holds about `limit` bytes or nothing is left.
    /// Write the batch to the tunnel socket before calling again, in the order produced.
    ///
    /// An error ends the tunnel.
    pub fn poll_transmit(
        &mut self,
        tx: &mut Transmit,
        limit: usize,
        now: Instant,
    ) -> Result<(), MuxError> {
        if let Some(e) = &self.closed {
            return Err(e.clone());
        }
        let result = self.fill(tx, limit, now);
        if let Err(e) = &result {
            self.closed = Some(e.clone());
        }
        result
    }

    fn fill(&mut self, tx: &mut Transmit, limit: usize, now: Instant) -> Result<(), MuxError> {
        if self.wants_output() {
            self.timers.framed(now);
        }
        while tx.len() < limit && tx.segment_count() < MAX_SEGMENTS {
            if let Some(control) = self.control.pop_front() {
                self.emit_control(tx, control)?;
                continue;
            }
            let Some((index, generation)) = self.ready.pop_front() else {
                break;
            };
            let Some(ch) = self
                .channels
                .get_mut(index)
                .filter(|c| c.generation == generation)
            else {
                continue;
            };
            ch.scheduled = false;
            let Some(item) = ch.outgoing.pop_front() else {
                continue;
            };
            let id = ch.id;
            match item {
                OutItem::New => {
                    let caller = ch.caller.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
                    self.emit_new(tx, id, caller)?;
                }
                OutItem::Data(data) => {
                    ch.outgoing_bytes -= data.len();
                    ch.last_activity = now;
                    let extra = frame::extra_with(&[], &mut self.rng);
                    self.emit(
                        tx,
                        Header {
                            channel: id,
                            flow: Flow::Data,
                            size: data.len() as u32,
                            extra,
                        },
                    )?;
                    self.stats.data_bytes_out += data.len() as u64;
                    tx.payload(data);
                    self.maybe_writable(index);
                }
                OutItem::Close => {
                    let extra = frame::extra_with(&[], &mut self.rng);
                    self.emit(
                        tx,
                        Header {
                            channel: id,
                            flow: Flow::Close,
                            size: 0,
                            extra,
                        },
                    )?;
                    self.remove(index);
                    continue;
                }
            }
            self.schedule(index);
        }
        Ok(())
    }

    fn emit_control(&mut self, tx: &mut Transmit, control: Control) -> Result<(), MuxError> {
        let (channel, flow, mark): (_, _, &[u8]) = match control {
            Control::Ping(id) => (id, Flow::Ping, PING_MARK),
            Control::Pong(id) => (id, Flow::Ping, PONG_MARK),
            Control::Pause(id) => (id, Flow::Pause, &[]),
            Control::Resume(id) => (id, Flow::Resume, &[]),
            Control::Close(id) => (id, Flow::Close, &[]),
        };
        let extra = frame::extra_with(mark, &mut self.rng);
        self.emit(
            tx,
            Header {
                channel,
                flow,
                size: 0,
                extra,
            },
        )
    }

    fn emit_new(
        &mut self,
        tx: &mut Transmit,
        id: frame::ChannelId,
        caller: std::net::IpAddr,
    ) -> Result<(), MuxError> {
        if !self.version.has_new_payload() {
            let extra = frame::new_extra_v0(caller, &mut self.rng);
            return self.emit(
                tx,
                Header {
                    channel: id,
                    flow: Flow::New,
                    size: 0,
                    extra,
                },
            );
        }
        let extra = frame::extra_with(&[], &mut self.rng);
        let (payload, len) = frame::new_payload_v2(caller, &mut self.rng);
        self.emit(
            tx,
            Header {
                channel: id,
                flow: Flow::New,
                size: len as u32,
                extra,
            },
        )?;
        self.seal_unit(tx, &payload[..len])
    }

    fn emit(&mut self, tx: &mut Transmit, header: Header) -> Result<(), MuxError> {
        self.stats.frames_out += 1;
        self.seal_unit(tx, &header.encode())
    }

    fn seal_unit(&mut self, tx: &mut Transmit, plain: &[u8]) -> Result<(), MuxError> {
        let out = tx.unit_mut(plain.len() + self.cipher.overhead());
        self.cipher
            .seal(plain, out, &mut self.rng)
            .map_err(|e| match e {
                CryptoError::NonceExhausted => MuxError::NonceExhausted,
                other => MuxError::Crypto(other),
            })
    }

    /// Emits `Writable` if a blocked source may now be read.
    pub(super) fn maybe_writable(&mut self, index: usize) {
        let low = self.config.outgoing_low;
        let ch = &mut self.channels[index];
        if ch.source_blocked
            && ch.phase == Phase::Open
            && !ch.peer_paused
            && ch.outgoing_bytes <= low
        {
            ch.source_blocked = false;
            let channel = self.handle_of(index);
            self.events.push_back(Event::Writable { channel });
        }
    }
}

const _: () = assert!(EXTRA_LEN == 11 && HEADER_LEN == 32);
