//! Browsers are routed by SNI into tunnels; everything that is not a good ClientHello for a
//! connected host is turned away, and the edge keeps serving good clients afterwards.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use sluice_edge::metrics::Refusal;
use sluice_proto::crypto::CipherKind;
use sluice_proto::version::ProtocolVersion;
use support::peer::Creds;
use support::{
    alert, browser, drivers, echo_round_trip, echo_server, edge, hello, read_n, read_to_end,
};

#[test]
fn browsers_reach_their_tunnel_under_both_drivers() {
    for io in drivers() {
        let (edge, key) = edge(io, 1, |_| {});
        let drivers = edge.drivers().to_vec();
        assert_eq!(
            drivers[0].name(),
            if io == sluice_edge::IoDriver::Epoll {
                "epoll"
            } else {
                "io_uring"
            }
        );
        let addr = edge.listen_addrs()[0];
        let origin = echo_server();
        for (host, version, cipher) in [
            ("v0.example.test", ProtocolVersion::V0, CipherKind::AesCbc),
            ("v1.example.test", ProtocolVersion::V1, CipherKind::AesCbc),
            ("v2.example.test", ProtocolVersion::V2, CipherKind::AesGcm),
            (
                "siv.example.test",
                ProtocolVersion::V2,
                CipherKind::AesGcmSiv,
            ),
        ] {
            let creds = Creds::new(
                &key,
                host,
                &["alias-".to_owned() + host]
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
                version,
                cipher,
            );
            let peer = support::attach(&edge, addr, &creds, origin).unwrap();
            echo_round_trip(addr, host).unwrap_or_else(|e| panic!("{io:?} {host}: {e}"));
            echo_round_trip(addr, &format!("alias-{host}")).unwrap();
            // SNI is matched after normalization: case and one trailing dot do not matter.
            echo_round_trip(addr, &host.to_uppercase()).unwrap();
            echo_round_trip(addr, &format!("{host}.")).unwrap();
            assert_eq!(
                peer.log.lock().unwrap().callers[0],
                Some("127.0.0.1".parse().unwrap())
            );
        }
    }
}

fn refused(edge: &sluice_edge::EdgeHandle, why: Refusal) -> u64 {
    edge.metrics().total(|w| w.refusals(why))
}

#[test]
fn unknown_hosts_and_missing_sni_get_an_unrecognized_name_alert() {
    let (edge, key) = edge(sluice_edge::IoDriver::Auto, 1, |_| {});
    let addr = edge.listen_addrs()[0];
    let _peer = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            "a.example.test",
            &[],
            ProtocolVersion::V0,
            CipherKind::AesCbc,
        ),
        echo_server(),
    )
    .unwrap();
    for sni in [Some("b.example.test"), None] {
        let mut b = browser(addr);
        b.write_all(&hello::client_hello(sni, 0)).unwrap();
        let (bytes, _) = read_to_end(&mut b);
        assert_eq!(bytes, alert(112), "{sni:?}");
    }
    assert_eq!(refused(&edge, Refusal::UnknownHost), 1);
    assert_eq!(refused(&edge, Refusal::NoSni), 1);
    echo_round_trip(addr, "a.example.test").unwrap();
}

#[test]
fn what_is_not_tls_is_closed_without_a_word() {
    let (edge, key) = edge(sluice_edge::IoDriver::Auto, 1, |_| {});
    let addr = edge.listen_addrs()[0];
    let _peer = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            "a.example.test",
            &[],
            ProtocolVersion::V1,
            CipherKind::AesCbc,
        ),
        echo_server(),
    )
    .unwrap();
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n"[..],
        b"\x80\x2e\x01\x03\x01",
        b"\x00\x00\x00\x00",
    ] {
        let mut b = browser(addr);
        b.write_all(garbage).unwrap();
        let (bytes, _) = read_to_end(&mut b);
        assert!(bytes.is_empty(), "{garbage:?}: {bytes:?}");
    }
    assert_eq!(refused(&edge, Refusal::NotTls), 3);
    echo_round_trip(addr, "a.example.test").unwrap();
}

#[test]
fn malformed_hellos_get_a_decode_error_alert() {
    let (edge, key) = edge(sluice_edge::IoDriver::Auto, 1, |_| {});
    let addr = edge.listen_addrs()[0];
    let _peer = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            "a.example.test",
            &[],
            ProtocolVersion::V0,
            CipherKind::AesCbc,
        ),
        echo_server(),
    )
    .unwrap();
    let mut bad = hello::client_hello(Some("a.example.test"), 0);
    bad[9] = 0x07; // legacy_version major 7
    let mut b = browser(addr);
    b.write_all(&bad).unwrap();
    let (bytes, _) = read_to_end(&mut b);
    assert_eq!(bytes.len(), 7, "{bytes:?}");
    assert_eq!(bytes[..5], alert(0)[..5]);
    assert_eq!(refused(&edge, Refusal::MalformedHello), 1);
    // An invalid server name (an IP literal) is refused too.
    let mut b = browser(addr);
    b.write_all(&hello::client_hello(Some("192.0.2.1"), 0))
        .unwrap();
    let (bytes, _) = read_to_end(&mut b);
    assert_eq!(bytes.len(), 7);
    echo_round_trip(addr, "a.example.test").unwrap();
}

/// Writes `bytes` one at a time, each once the edge has read the one before (its count of
/// preamble reads moved), so that no two are ever taken in one read: a hello spread over as
/// many reads as it has bytes, however the kernel would have coalesced the writes. Stops
/// when a write fails, or when the edge has refused the connection instead of reading on,
/// and returns how many were written.
fn dribble(edge: &sluice_edge::EdgeHandle, b: &mut TcpStream, bytes: &[u8]) -> usize {
    let reads = || {
        edge.metrics()
            .total(|w| w.preamble_reads.load(std::sync::atomic::Ordering::Relaxed))
    };
    let refusals = || {
        edge.metrics()
            .total(|w| Refusal::ALL.iter().map(|&r| w.refusals(r)).sum())
    };
    let refused = refusals();
    let mut written = 0;
    for byte in bytes {
        let before = reads();
        if b.write_all(std::slice::from_ref(byte)).is_err() {
            break;
        }
        written += 1;
        let moved = support::wait_for(Duration::from_secs(5), || {
            (reads() > before || refusals() > refused).then_some(())
        });
        assert!(
            moved.is_some(),
            "the edge neither read byte {written} nor refused"
        );
        if refusals() > refused {
            break;
        }
    }
    written
}

#[test]
fn truncated_dribbled_and_silent_hellos() {
    let (edge, key) = edge(sluice_edge::IoDriver::Auto, 1, |c| {
        c.timeouts.hello = Duration::from_millis(500)
    });
    let addr = edge.listen_addrs()[0];
    let _peer = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            "a.example.test",
            &[],
            ProtocolVersion::V2,
            CipherKind::AesGcm,
        ),
        echo_server(),
    )
    .unwrap();
    let full = hello::client_hello(Some("a.example.test"), 300);

    // Dribbled one byte at a time: reassembled, routed, echoed.
    let mut b = browser(addr);
    assert_eq!(dribble(&edge, &mut b, &full), full.len());
    assert_eq!(read_n(&mut b, full.len()).unwrap(), full);

    // Split across several TLS records: reassembled too.
    let mut b = browser(addr);
    let split = hello::records(&hello::unrecord(&full), 100);
    b.write_all(&split).unwrap();
    assert_eq!(read_n(&mut b, split.len()).unwrap(), split);

    // Truncated, then the client hangs up: nothing sent back.
    let mut b = browser(addr);
    b.write_all(&full[..full.len() / 2]).unwrap();
    b.shutdown(std::net::Shutdown::Write).unwrap();
    let (bytes, _) = read_to_end(&mut b);
    assert!(bytes.is_empty());

    // Truncated and silent, or silent from the start: closed at the hello timeout.
    for prefix in [&full[..10], &[][..]] {
        let mut b = browser(addr);
        b.write_all(prefix).unwrap();
        let start = std::time::Instant::now();
        let (bytes, r) = read_to_end(&mut b);
        assert!(bytes.is_empty() && r.is_ok(), "closed cleanly");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    assert!(
        support::wait_for(Duration::from_secs(2), || (refused(
            &edge,
            Refusal::HelloTimeout
        ) == 2)
            .then_some(()))
        .is_some()
    );
    assert_eq!(refused(&edge, Refusal::ClosedEarly), 1);
    echo_round_trip(addr, "a.example.test").unwrap();
}

#[test]
fn a_16_kib_hello_passes_and_one_over_the_cap_is_refused() {
    let (edge, key) = edge(sluice_edge::IoDriver::Auto, 1, |_| {});
    let addr = edge.listen_addrs()[0];
    let _peer = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            "big.example.test",
            &[],
            ProtocolVersion::V1,
            CipherKind::AesCbc,
        ),
        echo_server(),
    )
    .unwrap();
    let big = hello::hello_of_len("big.example.test", 16 * 1024);
    let mut b = browser(addr);
    b.write_all(&big).unwrap();
    assert_eq!(read_n(&mut b, big.len()).unwrap(), big);

    let over = hello::hello_of_len("big.example.test", 16 * 1024 + 1);
    let mut b = browser(addr);
    b.write_all(&over).unwrap();
    let (bytes, _) = read_to_end(&mut b);
    assert_eq!(bytes, alert(40), "handshake_failure");
    assert_eq!(refused(&edge, Refusal::HelloTooLarge), 1);
    echo_round_trip(addr, "big.example.test").unwrap();
}

#[test]
fn a_flood_for_a_missing_host_leaves_good_clients_served() {
    let (edge, key) = edge(sluice_edge::IoDriver::Auto, 2, |_| {});
    let addr = edge.listen_addrs()[0];
    let _peer = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            "a.example.test",
            &[],
            ProtocolVersion::V0,
            CipherKind::AesCbc,
        ),
        echo_server(),
    )
    .unwrap();
    let flood: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..100 {
                    let mut b = browser(addr);
                    let _ = b.write_all(&hello::client_hello(Some("missing.example.test"), 0));
                    let (bytes, _) = read_to_end(&mut b);
                    assert_eq!(bytes, alert(112));
                }
            })
        })
        .collect();
    for _ in 0..20 {
        echo_round_trip(addr, "a.example.test").unwrap();
    }
    for t in flood {
        t.join().unwrap();
    }
    assert_eq!(refused(&edge, Refusal::UnknownHost), 800);
    echo_round_trip(addr, "a.example.test").unwrap();
}

#[test]
fn a_hello_trickled_in_thousands_of_reads_is_cut_off() {
    let (edge, key) = edge(sluice_edge::IoDriver::Auto, 1, |_| {});
    let addr = edge.listen_addrs()[0];
    let _peer = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            "a.example.test",
            &[],
            ProtocolVersion::V0,
            CipherKind::AesCbc,
        ),
        echo_server(),
    )
    .unwrap();
    // 2 KiB of hello in 1-byte records: about 10,000 bytes, one segment each.
    let hs = hello::unrecord(&hello::client_hello(Some("a.example.test"), 1900));
    let trickle = hello::records(&hs, 1);
    let mut b = browser(addr);
    let written = dribble(&edge, &mut b, &trickle);
    assert!(written < trickle.len(), "cut off before the end");
    assert_eq!(refused(&edge, Refusal::HelloTrickled), 1);
    echo_round_trip(addr, "a.example.test").unwrap();
}

/// Routes that live on other edges of the fleet, installed through the handle.
mod remote {
    use super::*;
    use sluice_edge::EdgeHandle;
    use sluice_proto::{EdgeId, Hostname};

    /// Waits until every worker's directory holds `local` names served here and `remote`
    /// served elsewhere: installs travel as messages, so this is the signal they landed.
    fn routes_are(edge: &EdgeHandle, local: u64, remote: u64) {
        let every = || {
            edge.metrics()
                .workers()
                .iter()
                .all(|w| w.routes() == (local, remote))
        };
        assert!(
            support::wait_for(Duration::from_secs(5), || every().then_some(())).is_some(),
            "every worker at ({local}, {remote}) routes"
        );
    }

    fn refused_with(addr: std::net::SocketAddr, sni: &str) {
        let mut b = browser(addr);
        b.write_all(&hello::client_hello(Some(sni), 0)).unwrap();
        let (bytes, _) = read_to_end(&mut b);
        assert_eq!(bytes, alert(112), "{sni}: unrecognized_name");
    }

    #[test]
    fn a_remote_route_refuses_like_an_unknown_name_and_a_local_tunnel_wins() {
        let (edge, key) = edge(sluice_edge::IoDriver::Auto, 2, |_| {});
        let addr = edge.listen_addrs()[0];
        let eu2: EdgeId = "eu-2".parse().unwrap();
        let far: Hostname = "far.example.test".parse().unwrap();
        let both: Hostname = "both.example.test".parse().unwrap();
        edge.install_remote(&[far.clone(), both.clone()], &eu2, 5);
        routes_are(&edge, 0, 2);

        // No forwarding between edges yet: the browser is told the name is not served here,
        // and the refusal is counted apart from unknown names.
        refused_with(addr, "far.example.test");
        assert_eq!(refused(&edge, Refusal::RemoteRoute), 1);
        assert_eq!(refused(&edge, Refusal::UnknownHost), 0);

        // A tunnel here for a name the directory puts elsewhere serves it.
        let peer = support::attach(
            &edge,
            addr,
            &Creds::new(
                &key,
                "both.example.test",
                &[],
                ProtocolVersion::V1,
                CipherKind::AesCbc,
            ),
            echo_server(),
        )
        .unwrap();
        routes_are(&edge, 1, 2);
        for _ in 0..4 {
            // Whichever worker the kernel picks.
            echo_round_trip(addr, "both.example.test").unwrap();
        }

        // Removing far's route makes it an unknown name.
        edge.remove_remote(std::slice::from_ref(&far), &eu2, Some(5));
        routes_are(&edge, 1, 1);
        refused_with(addr, "far.example.test");
        assert_eq!(refused(&edge, Refusal::UnknownHost), 1);

        // Once the local tunnel is gone, the remote route it shadowed answers again.
        drop(peer);
        routes_are(&edge, 0, 1);
        refused_with(addr, "both.example.test");
        assert_eq!(refused(&edge, Refusal::RemoteRoute), 2);
        edge.remove_remote(&[both], &eu2, None);
        routes_are(&edge, 0, 0);
    }
}
