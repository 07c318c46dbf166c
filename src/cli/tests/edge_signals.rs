//! `sluice edge` as an operator runs it: SIGHUP re-reads the Fernet keys (a bad file keeps
//! the old ones), SIGTERM drains and exits 0.

use rand::SeedableRng;
use rand::rngs::StdRng;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_proto::crypto::CipherKind;
use sluice_proto::handshake::ClientHandshake;
use sluice_proto::token::{FernetKey, TokenClaims};
use sluice_proto::version::ProtocolVersion;
use sluice_testkit::{
    EdgeReady, LoggedChild, RunDir, Signal, http_get, metric_sum, wait_for_value, write_key_file,
};

const WORKERS: usize = 2;
const WAIT: Duration = Duration::from_secs(20);

/// The edge's count of tunnels that completed the handshake, from its admin endpoint.
fn tunnels_accepted(admin: SocketAddr) -> f64 {
    let page = http_get(admin, "/metrics", Duration::from_secs(5)).unwrap();
    metric_sum(&page, "sluice_tunnel_connections_total").unwrap_or_else(|| panic!("{page}"))
}

/// Runs a tunnel handshake; true when the edge took the tunnel (its count of accepted tunnels
/// moved), false when it closed the connection instead.
fn tunnel_accepted(edge: &EdgeReady, key: &FernetKey) -> bool {
    let admin = edge.admin.expect("an admin endpoint");
    let before = tunnels_accepted(admin);
    let mut rng = StdRng::seed_from_u64(5);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let claims = TokenClaims {
        valid: now.as_secs_f64() + 600.0,
        hostname: "home.example.test".parse().unwrap(),
        aliases: vec![],
        aes_key: [3; 32],
        aes_iv: [4; 16],
        protocol_version: ProtocolVersion::V2,
        cipher: CipherKind::AesGcmSiv,
    };
    let token = claims.mint(key, now.as_secs(), &mut rng);
    let mut s = TcpStream::connect(edge.tunnel_listen[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(token.as_bytes()).unwrap();
    let hs = ClientHandshake::new(
        claims.cipher,
        claims.protocol_version,
        &claims.aes_key,
        &claims.aes_iv,
    );
    let mut challenge = vec![0u8; hs.challenge_len()];
    if s.read_exact(&mut challenge).is_err() {
        return false;
    }
    let (_, answer) = hs.answer(&challenge, &mut rng).unwrap();
    s.write_all(&answer).unwrap();
    // One of two things happens: the edge counts the tunnel, or it closes the connection.
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    wait_for_value("the edge to take or refuse the tunnel", WAIT, || {
        if tunnels_accepted(admin) > before {
            return Some(true);
        }
        let mut byte = [0u8; 1];
        match s.read(&mut byte) {
            Ok(0) => Some(false),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(_) => Some(false),
            // A frame (a PING) on an accepted tunnel: the counter says so next.
            Ok(_) => None,
        }
    })
    .unwrap()
}

/// The next log line of the edge containing `needle`.
fn wait_line(child: &mut LoggedChild, needle: &str) -> String {
    let what = format!("a log line with {needle:?}");
    child
        .next_line(&what, WAIT, |l| l.contains(needle))
        .unwrap()
}

#[test]
fn sighup_reloads_keys_and_sigterm_drains() {
    let dir = RunDir::new("sluice-signals-").unwrap();
    let keys = dir.path().join("fernet.keys");
    let mut rng = StdRng::from_entropy();
    let (old, new) = (FernetKey::generate(&mut rng), FernetKey::generate(&mut rng));
    write_key_file(&keys, std::slice::from_ref(&old)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["edge", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--workers", &WORKERS.to_string()])
        .args(["--handshake-timeout", "1s", "--shutdown-grace", "5s"])
        .arg("--fernet-keys")
        .arg(&keys)
        .env("SLUICE_LOG", "info")
        .env("NO_COLOR", "1");
    let mut child = LoggedChild::spawn(cmd, &dir.path().join("edge.log"), "sluice edge").unwrap();
    let edge = EdgeReady::wait(&mut child, WAIT).unwrap();

    assert!(tunnel_accepted(&edge, &old));
    assert!(
        !tunnel_accepted(&edge, &new),
        "unknown key before the reload"
    );

    // The new key first (it would mint), the old one still verifying.
    write_key_file(&keys, &[new.clone(), old.clone()]).unwrap();
    child.signal(Signal::SIGHUP).unwrap();
    // Every worker says so: a tunnel may land on any of them.
    for _ in 0..WORKERS {
        wait_line(&mut child, "Fernet keys reloaded");
    }
    assert!(tunnel_accepted(&edge, &new), "accepted after SIGHUP");
    assert!(tunnel_accepted(&edge, &old), "the old key still verifies");

    // A broken file keeps what works.
    std::fs::write(&keys, "not a key\n").unwrap();
    child.signal(Signal::SIGHUP).unwrap();
    wait_line(&mut child, "keeping the current keys");
    assert!(tunnel_accepted(&edge, &new));

    child.signal(Signal::SIGTERM).unwrap();
    wait_line(&mut child, "stopped");
    let status = child.wait_exit(WAIT).unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        TcpStream::connect(edge.listen[0]).is_err(),
        "nothing listens any more"
    );
}

#[test]
fn the_ready_line_names_every_address_in_dual_port_mode() {
    let dir = RunDir::new("sluice-ready-").unwrap();
    let keys = dir.path().join("fernet.keys");
    write_key_file(&keys, &[FernetKey::generate(&mut StdRng::from_entropy())]).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["edge", "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
        .args(["--tunnel-listen", "127.0.0.1:0", "--workers", "1"])
        .arg("--fernet-keys")
        .arg(&keys);
    let mut child = LoggedChild::spawn(cmd, &dir.path().join("edge.log"), "sluice edge").unwrap();
    let ready = EdgeReady::wait(&mut child, WAIT).unwrap();
    assert_eq!(ready.listen.len(), 2, "{ready:?}");
    assert_eq!(ready.tunnel_listen.len(), 1, "{ready:?}");
    assert!(!ready.listen.contains(&ready.tunnel_listen[0]), "{ready:?}");
    assert_eq!((ready.admin, ready.workers), (None, 1), "{ready:?}");
    assert!(
        ["io_uring", "epoll"].contains(&ready.driver.as_str()),
        "{ready:?}"
    );
    for addr in ready.listen.iter().chain(&ready.tunnel_listen) {
        assert!(TcpStream::connect(addr).is_ok(), "{addr} listens");
    }
    child.signal(Signal::SIGTERM).unwrap();
    assert!(child.wait_exit(WAIT).unwrap().success());
}
