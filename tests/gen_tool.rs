//! `segd-gen` end to end: seeded output is byte-identical across runs, every format is
//! accepted by segd's own parsers, and the generated CSV imports without a rejected row.

use segd::engine::{Engine, EngineOptions, RuleInput};
use segd::import::{import_csv, ImportOptions};
use segd::ingest::{parse_batch, parse_message};
use serde_json::Value;
use std::process::Command;

fn generate(arguments: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_segd-gen"))
        .args(arguments)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let arguments = ["profiles", "--count", "5000", "--format", "csv"];
    let first = generate(&arguments);
    assert_eq!(first, generate(&arguments));
    assert_eq!(
        first.lines().count(),
        5_001,
        "header + one line per profile"
    );
    let other = generate(&[
        "--seed", "7", "profiles", "--count", "5000", "--format", "csv",
    ]);
    assert_ne!(first, other);
    let events = ["events", "--count", "300", "--events-per-profile", "10"];
    assert_eq!(generate(&events), generate(&events));
}

#[test]
fn profiles_events_and_batches_parse_as_segment_messages() {
    for line in generate(&["profiles", "--count", "50", "--start", "100"]).lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        parse_message(&value, None, "").unwrap();
        assert_eq!(value["type"], "identify");
    }
    let events = generate(&["events", "--count", "200", "--events-per-profile", "15"]);
    let mut kinds = std::collections::BTreeSet::new();
    let mut previous_time = String::new();
    for line in events.lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        parse_message(&value, None, "").unwrap();
        kinds.insert(
            value
                .get("event")
                .and_then(Value::as_str)
                .unwrap_or("page")
                .to_string(),
        );
        // One block of 200 profiles: ordered by time.
        let time = value["timestamp"].as_str().unwrap().to_string();
        assert!(time >= previous_time, "{time} after {previous_time}");
        previous_time = time;
    }
    for expected in ["email_sent", "email_opened", "order_completed", "page"] {
        assert!(kinds.contains(expected), "no {expected} in {kinds:?}");
    }
    let batches = generate(&["profiles", "--count", "250", "--format", "batch"]);
    let sizes: Vec<usize> = batches
        .lines()
        .map(|line| {
            parse_batch(&serde_json::from_str(line).unwrap())
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(sizes, vec![100, 100, 50]);
}

#[test]
fn the_csv_imports_cleanly_and_the_suite_creates_in_order() {
    let csv = generate(&["profiles", "--count", "2000", "--format", "csv"]);
    let path = std::env::temp_dir().join(format!("segd-gen-test-{}.csv", std::process::id()));
    std::fs::write(&path, csv).unwrap();
    let engine = Engine::new(EngineOptions::default());
    let summary = import_csv(&engine, &path, &ImportOptions::default(), &mut |_| {});
    let _ = std::fs::remove_file(&path);
    let summary = summary.unwrap();
    assert_eq!(summary.profiles_created, 2_000);
    assert_eq!(summary.rejected, 0, "{:?}", summary.rejected_examples);

    let suite: Vec<Value> =
        serde_json::from_str(&generate(&["segments", "--count", "40"])).unwrap();
    assert_eq!(suite.len(), 40);
    for segment in suite {
        let rule = serde_json::from_value(segment["rule"].clone()).unwrap();
        engine
            .create_segment(
                segment["name"].as_str().unwrap(),
                "",
                Some(RuleInput::Ast(rule)),
            )
            .unwrap();
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_segd-gen"))
        .args(["segments", "--count", "10001"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
}
