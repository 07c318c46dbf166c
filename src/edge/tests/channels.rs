//! Channels: how they end, and what one browser that misbehaves may cost the others. Every
//! case runs under both drivers.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;

use sluice_edge::metrics::ChannelEnd;
use sluice_edge::{EdgeConfig, EdgeHandle};
use sluice_proto::crypto::CipherKind;
use sluice_proto::token::FernetKey;
use sluice_proto::version::ProtocolVersion;
use support::peer::{Creds, TestPeer};
use support::{browser, drivers, echo_server, edge, hello, pattern_byte, read_n, wait_for};

const HOST: &str = "home.example.test";

fn channels(edge: &EdgeHandle) -> i64 {
    edge.metrics()
        .workers()
        .iter()
        .map(|w| w.channels.load(Ordering::Relaxed))
        .sum()
}

fn attach(
    edge: &EdgeHandle,
    key: &FernetKey,
    version: ProtocolVersion,
    origin: SocketAddr,
) -> TestPeer {
    let cipher = if version == ProtocolVersion::V0 {
        CipherKind::AesCbc
    } else {
        CipherKind::AesGcm
    };
    let creds = Creds::new(key, HOST, &[], version, cipher);
    support::attach(edge, edge.listen_addrs()[0], &creds, origin).unwrap()
}

/// Sends the hello, then `request`, and reads back `expect` bytes.
fn request(at: SocketAddr, request: &[u8], expect: usize) -> std::io::Result<Vec<u8>> {
    let mut b = browser(at);
    b.write_all(&hello::client_hello(Some(HOST), 0))?;
    b.write_all(request)?;
    read_n(&mut b, expect)
}

#[test]
fn a_browser_that_closes_first_ends_its_channel_at_once() {
    for io in drivers() {
        let (edge, key) = edge(io, 1, |_| {});
        let at = edge.listen_addrs()[0];
        let peer = attach(&edge, &key, ProtocolVersion::V2, echo_server());
        let hello = hello::client_hello(Some(HOST), 0);
        for _ in 0..5 {
            // A request, its answer, and the browser closes: what curl does.
            let mut b = browser(at);
            b.write_all(&hello).unwrap();
            assert_eq!(read_n(&mut b, hello.len()).unwrap(), hello);
            drop(b);
        }
        assert!(
            wait_for(Duration::from_secs(5), || (channels(&edge) == 0)
                .then_some(()))
            .is_some(),
            "{io:?}: every channel ended, {} left",
            channels(&edge)
        );
        // The connector's side heard of it too.
        assert!(peer.ended().is_none());
    }
}

/// An origin that reads the hello (one TLS record), then a command byte: `B` streams pattern
/// bytes until the connection breaks, anything else is echoed back with what follows.
fn download_or_echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || download_or_echo(conn));
        }
    });
    addr
}

fn download_or_echo(mut c: TcpStream) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = [0u8; 5];
    if c.read_exact(&mut head).is_err() {
        return;
    }
    let mut record = vec![0u8; u16::from_be_bytes([head[3], head[4]]) as usize];
    let mut command = [0u8; 1];
    if c.read_exact(&mut record).is_err() || c.read_exact(&mut command).is_err() {
        return;
    }
    if command[0] == b'B' {
        let chunk: Vec<u8> = (0..64 * 1024).map(pattern_byte).collect();
        let _ = c.set_write_timeout(Some(Duration::from_secs(30)));
        // At most 64 MiB, as the measure asks.
        for _ in 0..1024 {
            if c.write_all(&chunk).is_err() {
                return;
            }
        }
        return;
    }
    let _ = c.write_all(&command);
    let mut buf = [0u8; 4096];
    while let Ok(n) = c.read(&mut buf) {
        if n == 0 || c.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn tight_caps(c: &mut EdgeConfig) {
    c.mux.incoming_high = 256 * 1024;
    c.mux.incoming_low = 64 * 1024;
    c.mux.channel_incoming_max = 2 * 1024 * 1024;
    c.mux.tunnel_incoming_max = 4 * 1024 * 1024;
    // Protocol 0: a stalled reader holds its tunnel up for this long, then loses its channel.
    c.mux.stall_max = Duration::from_secs(1);
}

#[test]
fn browsers_that_never_read_do_not_hold_up_their_tunnel() {
    for version in [ProtocolVersion::V2, ProtocolVersion::V0] {
        for io in drivers() {
            let (edge, key) = edge(io, 1, tight_caps);
            let at = edge.listen_addrs()[0];
            let _peer = attach(&edge, &key, version, download_or_echo_server());
            // Browsers that ask for a large download and never read a byte of it.
            let stalled: Vec<TcpStream> = (0..12)
                .map(|_| {
                    let mut b = browser(at);
                    b.write_all(&hello::client_hello(Some(HOST), 0)).unwrap();
                    b.write_all(b"B").unwrap();
                    b
                })
                .collect();
            // Wait until they have filled what they can: protocol 2 pauses every one of them
            // (each takes far more than the socket buffers hold); nothing can pause a
            // protocol-0 peer, so the tunnel stops reading for the grace, then the browsers
            // still past their cap are cut.
            let metrics = edge.metrics();
            if version == ProtocolVersion::V0 {
                let cut = || metrics.total(|w| w.channel_ends(ChannelEnd::Overrun));
                assert!(
                    wait_for(Duration::from_secs(10), || (cut() > 0).then_some(())).is_some(),
                    "{io:?}: stalled v0 browsers overrun their cap"
                );
            } else {
                // Each one paused, or cut where the tunnel's own cap was reached first.
                let held = || {
                    metrics.total(|w| {
                        w.pauses_sent.load(Ordering::Relaxed) + w.channel_ends(ChannelEnd::Overrun)
                    })
                };
                let all = stalled.len() as u64;
                assert!(
                    wait_for(Duration::from_secs(10), || (held() >= all).then_some(())).is_some(),
                    "{version} {io:?}: {} of {all} stalled browsers paused or cut",
                    held()
                );
            }
            for round in 0..5 {
                let got = request(at, b"Ehello", 6);
                assert!(
                    matches!(&got, Ok(b) if b == b"Ehello"),
                    "{version} {io:?}: a good browser is served in round {round}: {got:?}"
                );
            }
            let queued = edge.metrics().total(|w| w.queued_to_browsers());
            assert!(
                queued <= 4 * 1024 * 1024 + 64 * 1024,
                "{version} {io:?}: the edge holds {queued} bytes for its browsers"
            );
            drop(stalled);
        }
    }
}

#[test]
fn a_channel_ends_within_its_idle_timeout_even_while_a_write_to_its_browser_hangs() {
    for io in drivers() {
        let (edge, key) = edge(io, 1, |c| {
            c.timeouts.write = Duration::from_secs(60);
            c.mux.channel_idle_timeout = Some(Duration::from_secs(1));
        });
        let at = edge.listen_addrs()[0];
        let _peer = attach(&edge, &key, ProtocolVersion::V2, download_or_echo_server());
        // The browser stops reading: the edge's write to it blocks, and the channel is paused,
        // so nothing moves either way.
        let mut b = browser(at);
        b.write_all(&hello::client_hello(Some(HOST), 0)).unwrap();
        b.write_all(b"B").unwrap();
        assert!(
            wait_for(Duration::from_secs(2), || (channels(&edge) == 1)
                .then_some(()))
            .is_some()
        );
        assert!(
            wait_for(Duration::from_secs(8), || (channels(&edge) == 0)
                .then_some(()))
            .is_some(),
            "{io:?}: the idle channel ended although its write had not timed out"
        );
        drop(b);
    }
}

#[test]
fn browsers_that_never_read_in_one_tenant_do_not_slow_another_on_the_same_worker() {
    for version in [ProtocolVersion::V2, ProtocolVersion::V0] {
        // One worker: both tenants' tunnels share its thread and its event loop.
        let (edge, key) = edge(sluice_edge::IoDriver::Auto, 1, tight_caps);
        let at = edge.listen_addrs()[0];
        let _stalled_tenant = attach(&edge, &key, version, download_or_echo_server());
        let other = "other.example.test";
        let _other_tenant = support::attach(
            &edge,
            at,
            &Creds::new(&key, other, &[], version, CipherKind::AesCbc),
            echo_server(),
        )
        .unwrap();
        let stalled: Vec<TcpStream> = (0..12)
            .map(|_| {
                let mut b = browser(at);
                b.write_all(&hello::client_hello(Some(HOST), 0)).unwrap();
                b.write_all(b"B").unwrap();
                b
            })
            .collect();
        // The other tenant is served throughout, also while the first one's tunnel stalls
        // (protocol 0) or pauses (protocol 2).
        for round in 0..20 {
            let got = support::echo_round_trip(at, other);
            assert!(
                got.is_ok(),
                "{version}: the other tenant, round {round}: {got:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(stalled);
    }
}
