//! Our connector against the real SniTun server from PyPI (testkit): it connects, and curl
//! through the real server reaches our connector's endpoint in both modes, with certificate
//! verification; large downloads read slowly arrive intact.
//!
//! | server | protocols × ciphers |
//! |---|---|
//! | snitun 0.40.0 (Python 3.11) | v0 × aes-cbc |
//! | snitun 0.47.0 (Python ≥ 3.13) | v0, v1, v2 × aes-cbc, aes-gcm, aes-gcm-siv |
//!
//! 0.40.0 is required. Without a Python ≥ 3.13 the 0.47.0 tests print why and pass without
//! running.

mod support;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use sluice_connector::{Connector, CredentialSource, Credentials};
use sluice_proto::crypto::CipherKind;
use sluice_proto::version::ProtocolVersion;
use sluice_testkit::{
    Credentials as Minted, Curl, Mode, Peer, RealServer, Release, RunDir, SnitunPeers, TestCa,
    TlsOrigin, sha256_of_pattern,
};
use support::{GREETING, connected, home, init_logs};

const HOST: &str = "a.example.test";
const BIG_MIB: u64 = 24;

fn peer(release: Release) -> Option<&'static Peer> {
    SnitunPeers::get().for_test(release, "(connector interop)")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Endpoint {
    Passthrough,
    Terminate,
}

/// One connector against one real server: connect, a verified GET, optionally a big download.
fn run(
    release: Release,
    version: ProtocolVersion,
    cipher: CipherKind,
    endpoint: Endpoint,
    big: bool,
) {
    init_logs();
    let Some(peer) = peer(release) else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _in_runtime = rt.enter();
    let ca = TestCa::new().unwrap();
    let leaf = ca.leaf(&[HOST]).unwrap();
    let minted = Minted::builder(HOST)
        .protocol(version)
        .cipher(cipher)
        .build()
        .unwrap();
    let server =
        RealServer::start(peer, Mode::Single, std::slice::from_ref(&minted.fernet_key)).unwrap();
    let creds = Credentials::new(minted.token.clone(), minted.claims.clone()).unwrap();
    let builder = Connector::builder(
        server.tunnel_addr().to_string(),
        CredentialSource::Static(Box::new(creds)),
    );
    // Passthrough: the real TLS origin. Terminate: our rustls in front of a plain HTTP origin.
    let (_tls_origin, http_origin, builder) = match endpoint {
        Endpoint::Passthrough => {
            let origin = TlsOrigin::start(&leaf).unwrap();
            let b = builder.passthrough(origin.addr.to_string());
            (Some(origin), None, b)
        }
        Endpoint::Terminate => {
            let http = home(None);
            let b = builder.terminate(leaf.server_config().unwrap(), http.addr.to_string());
            (None, Some(http), b)
        }
    };
    let handle = builder.build().unwrap();
    rt.block_on(connected(&handle));
    server
        .wait_peer_registered(HOST, 1, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));

    let url = |path: &str| format!("https://{HOST}:{}{path}", server.port);
    let curl = |path: &str| {
        Curl::get(url(path))
            .resolve(HOST, server.port, Ipv4Addr::LOCALHOST.into())
            .cacert(ca.ca_pem_path())
    };
    let got = curl("/").run().unwrap();
    assert!(got.ok(), "{got:?}\n{}", server.log());
    let expected = match endpoint {
        Endpoint::Passthrough => format!("sni: {HOST}"),
        Endpoint::Terminate => GREETING.to_owned(),
    };
    assert!(got.body_text().contains(&expected), "{got:?}");
    if let Some(http) = &http_origin {
        // The caller's address came in SniTun's NEW frame and went out as X-Forwarded-For.
        let seen = http.requests();
        assert!(
            seen[0].head.contains("\r\nX-Forwarded-For: 127.0.0.1\r\n"),
            "{seen:?}"
        );
    }

    if big {
        let dir = RunDir::new("sluice-interop-big-").unwrap();
        let file: PathBuf = dir.path().join("big.bin");
        let got = curl(&format!("/big/{BIG_MIB}"))
            .limit_rate("8M")
            .max_time(120)
            .output_file(&file)
            .run()
            .unwrap();
        assert!(got.ok(), "{got:?}\n{}", server.log());
        assert_eq!(got.body_len, BIG_MIB << 20);
        assert_eq!(got.body_sha256, sha256_of_pattern(BIG_MIB));
    }
    assert!(handle.state().is_connected(), "{:?}", handle.state());
    handle.shutdown();
    rt.block_on(handle.wait()).unwrap();
}

use CipherKind::{AesCbc as CBC, AesGcm as GCM, AesGcmSiv as SIV};
use Endpoint::{Passthrough as PASS, Terminate as TERM};
use ProtocolVersion::{V0, V1, V2};
use Release::{V040, V047};

#[test]
fn snitun_040_v0_cbc_passthrough_big_download() {
    run(V040, V0, CBC, PASS, true);
}

#[test]
fn snitun_040_v0_cbc_terminate() {
    run(V040, V0, CBC, TERM, false);
}

#[test]
fn snitun_047_v0_cbc_passthrough() {
    run(V047, V0, CBC, PASS, false);
}

#[test]
fn snitun_047_v0_gcm_passthrough() {
    run(V047, V0, GCM, PASS, false);
}

#[test]
fn snitun_047_v0_siv_passthrough() {
    run(V047, V0, SIV, PASS, false);
}

#[test]
fn snitun_047_v1_cbc_terminate_big_download() {
    run(V047, V1, CBC, TERM, true);
}

#[test]
fn snitun_047_v1_gcm_passthrough() {
    run(V047, V1, GCM, PASS, false);
}

#[test]
fn snitun_047_v1_siv_passthrough() {
    run(V047, V1, SIV, PASS, false);
}

#[test]
fn snitun_047_v2_cbc_passthrough() {
    run(V047, V2, CBC, PASS, false);
}

#[test]
fn snitun_047_v2_gcm_passthrough_big_download() {
    run(V047, V2, GCM, PASS, true);
}

#[test]
fn snitun_047_v2_siv_terminate() {
    run(V047, V2, SIV, TERM, false);
}

/// SniTun 0.40.0 ignores the token's version: with a protocol-2 token the tunnel comes up,
/// then its first NEW is protocol 0's. The connector must say so, not serve nothing quietly.
#[test]
fn snitun_040_with_a_v2_token_reports_the_mismatch_and_the_fix() {
    init_logs();
    let Some(peer) = peer(V040) else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _in_runtime = rt.enter();
    let ca = TestCa::new().unwrap();
    let leaf = ca.leaf(&[HOST]).unwrap();
    let origin = TlsOrigin::start(&leaf).unwrap();
    let minted = Minted::builder(HOST)
        .protocol(V2)
        .cipher(CBC)
        .build()
        .unwrap();
    let server =
        RealServer::start(peer, Mode::Single, std::slice::from_ref(&minted.fernet_key)).unwrap();
    let creds = Credentials::new(minted.token.clone(), minted.claims.clone()).unwrap();
    let handle = Connector::builder(
        server.tunnel_addr().to_string(),
        CredentialSource::Static(Box::new(creds)),
    )
    .passthrough(origin.addr.to_string())
    .build()
    .unwrap();
    rt.block_on(connected(&handle));
    server
        .wait_peer_registered(HOST, 1, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));

    let got = Curl::get(format!("https://{HOST}:{}/", server.port))
        .resolve(HOST, server.port, Ipv4Addr::LOCALHOST.into())
        .cacert(ca.ca_pem_path())
        .max_time(20)
        .run()
        .unwrap();
    assert!(!got.ok(), "{got:?}");
    let end = rt
        .block_on(tokio::time::timeout(Duration::from_secs(20), handle.wait()))
        .expect("the connector stops within 20 s");
    match end {
        Err(sluice_connector::Error::ProtocolMismatch(why)) => {
            assert!(why.contains("--protocol-version 0"), "{why}")
        }
        other => panic!("{other:?}\n{}", server.log()),
    }
}
