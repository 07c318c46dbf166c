//! What the connector's tests share beyond the fixture kit (`sluice-testkit`): tokens for
//! one host, an in-process edge, a home server that greets, and curl aimed at that host
//! through the edge. Everything on 127.0.0.1 with port 0; every wait bounded.

#![allow(dead_code)]

pub mod hostile;

use rand::rngs::OsRng;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use sluice_connector::{Backoff, ConnectorHandle, Credentials, State};
use sluice_edge::{EdgeConfig, EdgeHandle};
use sluice_proto::Hostname;
use sluice_proto::crypto::CipherKind;
use sluice_proto::token::{FernetKey, TokenRequest};
use sluice_proto::version::ProtocolVersion;
use sluice_testkit::{Curl, CurlResult, Leaf, OriginOptions, TestCa, TlsOrigin, wait_until};

pub const HOST: &str = "home.sluice.test";
/// What the home server answers on `/` (and any path it has no route for).
pub const GREETING: &str = "hello from the origin\n";

/// Logs to the test output when `SLUICE_LOG` is set.
pub fn init_logs() {
    if let Ok(filter) = std::env::var("SLUICE_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// The home server: HTTPS with `leaf`, plain HTTP without; it greets with [`GREETING`] and
/// reads a PROXY v2 header if one comes first.
pub fn home(leaf: Option<&Leaf>) -> TlsOrigin {
    let options = OriginOptions {
        greeting: Some(GREETING),
        ..OriginOptions::default()
    };
    match leaf {
        Some(leaf) => TlsOrigin::start_with(leaf.server_config().unwrap(), options),
        None => TlsOrigin::start_plain(options),
    }
    .expect("the home server starts")
}

/// Mints credentials for `HOST` valid for `valid_for`.
pub fn mint(
    key: &FernetKey,
    version: ProtocolVersion,
    cipher: CipherKind,
    valid_for: Duration,
) -> Credentials {
    let request = TokenRequest {
        protocol_version: version,
        cipher,
        valid_for,
        ..TokenRequest::new(Hostname::parse(HOST.as_bytes()).unwrap())
    };
    let issued = sluice_proto::token::Issuer::new(std::slice::from_ref(key))
        .unwrap()
        .issue(&request, SystemTime::now(), &mut OsRng)
        .unwrap();
    Credentials::new(issued.token, issued.claims).unwrap()
}

/// An edge on 127.0.0.1 (port 0 unless `addr` is given, for a restart on the same port).
pub fn edge(key: &FernetKey, addr: Option<SocketAddr>) -> EdgeHandle {
    let mut config = EdgeConfig::for_keys(vec![key.clone()]);
    if let Some(addr) = addr {
        config.listen = vec![addr];
    }
    sluice_edge::start(config).expect("edge starts")
}

/// Waits until the edge has registered `n` tunnels in all (bounded: 10 s).
pub async fn registered(edge: &EdgeHandle, n: u64) {
    use std::sync::atomic::Ordering;
    let accepted = || {
        edge.metrics()
            .total(|w| w.tunnels_accepted.load(Ordering::Relaxed))
    };
    wait_until(
        &format!("the edge to register tunnel {n}"),
        Duration::from_secs(10),
        || accepted() >= n,
    )
    .await
    .unwrap();
}

/// Backoff fast enough for tests.
pub fn quick_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
        stable_after: Duration::from_secs(60),
    }
}

/// Waits until the connector is connected.
pub async fn connected(handle: &ConnectorHandle) {
    if let Err(s) = handle
        .wait_until(Duration::from_secs(20), State::is_connected)
        .await
    {
        panic!("not connected within 20 s: {s:?}");
    }
}

/// `curl` for `https://HOST:port{path}` through `127.0.0.1:port`, verifying against `ca`.
pub fn curl(port: u16, path: &str, ca: &TestCa) -> Curl {
    Curl::get(format!("https://{HOST}:{port}{path}"))
        .resolve(HOST, port, Ipv4Addr::LOCALHOST.into())
        .cacert(ca.ca_pem_path())
        .max_time(60)
}

/// Runs `curl` once, off the runtime, and insists on success. (No retries: a retry would hide
/// a stalled transfer. Tests wait for the edge to register the tunnel first.)
pub async fn curl_ok(curl: Curl) -> CurlResult {
    let got = curl.run_async().await.expect("curl runs");
    assert!(got.ok(), "curl failed: {got:?}");
    got
}

/// Runs `curl` once, off the runtime, whatever it gets.
pub async fn curl_any(curl: Curl) -> CurlResult {
    curl.run_async().await.expect("curl runs")
}
