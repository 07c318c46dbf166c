//! PAUSE/RESUME, input stalls and outgoing watermarks: slow readers lose nothing and cost
//! bounded memory.

use bytes::Bytes;

use super::harness::Pair;
use crate::crypto::CipherKind;
use crate::mux::{Event, MuxConfig, Recv};
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

/// The client sends a bulk upload while the server reads slowly, chunk by chunk.
fn slow_reader(version: ProtocolVersion) -> (Pair, Vec<u8>) {
    let mut p = Pair::with_config(CipherKind::AesCbc, version, small_server(), small_client());
    let (s, c) = p.open();
    p.server.auto_consume = false;
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut max_pending = 0;
    for _ in 0..100_000 {
        // The client reads its "source" only while allowed, as a shell would.
        while sent < data.len() && p.client.mux.can_send(c) {
            let n = (data.len() - sent).min(16 * 1024);
            p.client
                .mux
                .send(c, Bytes::copy_from_slice(&data[sent..sent + n]), p.now)
                .unwrap();
            sent += n;
        }
        p.drive();
        max_pending = max_pending.max(p.server.mux.incoming_total);
        p.server.drain_up_to(s, 8 * 1024);
        p.server.process_events(p.now);
        if p.server.received.get(&s).map_or(0, Vec::len) == data.len() {
            break;
        }
    }
    assert_eq!(
        p.server.received[&s], data,
        "v{version}: every byte, in order"
    );
    assert!(
        max_pending <= 256 * 1024 + 64 * 1024,
        "v{version}: the server held {max_pending} bytes"
    );
    (p, data)
}

#[test]
fn protocol_1_and_2_peers_are_paused_and_resumed() {
    for version in [ProtocolVersion::V1, ProtocolVersion::V2] {
        let (p, _) = slow_reader(version);
        let stats = p.server.mux.stats();
        assert!(stats.pauses_sent > 0, "v{version}: PAUSE sent");
        assert_eq!(p.client.mux.stats().pauses_received, stats.pauses_sent);
        assert!(
            !p.client.writable.is_empty(),
            "v{version}: the source was resumed"
        );
    }
}

#[test]
fn protocol_0_peers_are_never_sent_pause_and_the_tunnel_stalls_instead() {
    let (p, _) = slow_reader(ProtocolVersion::V0);
    assert_eq!(p.server.mux.stats().pauses_sent, 0);
    assert_eq!(p.client.mux.stats().pauses_received, 0);
}

#[test]
fn an_undrained_channel_stalls_input_until_it_drains() {
    let mut p = Pair::with_config(
        CipherKind::AesGcm,
        ProtocolVersion::V0,
        small_server(),
        small_client(),
    );
    let (s, c) = p.open();
    p.server.auto_consume = false;
    p.client
        .mux
        .send(c, Bytes::from(vec![7u8; 600 * 1024]), p.now)
        .unwrap();
    p.drive();
    assert!(
        !p.server.mux.wants_input(),
        "over the channel cap: input stops"
    );
    assert!(p.server.mux.stats().input_stalls >= 1);
    assert!(
        !p.server.inbox.is_empty(),
        "the rest waits in the read buffer"
    );
    let mut got = 0;
    while got < 600 * 1024 {
        match p.server.mux.recv(s) {
            Recv::Data(b) => {
                got += b.len();
                p.server.mux.consumed(s, b.len());
                p.server.process_events(p.now);
            }
            other => panic!("after {got}: {other:?}"),
        }
    }
    assert!(p.server.mux.wants_input());
}

#[test]
fn input_ready_is_announced_after_a_stall() {
    let mut p = Pair::with_config(
        CipherKind::AesCbc,
        ProtocolVersion::V0,
        small_server(),
        small_client(),
    );
    let (s, c) = p.open();
    p.server.auto_consume = false;
    p.client
        .mux
        .send(c, Bytes::from(vec![1u8; 400 * 1024]), p.now)
        .unwrap();
    let wire = p.client.output(p.now);
    p.server.inbox.extend_from_slice(&wire);
    p.server
        .mux
        .handle_input(&mut p.server.inbox, p.now)
        .unwrap();
    assert!(!p.server.mux.wants_input());
    let mut ready = false;
    while let Recv::Data(b) = p.server.mux.recv(s) {
        p.server.mux.consumed(s, b.len());
        while let Some(e) = p.server.mux.poll_event() {
            ready |= e == Event::InputReady;
        }
    }
    assert!(ready, "InputReady after draining");
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
