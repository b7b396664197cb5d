//! Per-message work at the floor (issue 9 item 5; figures in BENCHMARKS.md).
//!
//! Setup (same as `benches/realtime.rs`): seeded demo profiles (`segd::demo`, seed 7)
//! with ~2 events each loaded through the ordinary ingest path into 16 shards, then the
//! 100 live segments of `common/segments.rs`. The engine clock is a manual clock at the
//! generator's "now".
//!
//! What is measured, one call at a time on one thread, each call timed into an HDR
//! histogram, and the phase's process CPU time (user + system, from `/proc/self/stat`,
//! 10 ms resolution) divided by its calls:
//! - `track`: `Engine::track` of a pre-generated demo event (properties included) for
//!   a profile picked by activity weight, timestamped "now" — apply to the event store
//!   and re-evaluate the segments reading the event;
//! - `identify_update`: `Engine::identify` setting 2 traits (`ltv`, a number, and
//!   `status`, a string; both read by segments) of an existing profile picked
//!   uniformly;
//! - `identify_create`: `Engine::identify` creating a profile with the demo's ~25
//!   traits (profiles beyond the loaded ones) — every segment is evaluated for it.
//!
//! Each phase runs in its own `#[inline(never)]` function (`floor_phase_track`,
//! `floor_phase_identify_update`, `floor_phase_identify_create`) so callgrind can count
//! one phase alone: `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*floor_phase_track*' target/release/deps/floor-…`.
//!
//! Environment: `SEGD_FLOOR_PROFILES` (default 1000000), `SEGD_FLOOR_CALLS` per phase
//! (default 100000), `SEGD_FLOOR_PHASES` (comma list, default all three).

#[path = "common/segments.rs"]
mod segments;

use rand::{Rng, SeedableRng};
use segd::bulk::{default_threads, load_demo};
use segd::clock::ManualClock;
use segd::demo::{DemoEvent, DemoGenerator};
use segd::engine::{Engine, EngineOptions};
use serde_json::{Map, Value};
use std::hint::black_box;
use std::time::Instant;

const SEED: u64 = 7;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// CPU time of this process so far (user + system), in ms; 0 where unknown.
fn process_cpu_ms() -> u64 {
    segd::http::metrics::process::cpu_time_ms().unwrap_or(0)
}

struct Timing {
    histogram: hdrhistogram::Histogram<u64>,
    wall_s: f64,
    cpu_ms: u64,
}

fn report(phase: &str, calls: usize, profiles: u64, timing: &Timing) {
    let h = &timing.histogram;
    println!(
        "{phase}: {calls} calls at {profiles} profiles, 100 segments, one thread: {:.0} calls/s wall, {:.2} µs CPU per call; p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.1} µs",
        calls as f64 / timing.wall_s,
        timing.cpu_ms as f64 * 1e3 / calls as f64,
        h.value_at_quantile(0.5) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.value_at_quantile(0.999) as f64 / 1e3,
        h.max() as f64 / 1e3,
    );
}

fn timed(mut call: impl FnMut(usize), calls: usize) -> Timing {
    let mut histogram = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let cpu_before = process_cpu_ms();
    let started = Instant::now();
    for index in 0..calls {
        let at = Instant::now();
        call(index);
        histogram.record(at.elapsed().as_nanos() as u64).unwrap();
    }
    Timing {
        histogram,
        wall_s: started.elapsed().as_secs_f64(),
        cpu_ms: process_cpu_ms().saturating_sub(cpu_before),
    }
}

#[inline(never)]
fn floor_phase_track(engine: &Engine, stream: &[(String, DemoEvent)]) -> Timing {
    timed(
        |index| {
            let (user_id, event) = &stream[index];
            black_box(
                engine
                    .track(
                        Some(user_id),
                        None,
                        &event.event,
                        event.time_ms,
                        &event.properties,
                    )
                    .unwrap(),
            );
        },
        stream.len(),
    )
}

#[inline(never)]
fn floor_phase_identify_update(
    engine: &Engine,
    updates: &[(String, Map<String, Value>)],
) -> Timing {
    timed(
        |index| {
            let (user_id, traits) = &updates[index];
            black_box(engine.identify(Some(user_id), None, traits).unwrap());
        },
        updates.len(),
    )
}

#[inline(never)]
fn floor_phase_identify_create(
    engine: &Engine,
    creations: &[(String, Map<String, Value>)],
) -> Timing {
    timed(
        |index| {
            let (user_id, traits) = &creations[index];
            black_box(engine.identify(Some(user_id), None, traits).unwrap());
        },
        creations.len(),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let profiles = env_number("SEGD_FLOOR_PROFILES", 1_000_000);
    let calls = env_number("SEGD_FLOOR_CALLS", 100_000) as usize;
    let phases = std::env::var("SEGD_FLOOR_PHASES")
        .unwrap_or_else(|_| "track,identify_update,identify_create".into());
    let phases: Vec<&str> = phases.split(',').map(str::trim).collect();

    let generator = DemoGenerator::new(SEED);
    let clock = ManualClock::new(generator.now_ms());
    let engine = Engine::with_clock(EngineOptions::default(), clock);
    let started = Instant::now();
    let loaded = load_demo(&engine, &generator, profiles, 2, default_threads()).unwrap();
    println!(
        "load: {profiles} profiles, {} events in {:.1} s",
        loaded.events,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    segments::create_hundred(&engine, SEED);
    println!(
        "segments: 100 created in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED + 1);
    if phases.contains(&"track") {
        let mut stream = Vec::with_capacity(calls);
        while stream.len() < calls {
            let index = rng.gen_range(0..profiles);
            if rng.gen::<f64>() * 10.0 > generator.activity_weight(index) {
                continue;
            }
            let user_id = generator.profile(index).user_id;
            for mut event in generator.events(index, 1) {
                event.time_ms = generator.now_ms();
                stream.push((user_id.clone(), event));
            }
        }
        stream.truncate(calls);
        let timing = floor_phase_track(&engine, &stream);
        report("track", calls, profiles, &timing);
    }
    if phases.contains(&"identify_update") {
        let statuses = ["subscribed", "unconfirmed", "unsubscribed"];
        let updates: Vec<(String, Map<String, Value>)> = (0..calls)
            .map(|_| {
                let index = rng.gen_range(0..profiles);
                let mut traits = Map::new();
                traits.insert("ltv".into(), Value::from(rng.gen_range(0..1_000)));
                traits.insert(
                    "status".into(),
                    Value::from(statuses[rng.gen_range(0..statuses.len())]),
                );
                (generator.profile(index).user_id, traits)
            })
            .collect();
        let timing = floor_phase_identify_update(&engine, &updates);
        report("identify_update", calls, profiles, &timing);
    }
    if phases.contains(&"identify_create") {
        let creations: Vec<(String, Map<String, Value>)> = (0..calls as u64)
            .map(|offset| {
                let profile = generator.profile(profiles + offset);
                (profile.user_id, profile.traits)
            })
            .collect();
        let traits: usize = creations.iter().map(|(_, t)| t.len()).sum();
        println!(
            "identify_create: {:.1} traits per created profile",
            traits as f64 / calls.max(1) as f64
        );
        let timing = floor_phase_identify_create(&engine, &creations);
        report("identify_create", calls, profiles, &timing);
    }
}
