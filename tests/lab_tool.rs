//! `segd-lab` end to end on a small generated CSV: its answers agree with a direct
//! filter over the same generated profiles, and its limits are enforced.

use segd::bulk::{csv_header, csv_row};
use segd::demo::DemoGenerator;
use serde_json::Value;
use std::process::Command;

#[test]
fn answers_match_a_direct_filter_and_timings_are_reported() {
    let generator = DemoGenerator::new(42);
    let mut text = csv_header();
    text.push('\n');
    let mut five = 0;
    let mut german = 0;
    let mut german_subscribed = 0;
    for index in 0..3_000 {
        let profile = generator.profile(index);
        csv_row(&profile, &mut text);
        text.push('\n');
        let traits = &profile.traits;
        let age = traits["age"].as_i64().unwrap();
        let de = traits["country"] == "DE";
        let subscribed = traits["status"] == "subscribed";
        german += u64::from(de);
        german_subscribed += u64::from(de && subscribed);
        five += u64::from(
            de && subscribed
                && (25..=40).contains(&age)
                && traits["ltv"].as_f64().unwrap() > 300.0
                && traits["push_enabled"] == true,
        );
    }
    let path = std::env::temp_dir().join(format!("segd-lab-test-{}.csv", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_segd-lab"))
        .args(["--csv", path.to_str().unwrap(), "--repetitions", "5"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["profiles"], 3_000);
    assert_eq!(report["import"]["rows"], 3_000);
    assert_eq!(report["five_condition_count"]["answer"], five);
    assert_eq!(report["segment_a_count"], german);
    assert_eq!(report["and_count"]["answer"], german_subscribed);
    assert_eq!(report["five_condition_count"]["timing"]["repetitions"], 5);
    let median = report["and_count"]["timing"]["median_us"].as_f64().unwrap();
    assert!(median > 0.0);
    let sample = report["membership_sample"].as_array().unwrap();
    assert_eq!(sample.len(), 50);
    for pair in sample {
        let index: u64 = pair[0].as_str().unwrap()["user-".len()..].parse().unwrap();
        assert_eq!(
            pair[1] == true,
            generator.profile(index).traits["country"] == "DE"
        );
    }
}

#[test]
fn repetitions_are_bounded() {
    for repetitions in ["0", "100001"] {
        let output = Command::new(env!("CARGO_BIN_EXE_segd-lab"))
            .args(["--csv", "/nonexistent.csv", "--repetitions", repetitions])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&output.stderr).contains("--repetitions"));
    }
}
