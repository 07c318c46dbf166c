//! Real ClientHellos from `testdata/client_hello/`, as sent and cut into other records.

use std::path::PathBuf;

use super::encoder::{fragment, unframe};
use super::*;

struct Capture {
    file: String,
    bytes: Vec<u8>,
    name: Option<String>,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/client_hello")
}

/// Every row of `expected.txt` with its file's bytes.
fn captures() -> Vec<Capture> {
    let table = std::fs::read_to_string(dir().join("expected.txt")).expect("expected.txt");
    let captures: Vec<Capture> = table
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [file, name] = fields[..] else {
                panic!("bad expected.txt row {line:?}")
            };
            let bytes = std::fs::read(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            let name = (name != "NONE").then(|| name.to_owned());
            Capture {
                file: file.to_owned(),
                bytes,
                name,
            }
        })
        .collect();
    assert!(captures.len() >= 9, "the captures are gone");
    captures
}

#[test]
fn every_capture_is_in_the_table() {
    let listed: Vec<String> = captures().into_iter().map(|c| c.file).collect();
    for entry in std::fs::read_dir(dir()).expect("testdata dir") {
        let file = entry
            .expect("dir entry")
            .file_name()
            .into_string()
            .expect("utf-8 name");
        if file.ends_with(".bin") {
            assert!(listed.contains(&file), "{file} has no row in expected.txt");
        }
    }
}

#[test]
fn captures_need_more_until_complete() {
    for capture in captures() {
        println!("{}", capture.file);
        check_hello(&capture.bytes, capture.name.as_deref());
    }
}

#[test]
fn captures_report_their_record_version() {
    for capture in captures() {
        let hello = peek_client_hello(&capture.bytes, DEFAULT_MAX_HELLO_LEN)
            .expect("parses")
            .complete()
            .expect("complete");
        assert_eq!(hello.record_version, 0x0301, "{}", capture.file);
    }
}

#[test]
fn captures_reassemble_across_records() {
    let splits: [&[usize]; 6] = [&[1], &[7], &[100], &[512], &[3, 1, 250], &[16384]];
    for capture in captures() {
        let (version, message) = unframe(&capture.bytes);
        for sizes in splits {
            println!("{} in records of {sizes:?}", capture.file);
            let records = fragment(&message, version, sizes);
            // One-byte records make inputs of ~12 KB; every prefix of those is slow unoptimised.
            let step = if records.len() > 4096 { 7 } else { 1 };
            check_hello_prefixes(&records, capture.name.as_deref(), step);
        }
    }
}

#[test]
fn captures_over_a_small_cap_are_too_large_from_the_header() {
    for capture in captures() {
        let (_, message) = unframe(&capture.bytes);
        let max = message.len() - 1;
        // Record header and handshake header: 9 bytes are enough to know.
        check_capped(
            &capture.bytes[..9],
            max,
            Err(HelloError::TooLarge {
                len: message.len(),
                max,
            }),
        );
        check_capped(
            &capture.bytes,
            message.len(),
            complete(capture.name.as_deref(), capture.bytes.len()),
        );
    }
}

#[test]
fn captures_with_a_broken_byte_keep_the_invariants() {
    for capture in captures() {
        for at in 0..capture.bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bytes = capture.bytes.clone();
                bytes[at] ^= flip;
                let got = peek_client_hello(&bytes, DEFAULT_MAX_HELLO_LEN);
                if let Ok(Peek::Complete(hello)) = &got {
                    assert!(hello.len <= bytes.len());
                    assert_eq!(
                        peek_client_hello(&bytes[..hello.len], DEFAULT_MAX_HELLO_LEN),
                        got
                    );
                }
            }
        }
    }
}
