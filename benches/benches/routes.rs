//! Routing lookup: host name to tunnel, in a worker's copy of the directory, at 1k, 100k and
//! 1M names, hit and miss. Every browser connection does one; informs whether the directory
//! needs a faster hash or interned names.
//!
//! `cargo bench -p sluice-benches --bench routes`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use sluice_edge::routes::Routes;
use sluice_proto::Hostname;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_lookup");
    for n in [1_000usize, 100_000, 1_000_000] {
        let mut routes = Routes::new(9);
        for i in 0..n {
            let name: Hostname = format!("{i:x}abcdef0123456789.ui.example.net")
                .parse()
                .unwrap();
            routes.claim(&[name], i % 4, i as u64, None);
        }
        let hit: Hostname = format!("{:x}abcdef0123456789.ui.example.net", n / 2)
            .parse()
            .unwrap();
        let miss: Hostname = "not-there-at-all.ui.example.net".parse().unwrap();
        g.bench_with_input(BenchmarkId::new("hit", n), &n, |b, _| {
            b.iter(|| black_box(routes.lookup(black_box(&hit))))
        });
        g.bench_with_input(BenchmarkId::new("miss", n), &n, |b, _| {
            b.iter(|| black_box(routes.lookup(black_box(&miss))))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
