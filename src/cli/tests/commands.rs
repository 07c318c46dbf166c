//! The `sluice` binary itself: token, connect + ctl, verify and the demo, as a person runs
//! them. Every child is killed on drop; every wait is bounded.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use sluice_proto::crypto::CipherKind;
use sluice_proto::token::{FernetKey, verify_token};
use sluice_proto::version::ProtocolVersion;
use sluice_testkit::{LoggedChild, RunDir, Signal, TestCa, wait_for, write_key_file};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
/// How long a child may take to print a line it is expected to print.
const LINE_WAIT: Duration = Duration::from_secs(60);

fn sluice(args: &[&str]) -> Output {
    Command::new(SLUICE).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `sluice ARGS` as a child with its output logged; stopped on drop.
fn start(args: &[&str]) -> LoggedChild {
    let mut cmd = Command::new(SLUICE);
    cmd.args(args);
    LoggedChild::start(cmd, "sluice").unwrap()
}

/// The next output line of `child` containing `needle`.
fn line_with(child: &mut LoggedChild, needle: &str) -> String {
    child
        .next_line(&format!("a line with {needle:?}"), LINE_WAIT, |l| {
            l.contains(needle)
        })
        .unwrap()
}

/// SIGTERM, and the exit status (10 s at most).
fn stop(child: &mut LoggedChild) -> std::process::ExitStatus {
    child.signal(Signal::SIGTERM).unwrap();
    child.wait_exit(Duration::from_secs(10)).unwrap()
}

/// A key from `sluice token new-key`, written to a key file in `dir`.
fn write_keys(dir: &RunDir) -> (PathBuf, FernetKey) {
    let out = sluice(&["token", "new-key"]);
    assert!(out.status.success());
    let key_text = text(&out.stdout);
    let key = FernetKey::parse(key_text.trim()).expect("new-key prints a Fernet key");
    let path = dir.path().join("fernet.keys");
    write_key_file(&path, std::slice::from_ref(&key)).unwrap();
    (path, key)
}

#[test]
fn token_issue_writes_credentials_that_the_token_backs() {
    let dir = RunDir::new("sluice-cli-token-").unwrap();
    let (keys, key) = write_keys(&dir);
    let out_path = dir.path().join("creds.json");
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

/// Runs a curl command line the demo printed, as a user pasting it would; it must succeed.
fn run_curl_line(line: &str) -> std::process::Output {
    let args: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(args[0], "curl", "{line}");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(out.status.success(), "{line}: {}", text(&out.stderr));
    out
}

#[test]
fn demo_prints_a_curl_command_that_works_and_verify_checks_the_certificate() {
    let dir = RunDir::new("sluice-cli-demo-").unwrap();
    let mut demo = start(&["demo", "--dir", dir.path().to_str().unwrap()]);
    let out = run_curl_line(&line_with(&mut demo, "curl --resolve"));
    let body = text(&out.stdout);
    assert!(body.contains("Hello from the Sluice demo origin"), "{body}");
    assert!(body.contains("Your address: 127.0.0.1"), "{body}");

    // The printed verify command says the served certificate is the local one ...
    let line = line_with(&mut demo, " verify https://");
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
    other[cert_at] = dir.path().join("ca.pem").to_string_lossy().into_owned();
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
    let out = run_curl_line(&line_with(&mut demo, "/.well-known/service-discovery"));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["actions"].as_object().map(|a| a.len()), Some(24));
    let line = line_with(&mut demo, " master token ");
    let args: Vec<&str> = line.split_whitespace().collect();
    let token = sluice(&args[1..]);
    assert!(token.status.success(), "{}", text(&token.stderr));
    assert!(text(&token.stdout).contains("\"id_token\""));
    assert!(dir.path().join("demo-password").is_file());

    assert!(stop(&mut demo).success());
}

#[test]
fn connect_runs_a_connector_that_ctl_drives() {
    let dir = RunDir::new("sluice-cli-connect-").unwrap();
    let (keys, key) = write_keys(&dir);
    let creds = dir.path().join("creds.json");
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
    let ca = TestCa::new().unwrap();
    let leaf = ca.leaf(&["home.sluice.test"]).unwrap();
    let cert_path = leaf.cert_path.clone();
    let sha256 = sluice_connector::Fingerprints::of(&leaf.cert_der()).sha256_hex();

    let mut connector = start(&[
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
    assert!(line_with(&mut connector, "SHA-256 fingerprint").contains(&sha256));
    let ctl = line_with(&mut connector, "control endpoint on http://");
    let ctl = ctl.rsplit("http://").next().unwrap().to_owned();
    let run_ctl = |action: &str| {
        let out = sluice(&["ctl", "--control", &ctl, action]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let until = |want: &str| {
        let reached = wait_for(want, Duration::from_secs(10), || {
            run_ctl("state").contains(want)
        });
        assert!(reached.is_ok(), "never {want}: {}", run_ctl("state"));
    };
    until(r#""state":"disconnected""#);
    assert_eq!(accepted(), 0);
    run_ctl("connect");
    until(r#""state":"connected""#);
    run_ctl("disconnect");
    until(r#""state":"disconnected""#);
    run_ctl("connect");
    until(r#""state":"connected""#);
    let _ = wait_for("two tunnels", Duration::from_secs(10), || accepted() == 2);
    assert_eq!(accepted(), 2);
    assert!(stop(&mut connector).success());

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

#[test]
fn the_tunnel_listener_keeps_its_old_flag_and_config_key() {
    let dir = RunDir::new("sluice-cli-tunnel-listen-").unwrap();
    let (keys, _) = write_keys(&dir);
    let keys = keys.to_string_lossy().into_owned();
    // Both spellings of the flag add to one list.
    let out = sluice(&[
        "edge",
        "--check",
        "--fernet-keys",
        &keys,
        "--tunnel-listen",
        "127.0.0.1:7001",
        "--peer-listen",
        "127.0.0.1:7002",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let listed = printed
        .split_once("tunnel_listen: [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list.to_owned())
        .unwrap_or_else(|| panic!("no tunnel_listen in\n{printed}"));
    assert!(
        listed.contains("127.0.0.1:7001") && listed.contains("127.0.0.1:7002"),
        "{printed}"
    );
    // A config file written with the old key.
    let file = dir.path().join("edge.toml");
    std::fs::write(
        &file,
        format!("fernet_keys = {keys:?}\npeer_listen = [\"127.0.0.1:7003\"]\n"),
    )
    .unwrap();
    let out = sluice(&["edge", "--check", "--config", &file.to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("127.0.0.1:7003"),
        "{}",
        text(&out.stdout)
    );
    // --help names the new flag and shows the old one as an alias.
    let help = text(&sluice(&["edge", "--help"]).stdout);
    assert!(
        help.contains("--tunnel-listen") && help.contains("--peer-listen"),
        "{help}"
    );
}
