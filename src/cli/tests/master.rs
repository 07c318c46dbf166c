//! `sluice master` as an operator runs it: accounts and token sets on a state directory, and
//! the server answering over HTTPS. Every child is killed on drop; every wait is bounded.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sluice_testkit::{Curl, LoggedChild, RunDir, Signal, TestCa, curl_available};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn sluice(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(SLUICE)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// How long the master may take to print a line the test waits for.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// The next line of the master's log that contains `needle`.
fn wait_line(child: &mut LoggedChild, needle: &str) -> String {
    child
        .next_line(needle, LINE_TIMEOUT, |l| l.contains(needle))
        .unwrap_or_else(|e| panic!("no line with {needle:?}: {e}"))
}

/// Where the master listens, from its log.
fn listen_addr(child: &mut LoggedChild) -> std::net::SocketAddr {
    const PREFIX: &str = "sluice master: listening on https://";
    let line = wait_line(child, PREFIX);
    line[line.find(PREFIX).unwrap() + PREFIX.len()..]
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn accounts_and_token_sets_on_a_state_directory() {
    let dir = RunDir::new("sluice-cli-master-").unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let add = |email: &str, password: &str| {
        sluice(
            &["master", "account", "add", email, "--state-dir", state],
            password,
        )
    };
    let out = add("Owner@Example.Net", "a long password\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = add("owner@example.net", "another password\n");
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );
    let empty = add("other@example.net", "");
    assert!(
        text(&empty.stderr).contains("stdin"),
        "{}",
        text(&empty.stderr)
    );

    let list = sluice(&["master", "account", "list", "--state-dir", state], "");
    assert!(
        text(&list.stdout).starts_with("owner@example.net\tenabled\t"),
        "{}",
        text(&list.stdout)
    );

    let token = sluice(
        &["master", "token", "owner@example.net", "--state-dir", state],
        "",
    );
    assert!(token.status.success(), "{}", text(&token.stderr));
    let set: serde_json::Value = serde_json::from_slice(&token.stdout).unwrap();
    for key in ["id_token", "access_token", "refresh_token"] {
        assert!(
            set[key].as_str().is_some_and(|t| t.split('.').count() == 3),
            "{key}: {set}"
        );
    }

    let off = sluice(
        &[
            "master",
            "account",
            "disable",
            "owner@example.net",
            "--state-dir",
            state,
        ],
        "",
    );
    assert!(off.status.success(), "{}", text(&off.stderr));
    let list = sluice(&["master", "account", "list", "--state-dir", state], "");
    assert!(
        text(&list.stdout).contains("\tdisabled\t"),
        "{}",
        text(&list.stdout)
    );
    let token = sluice(
        &["master", "token", "owner@example.net", "--state-dir", state],
        "",
    );
    assert!(!token.status.success());
    assert!(
        text(&token.stderr).contains("disabled"),
        "{}",
        text(&token.stderr)
    );
}

/// `sluice master versions ARGS --state-dir STATE`, with nothing on stdin.
fn versions(state: &str, args: &[&str]) -> Output {
    let mut all = vec!["master", "versions"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--state-dir", state]);
    sluice(&all, "")
}

#[test]
fn versions_are_blocked_listed_and_unblocked() {
    let dir = RunDir::new("sluice-cli-master-").unwrap();
    let state = dir.path().to_str().unwrap();
    let block = versions(state, &["block", "<=2021.1.4", "--reason", "CVE-2021-0001"]);
    assert!(block.status.success(), "{}", text(&block.stderr));
    let bad = versions(state, &["block", "~2021", "--reason", "x"]);
    assert!(!bad.status.success());
    let list = versions(state, &["list"]);
    assert_eq!(text(&list.stdout), "<=2021.1.4\tCVE-2021-0001\n");
    let unblock = versions(state, &["unblock", "<=2021.1.4"]);
    assert!(unblock.status.success(), "{}", text(&unblock.stderr));
    let again = versions(state, &["unblock", "<=2021.1.4"]);
    assert!(
        text(&again.stderr).contains("not blocked"),
        "{}",
        text(&again.stderr)
    );
    let list = versions(state, &["list"]);
    assert_eq!(text(&list.stdout), "");
}

#[test]
fn the_server_runs_from_a_config_file_with_flags_over_it() {
    if !curl_available() {
        eprintln!("curl is not installed: skipping");
        return;
    }
    let dir = RunDir::new("sluice-cli-master-").unwrap();
    let ca = TestCa::new().unwrap();
    let leaf = ca.leaf(&["master.sluice.test"]).unwrap();
    let keys = sluice(&["token", "new-key"], "");
    let keys_path = dir.path().join("fernet.keys");
    std::fs::write(&keys_path, &keys.stdout).unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("master.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:1\"\ntls_cert = {:?}\ntls_key = {:?}\nzone = \"ui.sluice.test\"\n\
             edge = \"edge.sluice.test\"\nfernet_keys = {:?}\nstate_dir = {:?}\n",
            leaf.cert_path, leaf.key_path, keys_path, state
        ),
    )
    .unwrap();
    let mut cmd = Command::new(SLUICE);
    cmd.args([
        "master",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let mut child = LoggedChild::start(cmd, "master").unwrap();
    let addr = listen_addr(&mut child);
    assert_ne!(addr.port(), 1, "the flag won over the file");
    let got = Curl::get(format!(
        "https://master.sluice.test:{}/.well-known/service-discovery",
        addr.port()
    ))
    .resolve("master.sluice.test", addr.port(), addr.ip())
    .cacert(ca.ca_pem_path())
    .run()
    .unwrap();
    assert!(got.ok(), "{got:?}");
    let doc: serde_json::Value = serde_json::from_str(&got.body_text()).unwrap();
    assert_eq!(doc["actions"].as_object().unwrap().len(), 24);
}

/// Starts `sluice master` on the state directory with `keys_path`; returns the child and its
/// address.
fn start_master(
    dir: &std::path::Path,
    ca: &TestCa,
    keys_path: &std::path::Path,
) -> (LoggedChild, std::net::SocketAddr) {
    let leaf = ca.leaf(&["master.sluice.test"]).unwrap();
    let mut cmd = Command::new(SLUICE);
    cmd.args([
        "master",
        "--listen",
        "127.0.0.1:0",
        "--zone",
        "ui.sluice.test",
    ])
    .args(["--edge", "edge.sluice.test", "--tls-cert"])
    .arg(&leaf.cert_path)
    .arg("--tls-key")
    .arg(&leaf.key_path)
    .arg("--fernet-keys")
    .arg(keys_path)
    .arg("--state-dir")
    .arg(dir.join("state"));
    let mut child = LoggedChild::start(cmd, "master").unwrap();
    let addr = listen_addr(&mut child);
    (child, addr)
}

#[test]
fn sighup_reloads_the_key_file_and_the_new_first_key_mints() {
    if !curl_available() {
        eprintln!("curl is not installed: skipping");
        return;
    }
    use sluice_proto::token::{FernetKey, verify_token};
    let dir = RunDir::new("sluice-cli-master-").unwrap();
    let ca = TestCa::new().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let add = sluice(
        &[
            "master",
            "account",
            "add",
            "o@example.net",
            "--state-dir",
            state,
        ],
        "a long password\n",
    );
    assert!(add.status.success(), "{}", text(&add.stderr));
    let set = sluice(
        &["master", "token", "o@example.net", "--state-dir", state],
        "",
    );
    let set: serde_json::Value = serde_json::from_slice(&set.stdout).unwrap();
    let bearer = format!(
        "Authorization: Bearer {}",
        set["id_token"].as_str().unwrap()
    );
    let old = FernetKey::generate(&mut rand::rngs::OsRng);
    let new = FernetKey::generate(&mut rand::rngs::OsRng);
    let keys_path = dir.path().join("fernet.keys");
    std::fs::write(&keys_path, format!("{}\n", old.to_base64())).unwrap();
    let (mut child, addr) = start_master(dir.path(), &ca, &keys_path);
    let post = |path: &str, body: &str| {
        let got = Curl::get(format!("https://master.sluice.test:{}{path}", addr.port()))
            .resolve("master.sluice.test", addr.port(), addr.ip())
            .cacert(ca.ca_pem_path())
            .arg("-X")
            .arg("POST")
            .arg("-H")
            .arg(&bearer)
            .arg("-H")
            .arg("Content-Type: application/json")
            .arg("-A")
            .arg("HomeAssistant/2026.3.0 aiohttp/3.14.5")
            .arg("--data")
            .arg(body)
            .run()
            .unwrap();
        assert!(got.ok(), "{got:?}");
        serde_json::from_str::<serde_json::Value>(&got.body_text()).unwrap()
    };
    post("/instance/register", "");
    let body = format!(
        "{{\"aes_key\": \"{}\", \"aes_iv\": \"{}\"}}",
        "ab".repeat(32),
        "cd".repeat(16)
    );
    let mint = || {
        post("/instance/snitun_token", &body)["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let now = std::time::SystemTime::now();
    assert!(verify_token(mint().as_bytes(), std::slice::from_ref(&old), now).is_ok());

    std::fs::write(
        &keys_path,
        format!("{}\n{}\n", new.to_base64(), old.to_base64()),
    )
    .unwrap();
    child.signal(Signal::SIGHUP).unwrap();
    assert!(wait_line(&mut child, "reloaded").contains("2 Fernet keys"));
    let token = mint();
    assert!(verify_token(token.as_bytes(), std::slice::from_ref(&new), now).is_ok());
    assert!(verify_token(token.as_bytes(), std::slice::from_ref(&old), now).is_err());

    // A file that does not parse keeps the keys in use.
    std::fs::write(&keys_path, "not a key\n").unwrap();
    child.signal(Signal::SIGHUP).unwrap();
    assert!(wait_line(&mut child, "keeping the keys").contains("line 1"));
    assert!(verify_token(mint().as_bytes(), std::slice::from_ref(&new), now).is_ok());
}
