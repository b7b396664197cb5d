//! What metrics and logging add to each HTTP request: `Metrics::observe_request` (status
//! count and route+method latency histogram under one short lock) and a per-request
//! `tracing::debug!` filtered out at the default `info` level. Compare with the ~30 µs of
//! CPU an HTTP lookup costs (BENCHMARKS.md).

use axum::http::Method;
use criterion::{criterion_group, criterion_main, Criterion};
use segd::http::metrics::Metrics;
use std::hint::black_box;

fn observe(c: &mut Criterion) {
    let metrics = Metrics::default();
    let routes = [
        "/v1/profiles/{id}/segments",
        "/v1/identify",
        "/v1/segments/{id}/members/{profile}",
    ];
    let mut n = 0u64;
    c.bench_function("metrics_observe_request", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let route = routes[(n % 3) as usize];
            metrics.observe_request(black_box(route), &Method::GET, 200, black_box(n % 5_000));
        })
    });
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(std::io::sink)
            .finish(),
    );
    c.bench_function("tracing_debug_filtered_out", |b| {
        b.iter(|| {
            tracing::debug!(method = %Method::GET, route = black_box("/v1/identify"), status = 200u16, elapsed_us = black_box(17u64), "request");
        })
    });
}

criterion_group!(benches, observe);
criterion_main!(benches);
