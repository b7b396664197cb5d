//! segd-lab: builds an engine in-process from a profile CSV (the same file the
//! side-by-side runner loads into DuckDB and Redis), times the comparison workloads
//! with many repetitions, and prints one JSON object with answers and medians.
//!
//! ```text
//! segd-lab --csv profiles.csv --repetitions 200
//! ```
//!
//! Workloads (answers are printed so the runner can check every system agrees):
//! - `import`: `segd::import::import_csv` of the file (profiles/s);
//! - `five_condition_count`: ad-hoc count of `segd::bulk::five_condition_rule()`
//!   (compile + bitmap plan over every shard);
//! - `and_count`: count of A ∧ B over two stored segments, A = `country = "DE"`,
//!   B = `status = "subscribed"`;
//! - `is_member`: in-process membership lookups of A for rotating profiles;
//! - `membership_sample`: whether `user-0` .. `user-49` are in A (for checking Redis).
//!
//! `--identify-profiles N` instead loads N generated profiles through the per-message
//! `identify` path, and `--ndjson FILE` times `import_ndjson`: the references for the
//! import figures in BENCHMARKS.md.

use clap::Parser;
use segd::bulk::five_condition_rule;
use segd::engine::{Engine, EngineOptions, RuleInput, SetExpression};
use segd::import::{import_csv, ImportOptions};
use segd::segment::ast::{CompareOp, Literal, Rule};
use serde_json::json;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Most repetitions of one workload (bounds the run time).
const MAX_REPETITIONS: usize = 100_000;
/// Profiles whose membership in A is printed for cross-checking.
const MEMBERSHIP_SAMPLE: u64 = 50;
/// Lookups timed per repetition of `is_member` (one is too short to time alone).
const LOOKUPS_PER_REPETITION: u64 = 1_000;

#[derive(Parser)]
#[command(name = "segd-lab", about = "Times segd workloads on a profile CSV")]
struct Arguments {
    /// Profile CSV (as written by `segd-gen profiles --format csv`).
    #[arg(long, required_unless_present_any = ["identify_profiles", "ndjson"])]
    csv: Option<PathBuf>,
    /// Timed repetitions per workload (after warm-up); the median is reported.
    #[arg(long, default_value_t = 200)]
    repetitions: usize,
    #[arg(long, default_value_t = 16)]
    shards: usize,
    /// Worker threads for the import (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Instead of importing the CSV, load this many profiles of the same generator
    /// (seed 42, every demo trait) through the ordinary per-message `identify` path:
    /// the reference for the import's speed and for the workloads on a fully typed
    /// store.
    #[arg(long)]
    identify_profiles: Option<u64>,
    /// Import read chunk in MiB (default: the library's).
    #[arg(long)]
    chunk_mib: Option<usize>,
    /// Instead of the CSV, time `import_ndjson` of this file of Segment messages (e.g.
    /// `segd-gen profiles --format ndjson` or `segd-gen events`).
    #[arg(long)]
    ndjson: Option<PathBuf>,
}

/// Median, 10th and 90th percentile of timings, keys suffixed with `unit`.
fn summarize(mut timings: Vec<f64>, unit: &str) -> serde_json::Value {
    timings.sort_by(f64::total_cmp);
    let at = |quantile: f64| timings[((timings.len() - 1) as f64 * quantile).round() as usize];
    json!({
        format!("median_{unit}"): at(0.5),
        format!("p10_{unit}"): at(0.1),
        format!("p90_{unit}"): at(0.9),
        "repetitions": timings.len(),
    })
}

/// Times `work` `repetitions` times after a short warm-up.
fn time_it(repetitions: usize, mut work: impl FnMut()) -> Vec<f64> {
    for _ in 0..repetitions.min(10) {
        work();
    }
    (0..repetitions)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// CPU time of this process so far (user + system), in ms; 0 where unknown.
fn process_cpu_ms() -> u64 {
    segd::http::metrics::process::cpu_time_ms().unwrap_or(0)
}

/// Answer and timing of the ad-hoc five-condition count.
fn five_condition_timing(engine: &Engine, repetitions: usize) -> serde_json::Value {
    let rule = five_condition_rule();
    let answer = engine.count_rule(&rule).unwrap_or_default();
    let timings = time_it(repetitions, || {
        black_box(engine.count_rule(black_box(&rule)).unwrap_or_default());
    });
    json!({"answer": answer, "timing": summarize(timings, "us")})
}

fn compare(name: &str, value: &str) -> Rule {
    Rule::Compare {
        trait_name: name.into(),
        op: CompareOp::Eq,
        value: Literal::String(value.into()),
    }
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    if arguments.repetitions == 0 || arguments.repetitions > MAX_REPETITIONS {
        eprintln!("segd-lab: --repetitions must be 1 to {MAX_REPETITIONS}");
        return ExitCode::from(2);
    }
    let engine = Engine::new(EngineOptions {
        shards: arguments.shards,
        ..EngineOptions::default()
    });
    let options = ImportOptions {
        threads: arguments
            .threads
            .unwrap_or_else(segd::bulk::default_threads),
        chunk_bytes: arguments
            .chunk_mib
            .map_or(segd::import::DEFAULT_CHUNK_BYTES, |mib| mib << 20),
        ..ImportOptions::default()
    };
    let cpu_before = process_cpu_ms();
    if let Some(count) = arguments.identify_profiles {
        let generator = segd::demo::DemoGenerator::new(42);
        let report = match segd::bulk::load_demo(&engine, &generator, count, 0, options.threads) {
            Ok(report) => report,
            Err(error) => {
                eprintln!("segd-lab: identify load failed: {error}");
                return ExitCode::from(1);
            }
        };
        let cpu_ms = process_cpu_ms().saturating_sub(cpu_before);
        println!(
            "{}",
            json!({
                "identify_load": {
                    "profiles": count,
                    "elapsed_ms": report.elapsed.as_millis() as u64,
                    "cpu_ms": cpu_ms,
                    "profiles_per_second": count as f64 / report.elapsed.as_secs_f64().max(1e-9),
                },
                "five_condition_count": five_condition_timing(&engine, arguments.repetitions),
            })
        );
        return ExitCode::SUCCESS;
    }
    if let Some(path) = &arguments.ndjson {
        return match segd::import::import_ndjson(&engine, path, &options, &mut |_| {}) {
            Ok(summary) => {
                let cpu_ms = process_cpu_ms().saturating_sub(cpu_before);
                println!(
                    "{}",
                    json!({"ndjson_import": summary, "cpu_ms": cpu_ms, "profiles": engine.profile_count()})
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("segd-lab: import failed ({}): {error}", error.code());
                ExitCode::from(1)
            }
        };
    }
    let Some(csv) = &arguments.csv else {
        eprintln!("segd-lab: --csv is required");
        return ExitCode::from(2);
    };
    let summary = match import_csv(&engine, csv, &options, &mut |progress| {
        eprintln!(
            "segd-lab: imported {} rows ({:.0} %)",
            progress.rows,
            100.0 * progress.bytes_read as f64 / progress.total_bytes.max(1) as f64
        )
    }) {
        Ok(summary) => summary,
        Err(error) => {
            eprintln!("segd-lab: import failed ({}): {error}", error.code());
            return ExitCode::from(1);
        }
    };
    if summary.rejected > 0 {
        eprintln!(
            "segd-lab: {} rows rejected, e.g. {:?}",
            summary.rejected,
            summary.rejected_examples.first()
        );
        return ExitCode::from(1);
    }
    let cpu_ms = process_cpu_ms().saturating_sub(cpu_before);
    let profiles = engine.profile_count();
    let repetitions = arguments.repetitions;

    let rule = five_condition_rule();
    let Ok(five_answer) = engine.count_rule(&rule) else {
        eprintln!("segd-lab: the five-condition rule does not compile against this file");
        return ExitCode::from(1);
    };
    let five = time_it(repetitions, || {
        black_box(engine.count_rule(black_box(&rule)).unwrap_or_default());
    });

    let segments = [
        ("lab_a", compare("country", "DE")),
        ("lab_b", compare("status", "subscribed")),
    ];
    let mut ids = Vec::new();
    for (name, rule) in segments {
        match engine.create_segment(name, "", Some(RuleInput::Ast(rule))) {
            Ok(summary) => ids.push(summary.id),
            Err(error) => {
                eprintln!("segd-lab: creating {name} failed: {error}");
                return ExitCode::from(1);
            }
        }
    }
    let expression = SetExpression::And(vec![
        SetExpression::Segment(ids[0]),
        SetExpression::Segment(ids[1]),
    ]);
    let and_answer = engine.count_expression(&expression).unwrap_or_default();
    let and = time_it(repetitions, || {
        black_box(
            engine
                .count_expression(black_box(&expression))
                .unwrap_or_default(),
        );
    });

    let mut next_profile = 0u64;
    let lookups = time_it(repetitions, || {
        for _ in 0..LOOKUPS_PER_REPETITION {
            let user = format!("user-{}", next_profile % profiles.max(1));
            next_profile += 7_919;
            black_box(engine.is_member(ids[0], &user).unwrap_or_default());
        }
    });
    let lookup_ns: Vec<f64> = lookups
        .iter()
        .map(|micros| micros * 1e3 / LOOKUPS_PER_REPETITION as f64)
        .collect();
    let sample: Vec<serde_json::Value> = (0..MEMBERSHIP_SAMPLE.min(profiles))
        .map(|index| {
            let user = format!("user-{index}");
            json!([user, engine.is_member(ids[0], &user).unwrap_or_default()])
        })
        .collect();

    let report = json!({
        "profiles": profiles,
        "shards": arguments.shards,
        "import": {
            "rows": summary.rows,
            "elapsed_ms": summary.elapsed_ms,
            "read_ms": summary.read_ms,
            "parse_ms": summary.parse_ms,
            "apply_ms": summary.apply_ms,
            "evaluate_ms": summary.evaluate_ms,
            "cpu_ms": cpu_ms,
            "profiles_per_second": summary.rows_per_second,
        },
        "memory_bytes_per_profile": engine.memory_bytes() as f64 / profiles.max(1) as f64,
        "five_condition_count": {"answer": five_answer, "timing": summarize(five, "us")},
        "segment_a_count": engine.count(ids[0]),
        "segment_b_count": engine.count(ids[1]),
        "and_count": {"answer": and_answer, "timing": summarize(and, "us")},
        "is_member": summarize(lookup_ns, "ns"),
        "membership_sample": sample,
    });
    println!("{report}");
    ExitCode::SUCCESS
}
