//! End to end with Sluice's own edge, in process: browsers are `curl` with certificate
//! verification; the home servers record what reached them.

mod support;

use rand::rngs::OsRng;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sluice_connector::CredentialsFile;
use sluice_connector::access::parse_network;
use sluice_connector::tls::peer_certificates;
use sluice_connector::{AccessList, Connector, CredentialSource, Fingerprints, State};
use sluice_proto::crypto::CipherKind;
use sluice_proto::token::FernetKey;
use sluice_proto::version::ProtocolVersion;
use sluice_testkit::{
    Leaf, OriginOptions, RunDir, TestCa, TlsOrigin, read_until, sha256_of_pattern,
};
use support::*;

const HOUR: Duration = Duration::from_secs(3600);
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// How long a raw browser waits for what it expects.
const WAIT: Duration = Duration::from_secs(20);

/// A browser that writes raw HTTP over TLS to `HOST` through the edge at `addr`.
async fn browser(
    ca: &TestCa,
    addr: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    ca.connect(addr, HOST, WAIT).await.unwrap()
}

fn key() -> FernetKey {
    FernetKey::generate(&mut OsRng)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_reaches_the_home_tls_server_with_the_callers_address() {
    init_logs();
    let pki = TestCa::new().unwrap();
    let leaf = pki.leaf(&[HOST]).unwrap();
    let origin = home(Some(&leaf));
    let key = key();
    let edge = edge(&key, None);
    let addr = edge.listen_addrs()[0];
    let creds = mint(&key, ProtocolVersion::V2, CipherKind::AesCbc, HOUR);
    let handle = Connector::builder(addr.to_string(), CredentialSource::Static(Box::new(creds)))
        .passthrough(origin.addr.to_string())
        .proxy_protocol(true)
        .build()
        .unwrap();
    connected(&handle).await;
    registered(&edge, 1).await;

    let got = curl_ok(curl(addr.port(), "/", &pki)).await;
    assert_eq!(got.body_text(), "hello from the origin\n");
    let seen = origin.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].proxy_source.map(|a| a.ip()),
        Some(LOOPBACK),
        "PROXY v2 names the caller"
    );

    // A large download, read slowly, arrives intact (flow control end to end).
    let got = curl_ok(curl(addr.port(), "/big/24", &pki).limit_rate("8M")).await;
    assert_eq!(got.body_len, 24 << 20);
    assert_eq!(got.body_sha256, sha256_of_pattern(24));

    handle.shutdown();
    handle.wait().await.unwrap();
    assert_eq!(handle.state(), State::Stopped(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_serves_the_certificate_and_forwards_the_callers_address() {
    let (pki, http, edge, _handle, leaf) =
        terminate_setup_with(ProtocolVersion::V1, CipherKind::AesGcmSiv, true).await;
    let addr = edge.listen_addrs()[0];

    // Two requests on one connection, each with a forged X-Forwarded-For.
    let second = format!("https://{HOST}:{}/second", addr.port());
    let got = curl_ok(
        curl(addr.port(), "/", &pki)
            .arg("-H")
            .arg("X-Forwarded-For: 6.6.6.6")
            .also_get(second),
    )
    .await;
    assert_eq!(got.body_text().matches("hello from the origin").count(), 2);
    let seen = http.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(http.connections_accepted(), 1, "keep-alive");
    for s in &seen {
        assert!(
            s.head.contains("\r\nX-Forwarded-For: 127.0.0.1\r\n"),
            "{}",
            s.head
        );
        assert!(
            s.head
                .contains("\r\nForwarded: for=127.0.0.1;proto=https\r\n"),
            "{}",
            s.head
        );
        assert!(
            !s.head.contains("6.6.6.6"),
            "the forged address is dropped: {}",
            s.head
        );
        assert_eq!(s.proxy_source.map(|a| a.ip()), Some(LOOPBACK));
    }

    // The certificate seen through the public address is the one the connector serves.
    let chain = peer_certificates(addr, HOST, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        Fingerprints::of(&chain[0]),
        Fingerprints::of(&leaf.cert_der())
    );

    // The same large download through rustls in the connector.
    let got = curl_ok(curl(addr.port(), "/big/24", &pki).limit_rate("8M")).await;
    assert_eq!(got.body_sha256, sha256_of_pattern(24));
}

/// A terminate-mode connector with a plain-HTTP home server, on our edge.
async fn terminate_setup() -> (
    TestCa,
    TlsOrigin,
    sluice_edge::EdgeHandle,
    sluice_connector::ConnectorHandle,
) {
    let (pki, http, edge, handle, _) =
        terminate_setup_with(ProtocolVersion::V2, CipherKind::AesCbc, false).await;
    (pki, http, edge, handle)
}

/// The same with the token's version and cipher, and PROXY v2 headers to the home server.
async fn terminate_setup_with(
    version: ProtocolVersion,
    cipher: CipherKind,
    proxy_protocol: bool,
) -> (
    TestCa,
    TlsOrigin,
    sluice_edge::EdgeHandle,
    sluice_connector::ConnectorHandle,
    Leaf,
) {
    init_logs();
    let pki = TestCa::new().unwrap();
    let leaf = pki.leaf(&[HOST]).unwrap();
    let http = home(None);
    let key = key();
    let edge = edge(&key, None);
    let addr = edge.listen_addrs()[0];
    let creds = mint(&key, version, cipher, HOUR);
    let handle = Connector::builder(addr.to_string(), CredentialSource::Static(Box::new(creds)))
        .terminate(leaf.server_config().unwrap(), http.addr.to_string())
        .proxy_protocol(proxy_protocol)
        .build()
        .unwrap();
    connected(&handle).await;
    registered(&edge, 1).await;
    (pki, http, edge, handle, leaf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_rewrites_a_request_pipelined_behind_a_refused_upgrade() {
    use tokio::io::AsyncWriteExt;
    let (pki, http, edge, _handle) = terminate_setup().await;
    let mut browser = browser(&pki, edge.listen_addrs()[0]).await;
    // One write: an upgrade the home server refuses, and behind it a request that claims to
    // come from the home network.
    let upgrade = format!(
        "GET /upgrade-refused HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    );
    let forged = format!(
        "GET /second HTTP/1.1\r\nHost: {HOST}\r\nX-Forwarded-For: 127.0.0.1, 6.6.6.6\r\n\r\n"
    );
    browser
        .write_all(format!("{upgrade}{forged}").as_bytes())
        .await
        .unwrap();
    let got = read_until(&mut browser, GREETING.as_bytes(), WAIT).await;
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got}");
    assert!(got.contains("no upgrades here\n"), "{got}");

    let seen = http.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let second = &seen[1].head;
    assert!(second.starts_with("GET /second "), "{second}");
    assert_eq!(
        second.matches("X-Forwarded-For:").count(),
        1,
        "only the connector's X-Forwarded-For: {second}"
    );
    assert!(
        second.contains("\r\nX-Forwarded-For: 127.0.0.1\r\n"),
        "{second}"
    );
    assert!(
        second.contains("\r\nForwarded: for=127.0.0.1;proto=https\r\n"),
        "{second}"
    );
    assert!(
        !second.contains("6.6.6.6"),
        "the forged address is dropped: {second}"
    );
    assert_eq!(http.connections_accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_passes_an_accepted_upgrade_through_untouched() {
    use tokio::io::AsyncWriteExt;
    let (pki, http, edge, _handle) = terminate_setup().await;
    let mut browser = browser(&pki, edge.listen_addrs()[0]).await;
    let upgrade = format!(
        "GET /upgrade-accepted HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n"
    );
    // Sent before the 101 arrives: held by the connector, then released unchanged.
    let early = "early bytes\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
    browser
        .write_all(format!("{upgrade}{early}").as_bytes())
        .await
        .unwrap();
    let got = read_until(&mut browser, early.as_bytes(), WAIT).await;
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{got}"
    );
    assert!(got.ends_with(early), "echoed untouched: {got}");
    // After the switch, bytes flow both ways as they are.
    let later = "GET / HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
    browser.write_all(later.as_bytes()).await.unwrap();
    let got = read_until(&mut browser, later.as_bytes(), WAIT).await;
    assert_eq!(String::from_utf8_lossy(&got), later);
    assert_eq!(http.requests().len(), 1, "one HTTP request, then a tunnel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprint_check_fails_when_another_certificate_answers() {
    init_logs();
    let pki = TestCa::new().unwrap();
    let ours = pki.leaf(&[HOST]).unwrap();
    let impostor = pki.leaf(&[HOST]).unwrap();
    // The home server presents another certificate than the one the owner holds: the check,
    // made through the public address, must tell.
    let origin = home(Some(&impostor));
    let key = key();
    let edge = edge(&key, None);
    let addr = edge.listen_addrs()[0];
    let creds = mint(&key, ProtocolVersion::V0, CipherKind::AesCbc, HOUR);
    let handle = Connector::builder(addr.to_string(), CredentialSource::Static(Box::new(creds)))
        .passthrough(origin.addr.to_string())
        .build()
        .unwrap();
    connected(&handle).await;
    registered(&edge, 1).await;
    let chain = peer_certificates(addr, HOST, Duration::from_secs(10))
        .await
        .unwrap();
    let seen = Fingerprints::of(&chain[0]);
    assert_ne!(seen, Fingerprints::of(&ours.cert_der()));
    assert_eq!(seen, Fingerprints::of(&impostor.cert_der()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_list_blocks_and_allows() {
    init_logs();
    let pki = TestCa::new().unwrap();
    let leaf = pki.leaf(&[HOST]).unwrap();
    let origin = home(Some(&leaf));
    let key = key();
    let edge = edge(&key, None);
    let addr = edge.listen_addrs()[0];
    let start = |access: AccessList| {
        let creds = mint(&key, ProtocolVersion::V2, CipherKind::AesCbc, HOUR);
        Connector::builder(addr.to_string(), CredentialSource::Static(Box::new(creds)))
            .passthrough(origin.addr.to_string())
            .access_list(access)
            .build()
            .unwrap()
    };

    // Only 10.0.0.0/8 may connect: curl from 127.0.0.1 is refused before the origin sees it.
    let blocked = start(AccessList::open().allow([parse_network("10.0.0.0/8").unwrap()]));
    connected(&blocked).await;
    registered(&edge, 1).await;
    let since = blocked.state();
    let got = curl_any(curl(addr.port(), "/", &pki)).await;
    assert!(!got.ok(), "{got:?}");
    assert_eq!(origin.connections_accepted(), 0);
    assert_eq!(
        blocked.state(),
        since,
        "a refused channel leaves the tunnel up"
    );
    blocked.shutdown();
    blocked.wait().await.unwrap();

    // 127.0.0.0/8 is blocked, except ... nothing: and then allowed explicitly.
    let allowed = start(
        AccessList::open()
            .allow([parse_network("127.0.0.0/8").unwrap()])
            .block([parse_network("10.0.0.0/8").unwrap()]),
    );
    connected(&allowed).await;
    registered(&edge, 2).await;
    curl_ok(curl(addr.port(), "/", &pki)).await;
    assert_eq!(origin.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_with_backoff_after_the_edge_restarts() {
    init_logs();
    let pki = TestCa::new().unwrap();
    let leaf = pki.leaf(&[HOST]).unwrap();
    let origin = home(Some(&leaf));
    let key = key();
    let first = edge(&key, None);
    let addr = first.listen_addrs()[0];
    let creds = mint(&key, ProtocolVersion::V2, CipherKind::AesGcmSiv, HOUR);
    let handle = Connector::builder(addr.to_string(), CredentialSource::Static(Box::new(creds)))
        .passthrough(origin.addr.to_string())
        .backoff(quick_backoff())
        .build()
        .unwrap();
    connected(&handle).await;
    registered(&first, 1).await;
    curl_ok(curl(addr.port(), "/", &pki)).await;

    // Hold the port while the edge is down: bound with SO_REUSEPORT like the edge's own
    // sockets but not listening, so connections are refused and no ephemeral socket can take
    // the port before the second edge binds it.
    let hold = tokio::net::TcpSocket::new_v4().unwrap();
    hold.set_reuseaddr(true).unwrap();
    hold.set_reuseport(true).unwrap();
    hold.bind(addr).unwrap();
    drop(first);
    // While the edge is down every attempt fails and the count grows.
    let backing_off = handle
        .wait_until(
            Duration::from_secs(20),
            |s| matches!(s, State::BackingOff { attempt, .. } if *attempt >= 3),
        )
        .await
        .expect("backs off while the edge is down");
    let State::BackingOff { error, .. } = backing_off else {
        unreachable!()
    };
    assert!(
        matches!(error, sluice_connector::Error::Connect(_)),
        "{error:?}"
    );

    let second = edge(&key, Some(addr));
    drop(hold);
    connected(&handle).await;
    registered(&second, 1).await;
    let got = curl_ok(curl(addr.port(), "/", &pki)).await;
    assert_eq!(got.body_text(), "hello from the origin\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_closes_channels_and_keeps_the_tunnel() {
    init_logs();
    let pki = TestCa::new().unwrap();
    let leaf = pki.leaf(&[HOST]).unwrap();
    // Bound but not listening: connections are refused, and no other socket can take the
    // port meanwhile (closing it and binding again later races with ephemeral ports).
    let spot = tokio::net::TcpSocket::new_v4().unwrap();
    spot.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = spot.local_addr().unwrap();
    let key = key();
    let edge = edge(&key, None);
    let addr = edge.listen_addrs()[0];
    let creds = mint(&key, ProtocolVersion::V1, CipherKind::AesCbc, HOUR);
    let handle = Connector::builder(addr.to_string(), CredentialSource::Static(Box::new(creds)))
        .passthrough(dead.to_string())
        .build()
        .unwrap();
    connected(&handle).await;
    registered(&edge, 1).await;
    let up = handle.state();

    for _ in 0..3 {
        let got = curl_any(curl(addr.port(), "/", &pki)).await;
        assert!(!got.ok(), "{got:?}");
    }
    assert_eq!(handle.state(), up, "the tunnel stays up, not reconnected");

    // The home server comes back on its port: served through the same tunnel.
    let listener = spot.listen(1024).unwrap();
    let _origin = TlsOrigin::start_on(
        listener.into_std().unwrap(),
        Some(leaf.server_config().unwrap()),
        OriginOptions::default(),
    )
    .unwrap();
    curl_ok(curl(addr.port(), "/", &pki)).await;
    assert_eq!(handle.state(), up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_the_token_before_it_expires() {
    init_logs();
    let pki = TestCa::new().unwrap();
    let leaf = pki.leaf(&[HOST]).unwrap();
    let origin = home(Some(&leaf));
    let key = key();
    let edge = edge(&key, None);
    let addr = edge.listen_addrs()[0];
    let dir = RunDir::new("sluice-refresh-").unwrap();
    let file = dir.path().join("creds.json");
    let short = mint(
        &key,
        ProtocolVersion::V2,
        CipherKind::AesCbc,
        Duration::from_secs(5),
    );
    short.save(&file).unwrap();
    let handle = Connector::builder(addr.to_string(), CredentialSource::File(file.clone()))
        .passthrough(origin.addr.to_string())
        .refresh_before(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut states = handle.subscribe();
    let history = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            seen.push(states.borrow_and_update().clone());
            if states.changed().await.is_err() || matches!(seen.last(), Some(State::Stopped(_))) {
                return seen;
            }
        }
    });
    connected(&handle).await;
    registered(&edge, 1).await;

    // A renewal job rewrites the file; the connector picks it up before the old token ends
    // (the edge ends a tunnel when its token does).
    let long = mint(&key, ProtocolVersion::V2, CipherKind::AesCbc, HOUR);
    long.save(&file).unwrap();
    let expires = long.expires_at();
    handle
        .wait_until(
            Duration::from_secs(20),
            |s| matches!(s, State::Connected { token_expires, .. } if *token_expires == expires),
        )
        .await
        .expect("switched to the new token");
    registered(&edge, 2).await;
    let left = short.remaining(std::time::SystemTime::now());
    tokio::time::sleep(left + Duration::from_secs(1)).await;
    curl_ok(curl(addr.port(), "/", &pki)).await;

    handle.shutdown();
    let history = history.await.unwrap();
    assert!(
        !history
            .iter()
            .any(|s| matches!(s, State::BackingOff { .. })),
        "never lost the tunnel: {history:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_and_connects_on_demand_through_the_control_endpoint() {
    use sluice_connector::control;
    init_logs();
    let pki = TestCa::new().unwrap();
    let leaf = pki.leaf(&[HOST]).unwrap();
    let origin = home(Some(&leaf));
    let key = key();
    let edge = edge(&key, None);
    let addr = edge.listen_addrs()[0];
    let creds = mint(&key, ProtocolVersion::V0, CipherKind::AesCbc, HOUR);
    let handle = Connector::builder(addr.to_string(), CredentialSource::Static(Box::new(creds)))
        .passthrough(origin.addr.to_string())
        .autoconnect(false)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ctl = listener.local_addr().unwrap();
    tokio::spawn(control::serve(handle.clone(), listener));

    let (status, body) = control::request(ctl, "GET", "/state").await.unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"state":"disconnected"}"#)
    );

    let (status, _) = control::request(ctl, "POST", "/connect").await.unwrap();
    assert_eq!(status, 200);
    connected(&handle).await;
    registered(&edge, 1).await;
    curl_ok(curl(addr.port(), "/", &pki)).await;

    let (status, _) = control::request(ctl, "POST", "/disconnect").await.unwrap();
    assert_eq!(status, 200);
    handle
        .wait_until(Duration::from_secs(10), |s| *s == State::Disconnected)
        .await
        .unwrap();
    // The edge forgets the host once the tunnel is gone.
    let mut refused = false;
    for _ in 0..50 {
        if !curl_any(curl(addr.port(), "/", &pki)).await.ok() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "no tunnel, no service");

    // From the library API this time.
    handle.connect();
    connected(&handle).await;
    registered(&edge, 2).await;
    curl_ok(curl(addr.port(), "/", &pki)).await;
    let (_, body) = control::request(ctl, "GET", "/state").await.unwrap();
    assert!(body.contains(r#""state":"connected""#), "{body}");

    // A browser (an Origin header) may not drive it.
    let mut s = tokio::net::TcpStream::connect(ctl).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        b"POST /disconnect HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n\r\n",
    )
    .await
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(handle.state().is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_reuses_an_aes_gcm_key_on_a_second_connection() {
    init_logs();
    let pki = TestCa::new().unwrap();
    let leaf = pki.leaf(&[HOST]).unwrap();
    let origin = home(Some(&leaf));
    let key = key();
    let first = edge(&key, None);
    let addr = first.listen_addrs()[0];
    let dir = RunDir::new("sluice-gcm-").unwrap();
    let file = dir.path().join("creds.json");
    mint(&key, ProtocolVersion::V2, CipherKind::AesGcm, HOUR)
        .save(&file)
        .unwrap();
    let handle = Connector::builder(addr.to_string(), CredentialSource::File(file.clone()))
        .passthrough(origin.addr.to_string())
        .backoff(quick_backoff())
        .build()
        .unwrap();
    connected(&handle).await;
    registered(&first, 1).await;

    drop(first);
    let second = edge(&key, Some(addr));
    // The edge is back, but the file still holds the used key: the connector waits.
    let waiting = handle
        .wait_until(Duration::from_secs(20), |s| {
            matches!(
                s,
                State::BackingOff {
                    error: sluice_connector::Error::Credentials(_),
                    ..
                }
            )
        })
        .await
        .expect("refuses the used key");
    assert!(format!("{waiting:?}").contains("aes-gcm"), "{waiting:?}");
    // It has had another chance to dial with the used key, and refused again.
    let State::BackingOff { attempt, .. } = waiting else {
        unreachable!()
    };
    handle
        .wait_until(Duration::from_secs(20), |s| {
            matches!(
                s,
                State::BackingOff {
                    error: sluice_connector::Error::Credentials(_),
                    attempt: later,
                    ..
                } if *later > attempt
            )
        })
        .await
        .expect("refuses the used key again");
    assert_eq!(
        second.metrics().total(|w| w
            .tunnels_accepted
            .load(std::sync::atomic::Ordering::Relaxed)),
        0
    );

    // Fresh credentials: connected again.
    mint(&key, ProtocolVersion::V2, CipherKind::AesGcm, HOUR)
        .save(&file)
        .unwrap();
    connected(&handle).await;
    registered(&second, 1).await;
    curl_ok(curl(addr.port(), "/", &pki)).await;

    // Static credentials cannot be renewed: reusing them is a fatal error.
    let creds = mint(&key, ProtocolVersion::V2, CipherKind::AesGcm, HOUR);
    let once = Connector::builder(addr.to_string(), CredentialSource::Static(Box::new(creds)))
        .passthrough(origin.addr.to_string())
        .backoff(quick_backoff())
        .build()
        .unwrap();
    connected(&once).await;
    drop(second);
    let end = tokio::time::timeout(Duration::from_secs(20), once.wait())
        .await
        .unwrap();
    assert!(
        matches!(end, Err(sluice_connector::Error::Credentials(_))),
        "{end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_refresh_source_the_tunnel_ends_with_its_token() {
    // The counterpart of the refresh test: it shows the edge does end a tunnel at its token's
    // expiry, so that test's success is the refresh's doing.
    init_logs();
    let pki = TestCa::new().unwrap();
    let leaf = pki.leaf(&[HOST]).unwrap();
    let origin = home(Some(&leaf));
    let key = key();
    let edge = edge(&key, None);
    let addr = edge.listen_addrs()[0];
    let short = mint(
        &key,
        ProtocolVersion::V2,
        CipherKind::AesCbc,
        Duration::from_secs(3),
    );
    let handle = Connector::builder(addr.to_string(), CredentialSource::Static(Box::new(short)))
        .passthrough(origin.addr.to_string())
        .backoff(quick_backoff())
        .build()
        .unwrap();
    connected(&handle).await;
    registered(&edge, 1).await;
    curl_ok(curl(addr.port(), "/", &pki)).await;
    let end = tokio::time::timeout(Duration::from_secs(20), handle.wait())
        .await
        .unwrap();
    assert!(
        matches!(&end, Err(sluice_connector::Error::Credentials(m)) if m.contains("expired")),
        "{end:?}"
    );
}
