//! Data-driven tests: real captures from `testdata/proxy/`, then rows of hand-made input.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::crc32c::Crc32c;
use super::*;
use crate::limits::{MAX_PROXY_V1_LEN, MAX_PROXY_V2_LEN};

type Answer = Result<Peek<ProxyHeader>, ProxyError>;

#[track_caller]
fn check(input: &[u8], expected: Answer) {
    assert_eq!(
        peek_proxy_header(input),
        expected,
        "input: \"{}\"",
        input.escape_ascii()
    );
}

/// A malformed header: an error once whole, and no prefix of it is ever taken for a
/// complete header or for another protocol.
#[track_caller]
fn check_bad(input: &[u8], err: ProxyError) {
    check(input, Err(err));
    for n in 0..input.len() {
        let answer = peek_proxy_header(&input[..n]);
        assert!(
            matches!(answer, Ok(Peek::NeedMore) | Err(_)),
            "prefix \"{}\" gave {answer:?}",
            input[..n].escape_ascii()
        );
    }
}

fn addrs(source: &str, destination: &str) -> Option<ProxiedAddrs> {
    Some(ProxiedAddrs {
        source: source.parse().expect("test address"),
        destination: destination.parse().expect("test address"),
    })
}

fn v1(len: usize, addresses: Option<ProxiedAddrs>) -> Answer {
    Ok(Peek::Complete(ProxyHeader {
        len,
        version: ProxyVersion::V1,
        command: Command::Proxy,
        addresses,
    }))
}

fn v2(len: usize, command: Command, addresses: Option<ProxiedAddrs>) -> Answer {
    Ok(Peek::Complete(ProxyHeader {
        len,
        version: ProxyVersion::V2,
        command,
        addresses,
    }))
}

/// A v2 header from its parts; the length field is `len`, whatever `body` is.
fn v2_bytes(ver_cmd: u8, fam: u8, len: u16, body: &[u8]) -> Vec<u8> {
    let mut out = SIG.to_vec();
    out.extend_from_slice(&[ver_cmd, fam]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

const SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// 192.0.2.1:56324 -> 198.51.100.7:443, as an AF_INET block.
const INET_BLOCK: [u8; 12] = [192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x01, 0xBB];

// ---- Real captures -------------------------------------------------------------------

struct Capture {
    file: String,
    bytes: Vec<u8>,
    expected: ProxyHeader,
}

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/proxy")
}

/// The captures and what `expected.txt` (written from the capturing sockets) says of them.
fn captures() -> Vec<Capture> {
    let table = std::fs::read_to_string(testdata().join("expected.txt")).expect("expected.txt");
    let mut out = Vec::new();
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [file, version, command, source, destination] = cols[..] else {
            panic!("bad expected.txt row: {line}");
        };
        let bytes = std::fs::read(testdata().join(file)).expect("capture file");
        let addresses = match (source, destination) {
            ("-", "-") => None,
            (s, d) => addrs(s, d),
        };
        let expected = ProxyHeader {
            // Each capture is exactly what the proxy sent: the header and nothing else.
            len: bytes.len(),
            version: match version {
                "1" => ProxyVersion::V1,
                "2" => ProxyVersion::V2,
                v => panic!("bad version {v}"),
            },
            command: match command {
                "local" => Command::Local,
                "proxy" => Command::Proxy,
                c => panic!("bad command {c}"),
            },
            addresses,
        };
        out.push(Capture {
            file: file.to_owned(),
            bytes,
            expected,
        });
    }
    out
}

#[test]
fn every_capture_is_in_the_table() {
    let listed: Vec<String> = captures().into_iter().map(|c| c.file).collect();
    let mut on_disk = 0;
    for entry in std::fs::read_dir(testdata()).expect("testdata dir") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".bin") {
            on_disk += 1;
            assert!(listed.contains(&name), "{name} is not in expected.txt");
        }
    }
    assert_eq!(on_disk, listed.len());
    assert!(listed.len() >= 14, "captures went missing: {listed:?}");
}

#[test]
fn captures_parse_to_what_the_sockets_saw() {
    for c in captures() {
        assert_eq!(
            peek_proxy_header(&c.bytes),
            Ok(Peek::Complete(c.expected)),
            "{}",
            c.file
        );
    }
}

#[test]
fn every_strict_prefix_of_a_capture_needs_more() {
    for c in captures() {
        for cut in 0..c.bytes.len() {
            assert_eq!(
                peek_proxy_header(&c.bytes[..cut]),
                Ok(Peek::NeedMore),
                "{} cut at {cut}",
                c.file
            );
        }
    }
}

#[test]
fn bytes_after_a_capture_are_left_alone() {
    let tails: [&[u8]; 5] = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"gAAAAABlU1FAKE",
        b"\r\n",
        b"PROXY UNKNOWN\r\n",
        &SIG,
    ];
    for c in captures() {
        for tail in tails {
            let input = [&c.bytes[..], tail].concat();
            assert_eq!(
                peek_proxy_header(&input),
                Ok(Peek::Complete(c.expected)),
                "{} + {tail:?}",
                c.file
            );
        }
    }
}

/// Our writers produce HAProxy's and nginx's bytes exactly, wherever the capture has no TLVs.
#[test]
fn writers_match_captures_byte_for_byte() {
    let mut matched = 0;
    for c in captures().into_iter().filter(|c| !c.file.contains("tlv")) {
        let mut out = Vec::new();
        match c.expected.version {
            ProxyVersion::V1 => write_v1(c.expected.addresses.as_ref(), &mut out),
            ProxyVersion::V2 => {
                write_v2(c.expected.command, c.expected.addresses.as_ref(), &mut out);
            }
        }
        assert_eq!(out, c.bytes, "{}", c.file);
        matched += 1;
    }
    assert!(matched >= 12);
}

#[test]
fn haproxy_crc32c_is_verified() {
    for c in captures().into_iter().filter(|c| c.file.contains("tlv")) {
        // Any flipped bit in the header, here in the source port, breaks the checksum.
        let mut bytes = c.bytes.clone();
        let port_at = if c.file.contains("tcp6") {
            16 + 32
        } else {
            16 + 8
        };
        bytes[port_at] ^= 0x01;
        check(&bytes, Err(ProxyError::ChecksumMismatch));
    }
}

// ---- Not a PROXY header --------------------------------------------------------------

#[test]
fn other_protocols_are_refused_at_the_first_divergence() {
    let rows: &[&[u8]] = &[
        b"\x16",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"g",
        b"gAAAAABlU1FAKE",
        b"GET / HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n",
        b"\x00",
        b"\n",
        b" PROXY TCP4",
        b"proxy ",
        b"PROXX",
        b"PROXY\t",
        b"PROXYTCP4 ",
        b"\r\r",
        b"\r\n\r\n\0\r\nquit\n",
        b"\r\n\r\n\0\r\nQUIT\r",
        b"\r\n\r\n\x01",
    ];
    for row in rows {
        check(row, Ok(Peek::NotThisProtocol));
    }
}

#[test]
fn prefixes_need_more() {
    let rows: &[&[u8]] = &[
        b"",
        b"P",
        b"PROXY",
        b"PROXY ",
        b"PROXY T",
        b"PROXY UNKNOWN",
        b"PROXY UNKNOWN anything at all \x00\xff",
        b"PROXY TCP4",
        b"PROXY TCP4 ",
        b"PROXY TCP4 192.0.2.1 198.51.100.7 5",
        b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443",
        b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r",
        b"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 0 6553",
        b"\r",
        b"\r\n\r\n\0\r\nQUIT",
        &SIG,
        b"\r\n\r\n\0\r\nQUIT\n\x21",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01",
        // LOCAL ignores the family byte, so even 0xFF waits for the length.
        b"\r\n\r\n\0\r\nQUIT\n\x20\xff\x00",
    ];
    for row in rows {
        check(row, Ok(Peek::NeedMore));
    }
}

// ---- v1 -----------------------------------------------------------------------------

#[test]
fn v1_good_rows() {
    let max_unknown = format!(
        "PROXY UNKNOWN {0} {0} 65535 65535\r\n",
        ["ffff"; 8].join(":")
    );
    assert_eq!(max_unknown.len(), MAX_PROXY_V1_LEN);
    let max_tcp6 = format!("PROXY TCP6 {0} {0} 65535 65535\r\n", ["ffff"; 8].join(":"));
    let all_ones = format!("[{}]:65535", ["ffff"; 8].join(":"));
    let rows: &[(&[u8], Answer)] = &[
        (b"PROXY UNKNOWN\r\n", v1(15, None)),
        (b"PROXY UNKNOWN \r\n", v1(16, None)),
        (
            b"PROXY UNKNOWN 192.0.2.1 junk \x00\xff  \t\r\nGET",
            v1(36, None),
        ),
        (max_unknown.as_bytes(), v1(107, None)),
        (max_tcp6.as_bytes(), v1(104, addrs(&all_ones, &all_ones))),
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n",
            v1(47, addrs("192.168.0.1:56324", "192.168.0.11:443")),
        ),
        (
            b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
            v1(44, addrs("0.0.0.0:0", "255.255.255.255:65535")),
        ),
        (
            b"PROXY TCP6 2001:DB8::A ::ffff:192.0.2.1 10 20\r\n",
            v1(47, addrs("[2001:db8::a]:10", "[::ffff:192.0.2.1]:20")),
        ),
        (
            b"PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0001 :: 1 2\r\n",
            v1(59, addrs("[::1]:1", "[::]:2")),
        ),
    ];
    for (input, expected) in rows {
        check(input, expected.clone());
    }
}

#[test]
fn v1_bad_rows() {
    use ProxyError::*;
    let long_unknown = format!("PROXY UNKNOWN {}\r\n", "a".repeat(MAX_PROXY_V1_LEN - 15));
    assert_eq!(long_unknown.len(), MAX_PROXY_V1_LEN + 1);
    let no_crlf = format!("PROXY UNKNOWN {}", "a".repeat(200));
    let cr_at_cap = format!("PROXY UNKNOWN {}\r", "a".repeat(MAX_PROXY_V1_LEN - 15));
    assert_eq!(cr_at_cap.len(), MAX_PROXY_V1_LEN);
    // Valid inet_pton text, but longer than the spec's 39-character form allows.
    let dotted = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    let long_tcp6 = format!("PROXY TCP6 {dotted} {dotted} 65535 65535\r\n");
    let rows: &[(&[u8], ProxyError)] = &[
        // Line endings and length.
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n", BareLf),
        (b"PROXY UNKNOWN\n", BareLf),
        (b"PROXY \n", BareLf),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2\r\r\n", BareCr),
        (b"PROXY TCP4 192.0.2.1\r198.51.100.7 1 2\r\n", BareCr),
        (b"PROXY UNKNOWN\r \n", BareCr),
        (long_unknown.as_bytes(), TooLong),
        (no_crlf.as_bytes(), TooLong),
        (cr_at_cap.as_bytes(), TooLong),
        (long_tcp6.as_bytes(), TooLong),
        // Protocol keyword.
        (b"PROXY \r\n", UnknownProtocol),
        (
            b"PROXY TCP5 192.0.2.1 198.51.100.7 1 2\r\n",
            UnknownProtocol,
        ),
        (
            b"PROXY tcp4 192.0.2.1 198.51.100.7 1 2\r\n",
            UnknownProtocol,
        ),
        (
            b"PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n",
            UnknownProtocol,
        ),
        (b"PROXY UNKNOWNX\r\n", UnknownProtocol),
        (b"PROXY UNKNOW\r\n", UnknownProtocol),
        (
            b"PROXY TCP4\t192.0.2.1 198.51.100.7 1 2\r\n",
            UnknownProtocol,
        ),
        (b"PROXY XYZ", UnknownProtocol),
        // Spacing and field count.
        (b"PROXY  TCP4 192.0.2.1 198.51.100.7 1 2\r\n", BadSpacing),
        (b"PROXY  UNKNOWN\r\n", BadSpacing),
        (b"PROXY TCP4  192.0.2.1 198.51.100.7 1 2\r\n", BadSpacing),
        (b"PROXY TCP4 192.0.2.1  198.51.100.7 1 2\r\n", BadSpacing),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7  1 2\r\n", BadSpacing),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1  2\r\n", BadSpacing),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1 \r\n", BadSpacing),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2 \r\n", FieldCount),
        (b"PROXY TCP4\r\n", FieldCount),
        (b"PROXY TCP4 \r\n", BadSpacing),
        (b"PROXY TCP4 192.0.2.1\r\n", FieldCount),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1\r\n", FieldCount),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2 3\r\n", FieldCount),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2 3", FieldCount),
        // IPv4 text.
        (b"PROXY TCP4 256.0.2.1 198.51.100.7 1 2\r\n", BadAddress),
        (b"PROXY TCP4 192.0.2 198.51.100.7 1 2\r\n", BadAddress),
        (b"PROXY TCP4 192.0.2.1.5 198.51.100.7 1 2\r\n", BadAddress),
        (b"PROXY TCP4 192.0.02.1 198.51.100.7 1 2\r\n", BadAddress),
        (b"PROXY TCP4 192.0.2.1 198.51.100.07 1 2\r\n", BadAddress),
        (b"PROXY TCP4 192.0.2. 198.51.100.7 1 2\r\n", BadAddress),
        (b"PROXY TCP4 +192.0.2.1 198.51.100.7 1 2\r\n", BadAddress),
        (b"PROXY TCP4 192.0.2.1/24 198.51.100.7 1 2\r\n", BadAddress),
        (b"PROXY TCP4 a.b.c.d 198.51.100.7 1 2\r\n", BadAddress),
        (b"PROXY TCP4 localhost 198.51.100.7 1 2\r\n", BadAddress),
        (b"PROXY TCP4 192.0.2.1 \xff\xfe 1 2\r\n", BadAddress),
        (b"PROXY TCP4 192.0.2.1 1\x0098.51.100.7 1 2\r\n", BadAddress),
        // IPv6 text.
        (b"PROXY TCP6 2001:db8::1::2 ::1 1 2\r\n", BadAddress),
        (b"PROXY TCP6 2001:db8:00001::1 ::1 1 2\r\n", BadAddress),
        (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", BadAddress),
        (b"PROXY TCP6 [::1] ::1 1 2\r\n", BadAddress),
        (b"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", BadAddress),
        (b"PROXY TCP6 ::ffff:192.0.02.1 ::1 1 2\r\n", BadAddress),
        (b"PROXY TCP6 :::1 ::1 1 2\r\n", BadAddress),
        // Family against keyword.
        (b"PROXY TCP4 ::1 198.51.100.7 1 2\r\n", FamilyMismatch),
        (
            b"PROXY TCP4 192.0.2.1 ::ffff:198.51.100.7 1 2\r\n",
            FamilyMismatch,
        ),
        (b"PROXY TCP6 192.0.2.1 ::1 1 2\r\n", FamilyMismatch),
        (b"PROXY TCP6 ::1 198.51.100.7 1 2\r\n", FamilyMismatch),
        (b"PROXY TCP4 192.0.2.1 ::1 ", FamilyMismatch),
        // Ports.
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 65536 2\r\n", BadPort),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1 65536\r\n", BadPort),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 99999 2\r\n", BadPort),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 123456 2\r\n", BadPort),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 +80 2\r\n", BadPort),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 -1 2\r\n", BadPort),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 080 2\r\n", BadPort),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 00 2\r\n", BadPort),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 0x50 2\r\n", BadPort),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 8O 2\r\n", BadPort),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2\t\r\n", BadPort),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 70000", BadPort),
    ];
    for (input, err) in rows {
        check_bad(input, *err);
    }
}

/// A bad row fed a byte at a time never passes for good: every prefix is `NeedMore` or an
/// error, never `Complete` or `NotThisProtocol`.
#[test]
fn v1_bad_rows_fail_as_they_arrive() {
    let input = b"PROXY TCP4 192.0.2.1 ::1 1 2\r\n";
    let first_error = (1..=input.len())
        .find(|&n| peek_proxy_header(&input[..n]).is_err())
        .expect("an error");
    // Refused at the space that ends the IPv6 address, not at the CRLF.
    assert_eq!(&input[..first_error], b"PROXY TCP4 192.0.2.1 ::1 ");
    for n in 0..first_error {
        check(&input[..n], Ok(Peek::NeedMore));
    }
}

// ---- v2 -----------------------------------------------------------------------------

fn with_crc32c(mut header: Vec<u8>) -> Vec<u8> {
    // Appends a CRC32C TLV, fixing the length field, then fills in the checksum.
    header.extend_from_slice(&[0x03, 0x00, 0x04, 0, 0, 0, 0]);
    let len = u16::try_from(header.len() - 16).expect("short header");
    header[14..16].copy_from_slice(&len.to_be_bytes());
    let mut crc = Crc32c::new();
    crc.update(&header);
    let at = header.len() - 4;
    header[at..].copy_from_slice(&crc.finish().to_be_bytes());
    header
}

#[test]
fn v2_good_rows() {
    let inet = addrs("192.0.2.1:56324", "198.51.100.7:443");
    let mut inet6_block = Vec::new();
    inet6_block.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().expect("ip").octets());
    inet6_block.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    inet6_block.extend_from_slice(&[0, 80, 0x1F, 0x90]);
    let inet6 = addrs("[2001:db8::1]:80", "[::1]:8080");
    let noop = [0x04, 0x00, 0x02, 0xAA, 0xBB];
    let empty_tlv = [0xE0, 0x00, 0x00];
    let tlvs = [
        &INET_BLOCK[..],
        &noop,
        &empty_tlv,
        &[0x05, 0x00, 0x01, b'x'],
    ]
    .concat();
    let max_body = [&INET_BLOCK[..], &[0x04, 0x07, 0xF1], &[0u8; 2048 - 12 - 3]].concat();
    assert_eq!(16 + max_body.len(), MAX_PROXY_V2_LEN);
    let with_crc = with_crc32c(v2_bytes(0x21, 0x11, 12, &INET_BLOCK));
    let rows: Vec<(Vec<u8>, Answer)> = vec![
        (
            v2_bytes(0x21, 0x11, 12, &INET_BLOCK),
            v2(28, Command::Proxy, inet),
        ),
        (
            v2_bytes(0x21, 0x21, 36, &inet6_block),
            v2(52, Command::Proxy, inet6),
        ),
        // UDP: SniTun takes the source address whatever the transport, and so do we.
        (
            v2_bytes(0x21, 0x12, 12, &INET_BLOCK),
            v2(28, Command::Proxy, inet),
        ),
        (
            v2_bytes(0x21, 0x22, 36, &inet6_block),
            v2(52, Command::Proxy, inet6),
        ),
        // UNSPEC transport: addresses to be ignored.
        (
            v2_bytes(0x21, 0x10, 12, &INET_BLOCK),
            v2(28, Command::Proxy, None),
        ),
        (
            v2_bytes(0x21, 0x20, 36, &inet6_block),
            v2(52, Command::Proxy, None),
        ),
        (v2_bytes(0x21, 0x00, 0, b""), v2(16, Command::Proxy, None)),
        (v2_bytes(0x21, 0x01, 5, &noop), v2(21, Command::Proxy, None)),
        (
            v2_bytes(0x21, 0x31, 216, &[0u8; 216]),
            v2(232, Command::Proxy, None),
        ),
        (
            v2_bytes(0x21, 0x32, 219, &[&[7u8; 216][..], &empty_tlv].concat()),
            v2(235, Command::Proxy, None),
        ),
        // LOCAL: family and block are ignored, even when they make no sense.
        (v2_bytes(0x20, 0x00, 0, b""), v2(16, Command::Local, None)),
        (
            v2_bytes(0x20, 0x11, 12, &INET_BLOCK),
            v2(28, Command::Local, None),
        ),
        (
            v2_bytes(0x20, 0xFF, 3, b"\x01\xff\xff"),
            v2(19, Command::Local, None),
        ),
        (v2_bytes(0x20, 0x21, 0, b""), v2(16, Command::Local, None)),
        // TLVs after the block, a stream after the header.
        (
            v2_bytes(0x21, 0x11, 24, &tlvs),
            v2(40, Command::Proxy, inet),
        ),
        (
            v2_bytes(0x21, 0x11, 12, &[&INET_BLOCK[..], b"\x16\x03\x01"].concat()),
            v2(28, Command::Proxy, inet),
        ),
        (
            v2_bytes(0x21, 0x11, 2048, &max_body),
            v2(MAX_PROXY_V2_LEN, Command::Proxy, inet),
        ),
        (with_crc.clone(), v2(35, Command::Proxy, inet)),
    ];
    for (input, expected) in rows {
        check(&input, expected);
    }
}

#[test]
fn v2_bad_rows() {
    use ProxyError::*;
    let mut bad_crc = with_crc32c(v2_bytes(0x21, 0x11, 12, &INET_BLOCK));
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x80;
    let rows: Vec<(Vec<u8>, ProxyError)> = vec![
        // Version and command, refused as soon as byte 13 arrives.
        (v2_bytes(0x11, 0x11, 12, &INET_BLOCK), BadVersion(1)),
        (v2_bytes(0x01, 0x11, 12, &INET_BLOCK), BadVersion(0)),
        (v2_bytes(0xF1, 0x11, 12, &INET_BLOCK), BadVersion(15)),
        ([&SIG[..], b"\x31"].concat(), BadVersion(3)),
        (v2_bytes(0x22, 0x11, 12, &INET_BLOCK), BadCommand(2)),
        ([&SIG[..], b"\x2F"].concat(), BadCommand(15)),
        // Family and transport of a PROXY command.
        (v2_bytes(0x21, 0x41, 12, &INET_BLOCK), BadFamily(4)),
        ([&SIG[..], b"\x21\xF1"].concat(), BadFamily(15)),
        (v2_bytes(0x21, 0x13, 12, &INET_BLOCK), BadTransport(3)),
        (v2_bytes(0x21, 0x0F, 0, b""), BadTransport(15)),
        // Length shorter than the family's block, refused before the block arrives.
        (
            v2_bytes(0x21, 0x11, 11, b""),
            ShortAddressBlock {
                len: 11,
                needed: 12,
            },
        ),
        (
            v2_bytes(0x21, 0x11, 0, b""),
            ShortAddressBlock { len: 0, needed: 12 },
        ),
        (
            v2_bytes(0x21, 0x12, 4, b""),
            ShortAddressBlock { len: 4, needed: 12 },
        ),
        (
            v2_bytes(0x21, 0x21, 12, &INET_BLOCK),
            ShortAddressBlock {
                len: 12,
                needed: 36,
            },
        ),
        (
            v2_bytes(0x21, 0x21, 35, &[0; 35]),
            ShortAddressBlock {
                len: 35,
                needed: 36,
            },
        ),
        (
            v2_bytes(0x21, 0x31, 215, &[0; 215]),
            ShortAddressBlock {
                len: 215,
                needed: 216,
            },
        ),
        (
            v2_bytes(0x21, 0x30, 0, b""),
            ShortAddressBlock {
                len: 0,
                needed: 216,
            },
        ),
        // Over the cap, decided from the length field alone.
        (v2_bytes(0x21, 0x11, 2049, b""), TooLarge(2049)),
        (v2_bytes(0x21, 0x11, 0xFFFF, b""), TooLarge(0xFFFF)),
        (v2_bytes(0x20, 0x00, 0xFFFF, b""), TooLarge(0xFFFF)),
        // TLV framing.
        (
            v2_bytes(0x21, 0x11, 13, &[&INET_BLOCK[..], b"\x04"].concat()),
            BadTlv,
        ),
        (
            v2_bytes(0x21, 0x11, 14, &[&INET_BLOCK[..], b"\x04\x00"].concat()),
            BadTlv,
        ),
        (
            v2_bytes(
                0x21,
                0x11,
                17,
                &[&INET_BLOCK[..], b"\x04\x00\x03ab"].concat(),
            ),
            BadTlv,
        ),
        (
            v2_bytes(0x21, 0x11, 15, &[&INET_BLOCK[..], b"\x04\xff\xff"].concat()),
            BadTlv,
        ),
        (v2_bytes(0x21, 0x00, 2, b"\x04\x00"), BadTlv),
        (
            v2_bytes(
                0x21,
                0x11,
                18,
                &[&INET_BLOCK[..], b"\x03\x00\x03abc"].concat(),
            ),
            BadTlv,
        ),
        (
            v2_bytes(
                0x21,
                0x11,
                20,
                &[&INET_BLOCK[..], b"\x03\x00\x05abcde"].concat(),
            ),
            BadTlv,
        ),
        (bad_crc, ChecksumMismatch),
    ];
    for (input, err) in rows {
        check_bad(&input, err);
    }
}

#[test]
fn v2_writer_rows() {
    let inet = addrs("192.0.2.1:56324", "198.51.100.7:443");
    let mixed = addrs("192.0.2.1:56324", "[2001:db8::7]:443");
    let rows: Vec<(Command, Option<ProxiedAddrs>, Vec<u8>)> = vec![
        (Command::Proxy, inet, v2_bytes(0x21, 0x11, 12, &INET_BLOCK)),
        (Command::Proxy, None, v2_bytes(0x21, 0x00, 0, b"")),
        (Command::Local, None, v2_bytes(0x20, 0x00, 0, b"")),
        // LOCAL carries no addresses, even when given some.
        (Command::Local, inet, v2_bytes(0x20, 0x00, 0, b"")),
        (
            Command::Proxy,
            mixed,
            v2_bytes(
                0x21,
                0x21,
                36,
                &[
                    &Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped().octets()[..],
                    &"2001:db8::7".parse::<Ipv6Addr>().expect("ip").octets(),
                    &[0xDC, 0x04, 0x01, 0xBB],
                ]
                .concat(),
            ),
        ),
    ];
    for (command, a, expected) in rows {
        let mut out = b"kept".to_vec();
        write_v2(command, a.as_ref(), &mut out);
        assert_eq!(&out[..4], b"kept", "writers append");
        assert_eq!(out[4..], expected[..], "{command:?} {a:?}");
    }
}

#[test]
fn v1_writer_rows() {
    let rows: &[(Option<ProxiedAddrs>, &[u8])] = &[
        (None, b"PROXY UNKNOWN\r\n"),
        (
            addrs("192.0.2.1:56324", "198.51.100.7:443"),
            b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n",
        ),
        (
            addrs("[2001:db8::1]:0", "[::1]:65535"),
            b"PROXY TCP6 2001:db8::1 ::1 0 65535\r\n",
        ),
        (
            addrs("[2001:db8::1]:1", "192.0.2.1:2"),
            b"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 1 2\r\n",
        ),
    ];
    for (a, expected) in rows {
        let mut out = b"kept".to_vec();
        write_v1(a.as_ref(), &mut out);
        assert_eq!(out[4..], expected[..], "{}", out.escape_ascii());
    }
}
