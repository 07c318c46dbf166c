//! Interop with the real SniTun client from PyPI (0.40.0 on Python 3.11 for protocol 0;
//! 0.47.0 on Python 3.13 for protocols 0, 1, 2 and every cipher): it connects to our edge, and
//! curl through our edge reaches its TLS endpoint with the endpoint's certificate verified.
//! The venvs are set up by `sluice-testkit` on first use (pip, into a cache folder). Where no
//! Python 3.13 exists, the 0.47.0 cases say so and pass; the 0.40.0 ones always run.

mod support;

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sluice_edge::{EdgeConfig, IoDriver};
use sluice_proto::crypto::CipherKind;
use sluice_proto::version::ProtocolVersion;
use sluice_testkit::{
    Credentials, Curl, RealClient, Release, SnitunPeers, TestCa, TlsOrigin, sha256_of_pattern,
};

const HOST: &str = "a.example.test";

#[derive(Clone, Copy, PartialEq)]
enum Ports {
    Single,
    Dual,
}

/// One real client through our edge: three verified requests, and optionally a big download
/// read slowly (which must make a protocol-1+ client pause).
fn case(
    release: Release,
    version: ProtocolVersion,
    cipher: CipherKind,
    ports: Ports,
    io: IoDriver,
    big_mib: Option<u64>,
) {
    let Some(peer) = SnitunPeers::get().for_test(release, &format!("v{version} {cipher}")) else {
        return;
    };
    support::logging();
    let ca = TestCa::new().unwrap();
    let origin = TlsOrigin::start(&ca.leaf(&[HOST, "alias.example.test"]).unwrap()).unwrap();
    let creds = Credentials::builder(HOST)
        .alias("alias.example.test")
        .protocol(version)
        .cipher(cipher)
        .build()
        .unwrap();
    let mut config = EdgeConfig::for_keys(vec![creds.fernet_key.clone()]);
    config.workers = 2;
    config.io = io;
    if ports == Ports::Dual {
        config.tunnel_listen = vec!["127.0.0.1:0".parse().unwrap()];
    }
    let edge = sluice_edge::start(config).unwrap();
    let public = edge.listen_addrs()[0];
    let tunnel_at = if ports == Ports::Dual {
        edge.tunnel_addrs()[0]
    } else {
        public
    };
    let client = RealClient::start(peer, &creds.client_config(), tunnel_at, origin.addr()).unwrap();
    client.wait_connected(Duration::from_secs(60)).unwrap();
    let accepted = || {
        edge.metrics()
            .total(|w| w.tunnels_accepted.load(Ordering::Relaxed))
    };
    assert!(
        support::wait_for(Duration::from_secs(10), || (accepted() == 1).then_some(())).is_some(),
        "tunnel registered"
    );

    let what = format!("snitun {release} v{version} {cipher} {io:?}");
    for (i, name) in [HOST, "alias.example.test", HOST].iter().enumerate() {
        let r = Curl::get(format!("https://{name}:{}/", public.port()))
            .resolve(name, public.port(), Ipv4Addr::LOCALHOST.into())
            .cacert(ca.ca_pem_path())
            .max_time(30)
            .run()
            .unwrap();
        assert!(r.ok(), "{what} request {i}: {r:?}");
        assert_eq!(
            (r.http_code, r.ssl_verify_result),
            (200, 0),
            "{what}: verified end to end"
        );
        assert!(
            r.body_text().contains(name),
            "{what}: the origin saw SNI {name}: {}",
            r.body_text()
        );
    }
    if let Some(mib) = big_mib {
        let dir = sluice_testkit::RunDir::new("sluice-edge-big-").unwrap();
        let r = Curl::get(format!("https://{HOST}:{}/big/{mib}", public.port()))
            .resolve(HOST, public.port(), Ipv4Addr::LOCALHOST.into())
            .cacert(ca.ca_pem_path())
            .limit_rate("8M")
            .output_file(dir.path().join("big.bin"))
            .max_time(120)
            .run()
            .unwrap();
        assert!(r.ok(), "{what} big download: {r:?}");
        assert_eq!(r.body_sha256, sha256_of_pattern(mib), "{what}: intact");
        let pauses = client.log_count("Pause reader");
        if version >= ProtocolVersion::V1 {
            assert!(
                pauses > 0,
                "{what}: the slow reader must pause the client (log: {})",
                client.log_path().display()
            );
        } else {
            assert_eq!(pauses, 0, "{what}: never PAUSE a protocol-0 client");
        }
        eprintln!("{what}: {mib} MiB at 8 MiB/s intact, {pauses} pauses");
    }
    // Our edge going away is noticed by the real client.
    drop(edge);
    client
        .wait_disconnections(1, Duration::from_secs(30))
        .unwrap();
}

#[test]
fn snitun_040_v0_single_port_with_a_slow_download() {
    case(
        Release::V040,
        ProtocolVersion::V0,
        CipherKind::AesCbc,
        Ports::Single,
        IoDriver::Auto,
        Some(24),
    );
}

#[test]
fn snitun_040_v0_dual_port_on_epoll() {
    case(
        Release::V040,
        ProtocolVersion::V0,
        CipherKind::AesCbc,
        Ports::Dual,
        IoDriver::Epoll,
        None,
    );
}

#[test]
fn snitun_047_v0_cbc_and_gcm() {
    case(
        Release::V047,
        ProtocolVersion::V0,
        CipherKind::AesCbc,
        Ports::Single,
        IoDriver::Auto,
        None,
    );
    case(
        Release::V047,
        ProtocolVersion::V0,
        CipherKind::AesGcm,
        Ports::Single,
        IoDriver::Auto,
        None,
    );
}

#[test]
fn snitun_047_v1_cbc_with_a_slow_download() {
    case(
        Release::V047,
        ProtocolVersion::V1,
        CipherKind::AesCbc,
        Ports::Single,
        IoDriver::Auto,
        Some(24),
    );
}

#[test]
fn snitun_047_v1_gcm_siv_dual_port() {
    case(
        Release::V047,
        ProtocolVersion::V1,
        CipherKind::AesGcmSiv,
        Ports::Dual,
        IoDriver::Auto,
        None,
    );
}

#[test]
fn snitun_047_v2_gcm_with_a_slow_download() {
    case(
        Release::V047,
        ProtocolVersion::V2,
        CipherKind::AesGcm,
        Ports::Single,
        IoDriver::Auto,
        Some(24),
    );
}

#[test]
fn snitun_047_v2_cbc_and_gcm_siv_on_epoll() {
    case(
        Release::V047,
        ProtocolVersion::V2,
        CipherKind::AesCbc,
        Ports::Single,
        IoDriver::Epoll,
        None,
    );
    case(
        Release::V047,
        ProtocolVersion::V2,
        CipherKind::AesGcmSiv,
        Ports::Single,
        IoDriver::Epoll,
        None,
    );
}
