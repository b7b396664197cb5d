//! Real-time benches (issue 3 targets; figures in BENCHMARKS.md).
//!
//! Setup: seeded demo profiles (`segd::demo`, seed 7) with ~2 events each loaded through
//! the ordinary ingest path into 16 shards, then 100 live segments (the 14 demo segments
//! plus 86 generated ones mixing trait, behavioral and mixed rules, see
//! `common/segments.rs`). The engine clock is a manual clock at the generator's "now".
//!
//! What is measured:
//! - `track/<profiles>`: one `track` call per iteration — apply the event to the event
//!   store and re-evaluate every segment that reads the event for that profile (plus
//!   time-driven timers), recording membership changes. Events are pre-generated
//!   realistic events (demo event mix, properties included) for profiles picked by
//!   activity weight, timestamped "now". Criterion's time per iteration is the
//!   single-core cost per event; 1 / that is events/s per core.
//! - Printed `latency:` line: the same stream applied one event at a time with each
//!   call timed individually into an HDR histogram (p50/p99/p99.9/max, µs).
//! - Printed `events:` line: event-store memory per stored event after the load.
//! - Printed `tick:` line: cost of `tick()` when 1% of profiles have a time-driven
//!   change due (they did "bench_ping" 61 minutes ago; a segment wants it within the
//!   last 60 minutes), total and per due profile.
//!
//! Sizes come from `SEGD_BENCH_PROFILES` (comma list, default `1000000`);
//! `SEGD_BENCH_REPORTS_ONLY=1` prints the latency and tick reports and skips criterion
//! (for profiling the track path under callgrind or perf).

#[path = "common/segments.rs"]
mod segments;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::{Rng, SeedableRng};
use segd::bulk::{default_threads, load_demo};
use segd::clock::{Clock, ManualClock};
use segd::demo::{DemoEvent, DemoGenerator};
use segd::engine::{Engine, EngineOptions, RuleInput};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const SEED: u64 = 7;
fn stream_events() -> usize {
    std::env::var("SEGD_BENCH_STREAM_EVENTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(200_000)
}

fn sizes() -> Vec<u64> {
    std::env::var("SEGD_BENCH_PROFILES")
        .unwrap_or_else(|_| "1000000".into())
        .split(',')
        .filter_map(|size| size.trim().parse().ok())
        .collect()
}

struct Setup {
    engine: Engine,
    clock: Arc<ManualClock>,
    stream: Vec<(String, DemoEvent)>,
    profiles: u64,
}

fn setup(profiles: u64) -> Setup {
    let generator = DemoGenerator::new(SEED);
    let clock = ManualClock::new(generator.now_ms());
    let engine = Engine::with_clock(EngineOptions::default(), clock.clone());
    let started = Instant::now();
    let report = load_demo(&engine, &generator, profiles, 2, default_threads()).unwrap();
    println!(
        "load: {profiles} profiles, {} events in {:.1} s",
        report.events,
        started.elapsed().as_secs_f64()
    );
    let (stored, bytes) = engine.event_memory();
    println!(
        "events: {stored} stored, event stores {:.1} MiB, {:.1} bytes per stored event (24-byte record + encoded properties + per-profile lifetime aggregates)",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / stored.max(1) as f64
    );
    let started = Instant::now();
    segments::create_hundred(&engine, SEED);
    println!(
        "segments: 100 created (initial evaluation) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The stream: profiles picked in proportion to activity, their next event "now".
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED + 1);
    let wanted = stream_events();
    let mut stream = Vec::with_capacity(wanted);
    while stream.len() < wanted {
        let index = rng.gen_range(0..profiles);
        let weight = generator.activity_weight(index);
        if rng.gen::<f64>() * 10.0 > weight {
            continue;
        }
        let user_id = generator.profile(index).user_id;
        for mut event in generator.events(index, 1) {
            event.time_ms = generator.now_ms();
            stream.push((user_id.clone(), event));
        }
    }
    Setup {
        engine,
        clock,
        stream,
        profiles,
    }
}

fn latency_report(setup: &Setup) {
    let mut histogram = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let started = Instant::now();
    for (user_id, event) in &setup.stream {
        let call = Instant::now();
        setup
            .engine
            .track(
                Some(user_id),
                None,
                &event.event,
                event.time_ms,
                &event.properties,
            )
            .unwrap();
        histogram.record(call.elapsed().as_nanos() as u64).unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "latency: {} events at {} profiles, 100 segments, one core: {:.0} events/s; p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.1} µs",
        setup.stream.len(),
        setup.profiles,
        setup.stream.len() as f64 / elapsed,
        histogram.value_at_quantile(0.5) as f64 / 1e3,
        histogram.value_at_quantile(0.99) as f64 / 1e3,
        histogram.value_at_quantile(0.999) as f64 / 1e3,
        histogram.max() as f64 / 1e3,
    );
}

fn tick_report(setup: &Setup) {
    let engine = &setup.engine;
    if engine.segment_id("bench_ping_recent").is_none() {
        engine
            .create_segment(
                "bench_ping_recent",
                "",
                Some(RuleInput::Text(
                    r#"did "bench_ping" in last 60 minutes"#.into(),
                )),
            )
            .unwrap();
    }
    let due = (setup.profiles / 100).max(1);
    let generator = DemoGenerator::new(SEED);
    let now = setup.clock.now_ms();
    for index in 0..due {
        let user_id = generator.profile(index * 100).user_id;
        engine
            .track(Some(&user_id), None, "bench_ping", now, &Default::default())
            .unwrap();
    }
    setup.clock.advance(61 * 60_000);
    let started = Instant::now();
    let changes = engine.tick();
    let elapsed = started.elapsed();
    println!(
        "tick: {due} profiles due (1%), {changes} membership changes in {:.1} ms ({:.2} µs per due profile)",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / due as f64
    );
}

fn bench_track(c: &mut Criterion) {
    let mut group = c.benchmark_group("track");
    group.sample_size(20);
    for profiles in sizes() {
        let setup = setup(profiles);
        latency_report(&setup);
        tick_report(&setup);
        if std::env::var_os("SEGD_BENCH_REPORTS_ONLY").is_some() {
            // For profilers (callgrind/perf): setup and the printed reports only.
            continue;
        }
        let mut position = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(profiles), &setup, |b, setup| {
            b.iter(|| {
                let (user_id, event) = &setup.stream[position % setup.stream.len()];
                position += 1;
                black_box(
                    setup
                        .engine
                        .track(
                            Some(user_id),
                            None,
                            &event.event,
                            event.time_ms,
                            &event.properties,
                        )
                        .unwrap(),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_track);
criterion_main!(benches);
