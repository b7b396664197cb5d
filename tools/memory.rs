//! segd-memory: loads N seeded demo profiles (default 1,000,000), each with E demo
//! events (default 0), into an engine with 100 live segments and prints bytes per
//! profile by component, bytes per stored event by structure, and the process's
//! resident memory, so the memory targets in BENCHMARKS.md can be checked.
//!
//! Usage: `cargo run --release --bin segd-memory -- [profiles] [segments] [events per profile]`

use segd::bulk::{default_threads, load_demo};
use segd::demo::DemoGenerator;
use segd::engine::{Engine, EngineOptions, RuleInput};
use segd::segment::ast::{CompareOp, Literal, Rule};
use std::time::Instant;

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let profiles: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let segments: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let events_per_profile: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let before = resident_bytes().unwrap_or(0);
    let engine = Engine::new(EngineOptions::default());
    let started = Instant::now();
    if let Err(error) = load_demo(
        &engine,
        &DemoGenerator::with_now_ms(42, engine.now_ms()),
        profiles,
        events_per_profile,
        default_threads(),
    ) {
        eprintln!("loading failed: {error}");
        std::process::exit(1);
    }
    let loaded = started.elapsed();
    for index in 0..segments {
        let rule = Rule::Compare {
            trait_name: "age".into(),
            op: CompareOp::GreaterOrEqual,
            value: Literal::Integer(i64::from(18 + index % 60)),
        };
        if let Err(error) =
            engine.create_segment(&format!("segment{index}"), "", Some(RuleInput::Ast(rule)))
        {
            eprintln!("segment failed: {error}");
            std::process::exit(1);
        }
    }
    let mut report = engine.memory_report();
    report.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
    println!("{profiles} profiles loaded in {loaded:.2?}; {segments} segments");
    let total: usize = report.iter().map(|(_, bytes)| bytes).sum();
    for (name, bytes) in &report {
        println!("{:>9.1} B/profile  {name}", *bytes as f64 / profiles as f64);
    }
    println!(
        "{:>9.1} B/profile  total (engine estimate)",
        total as f64 / profiles as f64
    );
    let (stored_events, _) = engine.event_memory();
    if stored_events > 0 {
        let breakdown = engine.event_memory_breakdown();
        println!("{stored_events} stored events (within retention)");
        let mut total = 0;
        for (name, bytes) in breakdown.rows() {
            total += bytes;
            println!(
                "{:>9.1} B/event    {name}",
                bytes as f64 / stored_events as f64
            );
        }
        println!(
            "{:>9.1} B/event    total event store (not in the profile total above)",
            total as f64 / stored_events as f64
        );
    }
    if let Some(after) = resident_bytes() {
        println!(
            "{:>9.1} B/profile  resident set growth (process RSS)",
            after.saturating_sub(before) as f64 / profiles as f64
        );
    }
}
