//! Channels open, carry data and close, from either side, under every cipher and version.

use bytes::Bytes;

use super::harness::{ALL, Pair};
use crate::crypto::CipherKind;
use crate::mux::{CloseCause, Multiplexer, MuxConfig, OpenError, Recv, SendError};
use crate::version::ProtocolVersion;

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn data_flows_both_ways_and_closes_cleanly() {
    for (cipher, version) in ALL {
        let mut p = Pair::new(cipher, version);
        let (s, c) = p.open();
        assert_eq!(
            p.client.opened[0].1,
            Some("192.0.2.7".parse().unwrap()),
            "{cipher} v{version}"
        );
        let down = payload(300_000, 1);
        let up = payload(70_000, 2);
        p.server
            .mux
            .send(s, Bytes::from(down.clone()), p.now)
            .unwrap();
        p.client
            .mux
            .send(c, Bytes::from(up.clone()), p.now)
            .unwrap();
        p.drive();
        assert_eq!(p.client.received[&c], down, "{cipher} v{version}");
        assert_eq!(p.server.received[&s], up, "{cipher} v{version}");

        // The server hangs up: the client gets what was in flight, then the end.
        p.server
            .mux
            .send(s, Bytes::from_static(b"bye"), p.now)
            .unwrap();
        p.server.mux.close(s);
        p.drive();
        assert_eq!(&p.client.received[&c][down.len()..], b"bye");
        assert_eq!(p.client.closed, [(c, CloseCause::PeerClosed)]);
        assert_eq!(p.client.eof, [c]);
        assert_eq!(p.server.mux.channel_count(), 0, "{cipher} v{version}");
        assert_eq!(p.client.mux.channel_count(), 0, "{cipher} v{version}");
        assert!(p.server.closed.is_empty(), "the CLOSE is not echoed back");
        assert!(p.server.error.is_none() && p.client.error.is_none());
    }
}

#[test]
fn the_client_may_close_too() {
    let mut p = Pair::new(CipherKind::AesGcm, ProtocolVersion::V2);
    let (s, c) = p.open();
    p.client
        .mux
        .send(c, Bytes::from_static(b"last words"), p.now)
        .unwrap();
    p.client.mux.close(c);
    assert_eq!(
        p.client.mux.send(c, Bytes::from_static(b"x"), p.now),
        Err(SendError::ChannelClosed)
    );
    p.drive();
    assert_eq!(p.server.received[&s], b"last words");
    assert_eq!(p.server.closed, [(s, CloseCause::PeerClosed)]);
    assert_eq!(p.server.eof, [s]);
    assert_eq!(p.server.mux.recv(s), Recv::Closed);
    assert_eq!(
        p.server.mux.channel_count() + p.client.mux.channel_count(),
        0
    );
}

#[test]
fn simultaneous_close_leaves_nothing_behind() {
    let mut p = Pair::new(CipherKind::AesCbc, ProtocolVersion::V1);
    let (s, c) = p.open();
    p.server.mux.close(s);
    p.client.mux.close(c);
    p.drive();
    assert_eq!(
        p.server.mux.channel_count() + p.client.mux.channel_count(),
        0
    );
    assert!(p.server.error.is_none() && p.client.error.is_none());
}

#[test]
fn stale_handles_touch_nothing() {
    let mut p = Pair::new(CipherKind::AesCbc, ProtocolVersion::V0);
    let (s1, _) = p.open();
    p.server.mux.close(s1);
    p.drive();
    let (s2, c2) = p.open();
    assert_eq!(s1.index(), s2.index(), "the slot is reused");
    assert_ne!(s1, s2);
    assert_eq!(
        p.server.mux.send(s1, Bytes::from_static(b"x"), p.now),
        Err(SendError::ChannelClosed)
    );
    assert_eq!(p.server.mux.recv(s1), Recv::Closed);
    p.server.mux.consumed(s1, 1000);
    p.server.mux.close(s1);
    p.server.mux.close(s1);
    p.server
        .mux
        .send(s2, Bytes::from_static(b"still here"), p.now)
        .unwrap();
    p.drive();
    assert_eq!(p.client.received[&c2], b"still here");
}

#[test]
fn channel_limits_refuse_newcomers_and_keep_serving_others() {
    let client = MuxConfig {
        max_channels: 2,
        ..MuxConfig::client()
    };
    let server = MuxConfig {
        max_channels: 3,
        ..MuxConfig::server()
    };
    let mut p = Pair::with_config(CipherKind::AesGcm, ProtocolVersion::V2, server, client);
    let (s1, c1) = p.open();
    let _ = p.open();
    // The server allows a third; the client refuses it with a CLOSE.
    let s3 = p
        .server
        .mux
        .open_channel("192.0.2.9".parse().unwrap(), p.now)
        .unwrap();
    p.drive();
    assert_eq!(p.client.mux.stats().refused_channels, 1);
    assert_eq!(p.server.closed, [(s3, CloseCause::PeerClosed)]);
    // s3 is gone; the server has room for one more, then refuses.
    assert_eq!(p.server.mux.channel_count(), 2);
    p.server
        .mux
        .open_channel("192.0.2.9".parse().unwrap(), p.now)
        .unwrap();
    assert_eq!(
        p.server
            .mux
            .open_channel("192.0.2.9".parse().unwrap(), p.now),
        Err(OpenError::TooManyChannels)
    );
    p.server
        .mux
        .send(s1, Bytes::from_static(b"ok"), p.now)
        .unwrap();
    p.drive();
    assert_eq!(p.client.received[&c1], b"ok");
}

#[test]
fn opening_gives_up_when_every_random_id_is_taken() {
    use crate::random::VectorPattern;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    // VectorPattern hands out the same 16 bytes every time: the second id is always taken.
    let (server, _) = super::harness::sessions(CipherKind::AesGcm, ProtocolVersion::V2);
    let now = Instant::now();
    let mut mux = Multiplexer::new(server, MuxConfig::server(), VectorPattern, now);
    let first = mux.open_channel("192.0.2.1".parse().unwrap(), now).unwrap();
    // Run the second open on a thread so that a hang fails the test instead of freezing it.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let second = mux.open_channel("192.0.2.2".parse().unwrap(), now);
        let _ = tx.send((second, mux));
    });
    let (second, mut mux) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("open_channel returned instead of retrying for ever");
    assert_eq!(second, Err(OpenError::NoFreeChannelId));
    // Nothing of the failed open is left behind; the open channel still works.
    assert_eq!(mux.channel_count(), 1);
    assert!(mux.can_send(first));
    mux.send(first, Bytes::from_static(b"still here"), now)
        .unwrap();
}

#[test]
fn only_the_server_opens_channels() {
    let mut p = Pair::new(CipherKind::AesCbc, ProtocolVersion::V0);
    assert_eq!(
        p.client
            .mux
            .open_channel("192.0.2.1".parse().unwrap(), p.now),
        Err(OpenError::NotServer)
    );
}

#[test]
fn ipv6_callers_reach_v2_clients_and_are_zeroed_for_older_ones() {
    for (version, expect) in [
        (ProtocolVersion::V2, "2001:db8::7"),
        (ProtocolVersion::V1, "0.0.0.0"),
        (ProtocolVersion::V0, "0.0.0.0"),
    ] {
        let mut p = Pair::new(CipherKind::AesCbc, version);
        p.server
            .mux
            .open_channel("2001:db8::7".parse().unwrap(), p.now)
            .unwrap();
        p.server
            .mux
            .open_channel("::ffff:198.51.100.2".parse().unwrap(), p.now)
            .unwrap();
        p.drive();
        assert_eq!(
            p.client.opened[0].1,
            Some(expect.parse().unwrap()),
            "v{version}"
        );
        let mapped = if version == ProtocolVersion::V2 {
            "::ffff:198.51.100.2"
        } else {
            "198.51.100.2"
        };
        assert_eq!(
            p.client.opened[1].1,
            Some(mapped.parse().unwrap()),
            "v{version}"
        );
    }
}

#[test]
fn close_all_closes_every_channel() {
    let mut p = Pair::new(CipherKind::AesGcmSiv, ProtocolVersion::V2);
    let (_, c1) = p.open();
    let (_, c2) = p.open();
    assert_eq!(p.server.mux.close_all(), 2);
    p.drive();
    assert_eq!(p.client.closed.len(), 2);
    assert!(p.client.eof.contains(&c1) && p.client.eof.contains(&c2));
}
