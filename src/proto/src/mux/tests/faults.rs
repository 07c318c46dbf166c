//! What a peer that breaks the rules gets: the channel or the tunnel closed, never a panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::Instant;

use super::harness::{ALL, Pair, sessions};
use crate::crypto::{CipherKind, CryptoError, TunnelCipher};
use crate::frame::{ChannelId, Flow, Header};
use crate::mux::{Blame, CloseCause, Multiplexer, MuxConfig, MuxError};
use crate::random::VectorPattern;
use crate::version::ProtocolVersion;

/// A server multiplexer with one open channel, and the client's cipher to forge frames with.
fn server_and_forger(
    cipher: CipherKind,
    version: ProtocolVersion,
) -> (Multiplexer<StdRng>, TunnelCipher, Instant) {
    let (server, client) = sessions(cipher, version);
    let now = Instant::now();
    let mux = Multiplexer::new(server, MuxConfig::server(), StdRng::seed_from_u64(5), now);
    (mux, client.cipher, now)
}

/// Encrypts hand-made frames with `cipher`, continuing its state.
fn forge(cipher: &mut TunnelCipher, frames: &[(Header, &[u8])]) -> BytesMut {
    let mut out = BytesMut::new();
    for (header, payload) in frames {
        let mut unit = vec![0; 32 + cipher.overhead()];
        cipher
            .seal(&header.encode(), &mut unit, &mut VectorPattern)
            .unwrap();
        out.extend_from_slice(&unit);
        out.extend_from_slice(payload);
    }
    out
}

fn header(channel: ChannelId, flow: Flow, size: u32) -> Header {
    Header {
        channel,
        flow,
        size,
        extra: [0; 11],
    }
}

#[test]
fn an_oversize_frame_ends_the_tunnel() {
    let (mut mux, mut forger, now) = server_and_forger(CipherKind::AesGcm, ProtocolVersion::V2);
    let s = mux.open_channel("192.0.2.1".parse().unwrap(), now).unwrap();
    let id = ChannelId([0; 16]);
    let mut wire = forge(
        &mut forger,
        &[(
            header(id, Flow::Data, MuxConfig::server().max_frame_size + 1),
            &[],
        )],
    );
    let err = mux.handle_input(&mut wire, now).unwrap_err();
    assert!(matches!(err, MuxError::FrameTooLarge { .. }), "{err:?}");
    assert_eq!(err.blame(), Blame::Peer);
    assert_eq!(
        mux.send(s, Bytes::from_static(b"x"), now),
        Err(crate::mux::SendError::ChannelClosed)
    );
    assert_eq!(mux.handle_input(&mut BytesMut::new(), now), Err(err));
    assert!(!mux.wants_input() && !mux.wants_output());
    assert!(mux.poll_timeout().is_none());
}

#[test]
fn unknown_channels_flows_and_stray_news_are_ignored() {
    let (mut mux, mut forger, now) = server_and_forger(CipherKind::AesGcm, ProtocolVersion::V2);
    let s = mux.open_channel("192.0.2.1".parse().unwrap(), now).unwrap();
    let stranger = ChannelId([9; 16]);
    let mut wire = forge(
        &mut forger,
        &[
            (header(stranger, Flow::Data, 5), b"hello"),
            (header(stranger, Flow::Unknown(0x40), 3), b"abc"),
            (header(stranger, Flow::New, 0), &[]),
            (header(stranger, Flow::Close, 0), &[]),
            (header(stranger, Flow::Pause, 0), &[]),
            (header(stranger, Flow::Data, 0), &[]),
        ],
    );
    // Dribbled one byte at a time, to exercise every partial state.
    let mut buf = BytesMut::new();
    while !wire.is_empty() {
        buf.extend_from_slice(&wire.split_to(1));
        mux.handle_input(&mut buf, now).unwrap();
    }
    assert!(buf.is_empty());
    let stats = mux.stats();
    assert_eq!(stats.frames_in, 6);
    assert_eq!(stats.frames_for_unknown_channels, 1);
    assert_eq!(stats.unknown_flows, 1);
    assert_eq!(stats.ignored_new, 1);
    // The channel that exists is untouched.
    assert_eq!(mux.channel_count(), 1);
    assert!(mux.can_send(s));
    assert!(mux.poll_event().is_none());
}

#[test]
fn data_after_close_is_dropped() {
    let mut p = Pair::new(CipherKind::AesCbc, ProtocolVersion::V1);
    let (s, c) = p.open();
    p.server.mux.close(s);
    // The client sends before it learns of the close.
    p.client
        .mux
        .send(c, Bytes::from_static(b"too late"), p.now)
        .unwrap();
    let c2s = p.client.output(p.now);
    let s2c = p.server.output(p.now);
    p.server.input(&c2s, p.now);
    p.client.input(&s2c, p.now);
    p.drive();
    assert!(p.server.received.get(&s).is_none_or(|r| r.is_empty()));
    assert!(p.server.error.is_none() && p.client.error.is_none());
    assert_eq!(
        p.server.mux.channel_count() + p.client.mux.channel_count(),
        0
    );
}

#[test]
fn a_duplicate_new_closes_the_channel() {
    let (server, client) = sessions(CipherKind::AesCbc, ProtocolVersion::V0);
    let now = Instant::now();
    let mut server = Multiplexer::new(server, MuxConfig::server(), VectorPattern, now);
    let mut client = Multiplexer::new(client, MuxConfig::client(), StdRng::seed_from_u64(3), now);
    // VectorPattern draws the same "random" id every time: two NEWs with one id.
    let a = server
        .open_channel("192.0.2.1".parse().unwrap(), now)
        .unwrap();
    let mut tx = crate::mux::Transmit::new();
    server.poll_transmit(&mut tx, usize::MAX, now).unwrap();
    let _ = a;
    server.by_id.clear(); // let the server open a second channel under the same id
    server
        .open_channel("192.0.2.2".parse().unwrap(), now)
        .unwrap();
    server.poll_transmit(&mut tx, usize::MAX, now).unwrap();
    let mut wire = BytesMut::new();
    for s in tx.take_segments() {
        wire.extend_from_slice(&s);
    }
    client.handle_input(&mut wire, now).unwrap();
    let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(matches!(events[0], crate::mux::Event::Opened { .. }));
    assert!(matches!(
        events[1],
        crate::mux::Event::Closed {
            cause: CloseCause::DuplicateId,
            ..
        }
    ));
    assert_eq!(events.len(), 2);
    assert!(client.wants_output(), "a CLOSE goes back");
}

#[test]
fn a_bad_tag_ends_the_tunnel() {
    for cipher in [CipherKind::AesGcm, CipherKind::AesGcmSiv] {
        let mut p = Pair::new(cipher, ProtocolVersion::V2);
        let (_, c) = p.open();
        p.client
            .mux
            .send(c, Bytes::from_static(b"data"), p.now)
            .unwrap();
        let mut wire = p.client.output(p.now);
        wire[20] ^= 0x01;
        p.server.input(&wire, p.now);
        assert_eq!(
            p.server.error,
            Some(MuxError::Crypto(CryptoError::BadTag)),
            "{cipher}"
        );
    }
}

#[test]
fn a_bad_new_payload_size_ends_the_tunnel() {
    let (mut server, client) = sessions(CipherKind::AesCbc, ProtocolVersion::V2);
    let now = Instant::now();
    let mut mux = Multiplexer::new(client, MuxConfig::client(), VectorPattern, now);
    let mut wire = forge(
        &mut server.cipher,
        &[(header(ChannelId([1; 16]), Flow::New, 24), &[])],
    );
    assert_eq!(
        mux.handle_input(&mut wire, now),
        Err(MuxError::BadNewPayload(24))
    );
}

#[test]
fn a_new_in_another_versions_format_ends_a_client_tunnel_and_says_so() {
    let caller = "192.0.2.10".parse().unwrap();
    let now = Instant::now();
    // A v2 token against a server that speaks protocol 0 (SniTun 0.40 ignores the token's
    // version): the caller rides in EXTRA with SIZE 0.
    for cipher in [CipherKind::AesCbc, CipherKind::AesGcmSiv] {
        let (mut server, client) = sessions(cipher, ProtocolVersion::V2);
        let mut mux = Multiplexer::new(client, MuxConfig::client(), VectorPattern, now);
        let v0_new = Header {
            extra: crate::frame::new_extra_v0(caller, &mut VectorPattern),
            ..header(ChannelId([1; 16]), Flow::New, 0)
        };
        let mut wire = forge(&mut server.cipher, &[(v0_new, &[])]);
        let err = mux.handle_input(&mut wire, now).unwrap_err();
        assert_eq!(
            err,
            MuxError::VersionMismatch {
                token: ProtocolVersion::V2
            },
            "{cipher}"
        );
        assert_eq!(err.blame(), Blame::Peer);
        assert_eq!(err.suggested_version(), Some(ProtocolVersion::V0));
        assert!(err.to_string().contains("protocol 0 or 1"), "{err}");
        assert!(mux.poll_event().is_none(), "no channel was opened");
    }
    // The other way round: a v0 or v1 token, a server that sends protocol 2's NEW.
    for version in [ProtocolVersion::V0, ProtocolVersion::V1] {
        let (mut server, client) = sessions(CipherKind::AesCbc, version);
        let mut mux = Multiplexer::new(client, MuxConfig::client(), VectorPattern, now);
        let (payload, len) = crate::frame::new_payload_v2(caller, &mut VectorPattern);
        let mut wire = forge(
            &mut server.cipher,
            &[(header(ChannelId([1; 16]), Flow::New, len as u32), &[])],
        );
        let mut sealed = vec![0; len + server.cipher.overhead()];
        server
            .cipher
            .seal(&payload[..len], &mut sealed, &mut VectorPattern)
            .unwrap();
        wire.extend_from_slice(&sealed);
        let err = mux.handle_input(&mut wire, now).unwrap_err();
        assert_eq!(err, MuxError::VersionMismatch { token: version });
        assert_eq!(err.suggested_version(), Some(ProtocolVersion::V2));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary bytes after a real handshake, in arbitrary pieces: errors allowed, panics not.
    #[test]
    fn garbage_never_panics(
        which in 0usize..ALL.len(),
        role_client in any::<bool>(),
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
    ) {
        let (cipher, version) = ALL[which];
        let (s, c) = sessions(cipher, version);
        let now = Instant::now();
        let (session, config) = if role_client { (c, MuxConfig::client()) } else { (s, MuxConfig::server()) };
        let mut mux = Multiplexer::new(session, config, VectorPattern, now);
        let mut buf = BytesMut::new();
        for chunk in chunks {
            buf.extend_from_slice(&chunk);
            if mux.handle_input(&mut buf, now).is_err() {
                break;
            }
            while mux.poll_event().is_some() {}
            let mut tx = crate::mux::Transmit::new();
            let _ = mux.poll_transmit(&mut tx, usize::MAX, now);
        }
    }
}
