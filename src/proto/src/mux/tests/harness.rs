//! Two multiplexers wired back to back in memory, with a virtual clock.

use bytes::BytesMut;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::crypto::CipherKind;
use crate::handshake::{ClientHandshake, ServerChallenge, Session};
use crate::mux::{
    ChannelHandle, CloseCause, Event, Multiplexer, MuxConfig, MuxError, Recv, Transmit,
};
use crate::token::TokenClaims;
use crate::version::ProtocolVersion;

pub(in crate::mux) type Mux = Multiplexer<StdRng>;

pub(super) const KEY: [u8; 32] = [0x20; 32];
pub(super) const IV: [u8; 16] = [0x40; 16];

/// Runs a real handshake and returns (server, client) sessions.
pub(in crate::mux) fn sessions(cipher: CipherKind, version: ProtocolVersion) -> (Session, Session) {
    let claims = TokenClaims {
        valid: 4e9,
        hostname: "a.example.test".parse().unwrap(),
        aliases: vec![],
        aes_key: KEY,
        aes_iv: IV,
        protocol_version: version,
        cipher,
    };
    let mut rng = StdRng::seed_from_u64(1);
    let (server, challenge) = ServerChallenge::new(&claims, &mut rng).unwrap();
    let client = ClientHandshake::new(cipher, version, &KEY, &IV);
    let (client, answer) = client.answer(&challenge, &mut rng).unwrap();
    (server.verify(&answer).unwrap(), client)
}

pub(super) const ALL: [(CipherKind, ProtocolVersion); 7] = [
    (CipherKind::AesCbc, ProtocolVersion::V0),
    (CipherKind::AesCbc, ProtocolVersion::V1),
    (CipherKind::AesCbc, ProtocolVersion::V2),
    (CipherKind::AesGcm, ProtocolVersion::V0),
    (CipherKind::AesGcm, ProtocolVersion::V2),
    (CipherKind::AesGcmSiv, ProtocolVersion::V1),
    (CipherKind::AesGcmSiv, ProtocolVersion::V2),
];

/// One end with the bookkeeping a shell would do.
pub(super) struct Side {
    pub(super) mux: Mux,
    pub(super) inbox: BytesMut,
    /// Drain `recv` and report `consumed` as soon as data is readable.
    pub(super) auto_consume: bool,
    pub(super) received: HashMap<ChannelHandle, Vec<u8>>,
    pub(super) eof: Vec<ChannelHandle>,
    pub(super) opened: Vec<(ChannelHandle, Option<std::net::IpAddr>)>,
    pub(super) closed: Vec<(ChannelHandle, CloseCause)>,
    pub(super) writable: Vec<ChannelHandle>,
    pub(super) error: Option<MuxError>,
    /// Bytes this side put on the wire, for inspection.
    pub(super) wire_out: Vec<u8>,
    /// Times a protocol-0 stall ended.
    pub(super) input_ready: usize,
}

impl Side {
    fn new(session: Session, config: MuxConfig, seed: u64, now: Instant) -> Self {
        Self {
            mux: Multiplexer::new(session, config, StdRng::seed_from_u64(seed), now),
            inbox: BytesMut::new(),
            auto_consume: true,
            received: HashMap::new(),
            eof: Vec::new(),
            opened: Vec::new(),
            closed: Vec::new(),
            writable: Vec::new(),
            error: None,
            wire_out: Vec::new(),
            input_ready: 0,
        }
    }

    /// Takes the bytes this side wants to send.
    pub(super) fn output(&mut self, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        let mut tx = Transmit::new();
        while self.mux.wants_output() {
            if let Err(e) = self.mux.poll_transmit(&mut tx, 64 * 1024, now) {
                self.error.get_or_insert(e);
                break;
            }
            for seg in tx.take_segments() {
                out.extend_from_slice(&seg);
            }
        }
        self.wire_out.extend_from_slice(&out);
        out
    }

    /// Bytes arrive in the socket buffer (`inbox`); the multiplexer reads them while it
    /// takes input, as a shell would.
    pub(super) fn input(&mut self, bytes: &[u8], now: Instant) {
        self.inbox.extend_from_slice(bytes);
        self.feed(now);
        self.process_events(now);
    }

    fn feed(&mut self, now: Instant) {
        if self.mux.wants_input()
            && !self.inbox.is_empty()
            && let Err(e) = self.mux.handle_input(&mut self.inbox, now)
        {
            self.error.get_or_insert(e);
        }
    }

    pub(super) fn process_events(&mut self, now: Instant) {
        while let Some(event) = self.mux.poll_event() {
            match event {
                Event::Opened { channel, caller } => {
                    self.opened.push((channel, caller));
                    self.received.entry(channel).or_default();
                }
                Event::Readable { channel } => {
                    if self.auto_consume {
                        self.drain(channel);
                    }
                }
                Event::Writable { channel } => self.writable.push(channel),
                Event::Closed { channel, cause } => {
                    self.closed.push((channel, cause));
                    if self.auto_consume {
                        self.drain(channel);
                    }
                }
                Event::InputReady => {
                    self.input_ready += 1;
                    // What waited in the socket buffer during the stall.
                    self.feed(now);
                }
            }
        }
    }

    /// Takes everything readable on a channel, reporting it consumed.
    pub(super) fn drain(&mut self, channel: ChannelHandle) -> usize {
        let mut total = 0;
        loop {
            match self.mux.recv(channel) {
                Recv::Data(b) => {
                    total += b.len();
                    self.received
                        .entry(channel)
                        .or_default()
                        .extend_from_slice(&b);
                    self.mux.consumed(channel, b.len());
                }
                Recv::Empty => return total,
                Recv::Closed => {
                    if !self.eof.contains(&channel) {
                        self.eof.push(channel);
                    }
                    return total;
                }
            }
        }
    }

    /// Takes at most `limit` readable bytes, reporting them consumed.
    pub(super) fn drain_up_to(&mut self, channel: ChannelHandle, limit: usize) -> usize {
        let mut total = 0;
        while total < limit {
            match self.mux.recv(channel) {
                Recv::Data(b) => {
                    total += b.len();
                    self.received
                        .entry(channel)
                        .or_default()
                        .extend_from_slice(&b);
                    self.mux.consumed(channel, b.len());
                }
                Recv::Empty | Recv::Closed => break,
            }
        }
        total
    }
}

/// A server and a client joined by an in-memory link.
pub(super) struct Pair {
    pub(super) server: Side,
    pub(super) client: Side,
    pub(super) now: Instant,
}

impl Pair {
    pub(super) fn new(cipher: CipherKind, version: ProtocolVersion) -> Self {
        Self::with_config(cipher, version, MuxConfig::server(), MuxConfig::client())
    }

    pub(super) fn with_config(
        cipher: CipherKind,
        version: ProtocolVersion,
        server: MuxConfig,
        client: MuxConfig,
    ) -> Self {
        let (s, c) = sessions(cipher, version);
        let now = Instant::now();
        Self {
            server: Side::new(s, server, 11, now),
            client: Side::new(c, client, 22, now),
            now,
        }
    }

    /// Moves bytes both ways until neither side has anything to say.
    pub(super) fn drive(&mut self) {
        for _ in 0..10_000 {
            let s2c = self.server.output(self.now);
            if !s2c.is_empty() {
                self.client.input(&s2c, self.now);
            }
            let c2s = self.client.output(self.now);
            if !c2s.is_empty() {
                self.server.input(&c2s, self.now);
            }
            self.server.process_events(self.now);
            self.client.process_events(self.now);
            if s2c.is_empty()
                && c2s.is_empty()
                && !self.server.mux.wants_output()
                && !self.client.mux.wants_output()
            {
                return;
            }
        }
        panic!("the link never went quiet");
    }

    /// Advances the clock, running both sides' timers along the way.
    pub(super) fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let next = [
                self.server.mux.poll_timeout(),
                self.client.mux.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .filter(|&t| t <= end)
            .min();
            let Some(t) = next else { break };
            self.now = t.max(self.now);
            for side in [&mut self.server, &mut self.client] {
                if side.mux.poll_timeout().is_some_and(|d| d <= self.now) {
                    if let Err(e) = side.mux.handle_timeout(self.now) {
                        side.error.get_or_insert(e);
                    }
                    side.process_events(self.now);
                }
            }
            self.drive();
        }
        self.now = end;
    }

    /// Opens a channel from the server and returns (server handle, client handle).
    pub(super) fn open(&mut self) -> (ChannelHandle, ChannelHandle) {
        let caller = "192.0.2.7".parse().unwrap();
        let s = self.server.mux.open_channel(caller, self.now).unwrap();
        let before = self.client.opened.len();
        self.drive();
        let (c, _) = self.client.opened[before];
        (s, c)
    }
}
