//! Fuzzes the multiplexer's frame decoder: after a real handshake, arbitrary bytes in
//! arbitrary pieces go into a multiplexer of either role, every cipher and version. It may
//! end the tunnel; it must never panic, and what it says must stay consistent.
//!
//! From `src/proto/fuzz`: `cargo +nightly fuzz run frame corpus/frame corpus/seed-frame`
//! (`seed-frame` holds the recorded SniTun transcripts, both directions).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

use sluice_proto::crypto::{CipherKind, Role};
use sluice_proto::handshake::{ClientHandshake, ServerChallenge};
use sluice_proto::mux::{Event, Multiplexer, MuxConfig, Recv, Transmit};
use sluice_proto::random::VectorPattern;
use sluice_proto::token::TokenClaims;
use sluice_proto::version::ProtocolVersion;

const CIPHERS: [CipherKind; 3] = [CipherKind::AesCbc, CipherKind::AesGcm, CipherKind::AesGcmSiv];
const VERSIONS: [ProtocolVersion; 3] = [ProtocolVersion::V0, ProtocolVersion::V1, ProtocolVersion::V2];

fuzz_target!(|input: &[u8]| {
    let [mode, cuts, rest @ ..] = input else { return };
    let cipher = CIPHERS[usize::from(mode & 3) % 3];
    let version = VERSIONS[usize::from((mode >> 2) & 3) % 3];
    let role = if mode & 0x10 == 0 { Role::Server } else { Role::Client };
    let claims = TokenClaims {
        valid: 4e9,
        hostname: "a.example.test".parse().unwrap(),
        aliases: vec![],
        aes_key: [0x20; 32],
        aes_iv: [0x40; 16],
        protocol_version: version,
        cipher,
    };
    let (server, challenge) = ServerChallenge::new(&claims, &mut VectorPattern).unwrap();
    let client = ClientHandshake::new(cipher, version, &claims.aes_key, &claims.aes_iv);
    let (client, answer) = client.answer(&challenge, &mut VectorPattern).unwrap();
    let server = server.verify(&answer).unwrap();
    let (session, config) = match role {
        Role::Server => (server, MuxConfig::server()),
        Role::Client => (client, MuxConfig::client()),
    };
    let config = MuxConfig {
        incoming_high: 4096,
        incoming_low: 1024,
        channel_incoming_max: 16384,
        tunnel_incoming_max: 65536,
        max_channels: 8,
        ..config
    };
    let now = Instant::now();
    let mut mux = Multiplexer::new(session, config, VectorPattern, now);
    if role == Role::Server {
        let _ = mux.open_channel("192.0.2.1".parse().unwrap(), now);
    }
    let mut buf = BytesMut::new();
    let mut tx = Transmit::new();
    let mut handles = Vec::new();
    // Feed the rest in pieces whose sizes the second byte picks.
    let step = usize::from(*cuts).max(1);
    for (i, piece) in rest.chunks(step).enumerate() {
        buf.extend_from_slice(piece);
        let at = now + Duration::from_millis(i as u64);
        let before = buf.len();
        let r = mux.handle_input(&mut buf, at);
        assert!(buf.len() <= before);
        if r.is_err() {
            assert!(mux.close_reason().is_some());
            assert!(!mux.wants_input() && !mux.wants_output());
            assert!(mux.poll_timeout().is_none());
            return;
        }
        while let Some(event) = mux.poll_event() {
            match event {
                Event::Opened { channel, .. } | Event::Readable { channel } | Event::Closed { channel, .. } => {
                    handles.push(channel)
                }
                Event::Writable { .. } | Event::InputReady => {}
            }
        }
        // Drain every channel as a fast shell would; credit what it took.
        for &h in &handles {
            while let Recv::Data(d) = mux.recv(h) {
                mux.consumed(h, d.len());
            }
        }
        while mux.wants_output() {
            if mux.poll_transmit(&mut tx, 1 << 20, at).is_err() {
                return;
            }
            let _ = tx.take_segments();
        }
        if mux.poll_timeout().is_some_and(|t| t <= at) {
            let _ = mux.handle_timeout(at);
        }
    }
});
