//! The load generator's own hot paths: what its built-in origin and its tunnel peer cost per
//! answer, so that `BENCHMARKS.md` can tell a slow edge from a slow load generator. The peer
//! must stay far cheaper than the edge it drives.
//!
//! `cargo bench -p sluice-benches --bench loadgen`

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};
use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use sluice_benches::pair;
use sluice_loadgen::tls::{Kx, client_config, server_config};
use sluice_loadgen::wire::{MAX_CHUNK, PATTERN, Request, Responder};
use sluice_proto::crypto::CipherKind;
use sluice_proto::mux::{Event, Transmit};
use sluice_proto::version::ProtocolVersion;

/// The origin protocol: a 1 KiB request in, a 1 KiB answer out; and one 64 KiB slice of a
/// download.
fn responder(c: &mut Criterion) {
    let mut g = c.benchmark_group("origin_responder");
    let req = Request {
        body: 1024,
        answer: 1024,
        close: false,
    }
    .with_body();
    let mut r = Responder::new(false);
    g.throughput(Throughput::Bytes(1024));
    g.bench_function("exchange_1KiB", |b| {
        b.iter(|| {
            r.handle_input(black_box(&req)).unwrap();
            while let Some(c) = r.next_chunk(usize::MAX) {
                black_box(c);
            }
        })
    });
    let mut r = Responder::new(false);
    r.handle_input(
        &Request {
            body: 0,
            answer: u64::MAX,
            close: false,
        }
        .encode(),
    )
    .unwrap();
    g.throughput(Throughput::Bytes(MAX_CHUNK as u64));
    g.bench_function("download_slice_64KiB", |b| {
        b.iter(|| black_box(r.next_chunk(usize::MAX)))
    });
    g.finish();
}

/// The tunnel peer's work per 64 KiB of a download: queue the static slice on the client
/// multiplexer and encode its frame (the payload is not copied).
fn peer_answer(c: &mut Criterion) {
    let mut g = c.benchmark_group("tunnel_peer_answer");
    let (mut server, mut client) = pair(CipherKind::AesCbc, ProtocolVersion::V2);
    let now = Instant::now();
    server
        .open_channel("192.0.2.1".parse().unwrap(), now)
        .unwrap();
    let mut tx = Transmit::new();
    server.poll_transmit(&mut tx, usize::MAX, now).unwrap();
    let mut wire = BytesMut::new();
    for s in tx.take_segments() {
        wire.extend_from_slice(&s);
    }
    client.handle_input(&mut wire, now).unwrap();
    let Some(Event::Opened { channel, .. }) = client.poll_event() else {
        panic!("no channel")
    };
    g.throughput(Throughput::Bytes(MAX_CHUNK as u64));
    g.bench_function("raw_64KiB", |b| {
        b.iter(|| {
            client
                .send(channel, Bytes::from_static(&PATTERN[..MAX_CHUNK]), now)
                .unwrap();
            client.poll_transmit(&mut tx, usize::MAX, now).unwrap();
            black_box(tx.take_segments());
        })
    });
    g.finish();
}

/// The in-tunnel TLS origin (`--tunnel-tls`): one 16 KiB record sealed by rustls per frame.
fn peer_tls_record(c: &mut Criterion) {
    let mut g = c.benchmark_group("tunnel_peer_tls");
    let sc = server_config(&["a.bench.test".into()]).unwrap();
    let cc = client_config(Kx::X25519).unwrap();
    let mut server = ServerConnection::new(sc).unwrap();
    let mut client =
        ClientConnection::new(cc, ServerName::try_from("a.bench.test").unwrap()).unwrap();
    // Handshake in memory.
    for _ in 0..10 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        server.read_tls(&mut &buf[..]).unwrap();
        server.process_new_packets().unwrap();
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        client.read_tls(&mut &buf[..]).unwrap();
        client.process_new_packets().unwrap();
    }
    assert!(!server.is_handshaking());
    let chunk = &PATTERN[..16 * 1024];
    let mut out = Vec::with_capacity(20 * 1024);
    g.throughput(Throughput::Bytes(chunk.len() as u64));
    g.bench_function("seal_16KiB", |b| {
        b.iter(|| {
            server.writer().write_all(chunk).unwrap();
            out.clear();
            while server.wants_write() {
                server.write_tls(&mut out).unwrap();
            }
            black_box(Bytes::copy_from_slice(&out));
        })
    });
    g.finish();
}

criterion_group!(benches, responder, peer_answer, peer_tls_record);
criterion_main!(benches);
