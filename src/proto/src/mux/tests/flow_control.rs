//! PAUSE/RESUME, the queue caps and outgoing watermarks: paused readers lose nothing, a
//! reader past a cap loses only its own channel, and memory stays bounded.

use bytes::Bytes;

use super::harness::Pair;
use crate::crypto::CipherKind;
use crate::mux::{ChannelHandle, CloseCause, MuxConfig};
use crate::version::ProtocolVersion;

fn small_server() -> MuxConfig {
    MuxConfig {
        incoming_high: 64 * 1024,
        incoming_low: 16 * 1024,
        channel_incoming_max: 256 * 1024,
        tunnel_incoming_max: 1024 * 1024,
        ..MuxConfig::server()
    }
}

fn small_client() -> MuxConfig {
    MuxConfig {
        incoming_high: 64 * 1024,
        incoming_low: 16 * 1024,
        channel_incoming_max: 256 * 1024,
        tunnel_incoming_max: 1024 * 1024,
        outgoing_high: 64 * 1024,
        outgoing_low: 16 * 1024,
        ..MuxConfig::client()
    }
}

/// The client sends a bulk upload of `len` bytes while the server reads slowly, chunk by
/// chunk. Returns the pair and the most the server held.
fn slow_reader(version: ProtocolVersion, len: u32) -> (Pair, ChannelHandle, Vec<u8>, usize) {
    let mut p = Pair::with_config(CipherKind::AesCbc, version, small_server(), small_client());
    let (s, c) = p.open();
    p.server.auto_consume = false;
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut max_pending = 0;
    for _ in 0..100_000 {
        // The client reads its "source" only while allowed, as a shell would, and only while
        // the link has room (a socket buffer of 64 KiB: a stalled server slows the client).
        while sent < data.len() && p.client.mux.can_send(c) && p.server.inbox.len() < 64 * 1024 {
            let n = (data.len() - sent).min(16 * 1024);
            if p.client
                .mux
                .send(c, Bytes::copy_from_slice(&data[sent..sent + n]), p.now)
                .is_err()
            {
                break;
            }
            sent += n;
        }
        p.drive();
        max_pending = max_pending.max(p.server.mux.incoming_total);
        p.server.drain_up_to(s, 8 * 1024);
        p.server.process_events(p.now);
        let got = p.server.received.get(&s).map_or(0, Vec::len);
        if got == data.len() || p.server.mux.get(s).is_none() {
            break;
        }
    }
    (p, s, data, max_pending)
}

#[test]
fn protocol_1_and_2_peers_are_paused_and_resumed_and_lose_nothing() {
    for version in [ProtocolVersion::V1, ProtocolVersion::V2] {
        let (p, s, data, max_pending) = slow_reader(version, 2_000_000);
        assert_eq!(
            p.server.received[&s], data,
            "v{version}: every byte, in order"
        );
        assert!(
            max_pending <= 256 * 1024,
            "v{version}: the server held {max_pending} bytes"
        );
        let stats = p.server.mux.stats();
        assert!(stats.pauses_sent > 0, "v{version}: PAUSE sent");
        assert_eq!(stats.channels_overrun, 0);
        assert!(
            stats.pause_overshoot_max < 64 * 1024,
            "v{version}: in flight after PAUSE: {}",
            stats.pause_overshoot_max
        );
        assert_eq!(p.client.mux.stats().pauses_received, stats.pauses_sent);
        assert!(
            !p.client.writable.is_empty(),
            "v{version}: the source was resumed"
        );
    }
}

#[test]
fn a_protocol_0_reader_within_its_cap_loses_nothing_and_is_never_paused() {
    let (p, s, data, _) = slow_reader(ProtocolVersion::V0, 200_000);
    assert_eq!(p.server.received[&s], data);
    assert_eq!(p.server.mux.stats().pauses_sent, 0);
    assert_eq!(p.client.mux.stats().pauses_received, 0);
}

#[test]
fn a_slow_protocol_0_reader_past_its_cap_stalls_the_tunnel_and_loses_nothing() {
    let (p, s, data, max_pending) = slow_reader(ProtocolVersion::V0, 2_000_000);
    assert_eq!(p.server.mux.stats().pauses_sent, 0, "never PAUSE a v0 peer");
    assert_eq!(p.server.received[&s], data, "every byte, in order");
    assert!(p.server.mux.stats().stalls > 0, "the cap was reached");
    assert!(p.server.input_ready > 0, "and the tunnel read on");
    assert_eq!(p.server.mux.stats().channels_overrun, 0);
    // What the multiplexer holds passes the cap by at most what one feed brought.
    assert!(
        max_pending <= 256 * 1024 + 64 * 1024 + 16 * 1024,
        "held {max_pending}"
    );
}

#[test]
fn a_protocol_0_reader_that_never_reads_loses_its_channel_after_the_grace() {
    let mut p = Pair::with_config(
        CipherKind::AesCbc,
        ProtocolVersion::V0,
        small_server(),
        small_client(),
    );
    let (s, c) = p.open();
    p.server.auto_consume = false;
    let data: Vec<u8> = (0..400 * 1024u32).map(|i| (i % 251) as u8).collect();
    for chunk in data.chunks(16 * 1024) {
        if p.client.mux.can_send(c) {
            p.client
                .mux
                .send(c, Bytes::copy_from_slice(chunk), p.now)
                .unwrap();
        }
        p.drive();
    }
    assert!(
        !p.server.mux.wants_input(),
        "stalled past the channel's cap"
    );
    assert!(
        p.server.closed.is_empty(),
        "nothing is cut before the grace"
    );
    let grace = small_server().unpausable_stall_max;
    p.advance(grace / 2);
    assert!(!p.server.mux.wants_input(), "still within the grace");
    p.advance(grace);
    assert!(p.server.closed.contains(&(s, CloseCause::Overrun)));
    assert!(p.server.mux.wants_input(), "the tunnel reads on");
    let got = p.server.received.get(&s).map_or(&[][..], Vec::as_slice);
    assert!(data.starts_with(got) && got.len() < data.len());
    assert_eq!(p.server.mux.stats().channels_overrun, 1);
    // The client heard of it, and another channel of the tunnel is served.
    p.drive();
    assert!(
        p.client
            .closed
            .iter()
            .any(|(_, c)| *c == CloseCause::PeerClosed)
    );
    p.server.auto_consume = true;
    let (s2, c2) = p.open();
    p.client
        .mux
        .send(c2, Bytes::from_static(b"still here"), p.now)
        .unwrap();
    p.drive();
    assert_eq!(p.server.received[&s2], b"still here");
}

#[test]
fn past_the_tunnel_cap_the_channel_holding_the_most_is_closed() {
    for version in [ProtocolVersion::V0, ProtocolVersion::V2] {
        let mut p = Pair::with_config(CipherKind::AesGcm, version, small_server(), small_client());
        p.server.auto_consume = false;
        // Five channels, each under its own cap, together over the tunnel's 1 MiB; the first
        // holds the most when the last one pushes the tunnel over.
        let pairs: Vec<_> = (0..5).map(|_| p.open()).collect();
        for (i, &(_, c)) in pairs.iter().enumerate() {
            let n = if i == 0 { 240 * 1024 } else { 200 * 1024 };
            p.client
                .mux
                .send(c, Bytes::from(vec![i as u8; n]), p.now)
                .unwrap();
            p.drive();
        }
        if version == ProtocolVersion::V0 {
            // No PAUSE: the tunnel stops reading first, and cuts after the grace.
            assert!(!p.server.mux.wants_input());
            assert!(p.server.closed.is_empty());
            p.advance(small_server().unpausable_stall_max);
        }
        p.server.process_events(p.now);
        assert!(p.server.mux.incoming_total <= 1024 * 1024);
        let overrun: Vec<_> = p
            .server
            .closed
            .iter()
            .filter(|(_, c)| *c == CloseCause::Overrun)
            .map(|(h, _)| *h)
            .collect();
        assert_eq!(
            overrun,
            vec![pairs[0].0],
            "v{version}: the largest one goes"
        );
        assert!(p.server.mux.wants_input(), "the tunnel reads on");
    }
}

#[test]
fn under_tunnel_pressure_channels_are_paused_early() {
    let mut p = Pair::with_config(
        CipherKind::AesGcm,
        ProtocolVersion::V2,
        small_server(),
        small_client(),
    );
    p.server.auto_consume = false;
    let pairs: Vec<_> = (0..8).map(|_| p.open()).collect();
    // Each channel gets 40 KiB: under `incoming_high` (64 KiB), over `incoming_low`. Once the
    // tunnel holds half its cap, channels are paused at `incoming_low`.
    for _ in 0..4 {
        for &(_, c) in &pairs {
            if p.client.mux.can_send(c) {
                p.client
                    .mux
                    .send(c, Bytes::from(vec![3u8; 40 * 1024]), p.now)
                    .unwrap();
            }
        }
        p.drive();
    }
    let held = p.server.mux.incoming_total;
    assert!(held >= 512 * 1024, "pressure reached: {held}");
    assert!(held <= 1024 * 1024);
    assert!(p.server.mux.stats().pauses_sent > 0);
    assert_eq!(p.server.mux.stats().channels_overrun, 0, "nobody lost");
}

#[test]
fn a_busy_channel_does_not_starve_a_quiet_one() {
    let mut p = Pair::new(CipherKind::AesCbc, ProtocolVersion::V1);
    let (bulk, _) = p.open();
    let (quiet, cq) = p.open();
    p.server
        .mux
        .send(bulk, Bytes::from(vec![0u8; 4 * 1024 * 1024]), p.now)
        .unwrap();
    p.server
        .mux
        .send(quiet, Bytes::from_static(b"ping me"), p.now)
        .unwrap();
    // Only the first 256 KiB batch goes out: the quiet channel's frame must be in it.
    let mut tx = crate::mux::Transmit::new();
    p.server
        .mux
        .poll_transmit(&mut tx, 256 * 1024, p.now)
        .unwrap();
    let mut wire = Vec::new();
    for seg in tx.take_segments() {
        wire.extend_from_slice(&seg);
    }
    p.client.input(&wire, p.now);
    assert_eq!(p.client.received[&cq], b"ping me");
}

#[test]
fn outgoing_watermarks_block_and_release_the_source() {
    let mut p = Pair::with_config(
        CipherKind::AesGcm,
        ProtocolVersion::V2,
        small_server(),
        small_client(),
    );
    let (_, c) = p.open();
    assert!(p.client.mux.can_send(c));
    p.client
        .mux
        .send(c, Bytes::from(vec![0u8; 64 * 1024]), p.now)
        .unwrap();
    assert!(!p.client.mux.can_send(c), "at the high watermark");
    p.drive();
    assert!(p.client.writable.contains(&c), "Writable once flushed");
    assert!(p.client.mux.can_send(c));
}
