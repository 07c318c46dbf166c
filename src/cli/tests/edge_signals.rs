//! `sluice edge` as an operator runs it: SIGHUP re-reads the Fernet keys (a bad file keeps
//! the old ones), SIGTERM drains and exits 0.

use rand::SeedableRng;
use rand::rngs::StdRng;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_proto::crypto::CipherKind;
use sluice_proto::handshake::ClientHandshake;
use sluice_proto::token::{FernetKey, TokenClaims};
use sluice_proto::version::ProtocolVersion;

/// Log lines of the child, as they come.
fn follow(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("no log line with {needle:?}: {e}"),
        }
    }
}

fn field(line: &str, name: &str) -> SocketAddr {
    let rest = line.split(&format!("{name}=")).nth(1).unwrap();
    let rest = rest.trim_start_matches('[').trim_start_matches("Some(");
    rest.split([']', ')', ' ']).next().unwrap().parse().unwrap()
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0);
}

/// Runs a tunnel handshake; true when the edge answered with a challenge and kept the
/// connection after the answer.
fn tunnel_accepted(edge: SocketAddr, key: &FernetKey) -> bool {
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
    let mut s = TcpStream::connect(edge).unwrap();
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
    // Accepted tunnels stay open: nothing comes back within a moment.
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    matches!(s.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
}

#[test]
fn sighup_reloads_keys_and_sigterm_drains() {
    let dir = std::env::temp_dir().join(format!("sluice-signals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("fernet.keys");
    let mut rng = StdRng::from_entropy();
    let (old, new) = (FernetKey::generate(&mut rng), FernetKey::generate(&mut rng));
    std::fs::write(&keys, format!("{}\n", old.to_base64())).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "edge",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--handshake-timeout",
            "1s",
            "--shutdown-grace",
            "5s",
        ])
        .arg("--fernet-keys")
        .arg(&keys)
        .env("SLUICE_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = follow(child.stderr.take().unwrap());
    let edge = field(&wait_line(&log, "edge started"), "listen");

    assert!(tunnel_accepted(edge, &old));
    assert!(
        !tunnel_accepted(edge, &new),
        "unknown key before the reload"
    );

    std::fs::write(
        &keys,
        format!("# rotated\n{}\n{}\n", new.to_base64(), old.to_base64()),
    )
    .unwrap();
    signal(&child, libc::SIGHUP);
    wait_line(&log, "Fernet keys reloaded");
    assert!(tunnel_accepted(edge, &new), "accepted after SIGHUP");
    assert!(tunnel_accepted(edge, &old), "the old key still verifies");

    // A broken file keeps what works.
    std::fs::write(&keys, "not a key\n").unwrap();
    signal(&child, libc::SIGHUP);
    wait_line(&log, "keeping the current keys");
    assert!(tunnel_accepted(edge, &new));

    signal(&child, libc::SIGTERM);
    wait_line(&log, "stopped");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        TcpStream::connect(edge).is_err(),
        "nothing listens any more"
    );
}
