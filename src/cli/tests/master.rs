//! `sluice master` as an operator runs it: accounts and token sets on a state directory, and
//! the server answering over HTTPS. Every child is killed on drop; every wait is bounded.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sluice_testkit::{Curl, TestCa, curl_available};

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

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn accounts_and_token_sets_on_a_state_directory() {
    let dir = tempfile::tempdir().unwrap();
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

#[test]
fn versions_are_blocked_listed_and_unblocked() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let block = sluice(
        &[
            "master",
            "versions",
            "block",
            "<=2021.1.4",
            "--reason",
            "CVE-2021-0001",
            "--state-dir",
            state,
        ],
        "",
    );
    assert!(block.status.success(), "{}", text(&block.stderr));
    let bad = sluice(
        &[
            "master",
            "versions",
            "block",
            "~2021",
            "--reason",
            "x",
            "--state-dir",
            state,
        ],
        "",
    );
    assert!(!bad.status.success());
    let list = sluice(&["master", "versions", "list", "--state-dir", state], "");
    assert_eq!(text(&list.stdout), "<=2021.1.4\tCVE-2021-0001\n");
    let unblock = sluice(
        &[
            "master",
            "versions",
            "unblock",
            "<=2021.1.4",
            "--state-dir",
            state,
        ],
        "",
    );
    assert!(unblock.status.success(), "{}", text(&unblock.stderr));
    let again = sluice(
        &[
            "master",
            "versions",
            "unblock",
            "<=2021.1.4",
            "--state-dir",
            state,
        ],
        "",
    );
    assert!(
        text(&again.stderr).contains("not blocked"),
        "{}",
        text(&again.stderr)
    );
    let list = sluice(&["master", "versions", "list", "--state-dir", state], "");
    assert_eq!(text(&list.stdout), "");
}

#[test]
fn the_server_runs_from_a_config_file_with_flags_over_it() {
    if !curl_available() {
        eprintln!("curl is not installed: skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
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
    let mut child = Killed(
        Command::new(SLUICE)
            .args([
                "master",
                "--config",
                config.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = mpsc::channel();
    let err = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let addr: std::net::SocketAddr = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the master says where it listens");
        if let Some(a) = line.strip_prefix("sluice master: listening on https://") {
            break a.parse().unwrap();
        }
    };
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
