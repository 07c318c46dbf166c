// Informs: whether the edge can parse a PROXY header (and the connector write one) on every
// connection with the plain std address parsers and a table CRC32C, or needs a fast path.
//
// Run: cargo bench -p sluice-benches --bench proxy -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_proto::proxy::{Command, ProxiedAddrs, peek_proxy_header, write_v1, write_v2};

/// Real headers, as HAProxy sent them (see src/proto/testdata/proxy/README.md).
const HAPROXY_V2_TLV_TLS: &[u8] =
    include_bytes!("../../src/proto/testdata/proxy/haproxy-v2-tlv-tls.bin");

fn addrs(source: &str, destination: &str) -> ProxiedAddrs {
    ProxiedAddrs {
        source: source
            .parse::<SocketAddr>()
            .unwrap_or_else(|e| panic!("{source}: {e}")),
        destination: destination
            .parse::<SocketAddr>()
            .unwrap_or_else(|e| panic!("{destination}: {e}")),
    }
}

fn parse(c: &mut Criterion) {
    let v4 = addrs("203.0.113.195:56324", "198.51.100.7:443");
    let v6 = addrs(
        "[2001:db8:85a3:8d3:1319:8a2e:370:7348]:56324",
        "[2001:db8::7]:443",
    );
    // A ClientHello-like tail, as the edge sees it: the parser must not read it.
    let tail = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for (name, a) in [("ipv4", &v4), ("ipv6", &v6)] {
        let mut one = Vec::new();
        write_v1(Some(a), &mut one);
        cases.push((if name == "ipv4" { "v1_ipv4" } else { "v1_ipv6" }, one));
        let mut two = Vec::new();
        write_v2(Command::Proxy, Some(a), &mut two);
        cases.push((if name == "ipv4" { "v2_ipv4" } else { "v2_ipv6" }, two));
    }
    cases.push(("v2_haproxy_tlv_crc32c", HAPROXY_V2_TLV_TLS.to_vec()));

    let mut group = c.benchmark_group("proxy_parse");
    for (name, mut header) in cases {
        header.extend_from_slice(&tail);
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| b.iter(|| peek_proxy_header(black_box(&header))));
    }
    group.finish();
}

fn write(c: &mut Criterion) {
    let v4 = addrs("203.0.113.195:56324", "198.51.100.7:443");
    let v6 = addrs(
        "[2001:db8:85a3:8d3:1319:8a2e:370:7348]:56324",
        "[2001:db8::7]:443",
    );
    let mut group = c.benchmark_group("proxy_write");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(128);
    for (name, a) in [("v2_ipv4", &v4), ("v2_ipv6", &v6)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                write_v2(Command::Proxy, Some(black_box(a)), &mut out);
                out.len()
            })
        });
    }
    for (name, a) in [("v1_ipv4", &v4), ("v1_ipv6", &v6)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                write_v1(Some(black_box(a)), &mut out);
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse, write);
criterion_main!(benches);
