//! What operators rely on: the admin endpoint, dual-port mode, IPv6, a trusted PROXY header,
//! and a shutdown that drains.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sluice_edge::IoDriver;
use sluice_edge::metrics::Refusal;
use sluice_proto::crypto::CipherKind;
use sluice_proto::proxy::{Command, ProxiedAddrs, write_v1, write_v2};
use sluice_proto::version::ProtocolVersion;
use support::peer::{Creds, TestPeer};
use support::{
    browser, echo_round_trip, echo_server, edge, hello, pattern_byte, pattern_server, read_n,
    read_to_end, wait_for,
};

const HOST: &str = "home.example.test";

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_admin_endpoint_serves_metrics_and_health() {
    let (edge, key) = edge(IoDriver::Auto, 2, |c| {
        c.admin = Some("127.0.0.1:0".parse().unwrap())
    });
    let addr = edge.listen_addrs()[0];
    let admin = edge.admin_addr().unwrap();
    let _peer = support::attach(
        &edge,
        addr,
        &Creds::new(&key, HOST, &[], ProtocolVersion::V0, CipherKind::AesCbc),
        echo_server(),
    )
    .unwrap();
    echo_round_trip(addr, HOST).unwrap();
    let mut b = browser(addr);
    b.write_all(&hello::client_hello(Some("nobody.example.test"), 0))
        .unwrap();
    let _ = read_to_end(&mut b);
    let names: Vec<sluice_proto::Hostname> = ["r1.example.test", "r2.example.test"]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    edge.install_remote(&names, &"eu-2".parse().unwrap(), 1);
    let landed = || {
        edge.metrics()
            .workers()
            .iter()
            .all(|w| w.routes() == (1, 2))
            .then_some(())
    };
    assert!(support::wait_for(Duration::from_secs(5), landed).is_some());

    assert!(http_get(admin, "/healthz").ends_with("\r\n\r\nok\n"));
    let metrics = http_get(admin, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    // The driver the worker reports, io_uring or (where it is unavailable) epoll.
    let driver = format!(
        "sluice_io_driver{{worker=\"0\",driver=\"{}\"}} 1",
        edge.drivers()[0].name()
    );
    for needle in [
        "# TYPE sluice_tunnels gauge",
        driver.as_str(),
        "# TYPE sluice_tunnel_buffers_shed_total counter",
        "sluice_refusals_total{worker=\"",
        "reason=\"unknown_host\"} 1",
        "sluice_handshake_failures_total",
        "sluice_handovers_sent_total",
        "sluice_bytes_total{worker=\"",
        "sluice_routes{worker=\"1\",kind=\"local\"} 1",
        "sluice_routes{worker=\"1\",kind=\"remote\"} 2",
        "sluice_remote_routes_refused_total{worker=\"0\"} 0",
    ] {
        assert!(metrics.contains(needle), "missing {needle:?} in\n{metrics}");
    }
    let tunnels: i64 = metrics
        .lines()
        .filter(|l| l.starts_with("sluice_tunnels{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(tunnels, 1);
    assert!(http_get(admin, "/nope").starts_with("HTTP/1.1 404"));
}

#[test]
fn the_admin_shows_each_tunnel_without_a_label_per_host() {
    let (edge, key) = edge(IoDriver::Auto, 2, |c| {
        c.admin = Some("127.0.0.1:0".parse().unwrap())
    });
    let addr = edge.listen_addrs()[0];
    let admin = edge.admin_addr().unwrap();
    let _home = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            HOST,
            &["alias.example.test"],
            ProtocolVersion::V2,
            CipherKind::AesGcm,
        ),
        echo_server(),
    )
    .unwrap();
    let _other = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            "other.example.test",
            &[],
            ProtocolVersion::V0,
            CipherKind::AesCbc,
        ),
        echo_server(),
    )
    .unwrap();
    echo_round_trip(addr, HOST).unwrap();
    // One browser held open on HOST: its tunnel is the busiest.
    let mut held = browser(addr);
    let hello = hello::client_hello(Some(HOST), 0);
    held.write_all(&hello).unwrap();
    read_n(&mut held, hello.len()).unwrap();

    let body = |r: &str| r.split_once("\r\n\r\n").unwrap().1.to_owned();
    let json = |r: &str| -> serde_json::Value { serde_json::from_str(&body(r)).unwrap() };
    let list = http_get(admin, "/tunnels");
    assert!(list.starts_with("HTTP/1.1 200 OK\r\n"), "{list}");
    let list = json(&list);
    let tunnels = list["tunnels"].as_array().unwrap();
    assert_eq!(tunnels.len(), 2, "{list}");
    assert_eq!(list["truncated"], false);
    assert_eq!(list["workers_unanswered"], 0);
    let first = &tunnels[0];
    assert_eq!(first["host"], HOST, "{list}");
    assert_eq!(first["aliases"][0], "alias.example.test");
    assert_eq!(first["protocol"], 2);
    assert_eq!(first["cipher"], "aes-gcm");
    assert_eq!(first["channels"], 1);
    assert!(
        first["bytes_in"].as_u64().unwrap() >= hello.len() as u64,
        "{list}"
    );
    assert_eq!(tunnels[1]["host"], "other.example.test");
    assert_eq!(tunnels[1]["protocol"], 0);

    let cut = json(&http_get(admin, "/tunnels?limit=1"));
    assert_eq!(cut["tunnels"].as_array().unwrap().len(), 1);
    assert_eq!(cut["truncated"], true);

    // One host, by its alias too, whichever worker owns it.
    for name in [HOST, "alias.example.test"] {
        let one = json(&http_get(admin, &format!("/tunnels/{name}")));
        assert_eq!(one["host"], HOST, "{one}");
        assert_eq!(one["channels"], 1);
    }
    assert!(http_get(admin, "/tunnels/nobody.example.test").starts_with("HTTP/1.1 404"));
    assert!(http_get(admin, "/tunnels?limit=0").starts_with("HTTP/1.1 400"));
    assert!(http_get(admin, "/tunnels?limit=100000").starts_with("HTTP/1.1 400"));
    assert!(http_get(admin, "/tunnels/bad%20name").starts_with("HTTP/1.1 400"));
}

#[test]
fn dual_port_mode_keeps_tunnels_and_browsers_apart() {
    let (edge, key) = edge(IoDriver::Auto, 1, |c| {
        c.tunnel_listen = vec!["127.0.0.1:0".parse().unwrap()]
    });
    let public = edge.listen_addrs()[0];
    let tunnel_port = edge.tunnel_addrs()[0];
    let creds = Creds::new(&key, HOST, &[], ProtocolVersion::V2, CipherKind::AesGcmSiv);
    // A tunnel on the public port is refused; on the tunnel port it works.
    assert!(support::attach(&edge, public, &creds, echo_server()).is_err());
    let _peer = support::attach(&edge, tunnel_port, &creds, echo_server()).unwrap();
    echo_round_trip(public, HOST).unwrap();
    // TLS on the tunnel port is refused.
    let mut b = browser(tunnel_port);
    b.write_all(&hello::client_hello(Some(HOST), 0)).unwrap();
    assert!(read_to_end(&mut b).0.is_empty());
    assert_eq!(
        edge.metrics()
            .total(|w| w.refusals(Refusal::TunnelOnPublicPort)),
        1
    );
    assert_eq!(
        edge.metrics()
            .total(|w| w.refusals(Refusal::TlsOnTunnelPort)),
        1
    );
}

#[test]
fn ipv4_and_ipv6_listeners_side_by_side() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipping the IPv6 half");
        return;
    }
    let (edge, key) = edge(IoDriver::Auto, 1, |c| {
        c.listen = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()]
    });
    let v4 = edge.listen_addrs()[0];
    let v6 = edge.listen_addrs()[1];
    assert!(v6.is_ipv6());
    let peer = support::attach(
        &edge,
        v6,
        &Creds::new(&key, HOST, &[], ProtocolVersion::V2, CipherKind::AesGcm),
        echo_server(),
    )
    .unwrap();
    echo_round_trip(v4, HOST).unwrap();
    echo_round_trip(v6, HOST).unwrap();
    // A protocol-2 tunnel learns the IPv6 caller.
    let callers = peer.log.lock().unwrap().callers.clone();
    assert_eq!(
        callers,
        vec![
            Some("127.0.0.1".parse().unwrap()),
            Some("::1".parse().unwrap())
        ]
    );
}

#[test]
fn a_trusted_proxy_header_names_the_caller() {
    let (edge, key) = edge(IoDriver::Auto, 1, |c| c.trust_proxy_protocol = true);
    let addr = edge.listen_addrs()[0];
    let origin = echo_server();
    let peer = TestPeer::connect_with_preamble(
        addr,
        &Creds::new(&key, HOST, &[], ProtocolVersion::V2, CipherKind::AesCbc),
        origin,
        |out| {
            write_v2(
                Command::Proxy,
                Some(&ProxiedAddrs {
                    source: "198.51.100.9:4000".parse().unwrap(),
                    destination: "192.0.2.1:443".parse().unwrap(),
                }),
                out,
            )
        },
    )
    .unwrap();
    let accepted = || {
        edge.metrics().total(|w| {
            w.tunnels_accepted
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    };
    assert!(wait_for(Duration::from_secs(2), || (accepted() == 1).then_some(())).is_some());
    let hello = hello::client_hello(Some(HOST), 0);
    for (i, source) in ["203.0.113.5:1234", "[2001:db8::5]:1234"]
        .iter()
        .enumerate()
    {
        let addrs = ProxiedAddrs {
            source: source.parse().unwrap(),
            destination: "192.0.2.1:443".parse().unwrap(),
        };
        let mut header = Vec::new();
        if i == 0 {
            write_v1(Some(&addrs), &mut header)
        } else {
            write_v2(Command::Proxy, Some(&addrs), &mut header)
        }
        let mut b = browser(addr);
        b.write_all(&header).unwrap();
        b.write_all(&hello).unwrap();
        assert_eq!(
            read_n(&mut b, hello.len()).unwrap(),
            hello,
            "the header is stripped"
        );
    }
    let callers = peer.log.lock().unwrap().callers.clone();
    assert_eq!(
        callers,
        vec![
            Some("203.0.113.5".parse().unwrap()),
            Some("2001:db8::5".parse().unwrap())
        ]
    );
    // Without the header, a trusted listener refuses.
    let mut b = browser(addr);
    b.write_all(&hello).unwrap();
    assert!(read_to_end(&mut b).0.is_empty());
    assert_eq!(
        edge.metrics()
            .total(|w| w.refusals(Refusal::BadProxyHeader)),
        1
    );
}

#[test]
fn shutdown_drains_browsers_then_closes_tunnels() {
    let (edge, key) = edge(IoDriver::Auto, 2, |c| {
        c.timeouts.shutdown_grace = Duration::from_secs(20)
    });
    let addr = edge.listen_addrs()[0];
    let total = 4 * 1024 * 1024;
    let peer = support::attach(
        &edge,
        addr,
        &Creds::new(&key, HOST, &[], ProtocolVersion::V1, CipherKind::AesCbc),
        pattern_server(total),
    )
    .unwrap();
    let mut b = browser(addr);
    b.write_all(&hello::client_hello(Some(HOST), 0)).unwrap();
    let first = read_n(&mut b, 1024).unwrap();
    assert!(first.iter().enumerate().all(|(i, &x)| x == pattern_byte(i)));
    let metrics = edge.metrics().clone();
    let listening = move || {
        metrics
            .workers()
            .iter()
            .map(|w| w.listeners.load(std::sync::atomic::Ordering::Relaxed))
            .sum::<i64>()
    };
    assert_eq!(listening(), 2, "one socket per worker");
    let stopping = std::thread::spawn(move || {
        let t = Instant::now();
        edge.shutdown();
        t.elapsed()
    });
    // New connections are not served while the download in flight goes on to its end. (Once
    // the listeners close, another test's edge may be given this port: what counts is that
    // this edge's tunnel never sees the newcomer.) The drain has begun once no worker
    // accepts any more.
    assert!(
        support::wait_for(Duration::from_secs(10), || (listening() == 0).then_some(())).is_some(),
        "the workers stopped accepting"
    );
    if let Ok(mut late) = TcpStream::connect(addr) {
        late.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = late.write_all(&hello::client_hello(Some(HOST), 0));
        let _ = read_to_end(&mut late);
    }
    assert_eq!(
        peer.log.lock().unwrap().opened,
        1,
        "no channel opened after the drain began"
    );
    let (rest, r) = read_to_end(&mut b);
    r.unwrap();
    assert_eq!(rest.len(), total - 1024);
    assert!(
        rest.iter()
            .enumerate()
            .all(|(i, &x)| x == pattern_byte(i + 1024))
    );
    let took = stopping.join().unwrap();
    assert!(
        took < Duration::from_secs(20),
        "did not wait out the grace period needlessly"
    );
    assert!(
        peer.wait_ended(Duration::from_secs(2)).is_some(),
        "tunnels closed after the drain"
    );
}

#[test]
fn the_handle_reports_route_changes_and_ends_a_tunnel_on_any_worker() {
    use sluice_edge::RouteEvent;
    let (edge, key) = edge(IoDriver::Auto, 2, |_| {});
    let addr = edge.listen_addrs()[0];
    let first = support::attach(
        &edge,
        addr,
        &Creds::new(&key, HOST, &[], ProtocolVersion::V2, CipherKind::AesGcm),
        echo_server(),
    )
    .unwrap();
    echo_round_trip(addr, HOST).unwrap();
    // A feed taken now starts with what is already registered...
    let events = edge.route_events();
    let next = || events.recv_timeout(Duration::from_secs(5)).unwrap();
    let RouteEvent::Claimed { names, seq, .. } = next() else {
        panic!("not a claim");
    };
    assert_eq!(names[0].as_str(), HOST);
    // ... then follows the changes: a second tunnel with an alias, and one that goes.
    let second = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            "two.example.test",
            &["alias.example.test"],
            ProtocolVersion::V2,
            CipherKind::AesGcm,
        ),
        echo_server(),
    )
    .unwrap();
    let RouteEvent::Claimed { names: two, .. } = next() else {
        panic!("not a claim");
    };
    let two: Vec<_> = two.iter().map(|n| n.as_str().to_owned()).collect();
    assert_eq!(two, ["two.example.test", "alias.example.test"]);
    first.kill();
    let RouteEvent::Released {
        names: gone,
        seq: gone_seq,
        ..
    } = next()
    else {
        panic!("not a release");
    };
    assert_eq!(
        (gone, gone_seq),
        (names, seq),
        "the first tunnel's claims go with it"
    );
    // Ending a tunnel by any of its names, whichever worker owns it.
    let alias = "alias.example.test".parse().unwrap();
    assert!(edge.end_tunnel(&alias));
    assert!(second.wait_ended(Duration::from_secs(5)).is_some());
    assert!(matches!(next(), RouteEvent::Released { .. }));
    assert!(!edge.end_tunnel(&"nobody.example.test".parse().unwrap()));
    // The end is counted after the socket is let go: the peer may see the close first.
    let ended = || {
        edge.metrics()
            .total(|w| w.tunnel_ends(sluice_edge::metrics::TunnelEnd::Ended))
    };
    let counted = support::wait_for(Duration::from_secs(3), || Some(ended()).filter(|&n| n >= 1));
    assert_eq!(counted.unwrap_or_else(ended), 1);
}

#[test]
fn start_refuses_zero_workers_with_a_config_error() {
    // Before: `workers = 0` reached the worker table and panicked inside start().
    let key = sluice_proto::token::FernetKey::from_bytes(&[7; 32]);
    let mut config = sluice_edge::EdgeConfig::for_keys(vec![key]);
    config.workers = 0;
    match sluice_edge::start(config) {
        Err(sluice_edge::StartError::Config(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains("`workers`") && msg.contains("at least 1"),
                "{msg}"
            );
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("an edge with zero workers started"),
    }
}

#[test]
fn each_listener_has_its_own_role_and_proxy_trust() {
    use sluice_edge::listener::{ListenerSpec, Role};
    let (edge, key) = edge(IoDriver::Auto, 2, |c| {
        c.listeners = vec![
            // Browsers from a balancer that sends PROXY headers.
            ListenerSpec {
                addr: "127.0.0.1:0".parse().unwrap(),
                role: Role::Browsers,
                trust_proxy_protocol: true,
            },
            // Tunnels straight from connectors.
            ListenerSpec {
                addr: "127.0.0.1:0".parse().unwrap(),
                role: Role::Tunnels,
                trust_proxy_protocol: false,
            },
        ];
    });
    let (public, tunnels) = (edge.listen_addrs()[0], edge.tunnel_addrs()[0]);
    let creds = Creds::new(&key, HOST, &[], ProtocolVersion::V2, CipherKind::AesCbc);
    let peer = support::attach(&edge, tunnels, &creds, echo_server()).unwrap();
    assert!(
        peer.ended().is_none(),
        "a tunnel without a header on the tunnel listener"
    );
    let hello = hello::client_hello(Some(HOST), 0);
    let mut header = Vec::new();
    write_v1(
        Some(&ProxiedAddrs {
            source: "203.0.113.7:1234".parse().unwrap(),
            destination: "192.0.2.1:443".parse().unwrap(),
        }),
        &mut header,
    );
    let mut b = browser(public);
    b.write_all(&header).unwrap();
    b.write_all(&hello).unwrap();
    assert_eq!(read_n(&mut b, hello.len()).unwrap(), hello);
    assert_eq!(
        peer.log.lock().unwrap().callers,
        vec![Some("203.0.113.7".parse().unwrap())],
        "the caller is the header's"
    );
    // The browser listener still demands its header; the tunnel listener takes no browser.
    let mut bare = browser(public);
    bare.write_all(&hello).unwrap();
    let _ = read_to_end(&mut bare);
    let mut lost = browser(tunnels);
    lost.write_all(&hello).unwrap();
    let _ = read_to_end(&mut lost);
    assert_eq!(
        edge.metrics()
            .total(|w| w.refusals(Refusal::BadProxyHeader)),
        1
    );
    assert_eq!(
        edge.metrics()
            .total(|w| w.refusals(Refusal::TlsOnTunnelPort)),
        1
    );
}
