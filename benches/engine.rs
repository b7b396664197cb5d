//! Engine benches (issue targets in BENCHMARKS.md).
//!
//! What is measured, on seeded demo data (`segd::demo`, seed 42) loaded through the
//! ordinary ingest path into 16 shards:
//! - `five_condition_count/<profiles>`: whole-population count of
//!   `country = "DE" and age between 25 and 40 and status = "subscribed" and ltv > 300 and push_enabled`
//!   (compile + bitmap plan over every shard, both cores);
//! - `stored_and_count/<profiles>`: count(A and B) of two stored segments;
//! - `per_profile_evaluation/<profiles>`: the per-profile evaluator on the same rule,
//!   one profile per iteration (cycling through 4,096 profiles);
//! - `segments_of_profile/1000_segments`: "segments of P" with 1,000 live segments at
//!   100k profiles; p50/p99/p99.9 are also printed from an HDR histogram.
//!
//! Build time and bytes per profile are printed while loading (`load:` lines).
//!
//! Sizes come from `SEGD_BENCH_PROFILES` (comma list, default `1000000,10000000`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use segd::bulk::{default_threads, load_demo};
use segd::demo::DemoGenerator;
use segd::engine::{Engine, EngineOptions, RuleInput, SetExpression};
use segd::ids::ProfileRef;
use segd::segment::ast::{CompareOp, Literal, Rule, Span, TimeUnit};
use std::hint::black_box;
use std::time::Instant;

fn sizes() -> Vec<u64> {
    std::env::var("SEGD_BENCH_PROFILES")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .filter_map(|size| size.trim().parse().ok())
        .collect()
}

fn five_conditions() -> Rule {
    let compare = |name: &str, op, value| Rule::Compare {
        trait_name: name.into(),
        op,
        value,
    };
    Rule::And {
        rules: vec![
            compare("country", CompareOp::Eq, Literal::String("DE".into())),
            Rule::Between {
                trait_name: "age".into(),
                low: Literal::Integer(25),
                high: Literal::Integer(40),
            },
            compare(
                "status",
                CompareOp::Eq,
                Literal::String("subscribed".into()),
            ),
            compare("ltv", CompareOp::Greater, Literal::Integer(300)),
            compare("push_enabled", CompareOp::Eq, Literal::Bool(true)),
        ],
    }
}

fn load(profiles: u64) -> Engine {
    let engine = Engine::new(EngineOptions::default());
    let generator = DemoGenerator::new(42);
    let report =
        load_demo(&engine, &generator, profiles, 0, default_threads()).expect("demo data loads");
    let bytes = engine.memory_bytes();
    println!(
        "load: {profiles} profiles in {:.2?} ({:.0} profiles/s), {:.1} bytes/profile (engine estimate)",
        report.elapsed,
        profiles as f64 / report.elapsed.as_secs_f64(),
        bytes as f64 / profiles as f64
    );
    engine
}

fn bench_population(criterion: &mut Criterion) {
    for profiles in sizes() {
        let engine = load(profiles);
        let rule = five_conditions();
        let expected = engine.count_rule(&rule).unwrap();
        println!("five-condition count at {profiles}: {expected}");
        let mut group = criterion.benchmark_group("five_condition_count");
        group.sample_size(20);
        group.bench_with_input(
            BenchmarkId::from_parameter(profiles),
            &rule,
            |bench, rule| bench.iter(|| black_box(engine.count_rule(rule).unwrap())),
        );
        group.finish();

        let german = engine
            .create_segment(
                "german",
                "",
                Some(RuleInput::Ast(Rule::Compare {
                    trait_name: "country".into(),
                    op: CompareOp::Eq,
                    value: Literal::String("DE".into()),
                })),
            )
            .unwrap();
        let subscribed = engine
            .create_segment(
                "subscribed",
                "",
                Some(RuleInput::Ast(Rule::Compare {
                    trait_name: "status".into(),
                    op: CompareOp::Eq,
                    value: Literal::String("subscribed".into()),
                })),
            )
            .unwrap();
        let expression = SetExpression::And(vec![
            SetExpression::Segment(german.id),
            SetExpression::Segment(subscribed.id),
        ]);
        let mut group = criterion.benchmark_group("stored_and_count");
        group.bench_with_input(
            BenchmarkId::from_parameter(profiles),
            &expression,
            |bench, expression| {
                bench.iter(|| black_box(engine.count_expression(expression).unwrap()))
            },
        );
        group.finish();

        let condition = engine.compile_rule(&rule).unwrap();
        let sample: Vec<ProfileRef> = (0..4_096u64)
            .filter_map(|index| {
                engine.resolve(&format!("user-{}", index * (profiles / 4_096).max(1)))
            })
            .collect();
        assert!(!sample.is_empty(), "demo user ids resolve");
        let mut group = criterion.benchmark_group("per_profile_evaluation");
        group.bench_function(BenchmarkId::from_parameter(profiles), |bench| {
            let mut index = 0;
            bench.iter(|| {
                index = (index + 1) % sample.len();
                black_box(engine.evaluate_profile(&condition, sample[index]))
            })
        });
        group.finish();
    }
}

fn bench_segments_of_profile(criterion: &mut Criterion) {
    let profiles = 100_000;
    let engine = load(profiles);
    let started = Instant::now();
    for index in 0..1_000u32 {
        // A realistic spread: value tests, ranges, relative time and random buckets.
        let rule = match index % 4 {
            0 => Rule::Compare {
                trait_name: "age".into(),
                op: CompareOp::GreaterOrEqual,
                value: Literal::Integer(i64::from(18 + index % 50)),
            },
            1 => Rule::Compare {
                trait_name: "ltv".into(),
                op: CompareOp::Greater,
                value: Literal::Integer(i64::from(index % 1000)),
            },
            2 => Rule::Recent {
                trait_name: "signup_at".into(),
                recency: segd::segment::ast::Recency::WithinLast,
                span: Span {
                    amount: 30 + index % 700,
                    unit: TimeUnit::Days,
                },
            },
            _ => Rule::RandomBucket {
                percent: f64::from(index % 100),
                salt: None,
            },
        };
        engine
            .create_segment(&format!("s{index}"), "", Some(RuleInput::Ast(rule)))
            .unwrap();
    }
    println!(
        "created 1000 segments over {profiles} profiles in {:.2?}",
        started.elapsed()
    );
    let sample: Vec<ProfileRef> = (0..4_096u64)
        .filter_map(|index| engine.resolve(&format!("user-{}", index * 20)))
        .collect();
    let mut segments = Vec::with_capacity(1_000);
    let mut histogram = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let mut total_segments = 0;
    for round in 0..200_000usize {
        let profile = sample[round % sample.len()];
        let started = Instant::now();
        engine.segments_of_profile(profile, &mut segments);
        let elapsed = started.elapsed().as_nanos() as u64;
        total_segments += segments.len();
        histogram.record(elapsed).unwrap();
    }
    println!(
        "segments_of_profile (1000 segments, avg {} per profile): p50 {} ns, p99 {} ns, p99.9 {} ns (includes ~20 ns timer overhead)",
        total_segments / 200_000,
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999)
    );
    let mut group = criterion.benchmark_group("segments_of_profile");
    group.bench_function("1000_segments", |bench| {
        let mut index = 0;
        bench.iter(|| {
            index = (index + 1) % sample.len();
            engine.segments_of_profile(sample[index], &mut segments);
            black_box(segments.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_segments_of_profile, bench_population);
criterion_main!(benches);
