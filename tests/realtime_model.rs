//! Real-time maintenance checked against from-scratch evaluation and a naive model.
//!
//! 1. `incremental_membership_matches_full_evaluation` (the model test of issue 3):
//!    random streams of identify / track / page / alias / delete / rule edits with the
//!    injected clock moving forward. At random checkpoints (after `tick`), every
//!    segment's incrementally maintained membership must equal a from-scratch bitmap
//!    evaluation of its rule over the current data (segments checked in creation order,
//!    so `in segment` reads memberships already verified), the per-profile evaluator
//!    must agree, and the change log replayed from empty must reproduce the current
//!    membership exactly.
//! 2. `behavioral_plan_per_profile_and_reference_agree`: behavioral and trait rules on
//!    random event histories (late, out-of-order, future-dated and already-expired
//!    events, properties of mixed types, expiry by `tick`); bitmap plan (which narrows
//!    candidates with the per-event-name day and count-level indexes) == per-profile
//!    (which reads events directly) == the naive reference evaluator.
//!
//! Seeded by proptest; no timing assertions.

use proptest::prelude::*;
use segd::changes::{ChangeKind, ChangeLogOptions};
use segd::clock::{Clock, ManualClock};
use segd::engine::{Engine, EngineOptions, RuleInput};
use segd::events::{prepare_properties, EventProperty};
use segd::ids::SegmentId;
use segd::segment::ast::{
    AggregateFunction, CompareOp, CountOp, Literal, Performed, Recency, Rule, Span, TimeUnit,
    Window,
};
use segd::segment::reference::{self, ReferenceEvent, ReferenceProfile, SegmentOracle};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;
const RETENTION_DAYS: u32 = 30;
const EVENTS: [&str; 3] = ["order_completed", "email_opened", "page_viewed"];
const KINDS: [&str; 3] = ["web", "app", "store"];

fn span() -> impl Strategy<Value = Span> {
    prop_oneof![
        (1u32..=RETENTION_DAYS).prop_map(|amount| Span {
            amount,
            unit: TimeUnit::Days
        }),
        (1u32..=72).prop_map(|amount| Span {
            amount,
            unit: TimeUnit::Hours
        }),
        (1u32..=600).prop_map(|amount| Span {
            amount,
            unit: TimeUnit::Minutes
        }),
    ]
}

fn window() -> impl Strategy<Value = Window> {
    span().prop_map(|span| Window::Last { span })
}

fn compare_op() -> impl Strategy<Value = CompareOp> {
    prop_oneof![
        Just(CompareOp::Eq),
        Just(CompareOp::NotEq),
        Just(CompareOp::Less),
        Just(CompareOp::LessOrEqual),
        Just(CompareOp::Greater),
        Just(CompareOp::GreaterOrEqual),
    ]
}

fn property_filter() -> impl Strategy<Value = Rule> {
    let leaf = prop_oneof![
        (compare_op(), -5i64..60).prop_map(|(op, value)| Rule::Compare {
            trait_name: "amount".into(),
            op,
            value: Literal::Integer(value),
        }),
        (compare_op(), -5.0f64..60.0).prop_map(|(op, value)| Rule::Compare {
            trait_name: "amount".into(),
            op,
            value: Literal::Float((value * 4.0).round() / 4.0),
        }),
        proptest::sample::subsequence(KINDS.to_vec(), 1..3).prop_map(|kinds| Rule::In {
            trait_name: "kind".into(),
            values: kinds
                .into_iter()
                .map(|k| Literal::String(k.into()))
                .collect(),
            negated: false,
        }),
        Just(Rule::Has {
            trait_name: "coupon".into()
        }),
        Just(Rule::Text {
            trait_name: "tags".into(),
            op: segd::segment::ast::TextOp::Contains,
            value: "sale".into(),
        }),
    ];
    leaf.prop_recursive(2, 4, 2, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..3).prop_map(|rules| Rule::And { rules }),
            proptest::collection::vec(inner.clone(), 2..3).prop_map(|rules| Rule::Or { rules }),
            inner.prop_map(|rule| Rule::Not {
                rule: Box::new(rule)
            }),
        ]
    })
}

fn event_name() -> impl Strategy<Value = String> {
    proptest::sample::select(EVENTS.to_vec()).prop_map(String::from)
}

fn behavioral_leaf() -> impl Strategy<Value = Rule> {
    let count_op = prop_oneof![
        Just(CountOp::AtLeast),
        Just(CountOp::AtMost),
        Just(CountOp::Exactly)
    ];
    let recency = prop_oneof![
        Just(Recency::WithinLast),
        Just(Recency::MoreThanAgo),
        Just(Recency::LessThanAgo),
    ];
    let function = prop_oneof![
        Just(AggregateFunction::Sum),
        Just(AggregateFunction::Avg),
        Just(AggregateFunction::Min),
        Just(AggregateFunction::Max),
        Just(AggregateFunction::CountDistinct),
    ];
    prop_oneof![
        (
            event_name(),
            proptest::option::of(property_filter()),
            count_op.clone(),
            0u32..4,
            window()
        )
            .prop_map(
                |(event, filter, count_op, count, window)| Rule::EventCount {
                    event,
                    filter: filter.map(Box::new),
                    count_op,
                    count,
                    window,
                }
            ),
        (event_name(), count_op, 0u32..4).prop_map(|(event, count_op, count)| {
            Rule::EventCount {
                event,
                filter: None,
                count_op,
                count,
                window: Window::Lifetime,
            }
        }),
        (
            event_name(),
            prop_oneof![Just(Performed::First), Just(Performed::Last)],
            recency,
            span()
        )
            .prop_map(|(event, which, recency, span)| Rule::Performed {
                event,
                which,
                recency,
                span,
            }),
        (
            function,
            event_name(),
            prop_oneof![Just("amount"), Just("kind")],
            proptest::option::of(property_filter()),
            window(),
            compare_op(),
            -2i32..80
        )
            .prop_map(|(function, event, property, filter, window, op, value)| {
                Rule::Aggregate {
                    function,
                    event,
                    property: property.into(),
                    filter: filter.map(Box::new),
                    window,
                    op,
                    value: f64::from(value) / 2.0,
                }
            }),
    ]
}

fn trait_leaf() -> impl Strategy<Value = Rule> {
    prop_oneof![
        (compare_op(), 0i64..100).prop_map(|(op, value)| Rule::Compare {
            trait_name: "age".into(),
            op,
            value: Literal::Integer(value),
        }),
        Just(Rule::Compare {
            trait_name: "plan".into(),
            op: CompareOp::Eq,
            value: Literal::String("pro".into()),
        }),
        Just(Rule::Has {
            trait_name: "plan".into()
        }),
        span().prop_map(|span| Rule::Recent {
            trait_name: "trial_ends_at".into(),
            recency: Recency::WithinNext,
            span,
        }),
        (1u32..90).prop_map(|percent| Rule::RandomBucket {
            percent: f64::from(percent),
            salt: Some("model".into()),
        }),
    ]
}

fn rule_over(leaf: BoxedStrategy<Rule>) -> impl Strategy<Value = Rule> {
    leaf.prop_recursive(3, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..4).prop_map(|rules| Rule::And { rules }),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(|rules| Rule::Or { rules }),
            inner.prop_map(|rule| Rule::Not {
                rule: Box::new(rule)
            }),
        ]
    })
}

fn mixed_rule() -> impl Strategy<Value = Rule> {
    rule_over(prop_oneof![3 => behavioral_leaf(), 2 => trait_leaf()].boxed())
}

/// Who a message names: a known user, an anonymous visitor, or both.
#[derive(Clone, Debug)]
enum Who {
    User(u8),
    Anonymous(u8),
    Both(u8, u8),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        4 => (0u8..12).prop_map(Who::User),
        2 => (0u8..8).prop_map(Who::Anonymous),
        1 => (0u8..12, 0u8..8).prop_map(|(u, a)| Who::Both(u, a)),
    ]
}

fn ids(who: &Who) -> (Option<String>, Option<String>) {
    match who {
        Who::User(u) => (Some(format!("user{u}")), None),
        Who::Anonymous(a) => (None, Some(format!("anon{a}"))),
        Who::Both(u, a) => (Some(format!("user{u}")), Some(format!("anon{a}"))),
    }
}

fn properties() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::option::of(prop_oneof![
            (-5i64..60).prop_map(|n| json!(n)),
            (-20i32..240).prop_map(|n| json!(f64::from(n) / 4.0)),
            Just(json!("many")),
        ]),
        proptest::option::of(proptest::sample::select(KINDS.to_vec())),
        any::<bool>(),
        proptest::option::of(proptest::sample::subsequence(
            vec!["sale", "new", "vip"],
            0..3,
        )),
    )
        .prop_map(|(amount, kind, coupon, tags)| {
            let mut map = Map::new();
            if let Some(amount) = amount {
                map.insert("amount".into(), amount);
            }
            if let Some(kind) = kind {
                map.insert("kind".into(), json!(kind));
            }
            if coupon {
                map.insert("coupon".into(), json!("WELCOME"));
            }
            if let Some(tags) = tags {
                map.insert("tags".into(), json!(tags));
            }
            map
        })
}

#[derive(Clone, Debug)]
enum Operation {
    Identify {
        who: Who,
        age: Option<i64>,
        plan: Option<bool>,
        trial_days: Option<i64>,
        /// A shared email (an identity trait) merges profiles.
        email: Option<u8>,
    },
    Track {
        who: Who,
        event: usize,
        /// Event time relative to now: late (up to 40 days back, beyond the 30-day
        /// retention), out of order, or slightly in the future.
        offset_minutes: i64,
        properties: Map<String, Value>,
    },
    Alias {
        user: u8,
        anonymous: u8,
    },
    Delete(Who),
    EditRule {
        segment: usize,
        rule: Rule,
    },
    Advance {
        minutes: i64,
    },
    Checkpoint,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        3 => (who(), proptest::option::of(0i64..100), proptest::option::of(any::<bool>()), proptest::option::of(-3i64..20), proptest::option::weighted(0.2, 0u8..6))
            .prop_map(|(who, age, plan, trial_days, email)| Operation::Identify { who, age, plan, trial_days, email }),
        8 => (who(), 0usize..EVENTS.len(), -40 * 24 * 60i64..24 * 60, properties())
            .prop_map(|(who, event, offset_minutes, properties)| Operation::Track { who, event, offset_minutes, properties }),
        1 => (0u8..12, 0u8..8).prop_map(|(user, anonymous)| Operation::Alias { user, anonymous }),
        1 => who().prop_map(Operation::Delete),
        1 => (0usize..4, mixed_rule()).prop_map(|(segment, rule)| Operation::EditRule { segment, rule }),
        3 => prop_oneof![1i64..90, 60i64..3 * 24 * 60, 24 * 60i64..20 * 24 * 60]
            .prop_map(|minutes| Operation::Advance { minutes }),
        1 => Just(Operation::Checkpoint),
    ]
}

/// Every profile: `has x or not has x` matches everybody.
fn everybody() -> Rule {
    let has = Rule::Has {
        trait_name: "age".into(),
    };
    Rule::Or {
        rules: vec![
            has.clone(),
            Rule::Not {
                rule: Box::new(has),
            },
        ],
    }
}

fn check_checkpoint(
    engine: &Engine,
    segments: &[(String, SegmentId, Rule)],
) -> Result<(), TestCaseError> {
    engine.tick();
    let profiles = engine.matching_profiles(&everybody()).unwrap();
    for (name, id, rule) in segments {
        let incremental: BTreeSet<String> = engine.all_members(*id).into_iter().collect();
        // Random buckets in generated rules carry an explicit salt, so this ad-hoc
        // evaluation draws the same sample as the segment.
        // The stored rule evaluated from scratch; `in segment` reads memberships of
        // earlier segments, verified in an earlier iteration.
        let stored_rule = engine.segment(*id).unwrap().rule().unwrap().clone();
        prop_assert_eq!(&stored_rule, rule);
        let full: BTreeSet<String> = engine
            .matching_profiles(rule)
            .unwrap()
            .into_iter()
            .collect();
        prop_assert_eq!(&incremental, &full, "segment {} rule {:?}", name, rule);
        for profile in &profiles {
            let per_profile = engine.profile_matches(rule, profile).unwrap();
            prop_assert_eq!(
                per_profile,
                full.contains(profile),
                "per-profile {} in {}",
                profile,
                name
            );
        }
    }
    // The change log replayed from empty reproduces current membership.
    let mut replayed: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = engine.changes().read(after, None, 10_000).unwrap();
        for change in &page.changes {
            let members = replayed.entry(change.segment_id).or_default();
            match change.kind {
                ChangeKind::Entered => prop_assert!(
                    members.insert(change.profile.to_string()),
                    "double entry {:?}",
                    change
                ),
                ChangeKind::Exited => prop_assert!(
                    members.remove(change.profile.as_ref()),
                    "exit without entry {:?}",
                    change
                ),
            }
        }
        if page.next_after == after || page.next_after >= page.head {
            break;
        }
        after = page.next_after;
    }
    for (name, id, _) in segments {
        let current: BTreeSet<String> = engine.all_members(*id).into_iter().collect();
        let from_log = replayed.remove(&id.0).unwrap_or_default();
        prop_assert_eq!(&from_log, &current, "change log replay of {}", name);
    }
    Ok(())
}

fn options() -> EngineOptions {
    EngineOptions {
        shards: 3,
        identity_traits: vec!["email".into()],
        event_retention_ms: i64::from(RETENTION_DAYS) * DAY,
        change_log: ChangeLogOptions {
            retention_count: 10_000_000,
            retention_age_ms: i64::MAX / 4,
        },
        ..EngineOptions::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn incremental_membership_matches_full_evaluation(
        initial_rules in proptest::collection::vec(mixed_rule(), 3..5),
        late_rule in mixed_rule(),
        operations in proptest::collection::vec(operation(), 20..120),
    ) {
        let clock = ManualClock::new(START_MS);
        let engine = Engine::with_clock(options(), clock.clone());
        // Fix the `amount` property and `age` trait types first.
        engine.identify(Some("typer"), None, json!({"age": 1, "plan": "x", "trial_ends_at": "2026-01-01T00:00:00Z"}).as_object().unwrap()).unwrap();
        engine.delete_profile("typer").unwrap();
        let mut segments: Vec<(String, SegmentId, Rule)> = Vec::new();
        for (index, rule) in initial_rules.into_iter().enumerate() {
            // Segment-of-segment: later segments may reference the first one.
            let rule = if index >= 2 {
                Rule::And { rules: vec![rule, Rule::InSegment { segment: "s0".into() }] }
            } else if index == 1 {
                Rule::Or { rules: vec![rule, Rule::Not { rule: Box::new(Rule::InSegment { segment: "s0".into() }) }] }
            } else {
                rule
            };
            let name = format!("s{index}");
            let summary = engine.create_segment(&name, "", Some(RuleInput::Ast(rule.clone()))).unwrap();
            segments.push((name, summary.id, rule));
        }
        let mut late_created = false;
        for (step, operation) in operations.into_iter().enumerate() {
            let now = clock.now_ms();
            match operation {
                Operation::Identify { who, age, plan, trial_days, email } => {
                    let (user, anonymous) = ids(&who);
                    let mut traits = Map::new();
                    if let Some(age) = age { traits.insert("age".into(), json!(age)); }
                    if let Some(email) = email { traits.insert("email".into(), json!(format!("e{email}@example.com"))); }
                    match plan {
                        Some(true) => { traits.insert("plan".into(), json!("pro")); }
                        Some(false) => { traits.insert("plan".into(), Value::Null); }
                        None => {}
                    }
                    if let Some(days) = trial_days {
                        let at = segd::store::value::format_timestamp(now + days * DAY / 3);
                        traits.insert("trial_ends_at".into(), json!(at));
                    }
                    engine.identify(user.as_deref(), anonymous.as_deref(), &traits).unwrap();
                }
                Operation::Track { who, event, offset_minutes, properties } => {
                    let (user, anonymous) = ids(&who);
                    engine.track(user.as_deref(), anonymous.as_deref(), EVENTS[event], now + offset_minutes * MINUTE, &properties).unwrap();
                }
                Operation::Alias { user, anonymous } => {
                    engine.alias(&format!("user{user}"), &format!("anon{anonymous}")).unwrap();
                }
                Operation::Delete(who) => {
                    let id = match ids(&who) {
                        (Some(user), _) => user,
                        (None, Some(anonymous)) => format!("anon:{anonymous}"),
                        (None, None) => unreachable!(),
                    };
                    let _ = engine.delete_profile(&id);
                }
                Operation::EditRule { segment, rule } => {
                    // Only s0 and s1 are edited: s0 is referenced by later segments, s1 has
                    // its reference kept so the DAG stays valid.
                    let index = segment % 2;
                    let rule = if index == 1 {
                        Rule::Or { rules: vec![rule, Rule::InSegment { segment: "s0".into() }] }
                    } else {
                        rule
                    };
                    engine.update_segment(segments[index].1, RuleInput::Ast(rule.clone()), None).unwrap();
                    segments[index].2 = rule;
                }
                Operation::Advance { minutes } => {
                    clock.advance(minutes * MINUTE);
                    engine.tick();
                }
                Operation::Checkpoint => check_checkpoint(&engine, &segments)?,
            }
            if step == 10 && !late_created {
                // A segment created mid-stream with its initial membership emitted.
                let summary = engine.create_segment_with("late", "", Some(RuleInput::Ast(late_rule.clone())), true).unwrap();
                segments.push(("late".into(), summary.id, late_rule.clone()));
                late_created = true;
            }
        }
        check_checkpoint(&engine, &segments)?;
    }
}

/// The reference's segment oracle: these rules reference no segments.
struct NoSegments;

impl SegmentOracle for NoSegments {
    fn is_member(&self, _segment: &str, _profile: &ReferenceProfile) -> bool {
        false
    }
    fn salt_name(&self) -> Option<&str> {
        None
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn behavioral_plan_per_profile_and_reference_agree(
        histories in proptest::collection::vec(
            proptest::collection::vec((0usize..EVENTS.len(), -35 * 24 * 60i64..24 * 60, properties()), 0..12),
            1..25,
        ),
        ages in proptest::collection::vec(proptest::option::of(0i64..100), 25),
        probes in proptest::collection::vec(mixed_rule(), 1..6),
        advance_minutes in 0i64..5 * 24 * 60,
        expire in any::<bool>(),
    ) {
        let clock = ManualClock::new(START_MS);
        let engine = Engine::with_clock(options(), clock.clone());
        engine.identify(Some("typer"), None, json!({"age": 1, "plan": "x", "trial_ends_at": "2026-01-01T00:00:00Z"}).as_object().unwrap()).unwrap();
        engine.delete_profile("typer").unwrap();
        let mut model: BTreeMap<String, ReferenceProfile> = BTreeMap::new();
        for (index, history) in histories.iter().enumerate() {
            let user = format!("user{index}");
            let mut profile = ReferenceProfile {
                bucket_hash: xxhash_rust::xxh3::xxh3_64(format!("u:{user}").as_bytes()),
                ..ReferenceProfile::default()
            };
            let mut traits = Map::new();
            if let Some(age) = ages[index] {
                traits.insert("age".into(), json!(age));
                profile.traits.insert("age".into(), segd::store::value::TraitValue::Integer(age));
            }
            engine.identify(Some(&user), None, &traits).unwrap();
            for (event, offset, properties) in history {
                let time_ms = START_MS + offset * MINUTE;
                engine.track(Some(&user), None, EVENTS[*event], time_ms, properties).unwrap();
                let prepared: BTreeMap<String, EventProperty> = prepare_properties(properties).unwrap().into_iter().collect();
                profile.events.push(ReferenceEvent { name: EVENTS[*event].into(), time_ms, properties: prepared });
            }
            model.insert(user, profile);
        }
        clock.advance(advance_minutes * MINUTE);
        if expire {
            // Expiry drops events (and whole days of the behavioral index) that left
            // retention; windows never reach past retention, so answers must not change.
            engine.tick();
        }
        let now = START_MS + advance_minutes * MINUTE;
        for probe in &probes {
            let plan: BTreeSet<String> = engine.matching_profiles(probe).unwrap().into_iter().collect();
            let expected: BTreeSet<String> = model
                .iter()
                .filter(|(_, profile)| reference::evaluate(probe, profile, &NoSegments, now))
                .map(|(id, _)| id.clone())
                .collect();
            prop_assert_eq!(&plan, &expected, "plan vs reference for {:?}", probe);
            for user in model.keys() {
                prop_assert_eq!(engine.profile_matches(probe, user).unwrap(), expected.contains(user), "per-profile {} {:?}", user, probe);
            }
        }
    }
}

/// Concurrency: four threads apply interleaved identify/track/alias for overlapping
/// profiles. Each profile's changes must alternate enter/exit per segment in the log
/// (per-profile order kept), and the log replayed must equal the final membership,
/// which must equal a from-scratch evaluation.
#[test]
fn concurrent_ingest_keeps_per_profile_order() {
    use rand::{Rng, SeedableRng};
    let clock = ManualClock::new(START_MS);
    let engine = Engine::with_clock(options(), clock.clone());
    engine
        .identify(
            Some("typer"),
            None,
            json!({"age": 1, "plan": "x", "trial_ends_at": "2026-01-01T00:00:00Z"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
    engine.delete_profile("typer").unwrap();
    let rules = [
        r#"did "order_completed" at least 2 times in last 7 days"#,
        r#"sum of "order_completed".amount in last 30 days >= 40 and age > 30"#,
        r#"in segment "s0" or did "email_opened" where kind = "app" in last 3 days"#,
    ];
    let mut segments = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let name = format!("s{index}");
        let summary = engine
            .create_segment(&name, "", Some(RuleInput::Text(rule.to_string())))
            .unwrap();
        segments.push((name, summary.id, summary.rule_ast.unwrap()));
    }
    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let engine = &engine;
            scope.spawn(move || {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(thread);
                for _ in 0..3_000 {
                    let user = format!("user{}", rng.gen_range(0..40));
                    match rng.gen_range(0..10) {
                        0 => {
                            engine
                                .identify(
                                    Some(&user),
                                    None,
                                    json!({"age": rng.gen_range(18..60)}).as_object().unwrap(),
                                )
                                .unwrap();
                        }
                        1 => {
                            let anonymous = format!("anon{}", rng.gen_range(0..20));
                            engine.alias(&user, &anonymous).unwrap();
                        }
                        _ => {
                            let event = EVENTS[rng.gen_range(0..2)];
                            let offset = rng.gen_range(-20 * DAY..0);
                            let properties = json!({"amount": rng.gen_range(0..30), "kind": KINDS[rng.gen_range(0..3)]});
                            let anonymous = format!("anon{}", rng.gen_range(0..20));
                            let (user, anonymous) = if rng.gen_bool(0.2) {
                                (None, Some(anonymous.as_str()))
                            } else {
                                (Some(user.as_str()), None)
                            };
                            engine
                                .track(
                                    user,
                                    anonymous,
                                    event,
                                    START_MS + offset,
                                    properties.as_object().unwrap(),
                                )
                                .unwrap();
                        }
                    }
                }
            });
        }
    });
    let result: Result<(), TestCaseError> = check_checkpoint(&engine, &segments);
    result.unwrap();
}
