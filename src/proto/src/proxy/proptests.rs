//! Property tests: round trips through the writers, prefixes, and damaged input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::*;
use crate::limits::{MAX_PROXY_V1_LEN, MAX_PROXY_V2_LEN};

const SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// IPv6 addresses rich in zero runs and `ffff` (so `::` and IPv4-mapped forms show up).
fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        any::<[u8; 16]>().prop_map(Ipv6Addr::from),
        prop::array::uniform8(prop_oneof![3 => Just(0u16), 1 => Just(0xFFFF), 2 => any::<u16>()])
            .prop_map(Ipv6Addr::from),
        any::<[u8; 4]>().prop_map(|ip| Ipv4Addr::from(ip).to_ipv6_mapped()),
    ]
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(|ip| IpAddr::V4(Ipv4Addr::from(ip))),
        ipv6().prop_map(IpAddr::V6),
    ];
    (ip, any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn proxied() -> impl Strategy<Value = ProxiedAddrs> {
    (socket_addr(), socket_addr()).prop_map(|(source, destination)| ProxiedAddrs {
        source,
        destination,
    })
}

/// What a header written for `a` reads back as: unchanged, unless the families differ and
/// both had to become IPv6.
fn as_written(a: ProxiedAddrs) -> ProxiedAddrs {
    let both_v4 = a.source.is_ipv4() && a.destination.is_ipv4();
    let fix = |s: SocketAddr| {
        if both_v4 {
            s
        } else {
            SocketAddr::new(IpAddr::V6(as_v6(s.ip())), s.port())
        }
    };
    ProxiedAddrs {
        source: fix(a.source),
        destination: fix(a.destination),
    }
}

fn encode(version: ProxyVersion, command: Command, a: Option<&ProxiedAddrs>) -> Vec<u8> {
    let mut out = Vec::new();
    match version {
        ProxyVersion::V1 => write_v1(a, &mut out),
        ProxyVersion::V2 => write_v2(command, a, &mut out),
    }
    out
}

fn version() -> impl Strategy<Value = ProxyVersion> {
    prop_oneof![Just(ProxyVersion::V1), Just(ProxyVersion::V2)]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![Just(Command::Local), Just(Command::Proxy)]
}

/// Everything that must hold of any answer, for any input.
fn invariants(input: &[u8]) {
    let answer = peek_proxy_header(input);
    let mut longer = input.to_vec();
    longer.extend_from_slice(b"\r\n\x16\x03\x01");
    match answer {
        Ok(Peek::Complete(h)) => {
            assert!(h.len <= input.len());
            // Self-delimiting: the header alone is the same header, and less of it needs more.
            assert_eq!(peek_proxy_header(&input[..h.len]), Ok(Peek::Complete(h)));
            assert_eq!(peek_proxy_header(&longer), Ok(Peek::Complete(h)));
            for n in 0..h.len {
                assert_eq!(
                    peek_proxy_header(&input[..n]),
                    Ok(Peek::NeedMore),
                    "cut {n}"
                );
            }
            if h.version == ProxyVersion::V1 {
                assert_eq!(h.command, Command::Proxy);
            }
            if h.command == Command::Local {
                assert_eq!(h.addresses, None);
            }
            if let Some(a) = h.addresses {
                for v in [ProxyVersion::V1, ProxyVersion::V2] {
                    let again = peek_proxy_header(&encode(v, Command::Proxy, Some(&a)));
                    let again = again
                        .ok()
                        .and_then(Peek::complete)
                        .and_then(|h| h.addresses);
                    assert_eq!(again, Some(as_written(a)), "{v:?}");
                }
            }
        }
        Ok(Peek::NeedMore) => {
            let cap = if input.first() == Some(&b'P') {
                MAX_PROXY_V1_LEN
            } else {
                MAX_PROXY_V2_LEN
            };
            assert!(input.len() < cap, "NeedMore past the cap");
        }
        // More bytes never rescue what is already refused.
        Ok(Peek::NotThisProtocol) => {
            assert_eq!(peek_proxy_header(&longer), Ok(Peek::NotThisProtocol));
        }
        Err(_) => assert!(peek_proxy_header(&longer).is_err()),
    }
}

/// Real captures plus a few hand-made headers, to damage.
fn seeds() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/proxy");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .expect("testdata dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .map(|p| std::fs::read(p).expect("capture"))
        .collect();
    seeds.push(b"PROXY UNKNOWN\r\n".to_vec());
    seeds.push(b"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 1 65535\r\n".to_vec());
    seeds.push([SIG, b"\x21\x31\x00\xd8", &[0u8; 216]].concat());
    seeds
}

#[derive(Debug, Clone)]
enum Damage {
    Set(Index, u8),
    Flip(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Damage::Flip(i, 1 << b)),
        (
            any::<Index>(),
            prop_oneof![
                Just(b' '),
                Just(b'\r'),
                Just(b'\n'),
                Just(b'0'),
                any::<u8>()
            ]
        )
            .prop_map(|(i, b)| Damage::Insert(i, b)),
        any::<Index>().prop_map(Damage::Remove),
        any::<Index>().prop_map(Damage::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, d: &Damage) {
    if bytes.is_empty() {
        return;
    }
    match d {
        Damage::Set(i, b) => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        Damage::Flip(i, bit) => {
            let i = i.index(bytes.len());
            bytes[i] ^= bit;
        }
        Damage::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
        Damage::Remove(i) => {
            bytes.remove(i.index(bytes.len()));
        }
        Damage::Truncate(i) => bytes.truncate(i.index(bytes.len())),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn v1_round_trip(a in proxied()) {
        let out = encode(ProxyVersion::V1, Command::Proxy, Some(&a));
        prop_assert!(out.len() <= 104, "{}", out.escape_ascii());
        prop_assert_eq!(
            peek_proxy_header(&out),
            Ok(Peek::Complete(ProxyHeader {
                len: out.len(),
                version: ProxyVersion::V1,
                command: Command::Proxy,
                addresses: Some(as_written(a)),
            }))
        );
    }

    #[test]
    fn v2_round_trip(command in command(), a in proxied()) {
        let out = encode(ProxyVersion::V2, command, Some(&a));
        let addresses = (command == Command::Proxy).then(|| as_written(a));
        prop_assert_eq!(
            peek_proxy_header(&out),
            Ok(Peek::Complete(ProxyHeader { len: out.len(), version: ProxyVersion::V2, command, addresses }))
        );
    }

    #[test]
    fn strict_prefixes_need_more(v in version(), c in command(), a in proptest::option::of(proxied()), cut in any::<Index>()) {
        let out = encode(v, c, a.as_ref());
        prop_assert_eq!(peek_proxy_header(&out[..cut.index(out.len())]), Ok(Peek::NeedMore));
    }

    #[test]
    fn what_follows_the_header_is_not_read(v in version(), c in command(), a in proptest::option::of(proxied()), tail in prop::collection::vec(any::<u8>(), 0..64)) {
        let out = encode(v, c, a.as_ref());
        let alone = peek_proxy_header(&out);
        prop_assert!(matches!(alone, Ok(Peek::Complete(h)) if h.len == out.len()));
        prop_assert_eq!(peek_proxy_header(&[&out[..], &tail].concat()), alone);
    }

    #[test]
    fn damaged_headers_keep_the_invariants(seed in select(seeds()), damages in prop::collection::vec(damage(), 1..6)) {
        let mut bytes = seed;
        for d in &damages {
            apply(&mut bytes, d);
        }
        invariants(&bytes);
    }

    #[test]
    fn arbitrary_bytes_keep_the_invariants(
        start in select(vec![&b""[..], b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", SIG, b"\r\n\r\n\0\r\nQUIT\n\x21"]),
        rest in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        invariants(&[start, &rest].concat());
    }
}

#[test]
fn the_invariant_checks_hold_on_the_seeds() {
    for seed in seeds() {
        invariants(&seed);
        for n in 0..seed.len() {
            invariants(&seed[..n]);
        }
    }
}
