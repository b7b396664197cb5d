//! Read-path figures (issue 10; BENCHMARKS.md "Read path").
//!
//! Setup: seeded demo profiles (`segd::demo`, seed 7) with ~2 events each loaded through
//! the ordinary ingest path into 16 shards; the engine clock is a manual clock at the
//! generator's "now".
//!
//! What is measured (wall time of the library call an HTTP handler makes, no HTTP):
//! - `preview:` lines — `Engine::preview` (parse, compile or plan-cache hit, bitmap plan
//!   over every shard, 10-member sample) of each rule, `SEGD_BENCH_RUNS` times (default
//!   100) after 5 warm-ups: p50, p90, p99, max and p99/p50. The rules are the
//!   five-condition count, the three range conditions of issue 10 and the behavioral
//!   `did "order_completed" at least 3 times in last 30 days`.
//! - `segments:` line — creating the 100 benchmark segments (initial evaluation of each,
//!   timers included), total and per segment.
//! - `and_count:` line — count of A ∧ B over two stored segments, p50/p99.
//!
//! Sizes come from `SEGD_BENCH_PROFILES` (comma list, default `1000000`). Plain `main`
//! (no criterion): the point is the spread of single calls, not a mean.

#[path = "common/segments.rs"]
mod segments;

use segd::bulk::{default_threads, load_demo};
use segd::clock::ManualClock;
use segd::demo::DemoGenerator;
use segd::engine::{Engine, EngineOptions, RuleInput, SetExpression};
use std::time::Instant;

const SEED: u64 = 7;

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|value| value.trim().parse().ok())
        .collect()
}

/// p50/p90/p99/max of `timings_us` as one line.
fn spread(mut timings_us: Vec<f64>) -> String {
    timings_us.sort_by(f64::total_cmp);
    let at =
        |quantile: f64| timings_us[((timings_us.len() - 1) as f64 * quantile).round() as usize];
    format!(
        "p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs, p99/p50 {:.2}",
        at(0.5),
        at(0.9),
        at(0.99),
        timings_us[timings_us.len() - 1],
        at(0.99) / at(0.5)
    )
}

const RULES: [&str; 6] = [
    r#"country = "DE" and age between 25 and 40 and status = "subscribed" and ltv > 300 and push_enabled"#,
    "ltv > 300",
    "age between 25 and 40",
    "signup_at within last 30 days",
    r#"did "order_completed" at least 3 times in last 30 days"#,
    r#"did not "app_opened" in last 14 days"#,
];

fn main() {
    let runs = env_list("SEGD_BENCH_RUNS", "100")
        .first()
        .copied()
        .unwrap_or(100) as usize;
    for profiles in env_list("SEGD_BENCH_PROFILES", "1000000") {
        let generator = DemoGenerator::new(SEED);
        let clock = ManualClock::new(generator.now_ms());
        let engine = Engine::with_clock(EngineOptions::default(), clock);
        let started = Instant::now();
        let report = load_demo(&engine, &generator, profiles, 2, default_threads()).unwrap();
        println!(
            "load: {profiles} profiles, {} events in {:.1} s",
            report.events,
            started.elapsed().as_secs_f64()
        );
        for rule in RULES {
            let mut count = 0;
            for _ in 0..5 {
                count = engine
                    .preview(RuleInput::Text(rule.into()), 10)
                    .unwrap()
                    .count;
            }
            let timings: Vec<f64> = (0..runs)
                .map(|_| {
                    let call = Instant::now();
                    let preview = engine.preview(RuleInput::Text(rule.into()), 10).unwrap();
                    let elapsed = call.elapsed().as_secs_f64() * 1e6;
                    assert_eq!(preview.count, count, "the same rule counts the same");
                    elapsed
                })
                .collect();
            println!(
                "preview: {profiles} profiles, {runs} runs, count {count}: {} — {rule}",
                spread(timings)
            );
        }
        let started = Instant::now();
        segments::create_hundred(&engine, SEED);
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "segments: 100 created at {profiles} profiles in {elapsed:.2} s ({:.1} ms per segment)",
            elapsed * 10.0
        );
        let a = engine.segment_id("vip").unwrap();
        let b = engine.segment_id("reachable_outside_berlin").unwrap();
        let expression =
            SetExpression::And(vec![SetExpression::Segment(a), SetExpression::Segment(b)]);
        let mut count = 0;
        let timings: Vec<f64> = (0..runs.max(100))
            .map(|_| {
                let call = Instant::now();
                count = engine.count_expression(&expression).unwrap();
                call.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        println!(
            "and_count: {profiles} profiles, vip ∧ reachable_outside_berlin = {count}: {}",
            spread(timings)
        );
    }
}
