//! What this informs: whether the edge can keep the SNI peek stateless, re-parsing the whole
//! buffer after every read (`peek_client_hello` is called again with everything so far), or
//! needs a resumable parser. A re-parse must stay small next to the cost of the read that
//! brought the bytes (a syscall, ~1 µs) even for the largest real hellos (Chromium's
//! post-quantum ~2 KB) and for the hostile worst case: a hello cut into 1-byte records, which
//! also shows what a client trickling records costs us per call.
//!
//! Run: `cargo bench -p sluice-benches --bench sni -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_proto::limits::DEFAULT_MAX_HELLO_LEN;
use sluice_proto::sni::peek_client_hello;

const CURL: &[u8] = include_bytes!("../../src/proto/testdata/client_hello/curl.bin");
const CHROMIUM: &[u8] = include_bytes!("../../src/proto/testdata/client_hello/chromium.bin");
const RUSTLS_PQ: &[u8] =
    include_bytes!("../../src/proto/testdata/client_hello/rustls-aws-lc-rs-pq.bin");

/// `hello`'s handshake message re-cut into records of `size` payload bytes.
fn refragment(hello: &[u8], size: usize) -> Vec<u8> {
    // The captures are one record each: a 5-byte header, then the message.
    let (header, message) = hello.split_at(5);
    message
        .chunks(size)
        .flat_map(|chunk| {
            let len = u16::try_from(chunk.len()).expect("chunk fits a record");
            [&header[..3], &len.to_be_bytes()[..], chunk].concat()
        })
        .collect()
}

fn peek(c: &mut Criterion) {
    let chromium_1 = refragment(CHROMIUM, 1);
    let chromium_64 = refragment(CHROMIUM, 64);
    let inputs: [(&str, &[u8]); 6] = [
        ("curl", CURL),
        ("rustls-pq", RUSTLS_PQ),
        ("chromium", CHROMIUM),
        ("chromium-64B-records", &chromium_64),
        ("chromium-1B-records", &chromium_1),
        ("chromium-half", &CHROMIUM[..CHROMIUM.len() / 2]),
    ];
    let mut group = c.benchmark_group("sni_peek");
    for (name, bytes) in inputs {
        // Sanity: the full inputs parse, the half one needs more, before anything is timed.
        let answer = peek_client_hello(bytes, DEFAULT_MAX_HELLO_LEN).expect("a valid hello");
        assert_eq!(
            answer.complete().is_some(),
            name != "chromium-half",
            "{name}"
        );
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), bytes, |b, bytes| {
            b.iter(|| peek_client_hello(black_box(bytes), DEFAULT_MAX_HELLO_LEN))
        });
    }
    group.bench_function("not-tls", |b| {
        b.iter(|| peek_client_hello(black_box(b"GET / HTTP/1.1\r\n"), DEFAULT_MAX_HELLO_LEN))
    });
    group.finish();
}

criterion_group!(benches, peek);
criterion_main!(benches);
