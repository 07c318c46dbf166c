//! Hand-built inputs, good and bad, one row each.

use super::encoder::*;
use super::*;
use crate::limits::MAX_HELLO_LEN_LIMIT;

/// A default hello for `a.example.test` after `edit`, in one record.
fn edited(edit: impl FnOnce(&mut HelloSpec)) -> Vec<u8> {
    let mut spec = HelloSpec::new(Some("a.example.test"));
    edit(&mut spec);
    spec.record()
}

/// A default hello whose extension list is `extensions`.
fn with_extensions(extensions: Vec<(u16, Vec<u8>)>) -> Vec<u8> {
    edited(|h| h.extensions = Some(extensions))
}

fn ok() -> Expected<'static> {
    complete(Some("a.example.test"), 0)
}

fn sni(entries: &[(u8, &[u8])]) -> (u16, Vec<u8>) {
    (SERVER_NAME, sni_ext(entries))
}

/// The default hello with a padding extension that makes the message `total` bytes long.
fn padded_message(total: usize) -> Vec<u8> {
    let base = HelloSpec::new(Some("big.example.test")).message().len();
    let mut spec = HelloSpec::new(Some("big.example.test"));
    let padding = total - base - 4;
    spec.extensions
        .as_mut()
        .expect("extensions")
        .push((0x0015, vec![0; padding]));
    let message = spec.message();
    assert_eq!(message.len(), total);
    message
}

#[test]
fn not_tls() {
    for bytes in [
        &b"G"[..],
        b"GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n",
        b"PRI * HTTP/2.0\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"\x00",
        // SSLv2-compatible ClientHello: 2-byte length with the high bit, type 1, version 3.1.
        b"\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10",
        // A TLS record of another type first.
        b"\x17\x03\x03\x00\x05hello",
        b"\x15\x03\x03\x00\x02\x02\x28",
        // Record major version other than 3.
        b"\x16\x02",
        b"\x16\x02\x00\x00\x05\x01\x00\x00\x01\x00",
        b"\x16\x04\x01",
        // First handshake message is not a ClientHello (here a ServerHello, a Finished).
        b"\x16\x03\x03\x00\x04\x02",
        b"\x16\x03\x03\x00\x04\x14\x00\x00\x00",
    ] {
        check(bytes, Ok(Peek::NotThisProtocol));
    }
}

#[test]
fn short_inputs_need_more() {
    for bytes in [
        &b""[..],
        b"\x16",
        b"\x16\x03",
        b"\x16\x03\x01",
        b"\x16\x03\x01\x02",
        b"\x16\x03\x01\x02\x00",
        b"\x16\x03\x01\x02\x00\x01",
        b"\x16\x03\x01\x02\x00\x01\x00\x01",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ] {
        check(bytes, Ok(Peek::NeedMore));
    }
}

#[test]
fn record_headers() {
    let message = HelloSpec::new(Some("a.example.test")).message();
    let hello = |version| record(HANDSHAKE, version, &message);
    for version in [0x0300, 0x0301, 0x0302, 0x0303, 0x0304] {
        let bytes = hello(version);
        check(&bytes, complete(Some("a.example.test"), bytes.len()));
        let peeked = peek_client_hello(&bytes, DEFAULT_MAX_HELLO_LEN).expect("parses");
        assert_eq!(peeked.complete().expect("complete").record_version, version);
    }
    check(&hello(0x0305), malformed(Malformed::BadRecordVersion));
    check(&hello(0x03ff)[..3], malformed(Malformed::BadRecordVersion));
    check(b"\x16\x03\x01\x00\x00", malformed(Malformed::EmptyRecord));
    check(
        b"\x16\x03\x01\x40\x01",
        malformed(Malformed::RecordOverflow),
    );
    check(
        b"\x16\x03\x01\xff\xff\x01",
        malformed(Malformed::RecordOverflow),
    );

    // The same rules hold for every later record, which can no longer be "not TLS".
    let first = record(HANDSHAKE, 0x0301, &message[..10]);
    let rest = &message[10..];
    for (second, expected) in [
        (
            record(APPLICATION_DATA, 0x0303, rest),
            Malformed::UnexpectedContentType,
        ),
        (
            record(0x15, 0x0303, &[2, 40]),
            Malformed::UnexpectedContentType,
        ),
        (record(HANDSHAKE, 0x0203, rest), Malformed::BadRecordVersion),
        (record(HANDSHAKE, 0x0305, rest), Malformed::BadRecordVersion),
        (record(HANDSHAKE, 0x0303, &[]), Malformed::EmptyRecord),
        (b"\x16\x03\x03\x40\x01".to_vec(), Malformed::RecordOverflow),
    ] {
        check(&[&first[..], &second].concat(), malformed(expected));
    }
    // A later record may have another (valid) version than the first.
    let bytes = [&first[..], &record(HANDSHAKE, 0x0303, rest)].concat();
    check(&bytes, complete(Some("a.example.test"), bytes.len()));
}

#[test]
fn handshake_lengths() {
    let message = HelloSpec::new(Some("a.example.test")).message();
    let body_len = message.len() - 4;
    let with_len = |len: usize, record_len: usize| {
        let mut m = message.clone();
        m[1..4].copy_from_slice(&u32::try_from(len).expect("len").to_be_bytes()[1..]);
        m.truncate(record_len.min(m.len()));
        record(HANDSHAKE, 0x0301, &m)
    };
    // The length claims more than the record holds: the rest is awaited in another record.
    check(&with_len(body_len + 1, message.len()), Ok(Peek::NeedMore));
    // ... and a non-handshake record there is an error.
    let bytes = [
        with_len(body_len + 1, message.len()),
        record(APPLICATION_DATA, 0x0303, b"x"),
    ];
    check(&bytes.concat(), malformed(Malformed::UnexpectedContentType));
    // The length claims less than the record holds: other handshake data in its record.
    check(
        &with_len(body_len - 1, message.len()),
        malformed(Malformed::DataAfterHello),
    );
    check(
        &with_len(body_len - 1, message.len())[..9],
        malformed(Malformed::DataAfterHello),
    );
    // The length is honest but the fields inside run past it.
    for cut in [1, 10, 30, 40, 60, body_len - 1] {
        let mut m = message[..4 + body_len - cut].to_vec();
        m[1..4].copy_from_slice(&u32::try_from(body_len - cut).expect("len").to_be_bytes()[1..]);
        check(
            &record(HANDSHAKE, 0x0301, &m),
            malformed(Malformed::Truncated),
        );
    }
    // An empty ClientHello.
    check(
        b"\x16\x03\x01\x00\x04\x01\x00\x00\x00",
        malformed(Malformed::Truncated),
    );
}

#[test]
fn size_cap() {
    // A 16384-byte handshake message fills one record exactly and sits at the default cap.
    let message = padded_message(DEFAULT_MAX_HELLO_LEN);
    let one = record(HANDSHAKE, 0x0301, &message);
    check(&one, complete(Some("big.example.test"), one.len()));
    let many = fragment(&message, 0x0303, &[1000]);
    check(&many, complete(Some("big.example.test"), many.len()));
    check_hello_prefixes(&many, Some("big.example.test"), 97);

    // One byte more is too large, known from the 9 header bytes.
    let message = padded_message(DEFAULT_MAX_HELLO_LEN + 1);
    let too_large = || {
        Err(HelloError::TooLarge {
            len: 16385,
            max: DEFAULT_MAX_HELLO_LEN,
        })
    };
    let records = fragment(&message, 0x0301, &[16384]);
    check(&records[..9], too_large());
    check(&records, too_large());
    check_capped(
        &records,
        16385,
        complete(Some("big.example.test"), records.len()),
    );
    // The handshake header split over 1-byte records: decided at its last byte.
    let records = fragment(&message, 0x0301, &[1]);
    // Record i is bytes 6i..6i+6 and its payload byte is at 6i+5: the 4th is at 23.
    check(&records[..23], Ok(Peek::NeedMore));
    check(&records[..24], too_large());

    // A cap above the ceiling counts as the ceiling.
    let header = b"\x16\x03\x01\x00\x04\x01\x01\x00\x01";
    let too_large = HelloError::TooLarge {
        len: 0x10005,
        max: MAX_HELLO_LEN_LIMIT,
    };
    check_capped(header, usize::MAX, Err(too_large));
    check_capped(header, 0x10005, Err(too_large));
    check_capped(
        b"\x16\x03\x01\x00\x04\x01\x00\xff\xfc",
        usize::MAX,
        Ok(Peek::NeedMore),
    );
    check_capped(
        b"\x16\x03\x01\x00\x04\x01\x00\x00\x10",
        19,
        Err(HelloError::TooLarge { len: 20, max: 19 }),
    );
}

#[test]
fn fixed_fields() {
    let rows: Vec<(Vec<u8>, Expected<'_>)> = vec![
        (edited(|_| {}), ok()),
        (edited(|h| h.legacy_version = 0x0301), ok()),
        (
            edited(|h| h.legacy_version = 0x0200),
            malformed(Malformed::BadLegacyVersion),
        ),
        (
            edited(|h| h.legacy_version = 0x0403),
            malformed(Malformed::BadLegacyVersion),
        ),
        (edited(|h| h.session_id = vec![]), ok()),
        (edited(|h| h.session_id = vec![1; 32]), ok()),
        (
            edited(|h| h.session_id = vec![1; 33]),
            malformed(Malformed::SessionIdTooLong),
        ),
        (
            edited(|h| h.session_id = vec![1; 255]),
            malformed(Malformed::SessionIdTooLong),
        ),
        (edited(|h| h.cipher_suites = suites(&[0x1301])), ok()),
        (
            edited(|h| h.cipher_suites = suites(&[0x0a0a, 0x1301, 0xfafa])),
            ok(),
        ),
        (
            edited(|h| h.cipher_suites = vec![0x13, 0x01, 0x13]),
            malformed(Malformed::BadCipherSuites),
        ),
        (
            edited(|h| h.cipher_suites = vec![0x13]),
            malformed(Malformed::BadCipherSuites),
        ),
        (
            edited(|h| h.cipher_suites = vec![]),
            malformed(Malformed::BadCipherSuites),
        ),
        (
            edited(|h| h.compression_methods = vec![]),
            malformed(Malformed::NoCompressionMethods),
        ),
        (edited(|h| h.compression_methods = vec![1, 0]), ok()),
        (
            edited(|h| h.trailing = vec![0]),
            malformed(Malformed::TrailingBytes),
        ),
        (
            edited(|h| h.trailing = vec![0, 0, 0, 0]),
            malformed(Malformed::TrailingBytes),
        ),
        // TLS 1.0 style: no extensions block at all.
        (edited(|h| h.extensions = None), complete(None, 0)),
        (edited(|h| h.extensions = Some(vec![])), complete(None, 0)),
        // One byte where the extensions length should be.
        (
            edited(|h| (h.extensions, h.trailing) = (None, vec![0])),
            malformed(Malformed::Truncated),
        ),
    ];
    check_rows(rows);
}

#[test]
fn extensions() {
    let name = &b"a.example.test"[..];
    let grease = (0x3a3a, vec![]);
    let rows: Vec<(Vec<u8>, Expected<'_>)> = vec![
        (with_extensions(vec![sni(&[(HOST_NAME, name)])]), ok()),
        (
            with_extensions(vec![
                grease.clone(),
                sni(&[(HOST_NAME, name)]),
                (0xfe0d, vec![7; 200]),
            ]),
            ok(),
        ),
        (
            with_extensions(vec![grease.clone(), (0x0010, vec![0; 5])]),
            complete(None, 0),
        ),
        (
            with_extensions(vec![sni(&[(HOST_NAME, name)]), sni(&[(HOST_NAME, name)])]),
            malformed(Malformed::DuplicateServerName),
        ),
        (
            with_extensions(vec![sni(&[(9, b"x")]), sni(&[(HOST_NAME, name)])]),
            malformed(Malformed::DuplicateServerName),
        ),
        (
            with_extensions(vec![sni(&[
                (HOST_NAME, name),
                (HOST_NAME, b"b.example.test"),
            ])]),
            malformed(Malformed::DuplicateHostName),
        ),
        (
            with_extensions(vec![sni(&[(HOST_NAME, name), (HOST_NAME, name)])]),
            malformed(Malformed::DuplicateHostName),
        ),
        // Unknown name types carry a u16 length and are skipped.
        (
            with_extensions(vec![sni(&[(7, b"opaque"), (HOST_NAME, name), (8, b"")])]),
            ok(),
        ),
        (
            with_extensions(vec![sni(&[(7, b"opaque")])]),
            complete(None, 0),
        ),
        (
            with_extensions(vec![sni(&[(HOST_NAME, b"")])]),
            malformed(Malformed::EmptyHostName),
        ),
        (
            with_extensions(vec![(SERVER_NAME, vec![])]),
            malformed(Malformed::EmptyServerNameList),
        ),
        (
            with_extensions(vec![(SERVER_NAME, vec![0, 0])]),
            malformed(Malformed::EmptyServerNameList),
        ),
        (
            with_extensions(vec![(SERVER_NAME, vec![0])]),
            malformed(Malformed::Truncated),
        ),
        // List length past the extension, entry length past the list, bytes after the list.
        (
            with_extensions(vec![(SERVER_NAME, vec![0, 5, 0, 0, 1, b'a'])]),
            malformed(Malformed::Truncated),
        ),
        (
            with_extensions(vec![(SERVER_NAME, vec![0, 4, 0, 0, 2, b'a'])]),
            malformed(Malformed::Truncated),
        ),
        (
            with_extensions(vec![(SERVER_NAME, vec![0, 4, 0, 0, 1, b'a', 0])]),
            malformed(Malformed::TrailingBytes),
        ),
        (
            with_extensions(vec![(SERVER_NAME, vec![0, 5, 0, 0, 1, b'a', 0])]),
            malformed(Malformed::Truncated),
        ),
        (
            with_extensions(vec![(SERVER_NAME, vec![0, 4, 0, 0, 1, b'a'])]),
            complete(Some("a"), 0),
        ),
    ];
    check_rows(rows);

    // Lengths that overflow their block, written by hand.
    let base = HelloSpec::new(Some("a.example.test"));
    let body = |extensions_block: &[u8]| {
        let mut spec = base.clone();
        spec.extensions = None;
        spec.trailing = extensions_block.to_vec();
        spec.record()
    };
    let overflow_rows: Vec<(Vec<u8>, Expected<'_>)> = vec![
        // Block length one past the body.
        (
            body(&[0, 5, 0, 0x10, 0, 1]),
            malformed(Malformed::Truncated),
        ),
        // Extension length past the block.
        (
            body(&[0, 6, 0, 0x10, 0, 3, 1, 2]),
            malformed(Malformed::Truncated),
        ),
        // Half an extension header at the end of the block.
        (
            body(&[0, 5, 0, 0x10, 0, 0, 0]),
            malformed(Malformed::Truncated),
        ),
        (body(&[0, 4, 0, 0x10, 0, 0]), complete(None, 0)),
    ];
    check_rows(overflow_rows);
}

#[test]
fn server_names() {
    let row = |name: &[u8]| with_extensions(vec![sni(&[(HOST_NAME, name)])]);
    let long_label = "a".repeat(63);
    let max_name = format!("{long_label}.{long_label}.{long_label}.{}", "b".repeat(61));
    let rows: Vec<(Vec<u8>, Expected<'_>)> = vec![
        (row(b"A.Example.TEST."), complete(Some("a.example.test"), 0)),
        (
            row(b"home.example.net"),
            complete(Some("home.example.net"), 0),
        ),
        (row(b"localhost"), complete(Some("localhost"), 0)),
        (row(max_name.as_bytes()), complete(Some(&max_name), 0)),
        (
            row(format!("{max_name}.").as_bytes()),
            complete(Some(&max_name), 0),
        ),
        (
            row(format!("{max_name}b").as_bytes()),
            invalid_name(HostnameError::TooLong),
        ),
        (
            row(format!("{max_name}..").as_bytes()),
            invalid_name(HostnameError::TooLong),
        ),
        (row(&[b'a'; 300]), invalid_name(HostnameError::TooLong)),
        (row(&[b'a'; 16_000]), invalid_name(HostnameError::TooLong)),
        (row(b"127.0.0.1"), invalid_name(HostnameError::IpLiteral)),
        (row(b"[::1]"), invalid_name(HostnameError::BadByte)),
        (
            row("bücher.example".as_bytes()),
            invalid_name(HostnameError::BadByte),
        ),
        (
            row(b"a\0.example.test"),
            invalid_name(HostnameError::BadByte),
        ),
        (
            row(b"a..example"),
            invalid_name(HostnameError::BadLabelLength),
        ),
        (row(b"."), invalid_name(HostnameError::Empty)),
        (row(b"-a.example"), invalid_name(HostnameError::BadHyphen)),
    ];
    check_rows(rows);
}

#[test]
fn a_bad_name_in_a_malformed_hello_is_malformed() {
    let bytes = edited(|h| {
        h.extensions = Some(vec![sni(&[(HOST_NAME, b"127.0.0.1")])]);
        h.trailing = vec![0];
    });
    check(&bytes, malformed(Malformed::TrailingBytes));
}

/// Checks single-record rows; a complete row's `len` of 0 stands for the whole input, and
/// every complete row is also checked on all its prefixes and across records.
fn check_rows(rows: Vec<(Vec<u8>, Expected<'_>)>) {
    for (bytes, expected) in rows {
        match expected {
            Ok(Peek::Complete((name, 0))) => {
                check_hello(&bytes, name);
                let (version, message) = encoder::unframe(&bytes);
                check_hello(&fragment(&message, version, &[5]), name);
            }
            _ => check(&bytes, expected),
        }
    }
}
