//! The TLS origin and the curl wrapper on their own (no SniTun): routes, certificates,
//! keep-alive and close modes, and many concurrent connections.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use sluice_testkit::{Curl, OriginOptions, TestCa, TlsOrigin, sha256_of_pattern};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const HOST: &str = "a.example.test";

fn curl(origin: &TlsOrigin, path: &str) -> Curl {
    let port = origin.addr.port();
    Curl::get(format!("https://{HOST}:{port}{path}")).resolve(
        HOST,
        port,
        Ipv4Addr::LOCALHOST.into(),
    )
}

#[test]
fn routes_and_certificate_verification() {
    let ca = TestCa::new().unwrap();
    let origin = TlsOrigin::start(&ca.leaf(&[HOST, "b.example.test"]).unwrap()).unwrap();

    let hello = curl(&origin, "/").cacert(ca.ca_pem_path()).run().unwrap();
    assert!(hello.ok(), "{hello:?}");
    let text = hello.body_text();
    assert!(text.contains("sni: a.example.test"), "{text}");
    assert!(text.contains("request: GET / HTTP/1.1"), "{text}");
    assert!(text.contains("tls: TLSv1_3"), "{text}");

    let peer = curl(&origin, "/echo-peer")
        .cacert(ca.ca_pem_path())
        .run()
        .unwrap();
    assert!(peer.ok(), "{peer:?}");
    let seen: SocketAddr = peer.body_text().parse().unwrap();
    assert_eq!(seen.ip(), Ipv4Addr::LOCALHOST);
    assert_eq!(origin.requests().last().unwrap().peer, seen);

    let missing = curl(&origin, "/nope")
        .cacert(ca.ca_pem_path())
        .run()
        .unwrap();
    assert_eq!((missing.exit_code, missing.http_code), (0, 404));

    let big = curl(&origin, "/big/3")
        .cacert(ca.ca_pem_path())
        .run()
        .unwrap();
    assert!(big.ok(), "{big:?}");
    assert_eq!(big.body_len, 3 << 20);
    assert_eq!(big.body_sha256, sha256_of_pattern(3));

    // A name the leaf does not cover fails verification (curl 60), and so does another CA.
    let port = origin.addr.port();
    let wrong_name = Curl::get(format!("https://c.example.test:{port}/"))
        .resolve("c.example.test", port, Ipv4Addr::LOCALHOST.into())
        .cacert(ca.ca_pem_path())
        .run()
        .unwrap();
    assert_eq!(wrong_name.exit_code, 60, "{wrong_name:?}");
    let other_ca = TestCa::new().unwrap();
    let untrusted = curl(&origin, "/")
        .cacert(other_ca.ca_pem_path())
        .run()
        .unwrap();
    assert_eq!(untrusted.exit_code, 60, "{untrusted:?}");
    let insecure = curl(&origin, "/").insecure().run().unwrap();
    assert_eq!(insecure.http_code, 200);
    assert_ne!(insecure.ssl_verify_result, 0);

    let requests = origin.requests();
    assert!(requests.iter().any(|r| r.path == "/big/3"));
    assert!(requests.iter().all(|r| r.method == "GET"));
}

#[test]
fn keeps_connections_alive_unless_told_otherwise() {
    let ca = TestCa::new().unwrap();
    let leaf = ca.leaf(&[HOST]).unwrap();

    // Two URLs in one curl run share one connection.
    let origin = TlsOrigin::start(&leaf).unwrap();
    let port = origin.addr.port();
    let both = curl(&origin, "/")
        .cacert(ca.ca_pem_path())
        .arg(format!("https://{HOST}:{port}/echo-peer"))
        .run()
        .unwrap();
    assert_eq!(both.exit_code, 0, "{both:?}");
    assert_eq!(origin.requests().len(), 2);
    assert_eq!(origin.connections_accepted(), 1);

    // With close_after_response, each request gets its own connection.
    let closing = TlsOrigin::start_with(
        leaf.server_config().unwrap(),
        OriginOptions {
            close_after_response: true,
            ..OriginOptions::default()
        },
    )
    .unwrap();
    let port = closing.addr.port();
    let both = curl(&closing, "/")
        .cacert(ca.ca_pem_path())
        .arg(format!("https://{HOST}:{port}/echo-peer"))
        .run()
        .unwrap();
    assert_eq!(both.exit_code, 0, "{both:?}");
    assert_eq!(closing.requests().len(), 2);
    assert_eq!(closing.connections_accepted(), 2);
}

#[test]
fn serves_many_concurrent_connections() {
    const CONNECTIONS: usize = 300;
    let ca = TestCa::new().unwrap();
    let origin = TlsOrigin::start(&ca.leaf(&[HOST]).unwrap()).unwrap();
    let connector = tokio_rustls::TlsConnector::from(ca.client_config().unwrap());
    let addr = origin.addr;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ok = runtime.block_on(async move {
        let barrier = Arc::new(tokio::sync::Barrier::new(CONNECTIONS));
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let connector = connector.clone();
            let barrier = Arc::clone(&barrier);
            tasks.push(tokio::spawn(async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let local = tcp.local_addr()?;
                let name = ServerName::try_from(HOST).unwrap();
                let mut tls = connector.connect(name, tcp).await?;
                // Every connection is open and handshaken before any request is sent.
                barrier.wait().await;
                tls.write_all(b"GET /echo-peer HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                    .await?;
                let mut reply = Vec::new();
                tls.read_to_end(&mut reply).await?;
                let reply = String::from_utf8_lossy(&reply).into_owned();
                Ok::<bool, std::io::Error>(
                    reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with(&local.to_string()),
                )
            }));
        }
        let all = async {
            let mut ok = 0;
            for t in tasks {
                if let Ok(Ok(true)) = t.await {
                    ok += 1;
                }
            }
            ok
        };
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .unwrap_or(0)
    });
    assert_eq!(ok, CONNECTIONS);
    assert_eq!(origin.handshakes(), CONNECTIONS);
    assert_eq!(origin.requests().len(), CONNECTIONS);
}

#[test]
fn dropping_the_origin_ends_its_connections() {
    use std::io::Read as _;
    let ca = TestCa::new().unwrap();
    let origin = TlsOrigin::start(&ca.leaf(&[HOST]).unwrap()).unwrap();
    // A connection that never says anything: the origin is waiting for its ClientHello.
    let mut idle = std::net::TcpStream::connect(origin.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sluice_testkit::wait_for("the origin to accept", Duration::from_secs(5), || {
        origin.connections_accepted() == 1
    })
    .unwrap();
    drop(origin);
    // (Whether the port then refuses connections is not checked: a test running in parallel
    // may bind the same port number at once.)
    let mut buf = [0u8; 16];
    match idle.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the connection should be closed, got {other:?}"),
    }
}

#[test]
fn plain_http_with_a_proxy_header_a_greeting_and_upgrades() {
    use sluice_proto::proxy::{Command, ProxiedAddrs, write_v2};
    use std::io::{Read as _, Write as _};
    let origin = TlsOrigin::start_plain(OriginOptions {
        greeting: Some("hi\n"),
        ..OriginOptions::default()
    })
    .unwrap();
    let caller: SocketAddr = "203.0.113.7:4242".parse().unwrap();
    let mut wire = Vec::new();
    let addrs = ProxiedAddrs {
        source: caller,
        destination: origin.addr,
    };
    write_v2(Command::Proxy, Some(&addrs), &mut wire);
    // A greeting for any path, a refused upgrade that keeps the connection, then a switch
    // that echoes what came behind it.
    wire.extend_from_slice(b"GET /anything HTTP/1.1\r\nX-A: 1\r\n\r\n");
    wire.extend_from_slice(b"GET /upgrade-refused HTTP/1.1\r\n\r\n");
    wire.extend_from_slice(b"GET /upgrade-accepted HTTP/1.1\r\n\r\nearly");
    let mut s = std::net::TcpStream::connect(origin.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&wire).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.ends_with(b"early") {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\n\r\nhi\n"), "{text}");
    assert!(text.contains("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("no upgrades here\n"), "{text}");
    assert!(
        text.contains("HTTP/1.1 101 Switching Protocols\r\n"),
        "{text}"
    );
    s.write_all(b" and later").unwrap();
    let mut back = [0u8; 10];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b" and later");

    let seen = origin.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen.iter().all(|r| r.proxy_source == Some(caller)),
        "{seen:?}"
    );
    assert!(seen[0].head.ends_with("X-A: 1\r\n\r\n"), "{seen:?}");
    assert_eq!(seen[0].sni, None);
    assert_eq!(origin.connections_accepted(), 1);
}

#[test]
fn one_curl_run_gets_several_urls_into_one_body() {
    let ca = TestCa::new().unwrap();
    let origin = TlsOrigin::start(&ca.leaf(&[HOST]).unwrap()).unwrap();
    let port = origin.addr.port();
    let both = curl(&origin, "/echo-peer")
        .cacert(ca.ca_pem_path())
        .also_get(format!("https://{HOST}:{port}/echo-peer"))
        .run()
        .unwrap();
    assert!(both.ok(), "{both:?}");
    let peer = origin.requests()[0].peer.to_string();
    assert_eq!(both.body_text(), format!("{peer}{peer}"), "one connection");
    let missing = curl(&origin, "/")
        .cacert(ca.ca_pem_path())
        .also_get(format!("https://{HOST}:{port}/nope"))
        .run()
        .unwrap();
    assert_eq!(missing.http_code, 404, "the transfer that failed speaks");
    assert!(!missing.ok());
}
