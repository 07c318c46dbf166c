//! Token verification: the per-tunnel-handshake cost at the edge (Fernet HMAC + AES-CBC + JSON),
//! with one key and with a rotation list where the signing key is last. Informs how many keys
//! an operator can list and what a reconnect storm costs.
//!
//! `cargo bench -p sluice-benches --bench token`

use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use sluice_benches::claims;
use sluice_proto::crypto::CipherKind;
use sluice_proto::token::{FernetKey, frame_token, verify_token};
use sluice_proto::version::ProtocolVersion;

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(3);
    let keys: Vec<FernetKey> = (0..4).map(|_| FernetKey::generate(&mut rng)).collect();
    let mut cl = claims(CipherKind::AesGcm, ProtocolVersion::V2);
    cl.aliases = vec!["alias.example.test".parse().unwrap()];
    let token = cl.mint(&keys[3], 1_700_000_000, &mut rng);
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut g = c.benchmark_group("token");
    g.bench_function("verify_1_key", |b| {
        b.iter(|| black_box(verify_token(token.as_bytes(), &keys[3..], now).unwrap()))
    });
    g.bench_function("verify_4_keys_last_signs", |b| {
        b.iter(|| black_box(verify_token(token.as_bytes(), &keys, now).unwrap()))
    });
    g.bench_function("frame_1_key", |b| {
        b.iter(|| black_box(frame_token(token.as_bytes(), &keys[3..]).unwrap()))
    });
    g.bench_function("mint", |b| {
        b.iter(|| black_box(cl.mint(&keys[0], 1_700_000_000, &mut rng)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
