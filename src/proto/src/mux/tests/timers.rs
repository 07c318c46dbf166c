//! Keepalive, idle timeouts and the token deadline, on a virtual clock.

use bytes::Bytes;
use std::time::Duration;

use super::harness::Pair;
use crate::crypto::CipherKind;
use crate::mux::{CloseCause, MuxConfig, MuxError};
use crate::version::ProtocolVersion;

#[test]
fn the_client_pings_and_the_server_answers() {
    let mut p = Pair::new(CipherKind::AesGcm, ProtocolVersion::V2);
    p.advance(Duration::from_secs(50 * 10));
    assert!(p.server.error.is_none(), "{:?}", p.server.error);
    assert!(p.client.error.is_none(), "{:?}", p.client.error);
    // Ten pings out, ten pongs back.
    assert_eq!(p.client.mux.stats().frames_out, 10);
    assert_eq!(p.server.mux.stats().frames_out, 10);
}

/// A pair whose timers are only the ones under test.
fn no_compaction(cipher: CipherKind, version: ProtocolVersion) -> Pair {
    let off = |c: MuxConfig| MuxConfig {
        compact_after: None,
        ..c
    };
    Pair::with_config(
        cipher,
        version,
        off(MuxConfig::server()),
        off(MuxConfig::client()),
    )
}

#[test]
fn an_unanswered_ping_ends_the_tunnel() {
    let mut p = no_compaction(CipherKind::AesCbc, ProtocolVersion::V0);
    let t0 = p.now;
    // The server goes silent: the client's ping at 50 s is never answered.
    p.client
        .mux
        .handle_timeout(t0 + Duration::from_secs(50))
        .unwrap();
    let _ = p.client.output(t0);
    assert_eq!(
        p.client.mux.poll_timeout(),
        Some(t0 + Duration::from_secs(80))
    );
    assert_eq!(
        p.client.mux.handle_timeout(t0 + Duration::from_secs(80)),
        Err(MuxError::KeepaliveTimeout)
    );
    assert_eq!(
        p.client.mux.close_reason(),
        Some(&MuxError::KeepaliveTimeout)
    );
    assert_eq!(
        MuxError::KeepaliveTimeout.blame(),
        crate::mux::Blame::Timeout
    );
    assert!(p.client.mux.poll_timeout().is_none());
}

#[test]
fn a_silent_tunnel_times_out_on_the_server() {
    let mut p = no_compaction(CipherKind::AesCbc, ProtocolVersion::V1);
    let t0 = p.now;
    assert_eq!(
        p.server.mux.poll_timeout(),
        Some(t0 + Duration::from_secs(120))
    );
    // Traffic pushes the deadline back.
    p.server.input(&[], t0 + Duration::from_secs(60)); // nothing: no effect
    assert_eq!(
        p.server.mux.poll_timeout(),
        Some(t0 + Duration::from_secs(120))
    );
    assert_eq!(
        p.server.mux.handle_timeout(t0 + Duration::from_secs(120)),
        Err(MuxError::IdleTimeout)
    );
}

#[test]
fn idle_channels_are_closed_and_busy_ones_kept() {
    let server = MuxConfig {
        channel_idle_timeout: Some(Duration::from_secs(20)),
        ..MuxConfig::server()
    };
    let mut p = Pair::with_config(
        CipherKind::AesGcmSiv,
        ProtocolVersion::V2,
        server,
        MuxConfig::client(),
    );
    let (idle_s, idle_c) = p.open();
    let (busy_s, busy_c) = p.open();
    for _ in 0..6 {
        p.advance(Duration::from_secs(5));
        p.server
            .mux
            .send(busy_s, Bytes::from_static(b"tick"), p.now)
            .unwrap();
        p.drive();
    }
    assert_eq!(p.server.closed, [(idle_s, CloseCause::Idle)]);
    assert_eq!(p.client.closed, [(idle_c, CloseCause::PeerClosed)]);
    assert_eq!(p.client.received[&busy_c], b"tick".repeat(6));
}

#[test]
fn the_token_deadline_ends_the_tunnel() {
    let mut p = no_compaction(CipherKind::AesGcm, ProtocolVersion::V2);
    let at = p.now + Duration::from_secs(7);
    p.server.mux.set_deadline(at);
    assert_eq!(p.server.mux.poll_timeout(), Some(at));
    p.advance(Duration::from_secs(8));
    assert_eq!(p.server.error, Some(MuxError::Expired));
}

#[test]
fn an_idle_tunnel_compacts_and_wakes_up_intact() {
    let mut p = Pair::new(CipherKind::AesGcm, ProtocolVersion::V2);
    let (s, c) = p.open();
    assert!(p.server.mux.cipher.is_expanded() && p.client.mux.cipher.is_expanded());
    // Both sides compact after two quiet seconds (the server's poll_timeout says when).
    assert_eq!(p.server.mux.stats().compactions, 0);
    p.advance(Duration::from_secs(3));
    assert!(!p.server.mux.cipher.is_expanded() && !p.client.mux.cipher.is_expanded());
    assert_eq!(
        p.server.mux.stats().compactions,
        1,
        "counted, for the shells' metrics"
    );
    assert!(p.server.error.is_none() && p.client.error.is_none());
    // Traffic after compaction: the cipher state carried over, nothing is lost.
    p.server
        .mux
        .send(s, Bytes::from_static(b"after a nap"), p.now)
        .unwrap();
    p.client
        .mux
        .send(c, Bytes::from_static(b"me too"), p.now)
        .unwrap();
    p.drive();
    assert_eq!(p.client.received[&c], b"after a nap");
    assert_eq!(p.server.received[&s], b"me too");
    assert!(p.server.mux.cipher.is_expanded());
}
