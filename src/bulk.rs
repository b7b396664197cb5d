//! Bulk loading: many profiles (and their events) into an engine from every core.
//!
//! Used by the demo, the benches and `segd import`. Profiles are spread over worker
//! threads by index; each message goes through the ordinary engine path (validation,
//! identity, columns, incremental segments), so a bulk load and live ingest give the
//! same state.

use crate::demo::{DemoEvent, DemoGenerator, DemoProfile, STATUS_WEIGHTS, TAGS};
use crate::engine::{Engine, EngineError};
use crate::segment::ast::{
    AggregateFunction, CompareOp, CountOp, Literal, Performed, Recency, Rule, Span, TextOp,
    TimeUnit, Window,
};
use crate::store::value::TraitType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a load did.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub profiles: u64,
    pub events: u64,
    pub elapsed: Duration,
}

/// Loads `count` demo profiles (indexes `0..count`) and `events_per_profile` events
/// each (scaled by the profile's activity weight, capped), using `threads` workers.
pub fn load_demo(
    engine: &Engine,
    generator: &DemoGenerator,
    count: u64,
    events_per_profile: usize,
    threads: usize,
) -> Result<LoadReport, EngineError> {
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let events_loaded = AtomicU64::new(0);
    const CHUNK: u64 = 1_024;
    let threads = threads.max(1);
    let progress = crate::progress::phase(
        "loading demo profiles",
        Some(count),
        crate::progress::Unit::Items,
    );
    let results: Vec<Result<(), EngineError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<(), EngineError> {
                    loop {
                        let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                        if start >= count {
                            return Ok(());
                        }
                        for index in start..(start + CHUNK).min(count) {
                            let profile = generator.profile(index);
                            engine.identify(
                                Some(&profile.user_id),
                                Some(&profile.anonymous_id),
                                &profile.traits,
                            )?;
                            if events_per_profile > 0 {
                                let wanted = events_wanted(generator, index, events_per_profile);
                                for event in generator.events(index, wanted) {
                                    engine.track(
                                        Some(&profile.user_id),
                                        None,
                                        &event.event,
                                        event.time_ms,
                                        &event.properties,
                                    )?;
                                }
                                events_loaded.fetch_add(wanted as u64, Ordering::Relaxed);
                            }
                        }
                        progress.inc((start + CHUNK).min(count) - start);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap_or(Ok(())))
            .collect()
    });
    for result in results {
        result?;
    }
    // Queries right after a load answer from fresh range indexes, not stale ones.
    engine.maintain_range_indexes();
    Ok(LoadReport {
        profiles: count,
        events: events_loaded.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

/// Worker threads to use by default: the machine's cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Mean events per profile scaled by the profile's Zipf-like activity weight, capped at
/// 20 times the mean so one profile never dominates a load.
pub fn events_wanted(generator: &DemoGenerator, index: u64, events_per_profile: usize) -> usize {
    if events_per_profile == 0 {
        return 0;
    }
    ((events_per_profile as f64) * generator.activity_weight(index))
        .round()
        .clamp(0.0, (events_per_profile * 20) as f64) as usize
}

// ---------------------------------------------------------------------------------------
// Generated data formats, shared by `segd-gen`, `segd-lab`, the import tests and the
// side-by-side runner, so every system sees the same profiles.

/// The 16 traits of the CSV profile format, with their types (written into the header
/// as `name:type`, see `import`).
pub const CSV_TRAITS: [(&str, TraitType); 16] = [
    ("email", TraitType::String),
    ("first_name", TraitType::String),
    ("last_name", TraitType::String),
    ("gender", TraitType::String),
    ("age", TraitType::Integer),
    ("city", TraitType::String),
    ("country", TraitType::String),
    ("status", TraitType::String),
    ("test_subscriber", TraitType::Boolean),
    ("push_enabled", TraitType::Boolean),
    ("ltv", TraitType::Float),
    ("orders_count", TraitType::Integer),
    ("signup_at", TraitType::Timestamp),
    ("device_type", TraitType::String),
    ("utm_source", TraitType::String),
    ("tags", TraitType::List),
];

/// Separator of list items inside one CSV cell (`vip|loyalty`).
pub const CSV_LIST_SEPARATOR: char = '|';

/// The header type name of a trait type in the CSV format.
pub fn csv_type_name(trait_type: TraitType) -> &'static str {
    match trait_type {
        TraitType::String => "string",
        TraitType::Integer => "integer",
        TraitType::Float => "float",
        TraitType::Boolean => "boolean",
        TraitType::Timestamp => "timestamp",
        TraitType::List => "list",
    }
}

/// The CSV header line (without newline): `user_id,anonymous_id,email:string,...`.
pub fn csv_header() -> String {
    let mut header = String::from("user_id,anonymous_id");
    for (name, trait_type) in CSV_TRAITS {
        header.push(',');
        header.push_str(name);
        header.push(':');
        header.push_str(csv_type_name(trait_type));
    }
    header
}

fn push_csv_cell(line: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&text.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(text);
    }
}

/// One CSV line (without newline) for a generated profile; absent traits are empty
/// cells.
pub fn csv_row(profile: &DemoProfile, line: &mut String) {
    push_csv_cell(line, &profile.user_id);
    line.push(',');
    push_csv_cell(line, &profile.anonymous_id);
    for (name, _) in CSV_TRAITS {
        line.push(',');
        match profile.traits.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => push_csv_cell(line, text),
            Some(Value::Array(items)) => {
                let joined: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                push_csv_cell(line, &joined.join(&CSV_LIST_SEPARATOR.to_string()));
            }
            Some(other) => push_csv_cell(line, &other.to_string()),
        }
    }
}

/// A `timestamp` field value for generated messages.
fn message_time(time_ms: i64) -> Value {
    Value::String(crate::store::value::format_timestamp(time_ms))
}

/// The profile as a Segment `identify` message (sent at the generator's `now`).
pub fn identify_message(generator: &DemoGenerator, index: u64, profile: DemoProfile) -> Value {
    json!({
        "type": "identify",
        "messageId": format!("gen-{}-p-{index}", generator.seed()),
        "userId": profile.user_id,
        "anonymousId": profile.anonymous_id,
        "timestamp": message_time(generator.now_ms()),
        "traits": Value::Object(profile.traits),
    })
}

/// A generated event as a Segment `track` message (or `page` for page views).
pub fn event_message(
    generator: &DemoGenerator,
    index: u64,
    number: usize,
    event: DemoEvent,
) -> Value {
    let message_id = format!("gen-{}-e-{index}-{number}", generator.seed());
    let user_id = format!("user-{index}");
    if event.event == "page" {
        json!({
            "type": "page",
            "messageId": message_id,
            "userId": user_id,
            "timestamp": message_time(event.time_ms),
            "properties": Value::Object(event.properties),
        })
    } else {
        json!({
            "type": "track",
            "messageId": message_id,
            "userId": user_id,
            "event": event.event,
            "timestamp": message_time(event.time_ms),
            "properties": Value::Object(event.properties),
        })
    }
}

/// The kinds of rule in a generated segment suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuiteKind {
    TraitOnly,
    Behavioral,
    Mixed,
    SegmentOfSegment,
}

/// One generated segment: the body of `POST /v1/segments` (rule as the JSON AST).
#[derive(Clone, Debug, Serialize)]
pub struct SuiteSegment {
    pub name: String,
    pub kind: SuiteKind,
    pub rule: Rule,
}

/// A seeded suite of `count` segments over the demo data's traits and events: about
/// 40 % trait-only, 25 % behavioral, 20 % mixed and 15 % segment-of-segment (these
/// reference earlier segments only, so the suite is a DAG and can be created in order).
pub fn segment_suite(seed: u64, count: usize) -> Vec<SuiteSegment> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0005_e9d5_u64);
    let mut suite: Vec<SuiteSegment> = Vec::with_capacity(count);
    for number in 0..count {
        let roll = rng.gen_range(0..100);
        let kind = match roll {
            0..=39 => SuiteKind::TraitOnly,
            40..=64 => SuiteKind::Behavioral,
            65..=84 => SuiteKind::Mixed,
            _ if suite.len() >= 2 => SuiteKind::SegmentOfSegment,
            _ => SuiteKind::TraitOnly,
        };
        let rule = match kind {
            SuiteKind::TraitOnly => and_of(vec![trait_rule(&mut rng), trait_rule(&mut rng)]),
            SuiteKind::Behavioral => behavior_rule(&mut rng),
            SuiteKind::Mixed => and_of(vec![trait_rule(&mut rng), behavior_rule(&mut rng)]),
            SuiteKind::SegmentOfSegment => {
                let first = rng.gen_range(0..suite.len());
                let mut second = rng.gen_range(0..suite.len());
                if second == first {
                    second = (first + 1) % suite.len();
                }
                and_of(vec![
                    Rule::InSegment {
                        segment: suite[first].name.clone(),
                    },
                    Rule::Not {
                        rule: Box::new(Rule::InSegment {
                            segment: suite[second].name.clone(),
                        }),
                    },
                ])
            }
        };
        let kind_name = match kind {
            SuiteKind::TraitOnly => "traits",
            SuiteKind::Behavioral => "behavior",
            SuiteKind::Mixed => "mixed",
            SuiteKind::SegmentOfSegment => "nested",
        };
        suite.push(SuiteSegment {
            name: format!("{kind_name}_{number}"),
            kind,
            rule,
        });
    }
    suite
}

fn and_of(rules: Vec<Rule>) -> Rule {
    Rule::And { rules }
}

fn string_literal(text: &str) -> Literal {
    Literal::String(text.to_string())
}

fn days(amount: u32) -> Span {
    Span {
        amount,
        unit: TimeUnit::Days,
    }
}

const SUITE_COUNTRIES: &[&str] = &["DE", "US", "FR", "GB", "ES", "IT", "NL", "PL", "AT"];
const SUITE_DEVICES: &[&str] = &["mobile", "desktop", "tablet"];

fn trait_rule(rng: &mut ChaCha8Rng) -> Rule {
    let compare = |name: &str, op, value| Rule::Compare {
        trait_name: name.into(),
        op,
        value,
    };
    match rng.gen_range(0..9) {
        0 => compare(
            "country",
            CompareOp::Eq,
            string_literal(SUITE_COUNTRIES[rng.gen_range(0..SUITE_COUNTRIES.len())]),
        ),
        1 => compare(
            "status",
            CompareOp::Eq,
            string_literal(STATUS_WEIGHTS[rng.gen_range(0..STATUS_WEIGHTS.len())].0),
        ),
        2 => {
            let low = rng.gen_range(18..60);
            Rule::Between {
                trait_name: "age".into(),
                low: Literal::Integer(low),
                high: Literal::Integer(low + rng.gen_range(5..20)),
            }
        }
        3 => compare(
            "ltv",
            CompareOp::Greater,
            Literal::Integer(rng.gen_range(1..20) * 50),
        ),
        4 => Rule::Text {
            trait_name: "tags".into(),
            op: TextOp::Contains,
            value: TAGS[rng.gen_range(0..TAGS.len())].0.into(),
        },
        5 => Rule::In {
            trait_name: "device_type".into(),
            values: vec![string_literal(
                SUITE_DEVICES[rng.gen_range(0..SUITE_DEVICES.len())],
            )],
            negated: rng.gen_bool(0.3),
        },
        6 => Rule::Recent {
            trait_name: "signup_at".into(),
            recency: Recency::WithinLast,
            span: days(rng.gen_range(7..365)),
        },
        7 => compare("push_enabled", CompareOp::Eq, Literal::Bool(true)),
        _ => Rule::Not {
            rule: Box::new(Rule::Has {
                trait_name: "phone".into(),
            }),
        },
    }
}

fn behavior_rule(rng: &mut ChaCha8Rng) -> Rule {
    match rng.gen_range(0..5) {
        0 => Rule::EventCount {
            event: "order_completed".into(),
            filter: None,
            count_op: CountOp::AtLeast,
            count: rng.gen_range(1..5),
            window: Window::Last {
                span: days(rng.gen_range(7..90)),
            },
        },
        1 => Rule::EventCount {
            event: "app_opened".into(),
            filter: None,
            count_op: CountOp::Exactly,
            count: 0,
            window: Window::Last {
                span: days(rng.gen_range(7..60)),
            },
        },
        2 => Rule::Performed {
            event: "email_opened".into(),
            which: Performed::Last,
            recency: Recency::MoreThanAgo,
            span: days(rng.gen_range(14..90)),
        },
        3 => Rule::Aggregate {
            function: AggregateFunction::Sum,
            event: "order_completed".into(),
            property: "amount".into(),
            filter: None,
            window: Window::Last {
                span: days(rng.gen_range(30..90)),
            },
            op: CompareOp::GreaterOrEqual,
            value: f64::from(rng.gen_range(1..20) * 50),
        },
        _ => Rule::EventCount {
            event: "email_clicked".into(),
            filter: Some(Box::new(Rule::Compare {
                trait_name: "campaign".into(),
                op: CompareOp::Eq,
                value: string_literal("black_friday"),
            })),
            count_op: CountOp::AtLeast,
            count: 1,
            window: Window::Last {
                span: days(rng.gen_range(14..90)),
            },
        },
    }
}

/// The ad-hoc audience of the side-by-side comparison (five conditions):
/// `country = "DE" and age between 25 and 40 and status = "subscribed" and ltv > 300
/// and push_enabled`.
pub fn five_condition_rule() -> Rule {
    and_of(vec![
        Rule::Compare {
            trait_name: "country".into(),
            op: CompareOp::Eq,
            value: string_literal("DE"),
        },
        Rule::Between {
            trait_name: "age".into(),
            low: Literal::Integer(25),
            high: Literal::Integer(40),
        },
        Rule::Compare {
            trait_name: "status".into(),
            op: CompareOp::Eq,
            value: string_literal("subscribed"),
        },
        Rule::Compare {
            trait_name: "ltv".into(),
            op: CompareOp::Greater,
            value: Literal::Integer(300),
        },
        Rule::Compare {
            trait_name: "push_enabled".into(),
            op: CompareOp::Eq,
            value: Literal::Bool(true),
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineOptions, RuleInput};

    /// Number of fields in a CSV line, honouring quotes.
    fn field_count(line: &str) -> usize {
        let mut fields = 1;
        let mut quoted = false;
        for character in line.chars() {
            match character {
                '"' => quoted = !quoted,
                ',' if !quoted => fields += 1,
                _ => {}
            }
        }
        fields
    }

    #[test]
    fn csv_rows_have_one_cell_per_header_column() {
        let generator = DemoGenerator::new(7);
        let columns = field_count(&csv_header());
        assert_eq!(columns, 2 + CSV_TRAITS.len());
        let mut line = String::new();
        for index in 0..500 {
            line.clear();
            csv_row(&generator.profile(index), &mut line);
            assert_eq!(field_count(&line), columns, "row {index}: {line}");
            assert!(line.starts_with(&format!("user-{index},")));
        }
    }

    #[test]
    fn quoting_doubles_quotes_and_wraps_commas() {
        let mut line = String::new();
        push_csv_cell(&mut line, "a,\"b\"");
        assert_eq!(line, "\"a,\"\"b\"\"\"");
    }

    #[test]
    fn segment_suite_is_seeded_mixed_and_acyclic() {
        let suite = segment_suite(3, 300);
        assert_eq!(suite.len(), 300);
        let again = segment_suite(3, 300);
        assert!(suite.iter().zip(&again).all(|(a, b)| a.rule == b.rule));
        assert_ne!(
            serde_json::to_string(&segment_suite(4, 50)[..]).unwrap(),
            serde_json::to_string(&suite[..50]).unwrap()
        );
        for kind in [
            SuiteKind::TraitOnly,
            SuiteKind::Behavioral,
            SuiteKind::Mixed,
            SuiteKind::SegmentOfSegment,
        ] {
            let share = suite.iter().filter(|s| s.kind == kind).count();
            assert!(share >= 20, "{kind:?} has only {share} of 300");
        }
        for (position, segment) in suite.iter().enumerate() {
            segment.rule.walk(&mut |node| {
                if let Rule::InSegment { segment: name } = node {
                    let target = suite.iter().position(|s| &s.name == name);
                    assert!(target.is_some_and(|t| t < position), "{name} not earlier");
                }
            });
        }
    }

    #[test]
    fn segment_suite_creates_in_an_engine_with_demo_data() {
        let engine = Engine::new(EngineOptions {
            shards: 4,
            ..EngineOptions::default()
        });
        load_demo(&engine, &DemoGenerator::new(1), 300, 0, 2).unwrap();
        for segment in segment_suite(9, 60) {
            engine
                .create_segment(&segment.name, "", Some(RuleInput::Ast(segment.rule)))
                .unwrap_or_else(|error| panic!("{}: {error}", segment.name));
        }
        assert_eq!(engine.list_segments().len(), 60);
    }

    #[test]
    fn five_condition_rule_counts_like_a_direct_filter() {
        let engine = Engine::new(EngineOptions::default());
        let generator = DemoGenerator::new(5);
        load_demo(&engine, &generator, 3_000, 0, 2).unwrap();
        let expected = (0..3_000)
            .filter(|&index| {
                let traits = generator.profile(index).traits;
                let age = traits["age"].as_i64().unwrap();
                traits["country"] == "DE"
                    && (25..=40).contains(&age)
                    && traits["status"] == "subscribed"
                    && traits["ltv"].as_f64().unwrap() > 300.0
                    && traits["push_enabled"] == true
            })
            .count() as u64;
        assert!(expected > 0);
        assert_eq!(engine.count_rule(&five_condition_rule()).unwrap(), expected);
    }

    #[test]
    fn messages_carry_ids_types_and_times() {
        let generator = DemoGenerator::new(2);
        let identify = identify_message(&generator, 5, generator.profile(5));
        assert_eq!(identify["type"], "identify");
        assert_eq!(identify["userId"], "user-5");
        assert_eq!(identify["messageId"], "gen-2-p-5");
        let events = generator.events(5, 40);
        let kinds: Vec<Value> = events
            .into_iter()
            .enumerate()
            .map(|(number, event)| event_message(&generator, 5, number, event)["type"].clone())
            .collect();
        assert!(kinds.iter().all(|kind| kind == "track" || kind == "page"));
        let parsed = crate::ingest::parse_batch(&json!({ "batch": [identify] })).unwrap();
        assert_eq!(parsed.len(), 1);
    }
}
