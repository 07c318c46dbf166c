//! PROXY protocol parser: no panic on any input, and every complete header is
//! self-delimiting and survives a round trip through both writers.
//!
//! Run from `src/proto/fuzz` (new inputs go to the ignored `corpus/proxy`, the seeds are
//! the captures in `testdata/proxy`):
//!
//! ```sh
//! cargo +nightly fuzz run proxy corpus/proxy corpus/seed-proxy -- \
//!     -max_total_time=300 -max_len=4096 -dict=proxy.dict
//! ```
#![no_main]

use std::net::{IpAddr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use sluice_proto::Peek;
use sluice_proto::limits::{MAX_PROXY_V1_LEN, MAX_PROXY_V2_LEN};
use sluice_proto::proxy::{
    Command, ProxiedAddrs, ProxyVersion, peek_proxy_header, write_v1, write_v2,
};

/// What a header written for `a` reads back as: both addresses become IPv6 (IPv4-mapped)
/// unless both are IPv4.
fn as_written(a: ProxiedAddrs) -> ProxiedAddrs {
    let both_v4 = a.source.is_ipv4() && a.destination.is_ipv4();
    let fix = |s: SocketAddr| match s.ip() {
        IpAddr::V4(ip) if !both_v4 => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), s.port()),
        _ => s,
    };
    ProxiedAddrs {
        source: fix(a.source),
        destination: fix(a.destination),
    }
}

fuzz_target!(|data: &[u8]| {
    let answer = peek_proxy_header(data);
    let mut longer = data.to_vec();
    longer.extend_from_slice(b"\r\n\x16\x03\x01");
    match answer {
        Ok(Peek::Complete(h)) => {
            assert!(h.len <= data.len());
            assert_eq!(peek_proxy_header(&data[..h.len]), Ok(Peek::Complete(h)));
            assert_eq!(peek_proxy_header(&longer), Ok(Peek::Complete(h)));
            // A few strict prefixes (all of them would make the target quadratic).
            for n in [
                0,
                1,
                h.len / 3,
                h.len / 2,
                h.len.saturating_sub(2),
                h.len - 1,
            ] {
                if n < h.len {
                    assert_eq!(peek_proxy_header(&data[..n]), Ok(Peek::NeedMore), "cut {n}");
                }
            }
            if h.version == ProxyVersion::V1 {
                assert_eq!(h.command, Command::Proxy);
            }
            if h.command == Command::Local {
                assert_eq!(h.addresses, None);
            }
            if let Some(a) = h.addresses {
                let mut v1 = Vec::new();
                write_v1(Some(&a), &mut v1);
                let mut v2 = Vec::new();
                write_v2(Command::Proxy, Some(&a), &mut v2);
                for out in [v1, v2] {
                    let again = peek_proxy_header(&out);
                    let Ok(Peek::Complete(again)) = again else {
                        panic!("re-encoded header does not parse: {again:?}");
                    };
                    assert_eq!(again.len, out.len());
                    assert_eq!(again.addresses, Some(as_written(a)));
                }
            }
        }
        Ok(Peek::NeedMore) => {
            let cap = if data.first() == Some(&b'P') {
                MAX_PROXY_V1_LEN
            } else {
                MAX_PROXY_V2_LEN
            };
            assert!(data.len() < cap, "NeedMore past the cap");
        }
        Ok(Peek::NotThisProtocol) => {
            assert_eq!(peek_proxy_header(&longer), Ok(Peek::NotThisProtocol));
        }
        Err(_) => assert!(peek_proxy_header(&longer).is_err()),
    }
});
