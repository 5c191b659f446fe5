//! Allocator throughput: assigning IPs to 10k and 100k Services from one pool.
//! `cargo bench -p metalgate-ipam`; results go to bench/RESULTS.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use metalgate_ipam::{Allocator, Family, Pool, PoolSpec, Request, ServiceInfo};

fn pool() -> Pool {
    Pool::from_spec(&PoolSpec {
        name: "big".into(),
        addresses: vec!["10.0.0.0/12".into()],
        auto_assign: true,
        avoid_buggy_ips: true,
        allocation: None,
    })
    .unwrap()
}

fn assign_all(n: usize) -> Allocator {
    let mut a = Allocator::new(vec![pool()]);
    let req = Request {
        service: ServiceInfo {
            namespace: "default".into(),
            ..Default::default()
        },
        families: vec![Family::V4],
        ..Default::default()
    };
    for i in 0..n {
        a.assign(&format!("default/svc-{i}"), &req).unwrap();
    }
    a
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("assign");
    g.sample_size(10);
    for n in [10_000usize, 100_000] {
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| black_box(assign_all(n)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
