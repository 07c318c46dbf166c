//! The preamble on real captures (ClientHellos from `testdata/client_hello/`, PROXY headers
//! from `testdata/proxy/`), on every prefix, and on random bytes.

use proptest::prelude::*;
use std::path::PathBuf;

use super::*;

fn rules(trust_proxy: bool) -> Rules {
    Rules {
        trust_proxy,
        browsers: true,
        tunnels: true,
        max_hello_len: crate::limits::DEFAULT_MAX_HELLO_LEN,
    }
}

fn capture(dir: &str, name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(dir)
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every prefix needs more, and the whole answers `want`; bytes after it change nothing.
fn check_prefixes(input: &[u8], rules: &Rules, want: &Preamble) {
    let mut last = None;
    for n in 0..=input.len() {
        match classify(&input[..n], rules) {
            Ok(Peek::NeedMore) => {}
            Ok(Peek::Complete(p)) => {
                assert_eq!(&p, want, "prefix {n}");
                last.get_or_insert(n);
            }
            Ok(Peek::NotThisProtocol) => panic!("prefix {n}: classify never says this"),
            Err(e) => panic!("prefix {n} of a good preamble refused: {e:?}"),
        }
    }
    assert!(last.is_some(), "never complete");
    let mut more = input.to_vec();
    more.extend_from_slice(b"\x17\x03\x03 later records");
    assert_eq!(classify(&more, rules), Ok(Peek::Complete(want.clone())));
}

#[test]
fn a_real_hello_is_a_browser_on_every_prefix() {
    let hello = capture("client_hello", "curl.bin");
    let want = match classify(&hello, &rules(false)) {
        Ok(Peek::Complete(p @ Preamble::Browser { start: 0, .. })) => p,
        other => panic!("{other:?}"),
    };
    check_prefixes(&hello, &rules(false), &want);
}

#[test]
fn behind_a_proxy_header_the_caller_is_the_header_source() {
    let hello = capture("client_hello", "chromium.bin");
    let mut input = b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 443\r\n".to_vec();
    let header_len = input.len();
    input.extend_from_slice(&hello);
    let Ok(Peek::Complete(want)) = classify(&input, &rules(true)) else {
        panic!("not complete");
    };
    let Preamble::Browser {
        start, caller, sni, ..
    } = &want
    else {
        panic!("not a browser: {want:?}");
    };
    assert_eq!(*start, header_len);
    assert_eq!(*caller, Some("198.51.100.7".parse().unwrap()));
    assert!(sni.is_some());
    check_prefixes(&input, &rules(true), &want);
    // Without the header, a trusting listener refuses; a listener that trusts none sees junk.
    assert_eq!(classify(&hello, &rules(true)), Err(Refusal::BadProxyHeader));
    assert_eq!(classify(&input, &rules(false)), Err(Refusal::NotTls));
}

#[test]
fn real_proxy_captures_then_a_token_are_tunnels() {
    let mut seen = 0;
    for entry in
        std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/proxy")).unwrap()
    {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "bin") {
            continue;
        }
        let header = std::fs::read(&path).unwrap();
        let Ok(Peek::Complete(h)) = peek_proxy_header(&header) else {
            continue;
        };
        let mut input = header[..h.len].to_vec();
        input.extend_from_slice(b"gAAAAABtoken");
        let want = Preamble::Tunnel {
            start: h.len,
            caller: h.addresses.map(|a| a.source.ip().to_canonical()),
        };
        check_prefixes(&input, &rules(true), &want);
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} captures");
}

#[test]
fn each_listener_refuses_what_it_does_not_serve() {
    let hello = capture("client_hello", "curl.bin");
    let tunnel_only = Rules {
        browsers: false,
        ..rules(false)
    };
    let browser_only = Rules {
        tunnels: false,
        ..rules(false)
    };
    assert_eq!(
        classify(&hello, &tunnel_only),
        Err(Refusal::TlsOnTunnelPort)
    );
    assert_eq!(
        classify(b"gAAAA", &browser_only),
        Err(Refusal::TunnelOnBrowserPort)
    );
    assert_eq!(
        classify(b"GET / HTTP/1.1\r\n", &rules(false)),
        Err(Refusal::NotTls)
    );
    assert_eq!(classify(b"", &rules(false)), Ok(Peek::NeedMore));
}

#[test]
fn a_hello_that_never_completes_is_refused_at_the_cap() {
    let small = Rules {
        max_hello_len: 512,
        ..rules(false)
    };
    // A record header announcing a large hello, then filler in many tiny records.
    let mut input = Vec::new();
    while input.len() < cap(&small) + 10 {
        input.extend_from_slice(&[0x16, 0x03, 0x01, 0x00, 0x01, 0x01]);
    }
    let refused = (0..=input.len()).find_map(|n| classify(&input[..n], &small).err());
    assert!(
        matches!(
            refused,
            Some(Refusal::HelloTooLarge { .. } | Refusal::MalformedHello { .. })
        ),
        "{refused:?}"
    );
}

proptest! {
    #[test]
    fn any_bytes_are_classified_the_same_however_they_were_read(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        proxy in any::<bool>(),
        split in 0usize..2048,
    ) {
        let r = rules(proxy);
        let whole = classify(&data, &r);
        if let Ok(Peek::Complete(p)) = &whole {
            let start = match p {
                Preamble::Browser { start, .. } | Preamble::Tunnel { start, .. } => *start,
            };
            prop_assert!(start <= data.len());
        }
        // A prefix that already decided decides the same for the whole.
        let cut = split.min(data.len());
        match classify(&data[..cut], &r) {
            Ok(Peek::NeedMore) => {}
            decided => prop_assert_eq!(decided, whole),
        }
    }
}
