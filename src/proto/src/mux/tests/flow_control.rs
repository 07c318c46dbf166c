//! PAUSE/RESUME, the queue caps and outgoing watermarks: paused readers lose nothing, a
//! reader past a cap loses only its own channel, and memory stays bounded.

use std::time::Duration;

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
    let grace = small_server().stall_max;
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

/// Five channels, each under its own 256 KiB cap, together over the tunnel's 1 MiB (the first
/// holds the most): each queues its bytes in `frame`-sized DATA before any PAUSE can reach it.
fn five_channels_over_the_tunnel_cap(
    version: ProtocolVersion,
    frame: usize,
) -> (Pair, Vec<(ChannelHandle, ChannelHandle)>) {
    let mut p = Pair::with_config(CipherKind::AesGcm, version, small_server(), small_client());
    p.server.auto_consume = false;
    let pairs: Vec<_> = (0..5).map(|_| p.open()).collect();
    for (i, &(_, c)) in pairs.iter().enumerate() {
        let n = if i == 0 { 240 * 1024 } else { 200 * 1024 };
        for _ in 0..n / frame {
            p.client
                .mux
                .send(c, Bytes::from(vec![i as u8; frame]), p.now)
                .unwrap();
        }
        p.drive();
    }
    (p, pairs)
}

/// The server's channels closed for overrun, in order.
fn overrun(p: &Pair) -> Vec<ChannelHandle> {
    p.server
        .closed
        .iter()
        .filter(|(_, c)| *c == CloseCause::Overrun)
        .map(|(h, _)| *h)
        .collect()
}

#[test]
fn past_the_tunnel_cap_the_tunnel_stalls_and_after_the_grace_readers_that_read_nothing_go() {
    for version in [ProtocolVersion::V0, ProtocolVersion::V2] {
        let (mut p, pairs) = five_channels_over_the_tunnel_cap(version, 40 * 1024);
        // The tunnel stops reading first (TCP slows the peer), and cuts only after the grace.
        assert!(!p.server.mux.wants_input(), "v{version}");
        assert!(p.server.closed.is_empty(), "v{version}");
        p.advance(small_server().stall_max);
        p.server.process_events(p.now);
        assert!(p.server.mux.incoming_total <= 1024 * 1024);
        // None of the five read during the stall: every one that held bytes goes.
        let want: Vec<_> = pairs.iter().map(|&(s, _)| s).collect();
        assert_eq!(overrun(&p), want, "v{version}");
        assert!(p.server.mux.wants_input(), "the tunnel reads on");
    }
}

#[test]
fn protocol_2_past_the_tunnel_cap_after_the_grace_the_largest_goes_even_if_all_read() {
    let (mut p, pairs) = five_channels_over_the_tunnel_cap(ProtocolVersion::V2, 1024);
    assert!(!p.server.mux.wants_input());
    // Every sink takes a frame, not enough to bring the tunnel under its cap for long.
    for &(s, _) in &pairs {
        p.server.drain_up_to(s, 1024);
    }
    p.server.process_events(p.now);
    p.advance(small_server().stall_max);
    p.server.process_events(p.now);
    // The peer was PAUSEd: after the grace the channel holding the most goes, and only it.
    assert_eq!(overrun(&p), vec![pairs[0].0]);
    assert!(p.server.mux.incoming_total <= 1024 * 1024);
    assert!(p.server.mux.wants_input(), "the tunnel reads on");
}

/// The defect CI caught: on a busy host an honest protocol-2 peer's bytes in flight when PAUSE
/// left (socket buffers autotune to tens of MiB) outran the channel's cap, and the channel was
/// cut mid-download. Past the cap the tunnel now stops reading instead, and the download
/// arrives whole at the sink's pace.
#[test]
fn an_honest_protocol_2_overshoot_past_the_cap_loses_nothing() {
    let mut p = Pair::with_config(
        CipherKind::AesGcm,
        ProtocolVersion::V2,
        small_server(),
        small_client(),
    );
    let (s, c) = p.open();
    p.server.auto_consume = false;
    // 600 KiB queued before any PAUSE can reach the peer: over the 256 KiB channel cap.
    let data: Vec<u8> = (0..600 * 1024u32).map(|i| (i % 251) as u8).collect();
    for chunk in data.chunks(16 * 1024) {
        p.client
            .mux
            .send(c, Bytes::copy_from_slice(chunk), p.now)
            .unwrap();
    }
    p.drive();
    assert!(
        !p.server.mux.wants_input(),
        "stalled past the channel's cap"
    );
    assert!(p.server.mux.stats().pauses_sent >= 1);
    // The sink reads 32 KiB a step, well within the grace.
    for _ in 0..100 {
        if p.server.drain_up_to(s, 32 * 1024) == 0 && p.server.mux.wants_input() {
            p.drive();
            if p.server.drain_up_to(s, 32 * 1024) == 0 {
                break;
            }
        }
        p.server.process_events(p.now);
        p.drive();
        p.advance(Duration::from_millis(10));
    }
    assert!(p.server.closed.is_empty(), "{:?}", p.server.closed);
    assert_eq!(p.server.received[&s].len(), data.len());
    assert!(p.server.received[&s] == data);
    assert_eq!(p.server.mux.stats().channels_overrun, 0);
}

#[test]
fn after_a_protocol_0_stall_a_slow_reader_keeps_its_channel_and_dead_ones_lose_theirs() {
    let mut p = Pair::with_config(
        CipherKind::AesCbc,
        ProtocolVersion::V0,
        small_server(),
        small_client(),
    );
    p.server.auto_consume = false;
    let dead: Vec<_> = (0..4).map(|_| p.open()).collect();
    let (slow_s, slow_c) = p.open();
    // Four readers that never read hold 250 KiB each (under their caps); the slow one's
    // 100 KiB take the tunnel past its 1 MiB cap: it stalls.
    let mut plan: Vec<_> = dead.iter().map(|&(_, c)| (c, 250)).collect();
    plan.push((slow_c, 100));
    for (c, kib) in plan {
        for _ in 0..kib {
            if p.client.mux.can_send(c) {
                p.client
                    .mux
                    .send(c, Bytes::from(vec![1u8; 1024]), p.now)
                    .unwrap();
            }
            p.drive();
        }
    }
    assert!(!p.server.mux.wants_input(), "stalled at the tunnel's cap");
    // The slow one takes a little during the grace: the stall ends, the next frame stalls
    // the tunnel again, within the same episode.
    p.server.drain_up_to(slow_s, 1024);
    p.server.process_events(p.now);
    p.advance(small_server().stall_max);
    let mut overrun: Vec<_> = p
        .server
        .closed
        .iter()
        .filter(|(_, c)| *c == CloseCause::Overrun)
        .map(|(h, _)| *h)
        .collect();
    overrun.sort_by_key(|h| h.index());
    let want: Vec<_> = dead.iter().map(|&(s, _)| s).collect();
    assert_eq!(
        overrun, want,
        "the readers that read nothing go, the slow one stays"
    );
    assert!(p.server.mux.wants_input(), "the tunnel reads on");
    // The slow one then reads everything: not a byte lost.
    for _ in 0..1000 {
        p.server.drain_up_to(slow_s, 64 * 1024);
        p.server.process_events(p.now);
        p.drive();
    }
    assert_eq!(p.server.received[&slow_s].len(), 100 * 1024);
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
