//! The `sluice` binary itself: token, connect + ctl, verify and the demo, as a person runs
//! them. Every child is killed on drop; every wait is bounded.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice_proto::crypto::CipherKind;
use sluice_proto::token::{FernetKey, verify_token};
use sluice_proto::version::ProtocolVersion;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn sluice(args: &[&str]) -> Output {
    Command::new(SLUICE).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!(
            "sluice-cli-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A child process with its stdout lines delivered to a channel; killed on drop.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(SLUICE)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first stdout line containing `needle` (60 s at most).
    fn line_with(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; saw {:#?}", self.seen),
            }
        }
    }

    /// Sends SIGTERM and waits (10 s at most) for a clean exit.
    fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "did not stop within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_keys(dir: &Dir) -> (PathBuf, FernetKey) {
    let out = sluice(&["token", "new-key"]);
    assert!(out.status.success());
    let key_text = text(&out.stdout);
    let key = FernetKey::parse(key_text.trim()).expect("new-key prints a Fernet key");
    let path = dir.path("fernet.keys");
    std::fs::write(&path, format!("# current\n{key_text}")).unwrap();
    (path, key)
}

#[test]
fn token_issue_writes_credentials_that_the_token_backs() {
    let dir = Dir::new("token");
    let (keys, key) = write_keys(&dir);
    let out_path = dir.path("creds.json");
    let keys_arg = keys.to_str().unwrap();
    let out = sluice(&[
        "token",
        "issue",
        "--fernet-keys",
        keys_arg,
        "--hostname",
        "Home.Example.Test",
        "--alias",
        "ha.example.test",
        "--protocol-version",
        "1",
        "--cipher",
        "aes-gcm-siv",
        "--valid-for",
        "2h",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file holds the tunnel key");
    }
    let creds =
        <sluice_connector::Credentials as sluice_connector::CredentialsFile>::load(&out_path)
            .unwrap();
    let claims = verify_token(
        creds.token().as_bytes(),
        std::slice::from_ref(&key),
        std::time::SystemTime::now(),
    )
    .unwrap();
    assert_eq!(&claims, creds.claims(), "the file says what the token says");
    assert_eq!(claims.hostname.as_str(), "home.example.test");
    assert_eq!(claims.aliases[0].as_str(), "ha.example.test");
    assert_eq!(claims.protocol_version, ProtocolVersion::V1);
    assert_eq!(claims.cipher, CipherKind::AesGcmSiv);
    let left = creds.remaining(std::time::SystemTime::now()).as_secs();
    assert!((7000..=7200).contains(&left), "{left}");

    // aes-gcm is refused unless asked for; `-` writes to stdout.
    let gcm = |extra: &[&str]| {
        let mut args = vec![
            "token",
            "issue",
            "--fernet-keys",
            keys_arg,
            "--hostname",
            "h.test",
        ];
        args.extend_from_slice(&["--cipher", "aes-gcm", "--out", "-"]);
        args.extend_from_slice(extra);
        sluice(&args)
    };
    let refused = gcm(&[]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("nonce"),
        "{}",
        text(&refused.stderr)
    );
    let allowed = gcm(&["--allow-gcm-key-reuse"]);
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
    let c = sluice_connector::Credentials::from_json(&text(&allowed.stdout)).unwrap();
    assert_eq!(c.claims().cipher, CipherKind::AesGcm);
    assert_eq!(
        c.claims().protocol_version,
        ProtocolVersion::V2,
        "the default"
    );

    let bad = sluice(&[
        "token",
        "issue",
        "--fernet-keys",
        keys_arg,
        "--hostname",
        "10.0.0.1",
        "--out",
        "-",
    ]);
    assert!(!bad.status.success());
}

#[test]
fn demo_prints_a_curl_command_that_works_and_verify_checks_the_certificate() {
    let dir = Dir::new("demo");
    let mut demo = Running::start(&["demo", "--dir", dir.0.to_str().unwrap()]);
    let line = demo.line_with("curl --resolve");
    let args: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(args[0], "curl");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(out.status.success(), "{line}: {}", text(&out.stderr));
    let body = text(&out.stdout);
    assert!(body.contains("Hello from the Sluice demo origin"), "{body}");
    assert!(body.contains("Your address: 127.0.0.1"), "{body}");

    // The printed verify command says the served certificate is the local one ...
    let line = demo.line_with(" verify https://");
    let args: Vec<&str> = line.split_whitespace().collect();
    let ok = sluice(&args[1..]);
    assert!(
        ok.status.success(),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    assert!(text(&ok.stdout).contains("MATCH"));
    // ... and another certificate (the CA's) is not the one served.
    let mut other: Vec<String> = args[1..].iter().map(|s| (*s).to_owned()).collect();
    let cert_at = other.iter().position(|a| a == "--cert").unwrap() + 1;
    other[cert_at] = dir.path("ca.pem").to_string_lossy().into_owned();
    let other: Vec<&str> = other.iter().map(String::as_str).collect();
    let mismatch = sluice(&other);
    assert_eq!(
        mismatch.status.code(),
        Some(1),
        "{}",
        text(&mismatch.stdout)
    );
    assert!(text(&mismatch.stdout).contains("MISMATCH"));
    // Nothing listening: the check cannot be made.
    let mut nowhere: Vec<String> = args[1..].iter().map(|s| (*s).to_owned()).collect();
    let resolve_at = nowhere.iter().position(|a| a == "--resolve").unwrap() + 1;
    let url = nowhere[1].clone();
    let port = url.rsplit(':').next().unwrap().to_owned();
    nowhere[resolve_at] = format!("demo.sluice.test:{port}:127.0.0.2");
    let nowhere: Vec<&str> = nowhere.iter().map(String::as_str).collect();
    assert_eq!(sluice(&nowhere).status.code(), Some(2));

    // The demo's session master answers its printed curl line, and its token line works.
    let line = demo.line_with("/.well-known/service-discovery");
    let args: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(args[0], "curl");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(out.status.success(), "{line}: {}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["actions"].as_object().map(|a| a.len()), Some(24));
    let line = demo.line_with(" master token ");
    let args: Vec<&str> = line.split_whitespace().collect();
    let token = sluice(&args[1..]);
    assert!(token.status.success(), "{}", text(&token.stderr));
    assert!(text(&token.stdout).contains("\"id_token\""));
    assert!(dir.path("demo-password").is_file());

    assert!(demo.stop().success());
}

#[test]
fn connect_runs_a_connector_that_ctl_drives() {
    let dir = Dir::new("connect");
    let (keys, key) = write_keys(&dir);
    let creds = dir.path("creds.json");
    let issued = sluice(&[
        "token",
        "issue",
        "--fernet-keys",
        keys.to_str().unwrap(),
        "--hostname",
        "home.sluice.test",
        "--out",
        creds.to_str().unwrap(),
    ]);
    assert!(issued.status.success());
    let edge = sluice_edge::start(sluice_edge::EdgeConfig::for_keys(vec![key])).unwrap();
    let edge_addr = edge.listen_addrs()[0].to_string();
    let accepted = || {
        edge.metrics().total(|w| {
            w.tunnels_accepted
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    };

    // A certificate to show: the connector prints its fingerprints.
    let cert = rcgen::generate_simple_self_signed(vec!["home.sluice.test".to_owned()]).unwrap();
    let cert_path = dir.path("cert.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    let sha256 = sluice_connector::Fingerprints::of(cert.cert.der()).sha256_hex();

    let mut connector = Running::start(&[
        "connect",
        "--edge",
        &edge_addr,
        "--credentials",
        creds.to_str().unwrap(),
        "--to",
        "127.0.0.1:9",
        "--cert",
        cert_path.to_str().unwrap(),
        "--control",
        "127.0.0.1:0",
        "--start-disconnected",
    ]);
    assert!(connector.line_with("SHA-256 fingerprint").contains(&sha256));
    let ctl = connector.line_with("control endpoint on http://");
    let ctl = ctl.rsplit("http://").next().unwrap().to_owned();
    let run_ctl = |action: &str| {
        let out = sluice(&["ctl", "--control", &ctl, action]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let until = |want: &str| {
        for _ in 0..200 {
            if run_ctl("state").contains(want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("never {want}: {}", run_ctl("state"));
    };
    until(r#""state":"disconnected""#);
    assert_eq!(accepted(), 0);
    run_ctl("connect");
    until(r#""state":"connected""#);
    run_ctl("disconnect");
    until(r#""state":"disconnected""#);
    run_ctl("connect");
    until(r#""state":"connected""#);
    for _ in 0..200 {
        if accepted() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(accepted(), 2);
    assert!(connector.stop().success());

    // The control endpoint has no authentication: loopback only.
    let refused = sluice(&[
        "connect",
        "--edge",
        &edge_addr,
        "--credentials",
        creds.to_str().unwrap(),
        "--to",
        "127.0.0.1:9",
        "--control",
        "0.0.0.0:0",
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("loopback"),
        "{}",
        text(&refused.stderr)
    );
}
