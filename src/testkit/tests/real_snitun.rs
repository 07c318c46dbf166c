//! The real SniTun server and client against each other, through testkit alone (no Sluice
//! code), like the reference `run_demo.sh`: TLS origin ← real client ⇐ tunnel ⇐ real server ←
//! curl. This proves the harness that the edge and connector tests build on.
//!
//! snitun 0.40.0 is required (it needs only Python ≥ 3.10). snitun 0.47.0 needs Python ≥ 3.13;
//! without one its tests print why and pass without running.
//!
//! Each test makes its own CA, origin and credentials (milliseconds), so that the origin's
//! request log belongs to that test alone; servers and origins listen on port 0.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use sluice_proto::crypto::CipherKind;
use sluice_proto::version::ProtocolVersion;
use sluice_testkit::{
    Credentials, Curl, Mode, Peer, RealClient, RealServer, Release, SnitunPeers, TestCa, TlsOrigin,
    sha256_of_pattern,
};

const HOST: &str = "a.example.test";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

fn peer(release: Release) -> Option<&'static Peer> {
    SnitunPeers::get().for_test(release, "(testkit)")
}

/// What one end-to-end run should do besides the basic verified GET.
#[derive(Clone, Copy)]
struct Run {
    server: Release,
    client: Release,
    mode: Mode,
    version: ProtocolVersion,
    cipher: CipherKind,
    /// Also download this many MiB at 8 MiB/s and check the SHA-256.
    big_mib: Option<u64>,
}

impl Run {
    fn new(release: Release, mode: Mode, version: ProtocolVersion, cipher: CipherKind) -> Self {
        Run {
            server: release,
            client: release,
            mode,
            version,
            cipher,
            big_mib: None,
        }
    }

    fn big(mut self, mib: u64) -> Self {
        self.big_mib = Some(mib);
        self
    }

    fn go(self) {
        let Some(server_peer) = peer(self.server) else {
            return;
        };
        let Some(client_peer) = peer(self.client) else {
            return;
        };
        let started = Instant::now();
        let ca = TestCa::new().unwrap();
        let origin = TlsOrigin::start(&ca.leaf(&[HOST]).unwrap()).unwrap();
        let creds = Credentials::builder(HOST)
            .protocol(self.version)
            .cipher(self.cipher)
            .build()
            .unwrap();
        let server = RealServer::start(
            server_peer,
            self.mode,
            std::slice::from_ref(&creds.fernet_key),
        )
        .unwrap();
        let client = RealClient::start(
            client_peer,
            &creds.client_config(),
            server.tunnel_addr(),
            origin.addr,
        )
        .unwrap();
        client.wait_connected(CONNECT_TIMEOUT).unwrap();
        server
            .wait_peer_registered(HOST, 1, Duration::from_secs(10))
            .unwrap();
        let ready = started.elapsed();

        let url = |path: &str| format!("https://{HOST}:{}{path}", server.port);
        let to_edge = |c: Curl| c.resolve(HOST, server.port, Ipv4Addr::LOCALHOST.into());

        // The TLS session runs end to end: curl verifies the origin's certificate.
        for _ in 0..3 {
            let got = to_edge(Curl::get(url("/")))
                .cacert(ca.ca_pem_path())
                .run()
                .unwrap();
            assert!(
                got.ok(),
                "{got:?}\nserver log: {}\nclient log: {}",
                server.log_path().display(),
                client.log_path().display()
            );
            let body = got.body_text();
            assert!(body.contains(&format!("sni: {HOST}")), "{body}");
            assert!(body.contains("tcp-peer: 127.0.0.1:"), "{body}");
        }
        let seen = origin.requests();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(
            seen.iter()
                .all(|r| r.sni.as_deref() == Some(HOST) && r.path == "/")
        );

        // No tunnel for this name: the server closes (no TLS alert, no HTTP).
        let other = Curl::get(format!("https://b.example.test:{}/", server.port))
            .resolve("b.example.test", server.port, Ipv4Addr::LOCALHOST.into())
            .cacert(ca.ca_pem_path())
            .max_time(15)
            .run()
            .unwrap();
        assert!(other.exit_code != 0 && other.http_code == 0, "{other:?}");

        if let Some(mib) = self.big_mib {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("big.bin");
            let t = Instant::now();
            let got = to_edge(Curl::get(url(&format!("/big/{mib}"))))
                .cacert(ca.ca_pem_path())
                .limit_rate("8M")
                .output_file(&out)
                .max_time(120)
                .run()
                .unwrap();
            assert!(got.ok(), "{got:?}");
            assert_eq!(got.body_len, mib << 20);
            assert_eq!(got.body_sha256, sha256_of_pattern(mib));
            // PAUSE/RESUME exist from v1 on; the server logs "Informing remote ..." for each.
            eprintln!(
                "big download: {mib} MiB in {:.1} s; server sent {} PAUSE/RESUME, client logged {} pauses",
                t.elapsed().as_secs_f64(),
                server.log_count("Informing remote"),
                client.log_count("under water"),
            );
        }

        // Losing the server is seen by the client.
        let pid = server.pid();
        server.stop();
        client
            .wait_disconnections(1, Duration::from_secs(15))
            .unwrap();
        assert!(!client.is_connected());
        eprintln!(
            "server {} / client {} {:?} v{} {}: tunnel up in {:.1} s, whole run {:.1} s (server pid {pid})",
            self.server,
            self.client,
            self.mode,
            self.version,
            self.cipher.name(),
            ready.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
}

use CipherKind::{AesCbc, AesGcm, AesGcmSiv};
use ProtocolVersion::{V0, V1, V2};
use Release::{V040, V047};

#[test]
fn v040_single_v0_aes_cbc_with_big_download() {
    Run::new(V040, Mode::Single, V0, AesCbc).big(24).go();
}

#[test]
fn v040_worker_v0_aes_cbc() {
    Run::new(V040, Mode::Worker { workers: 2 }, V0, AesCbc).go();
}

#[test]
fn v040_dual_v0_aes_cbc() {
    Run::new(V040, Mode::Dual, V0, AesCbc).go();
}

#[test]
fn v047_single_v0_aes_cbc() {
    Run::new(V047, Mode::Single, V0, AesCbc).go();
}

#[test]
fn v047_single_v1_aes_cbc() {
    Run::new(V047, Mode::Single, V1, AesCbc).go();
}

#[test]
fn v047_single_v2_aes_gcm_with_big_download() {
    Run::new(V047, Mode::Single, V2, AesGcm).big(24).go();
}

#[test]
fn v047_single_v2_aes_gcm_siv() {
    Run::new(V047, Mode::Single, V2, AesGcmSiv).go();
}

#[test]
fn v047_worker_v2_aes_gcm() {
    Run::new(V047, Mode::Worker { workers: 2 }, V2, AesGcm).go();
}

#[test]
fn v047_server_with_v040_client() {
    let mut run = Run::new(V047, Mode::Single, V0, AesCbc);
    run.client = V040;
    run.go();
}

#[test]
fn a_040_client_refuses_what_it_cannot_speak() {
    let Some(peer) = peer(V040) else { return };
    let creds = Credentials::builder(HOST)
        .protocol(V2)
        .cipher(AesGcm)
        .build()
        .unwrap();
    let addr = "127.0.0.1:9".parse().unwrap();
    let err = RealClient::start(peer, &creds.client_config(), addr, addr).unwrap_err();
    assert!(err.to_string().contains("cannot speak"), "{err}");
}

#[test]
fn a_wrong_fernet_key_never_connects_and_the_error_shows_the_log() {
    let Some(peer) = peer(V040) else { return };
    let ca = TestCa::new().unwrap();
    let origin = TlsOrigin::start(&ca.leaf(&[HOST]).unwrap()).unwrap();
    let creds = Credentials::new(HOST).unwrap();
    let stranger = Credentials::new(HOST).unwrap();
    let server = RealServer::start(peer, Mode::Single, &[stranger.fernet_key]).unwrap();
    let client = RealClient::start(
        peer,
        &creds.client_config(),
        server.tunnel_addr(),
        origin.addr,
    )
    .unwrap();
    // The server closes before sending a challenge; the client keeps retrying.
    sluice_testkit::wait_for("two failed attempts", Duration::from_secs(20), || {
        client.failed_attempts() >= 2
    })
    .unwrap();
    assert_eq!(client.connections(), 0);
    let err = server
        .wait_peer_registered(HOST, 1, Duration::from_millis(300))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("timed out") && text.contains("server.log"),
        "{text}"
    );
}

#[test]
fn dropping_a_worker_server_ends_its_whole_process_group() {
    use nix::sys::signal::killpg;
    use nix::unistd::Pid;
    let Some(peer) = peer(V040) else { return };
    let key = Credentials::new(HOST).unwrap().fernet_key;
    let server = RealServer::start(peer, Mode::Worker { workers: 2 }, &[key]).unwrap();
    let pgid = Pid::from_raw(server.pid() as i32);
    assert!(killpg(pgid, None).is_ok(), "the group exists while it runs");
    drop(server);
    assert_eq!(killpg(pgid, None), Err(nix::errno::Errno::ESRCH));
}

/// Upstream behaviour, not a testkit check: with the origin closing right after the body,
/// snitun 0.47.0 on protocol v2 can drop the tail of a rate-limited download (the CLOSE
/// reaches the server while the channel is paused; see `origin.rs`). Run by hand with
/// `cargo test -p sluice-testkit --test real_snitun -- --ignored --nocapture`.
#[test]
#[ignore = "demonstrates an upstream snitun 0.47.0 bug; timing-dependent"]
fn v047_origin_closing_first_can_lose_the_tail() {
    use sluice_testkit::OriginOptions;
    let Some(peer) = peer(V047) else { return };
    let ca = TestCa::new().unwrap();
    let leaf = ca.leaf(&[HOST]).unwrap();
    let origin = TlsOrigin::start_with(
        leaf.server_config().unwrap(),
        OriginOptions {
            close_after_response: true,
            ..OriginOptions::default()
        },
    )
    .unwrap();
    let creds = Credentials::builder(HOST)
        .protocol(V2)
        .cipher(AesGcm)
        .build()
        .unwrap();
    let server =
        RealServer::start(peer, Mode::Single, std::slice::from_ref(&creds.fernet_key)).unwrap();
    let client = RealClient::start(
        peer,
        &creds.client_config(),
        server.tunnel_addr(),
        origin.addr,
    )
    .unwrap();
    client.wait_connected(CONNECT_TIMEOUT).unwrap();
    server
        .wait_peer_registered(HOST, 1, Duration::from_secs(10))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut short = 0;
    for i in 0..5 {
        let got = Curl::get(format!("https://{HOST}:{}/big/24", server.port))
            .resolve(HOST, server.port, Ipv4Addr::LOCALHOST.into())
            .cacert(ca.ca_pem_path())
            .limit_rate("8M")
            .output_file(dir.path().join(format!("big{i}")))
            .max_time(60)
            .run()
            .unwrap();
        eprintln!(
            "run {i}: curl exit {} with {} bytes",
            got.exit_code, got.body_len
        );
        if !got.ok() {
            short += 1;
        }
    }
    eprintln!("{short} of 5 downloads lost their tail (SLUICE_TESTKIT_KEEP=1 keeps the logs)");
}
