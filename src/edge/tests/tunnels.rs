//! Tunnels: who gets in, what a misbehaving one gets, and how they come and go. After each
//! bad case the edge still serves a good client.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use sluice_edge::metrics::{HandshakeFailure, Refusal, TunnelEnd};
use sluice_edge::{EdgeHandle, IoDriver};
use sluice_proto::crypto::CipherKind;
use sluice_proto::frame::{ChannelId, Flow, Header};
use sluice_proto::version::ProtocolVersion;
use support::peer::{Creds, TestPeer, raw_handshake, wrong_answer};
use support::{
    browser, echo_round_trip, echo_server, edge, hello, new_key, pattern_byte, pattern_server,
    read_n, read_to_end, wait_for,
};

const HOST: &str = "home.example.test";

fn good(edge: &EdgeHandle, key: &sluice_proto::token::FernetKey) -> TestPeer {
    let peer = support::attach(
        edge,
        edge.listen_addrs()[0],
        &Creds::new(key, HOST, &[], ProtocolVersion::V2, CipherKind::AesGcm),
        echo_server(),
    )
    .unwrap();
    echo_round_trip(edge.listen_addrs()[0], HOST).unwrap();
    peer
}

fn failures(edge: &EdgeHandle, why: HandshakeFailure) -> u64 {
    edge.metrics().total(|w| w.handshake_failures(why))
}

fn ends(edge: &EdgeHandle, why: TunnelEnd) -> u64 {
    edge.metrics().total(|w| w.tunnel_ends(why))
}

/// The count of tunnel ends for `why` once it has reached `n` (or what it is after 3 s): the
/// edge counts an end after it has let the socket go, so a peer may see the close first.
fn ends_once(edge: &EdgeHandle, why: TunnelEnd, n: u64) -> u64 {
    support::wait_for(Duration::from_secs(3), || {
        Some(ends(edge, why)).filter(|&k| k >= n)
    })
    .unwrap_or_else(|| ends(edge, why))
}

/// The edge closes the connection without a byte (SniTun's silent refusal).
fn closed_silently(s: &mut std::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(s.read(&mut byte), Ok(0))
        || matches!(s.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
}

#[test]
fn bad_tokens_never_get_a_challenge() {
    let (edge, key) = edge(IoDriver::Auto, 1, |c| {
        c.timeouts.handshake = Duration::from_millis(800)
    });
    let addr = edge.listen_addrs()[0];
    let cases: Vec<(&str, Vec<u8>, HandshakeFailure)> = vec![
        (
            "wrong key",
            Creds::new(
                &new_key(),
                HOST,
                &[],
                ProtocolVersion::V0,
                CipherKind::AesCbc,
            )
            .token
            .into_bytes(),
            HandshakeFailure::WrongKey,
        ),
        (
            "expired",
            Creds::expired(&key, HOST).token.into_bytes(),
            HandshakeFailure::Expired,
        ),
        (
            "not base64",
            b"gA!!not a token".to_vec(),
            HandshakeFailure::InvalidToken,
        ),
    ];
    for (what, token, why) in cases {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&token).unwrap();
        // A wrong-key token without padding could still be the prefix of a longer one: the
        // handshake timeout ends the wait.
        assert!(closed_silently(&mut s), "{what}");
        assert!(
            wait_for(Duration::from_secs(3), || (failures(&edge, why) >= 1)
                .then_some(()))
            .is_some(),
            "{what} counted"
        );
    }
    // A truncated token is waited for, then timed out.
    let token = Creds::new(&key, HOST, &[], ProtocolVersion::V0, CipherKind::AesCbc).token;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(&token.as_bytes()[..100]).unwrap();
    assert!(closed_silently(&mut s));
    assert_eq!(failures(&edge, HandshakeFailure::Timeout), 1);
    let _peer = good(&edge, &key);
}

#[test]
fn a_wrong_challenge_answer_is_refused() {
    let (edge, key) = edge(IoDriver::Auto, 1, |_| {});
    let addr = edge.listen_addrs()[0];
    for cipher in [CipherKind::AesCbc, CipherKind::AesGcm] {
        let creds = Creds::new(&key, HOST, &[], ProtocolVersion::V1, cipher);
        let mut s = wrong_answer(addr, &creds).unwrap();
        assert!(closed_silently(&mut s), "{cipher}");
    }
    assert!(
        wait_for(Duration::from_secs(2), || (failures(
            &edge,
            HandshakeFailure::ChallengeFailed
        ) == 2)
            .then_some(()))
        .is_some()
    );
    let mut b = browser(addr);
    b.write_all(&hello::client_hello(Some(HOST), 0)).unwrap();
    assert_eq!(
        read_to_end(&mut b).0,
        support::alert(112),
        "the failed tunnel was never registered"
    );
    let _peer = good(&edge, &key);
}

/// Frames forged with a handshaken session's cipher.
fn forge(session: &mut sluice_proto::handshake::Session, frames: &[(Header, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, payload) in frames {
        let mut unit = vec![0u8; 32 + session.cipher.overhead()];
        session
            .cipher
            .seal(&h.encode(), &mut unit, &mut rand::thread_rng())
            .unwrap();
        out.extend_from_slice(&unit);
        out.extend_from_slice(payload);
    }
    out
}

fn header(flow: Flow, size: u32) -> Header {
    Header {
        channel: ChannelId([0x42; 16]),
        flow,
        size,
        extra: [0; 11],
    }
}

#[test]
fn unknown_flows_and_unknown_channels_are_ignored() {
    let (edge, key) = edge(IoDriver::Auto, 1, |_| {});
    let addr = edge.listen_addrs()[0];
    let creds = Creds::new(&key, HOST, &[], ProtocolVersion::V2, CipherKind::AesGcmSiv);
    let (mut s, mut session) = raw_handshake(addr, &creds).unwrap();
    let bytes = forge(
        &mut session,
        &[
            (header(Flow::Unknown(0x40), 0), b""),
            (header(Flow::Data, 5), b"hello"),
            (header(Flow::Close, 0), b""),
            (header(Flow::Resume, 0), b""),
            (header(Flow::New, 0), b""),
        ],
    );
    s.write_all(&bytes).unwrap();
    support::registered(&edge, 1);
    // The tunnel is alive and serving: a browser's NEW reaches us.
    let mut b = browser(addr);
    b.write_all(&hello::client_hello(Some(HOST), 0)).unwrap();
    let mut unit = vec![0u8; 32 + 28];
    s.read_exact(&mut unit).unwrap();
    let plain = session.cipher.open(&mut unit).unwrap();
    assert_eq!(Header::decode(plain.try_into().unwrap()).flow, Flow::New);
}

#[test]
fn a_frame_over_the_cap_ends_only_that_tunnel() {
    let (edge, key) = edge(IoDriver::Auto, 1, |c| c.mux.max_frame_size = 1024 * 1024);
    let addr = edge.listen_addrs()[0];
    let bystander = good(&edge, &key);
    let creds = Creds::new(
        &key,
        "bad.example.test",
        &[],
        ProtocolVersion::V1,
        CipherKind::AesCbc,
    );
    let (mut s, mut session) = raw_handshake(addr, &creds).unwrap();
    s.write_all(&forge(
        &mut session,
        &[(header(Flow::Data, 1024 * 1024 + 1), b"")],
    ))
    .unwrap();
    assert!(closed_silently(&mut s));
    assert!(
        wait_for(Duration::from_secs(2), || (ends(
            &edge,
            TunnelEnd::ProtocolError
        ) == 1)
            .then_some(()))
        .is_some()
    );
    echo_round_trip(addr, HOST).unwrap();
    assert!(bystander.ended().is_none());
}

#[test]
fn a_peer_silent_in_the_middle_of_a_frame_still_times_out() {
    // Half a header leaves the reader waiting for the rest; the idle timer must still run.
    for io in support::drivers() {
        let (edge, key) = edge(io, 1, |c| c.mux.idle_timeout = Some(Duration::from_secs(1)));
        let addr = edge.listen_addrs()[0];
        let creds = Creds::new(
            &key,
            "mute.example.test",
            &[],
            ProtocolVersion::V2,
            CipherKind::AesCbc,
        );
        let (mut s, mut session) = raw_handshake(addr, &creds).unwrap();
        let frame = forge(&mut session, &[(header(Flow::Ping, 0), b"")]);
        s.write_all(&frame[..frame.len() / 2]).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert!(
            closed_silently(&mut s),
            "{io:?}: the tunnel outlived its idle timeout"
        );
        let timed_out = wait_for(Duration::from_secs(2), || {
            (ends(&edge, TunnelEnd::Timeout) == 1).then_some(())
        });
        let all: Vec<_> = TunnelEnd::ALL
            .iter()
            .map(|&e| (e, ends(&edge, e)))
            .collect();
        assert!(timed_out.is_some(), "{io:?}: {all:?}");
    }
}

#[test]
fn a_tunnel_killed_mid_transfer_closes_its_browsers_only() {
    let total = 64 * 1024 * 1024;
    for io in support::drivers() {
        // Protocol 0 cannot be paused: the browser, which reads only the start, may lag by the
        // whole download, and under the default caps a busy machine could see the channel cut
        // for overrun before the kill this test is about.
        let (edge, key) = edge(io, 1, |c| {
            c.mux.channel_incoming_max = 2 * total;
            c.mux.tunnel_incoming_max = 2 * total;
        });
        let addr = edge.listen_addrs()[0];
        let big = pattern_server(total);
        let victim = support::attach(
            &edge,
            addr,
            &Creds::new(
                &key,
                "victim.example.test",
                &[],
                ProtocolVersion::V0,
                CipherKind::AesCbc,
            ),
            big,
        )
        .unwrap();
        let bystander = good(&edge, &key);
        let mut b = browser(addr);
        b.write_all(&hello::client_hello(Some("victim.example.test"), 0))
            .unwrap();
        // Some of the download arrives, then the connector dies.
        let first = read_n(&mut b, 256 * 1024).unwrap();
        assert!(first.iter().enumerate().all(|(i, &x)| x == pattern_byte(i)));
        victim.kill();
        let (_, r) = read_to_end(&mut b);
        assert!(
            r.is_ok()
                || r.as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{io:?}: {r:?}"
        );
        echo_round_trip(addr, HOST).unwrap();
        assert!(bystander.ended().is_none());
        assert!(
            wait_for(Duration::from_secs(2), || (edge
                .metrics()
                .total(
                    |w| w.tunnels.load(std::sync::atomic::Ordering::Relaxed) as u64
                )
                == 1)
                .then_some(()))
            .is_some()
        );
    }
}

#[test]
fn a_slow_reader_gets_every_byte_and_the_tunnel_is_paused() {
    let total = 8 * 1024 * 1024;
    for (version, cipher) in [
        (ProtocolVersion::V1, CipherKind::AesCbc),
        (ProtocolVersion::V0, CipherKind::AesCbc),
        (ProtocolVersion::V2, CipherKind::AesGcm),
    ] {
        // Small watermarks so that a short download exercises PAUSE/RESUME. Protocol 0 cannot
        // be paused: its cap must hold what the reader lags behind, or the channel is closed.
        let (edge, key) = edge(IoDriver::Auto, 1, |c| {
            c.mux.incoming_high = 64 * 1024;
            c.mux.incoming_low = 16 * 1024;
            if version == ProtocolVersion::V0 {
                c.mux.channel_incoming_max = 2 * total;
                c.mux.tunnel_incoming_max = 2 * total;
            }
        });
        let addr = edge.listen_addrs()[0];
        let host = format!("v{}.example.test", version.number());
        let peer = support::attach(
            &edge,
            addr,
            &Creds::new(&key, &host, &[], version, cipher),
            pattern_server(total),
        )
        .unwrap();
        let mut b = browser(addr);
        b.write_all(&hello::client_hello(Some(&host), 0)).unwrap();
        let mut got = 0;
        let mut buf = vec![0u8; 16 * 1024];
        while got < total {
            let n = b.read(&mut buf).unwrap();
            assert!(n > 0, "early EOF at {got}");
            assert!(
                buf[..n]
                    .iter()
                    .enumerate()
                    .all(|(i, &x)| x == pattern_byte(got + i)),
                "corrupt at {got}"
            );
            got += n;
            if got < 1024 * 1024 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let pauses = peer.log.lock().unwrap().pauses;
        if version == ProtocolVersion::V0 {
            assert_eq!(pauses, 0, "never PAUSE a v0 peer");
        } else {
            assert!(
                pauses > 0,
                "v{version}: PAUSE sent to a slow channel's tunnel"
            );
        }
        assert_eq!(
            edge.metrics()
                .total(|w| w.channel_ends(sluice_edge::metrics::ChannelEnd::Overrun)),
            0,
            "v{version}: a reader that keeps up within the caps is never cut"
        );
    }
}

#[test]
fn a_live_tunnel_is_closed_when_its_token_expires() {
    let (edge, key) = edge(IoDriver::Auto, 1, |_| {});
    let addr = edge.listen_addrs()[0];
    let creds = Creds::valid_for(
        &key,
        HOST,
        &[],
        ProtocolVersion::V0,
        CipherKind::AesCbc,
        Duration::from_secs(2),
    );
    let peer = support::attach(&edge, addr, &creds, echo_server()).unwrap();
    echo_round_trip(addr, HOST).unwrap();
    let why = peer
        .wait_ended(Duration::from_secs(5))
        .expect("closed at expiry");
    assert_eq!(why, "edge closed the tunnel");
    assert_eq!(ends_once(&edge, TunnelEnd::Expired, 1), 1);
}

#[test]
fn a_reconnect_replaces_its_predecessor_and_aliases_belong_to_their_owner() {
    let (edge, key) = edge(IoDriver::Auto, 1, |_| {});
    let addr = edge.listen_addrs()[0];
    let first = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            HOST,
            &["old-alias.example.test"],
            ProtocolVersion::V0,
            CipherKind::AesCbc,
        ),
        echo_server(),
    )
    .unwrap();
    let other = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            "other.example.test",
            &["shared.example.test"],
            ProtocolVersion::V0,
            CipherKind::AesCbc,
        ),
        echo_server(),
    )
    .unwrap();
    // The same host reconnects and takes the shared alias.
    let second = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            HOST,
            &["shared.example.test"],
            ProtocolVersion::V1,
            CipherKind::AesCbc,
        ),
        echo_server(),
    )
    .unwrap();
    assert!(
        first.wait_ended(Duration::from_secs(3)).is_some(),
        "the old tunnel is closed"
    );
    assert_eq!(ends_once(&edge, TunnelEnd::Replaced, 1), 1);
    echo_round_trip(addr, HOST).unwrap();
    assert_eq!(
        second.log.lock().unwrap().opened,
        1,
        "traffic reaches the new tunnel"
    );
    echo_round_trip(addr, "shared.example.test").unwrap();
    assert_eq!(second.log.lock().unwrap().opened, 2);
    // The old tunnel's alias left with it; `other` keeps running.
    let mut b = browser(addr);
    b.write_all(&hello::client_hello(Some("old-alias.example.test"), 0))
        .unwrap();
    assert_eq!(read_to_end(&mut b).0, support::alert(112));
    // `other` leaving must not take the alias `second` now owns.
    drop(other);
    assert!(
        wait_for(Duration::from_secs(2), || (edge
            .metrics()
            .total(|w| w.tunnel_ends(TunnelEnd::PeerClosed))
            == 1)
            .then_some(()))
        .is_some()
    );
    echo_round_trip(addr, "shared.example.test").unwrap();
    assert!(second.ended().is_none());
}

#[test]
fn keys_reload_without_a_restart() {
    let (edge, key) = edge(IoDriver::Auto, 2, |c| {
        c.timeouts.handshake = Duration::from_millis(500)
    });
    let addr = edge.listen_addrs()[0];
    let old = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            "old.example.test",
            &[],
            ProtocolVersion::V0,
            CipherKind::AesCbc,
        ),
        echo_server(),
    )
    .unwrap();
    let next = new_key();
    let creds = Creds::new(&next, HOST, &[], ProtocolVersion::V0, CipherKind::AesCbc);
    assert!(
        support::attach(&edge, addr, &creds, echo_server()).is_err(),
        "unknown key before the reload"
    );
    edge.reload_keys(vec![next.clone(), key.clone()]);
    let peer = wait_for(Duration::from_secs(2), || {
        support::attach(&edge, addr, &creds, echo_server()).ok()
    })
    .expect("accepted after the reload");
    echo_round_trip(addr, HOST).unwrap();
    // Tunnels already connected stay up.
    echo_round_trip(addr, "old.example.test").unwrap();
    assert!(old.ended().is_none() && peer.ended().is_none());
}

#[test]
fn at_a_limit_the_newcomer_is_refused_and_the_rest_served() {
    let (edge, key) = edge(IoDriver::Auto, 1, |c| {
        c.limits.max_tunnels = 1;
        c.mux.max_channels = 2;
    });
    let addr = edge.listen_addrs()[0];
    let _peer = support::attach(
        &edge,
        addr,
        &Creds::new(&key, HOST, &[], ProtocolVersion::V0, CipherKind::AesCbc),
        echo_server(),
    )
    .unwrap();
    // A second tunnel passes the handshake and is then closed.
    let extra = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            "more.example.test",
            &[],
            ProtocolVersion::V0,
            CipherKind::AesCbc,
        ),
        echo_server(),
    )
    .unwrap();
    assert!(extra.wait_ended(Duration::from_secs(2)).is_some());
    assert_eq!(
        edge.metrics().total(|w| w.refusals(Refusal::TunnelLimit)),
        1
    );
    // Two channels fit; the third browser gets an alert.
    let hello = hello::client_hello(Some(HOST), 0);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut b = browser(addr);
        b.write_all(&hello).unwrap();
        read_n(&mut b, hello.len()).unwrap();
        held.push(b);
    }
    let mut b = browser(addr);
    b.write_all(&hello).unwrap();
    assert_eq!(read_to_end(&mut b).0, support::alert(80));
    assert_eq!(
        edge.metrics().total(|w| w.refusals(Refusal::ChannelLimit)),
        1
    );
    drop(held);
    assert!(wait_for(Duration::from_secs(2), || echo_round_trip(addr, HOST).ok()).is_some());
}

#[test]
fn a_limit_holds_for_the_whole_edge_whatever_its_workers() {
    // Three workers, six tunnels: with per-worker shares (two each) a newcomer hashed to a busy
    // worker was refused while the edge had room, and rounding up let more through.
    let (edge, key) = edge(IoDriver::Auto, 3, |c| {
        c.limits.max_tunnels = 6;
    });
    let addr = edge.listen_addrs()[0];
    let creds = |i: usize| {
        Creds::new(
            &key,
            &format!("t{i}.example.test"),
            &[],
            ProtocolVersion::V2,
            CipherKind::AesGcm,
        )
    };
    let peers: Vec<_> = (0..6)
        .map(|i| support::attach(&edge, addr, &creds(i), echo_server()).unwrap())
        .collect();
    for (i, p) in peers.iter().enumerate() {
        assert!(
            p.ended().is_none(),
            "tunnel {i} was refused below the limit"
        );
        echo_round_trip(addr, &format!("t{i}.example.test")).unwrap();
    }
    assert_eq!(
        edge.metrics().total(|w| w.refusals(Refusal::TunnelLimit)),
        0
    );
    let extra = support::attach(&edge, addr, &creds(6), echo_server()).unwrap();
    assert!(extra.wait_ended(Duration::from_secs(5)).is_some());
    assert_eq!(
        edge.metrics().total(|w| w.refusals(Refusal::TunnelLimit)),
        1
    );
    // A tunnel that ends gives its unit back, whichever worker held it.
    drop(peers);
    assert!(
        wait_for(Duration::from_secs(5), || (edge
            .metrics()
            .total(
                |w| w.tunnels.load(std::sync::atomic::Ordering::Relaxed) as u64
            )
            == 0)
            .then_some(()))
        .is_some()
    );
    let again = support::attach(&edge, addr, &creds(7), echo_server()).unwrap();
    echo_round_trip(addr, "t7.example.test").unwrap();
    assert!(again.ended().is_none());
}

#[test]
fn an_idle_tunnel_sheds_its_buffers_and_wakes_up_intact() {
    for io in support::drivers() {
        let (edge, key) = edge(io, 1, |_| {});
        let addr = edge.listen_addrs()[0];
        let _peer = support::attach(
            &edge,
            addr,
            &Creds::new(&key, HOST, &[], ProtocolVersion::V2, CipherKind::AesGcm),
            echo_server(),
        )
        .unwrap();
        echo_round_trip(addr, HOST).unwrap();
        let shed = || {
            edge.metrics().total(|w| {
                w.tunnel_buffers_shed
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
        };
        let compacted = || {
            edge.metrics().total(|w| {
                w.tunnels_compacted
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
        };
        let (before, compacted_before) = (shed(), compacted());
        // The edge's quiet second gives the read buffer back (counted); the multiplexer's two
        // seconds drop its key schedule (counted too). Then traffic resumes.
        assert!(
            support::wait_for(Duration::from_secs(5), || (shed() > before).then_some(())).is_some(),
            "{io:?}: a quiet tunnel kept its read buffer"
        );
        assert!(
            support::wait_for(Duration::from_secs(5), || (compacted() > compacted_before)
                .then_some(()))
            .is_some(),
            "{io:?}: a quiet tunnel kept its key schedule"
        );
        echo_round_trip(addr, HOST).unwrap_or_else(|e| panic!("{io:?}: {e}"));
        let mut b = browser(addr);
        b.write_all(&hello::client_hello(Some(HOST), 0)).unwrap();
        let big = vec![0x5a; 300_000];
        b.write_all(&big).unwrap();
        let back = read_n(&mut b, hello::client_hello(Some(HOST), 0).len() + big.len()).unwrap();
        assert!(back.ends_with(&big), "{io:?}");
    }
}
