//! Frame encode and decode per cipher: what the multiplexer costs per frame on top of the
//! kernel's copy, and whether the cipher choice matters at the payload sizes the edge sends
//! (reads of up to 64 KiB). Informs the frame size and the cost of AEAD tunnels.
//!
//! `cargo bench -p sluice-benches --bench frame`

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Instant;

use sluice_benches::pair;
use sluice_proto::crypto::CipherKind;
use sluice_proto::mux::{Event, Recv, Transmit};
use sluice_proto::version::ProtocolVersion;

const CIPHERS: [CipherKind; 3] = [
    CipherKind::AesCbc,
    CipherKind::AesGcm,
    CipherKind::AesGcmSiv,
];
const SIZES: [usize; 3] = [64, 16 * 1024, 64 * 1024];

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_encode");
    for cipher in CIPHERS {
        for size in SIZES {
            let (mut server, _) = pair(cipher, ProtocolVersion::V2);
            let now = Instant::now();
            let ch = server
                .open_channel("192.0.2.1".parse().unwrap(), now)
                .unwrap();
            let payload = Bytes::from(vec![7u8; size]);
            let mut tx = Transmit::new();
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new(cipher.name(), size), &size, |b, _| {
                b.iter(|| {
                    server.send(ch, payload.clone(), now).unwrap();
                    server.poll_transmit(&mut tx, usize::MAX, now).unwrap();
                    black_box(tx.take_segments());
                })
            });
        }
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_decode");
    for cipher in CIPHERS {
        for size in SIZES {
            let (mut server, mut client) = pair(cipher, ProtocolVersion::V2);
            let now = Instant::now();
            let ch = server
                .open_channel("192.0.2.1".parse().unwrap(), now)
                .unwrap();
            let mut tx = Transmit::new();
            server.poll_transmit(&mut tx, usize::MAX, now).unwrap();
            let mut open = BytesMut::new();
            for s in tx.take_segments() {
                open.extend_from_slice(&s);
            }
            client.handle_input(&mut open, now).unwrap();
            let Some(Event::Opened { channel, .. }) = client.poll_event() else {
                panic!("no channel")
            };
            // Frames to decode, made ahead: the server's cipher state moves on with each one, so
            // make enough for the measurement and replay them into a fresh client each batch.
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new(cipher.name(), size), &size, |b, _| {
                b.iter_batched(
                    || {
                        server.send(ch, Bytes::from(vec![7u8; size]), now).unwrap();
                        server.poll_transmit(&mut tx, usize::MAX, now).unwrap();
                        let mut wire = BytesMut::new();
                        for s in tx.take_segments() {
                            wire.extend_from_slice(&s);
                        }
                        wire
                    },
                    |mut wire| {
                        client.handle_input(&mut wire, now).unwrap();
                        while let Recv::Data(d) = client.recv(channel) {
                            client.consumed(channel, d.len());
                            black_box(d);
                        }
                        while client.poll_event().is_some() {}
                    },
                    criterion::BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
