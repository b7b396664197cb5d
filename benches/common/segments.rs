//! The 100 live segments the real-time and read-path benches use: the 14 demo segments
//! plus 86 generated ones mixing trait, behavioral, mixed and segment-of-segment rules.
//! Shared by `benches/realtime.rs` and `benches/readpath.rs` (included with `#[path]`).

use rand::{Rng, SeedableRng};
use segd::demo::demo_segments;
use segd::engine::{Engine, RuleInput};

/// 86 generated rules: a seeded, realistic mix over the demo's traits and events.
pub fn generated_segments(seed: u64) -> Vec<(String, String)> {
    let events = [
        "order_completed",
        "email_opened",
        "email_clicked",
        "app_opened",
        "page",
        "push_opened",
        "review_left",
        "form_submitted",
    ];
    let countries = ["DE", "FR", "US", "GB", "ES", "IT", "NL", "PL"];
    let statuses = ["subscribed", "unconfirmed", "unsubscribed"];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for index in 0..86 {
        let event = events[rng.gen_range(0..events.len())];
        let country = countries[rng.gen_range(0..countries.len())];
        let status = statuses[rng.gen_range(0..statuses.len())];
        let days = rng.gen_range(1..=90);
        let rule = match index % 8 {
            0 => format!(
                r#"did "{event}" at least {} times in last {days} days"#,
                rng.gen_range(1..5)
            ),
            1 => format!(r#"country = "{country}" and did "{event}" in last {days} days"#),
            2 => format!(
                r#"ltv > {} and did not "{event}" in last {days} days"#,
                rng.gen_range(50..800)
            ),
            3 => format!(
                r#"sum of "order_completed".amount in last {days} days >= {}"#,
                rng.gen_range(50..600)
            ),
            4 => format!(r#"last "{event}" more than {days} days ago"#),
            5 => format!(
                r#"age between {} and {} and status = "{status}""#,
                rng.gen_range(18..40),
                rng.gen_range(40..70)
            ),
            6 => format!(
                r#"did "order_completed" where amount > {} in last {days} days and in segment "vip""#,
                rng.gen_range(20..200)
            ),
            _ => format!(
                r#"(status = "{status}" or tags contains "vip") and first "{event}" within last {days} days"#
            ),
        };
        out.push((format!("generated_{index}"), rule));
    }
    out
}

/// Creates the 100 segments (demo first: generated rules reference `vip`).
pub fn create_hundred(engine: &Engine, seed: u64) {
    for (name, rule, description) in demo_segments() {
        engine
            .create_segment(name, description, Some(RuleInput::Text(rule.into())))
            .unwrap();
    }
    for (name, rule) in generated_segments(seed) {
        engine
            .create_segment(&name, "", Some(RuleInput::Text(rule)))
            .unwrap();
    }
}
