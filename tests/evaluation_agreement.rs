//! The three evaluators agree: for random profiles (missing values, empty strings,
//! extreme numbers, unicode) and random valid rules, the bitmap plan (whole population),
//! the per-profile evaluator and the naive reference evaluator select the same profiles.
//! A second round of random updates and deletions then checks that incrementally
//! maintained membership of stored segments equals all three.

use proptest::prelude::*;
use segd::clock::ManualClock;
use segd::engine::{Engine, EngineOptions, RuleInput};
use segd::segment::ast::{CompareOp, Literal, Recency, Rule, Span, TextOp, TimeUnit};
use segd::segment::reference::{self, ReferenceProfile, SegmentOracle};
use segd::store::value::{flatten_traits, TraitValue};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

const NOW_MS: i64 = 1_750_000_000_000;
const DAY_MS: i64 = 86_400_000;

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("DE".to_string()),
        Just("FR".to_string()),
        Just("Berlin".to_string()),
        Just("straße ✓".to_string()),
        "[a-c]{0,3}",
    ]
}

fn integer_value() -> impl Strategy<Value = i64> {
    prop_oneof![
        -5i64..45,
        Just(i64::MAX),
        Just(i64::MIN),
        Just(0),
        any::<i64>()
    ]
}

fn float_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i32..1000).prop_map(|v| f64::from(v) / 4.0),
        Just(300.0),
        Just(1e300),
        Just(-1e-300),
        Just(0.0),
    ]
}

fn timestamp_value() -> impl Strategy<Value = i64> {
    (-400i64..30).prop_map(|days| NOW_MS + days * DAY_MS / 3)
}

/// Traits for one profile; each name has one fixed type, any may be missing.
fn traits() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::option::of(string_value()),
        proptest::option::of(string_value()),
        proptest::option::of(integer_value()),
        proptest::option::of(float_value()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(timestamp_value()),
        proptest::option::of(proptest::collection::vec(
            prop_oneof![Just("vip"), Just("beta"), Just("x")],
            0..3,
        )),
    )
        .prop_map(|(s0, s1, i0, f0, b0, t0, l0)| {
            let mut map = Map::new();
            if let Some(v) = s0 {
                map.insert("s0".into(), json!(v));
            }
            if let Some(v) = s1 {
                map.insert("nested".into(), json!({ "s1": v }));
            }
            if let Some(v) = i0 {
                map.insert("i0".into(), json!(v));
            }
            if let Some(v) = f0 {
                map.insert("f0".into(), json!(v));
            }
            if let Some(v) = b0 {
                map.insert("b0".into(), json!(v));
            }
            if let Some(v) = t0 {
                map.insert("t0".into(), json!(segd::store::value::format_timestamp(v)));
            }
            if let Some(v) = l0 {
                map.insert("l0".into(), json!(v));
            }
            map
        })
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

fn number_literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        integer_value().prop_map(Literal::Integer),
        float_value().prop_map(Literal::Float)
    ]
}

fn leaf() -> impl Strategy<Value = Rule> {
    let string_trait = prop_oneof![Just("s0".to_string()), Just("nested.s1".to_string())];
    prop_oneof![
        (string_trait.clone(), compare_op(), string_value()).prop_map(|(t, op, v)| Rule::Compare {
            trait_name: t,
            op,
            value: Literal::String(v)
        }),
        (
            string_trait.clone(),
            proptest::collection::vec(string_value(), 0..3),
            any::<bool>()
        )
            .prop_map(|(t, vs, negated)| Rule::In {
                trait_name: t,
                values: vs.into_iter().map(Literal::String).collect(),
                negated
            }),
        (
            string_trait.clone(),
            prop_oneof![
                Just(TextOp::Contains),
                Just(TextOp::StartsWith),
                Just(TextOp::EndsWith)
            ],
            "[a-cB]{0,2}"
        )
            .prop_map(|(t, op, v)| Rule::Text {
                trait_name: t,
                op,
                value: v
            }),
        (
            prop_oneof![Just("i0"), Just("f0")],
            compare_op(),
            number_literal()
        )
            .prop_map(|(t, op, v)| Rule::Compare {
                trait_name: t.to_string(),
                op,
                value: v
            }),
        (
            prop_oneof![Just("i0"), Just("f0")],
            number_literal(),
            number_literal()
        )
            .prop_map(|(t, low, high)| Rule::Between {
                trait_name: t.to_string(),
                low,
                high
            }),
        (
            prop_oneof![Just("i0"), Just("f0")],
            proptest::collection::vec(number_literal(), 0..3),
            any::<bool>()
        )
            .prop_map(|(t, vs, negated)| Rule::In {
                trait_name: t.to_string(),
                values: vs,
                negated
            }),
        (
            prop_oneof![Just(CompareOp::Eq), Just(CompareOp::NotEq)],
            any::<bool>()
        )
            .prop_map(|(op, v)| Rule::Compare {
                trait_name: "b0".into(),
                op,
                value: Literal::Bool(v)
            }),
        (compare_op(), timestamp_value()).prop_map(|(op, v)| Rule::Compare {
            trait_name: "t0".into(),
            op,
            value: Literal::String(segd::store::value::format_timestamp(v))
        }),
        (
            prop_oneof![
                Just(Recency::WithinLast),
                Just(Recency::MoreThanAgo),
                Just(Recency::LessThanAgo),
                Just(Recency::WithinNext)
            ],
            1u32..100
        )
            .prop_map(|(recency, amount)| Rule::Recent {
                trait_name: "t0".into(),
                recency,
                span: Span {
                    amount,
                    unit: TimeUnit::Days
                }
            }),
        (prop_oneof![Just("vip"), Just("beta"), Just("nope")]).prop_map(|item| Rule::Text {
            trait_name: "l0".into(),
            op: TextOp::Contains,
            value: item.into()
        }),
        (
            proptest::collection::vec(prop_oneof![Just("vip"), Just("x")], 1..3),
            any::<bool>()
        )
            .prop_map(|(items, negated)| Rule::In {
                trait_name: "l0".into(),
                values: items
                    .into_iter()
                    .map(|i| Literal::String(i.into()))
                    .collect(),
                negated
            }),
        prop_oneof![
            Just("s0"),
            Just("i0"),
            Just("f0"),
            Just("b0"),
            Just("t0"),
            Just("l0"),
            Just("unknown")
        ]
        .prop_map(|t| Rule::Has {
            trait_name: t.into()
        }),
        Just(Rule::Compare {
            trait_name: "unknown".into(),
            op: CompareOp::Eq,
            value: Literal::Integer(1)
        }),
        (0u32..=100).prop_map(|p| Rule::RandomBucket {
            percent: f64::from(p),
            salt: None
        }),
        Just(Rule::InSegment {
            segment: "base".into()
        }),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..4).prop_map(|rules| Rule::And { rules }),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(|rules| Rule::Or { rules }),
            inner.prop_map(|rule| Rule::Not {
                rule: Box::new(rule)
            }),
        ]
    })
}

/// The reference's view of stored segments: evaluates their rules recursively.
struct Oracle<'a> {
    rules: &'a BTreeMap<String, Rule>,
    salt: Option<&'a str>,
}

impl SegmentOracle for Oracle<'_> {
    fn is_member(&self, segment: &str, profile: &ReferenceProfile) -> bool {
        let inner = Oracle {
            rules: self.rules,
            salt: Some(segment),
        };
        reference::evaluate(&self.rules[segment], profile, &inner, NOW_MS)
    }

    fn salt_name(&self) -> Option<&str> {
        self.salt
    }
}

fn reference_profile(
    user: &str,
    traits: &Map<String, Value>,
    engine_schema_ok: bool,
) -> ReferenceProfile {
    let _ = engine_schema_ok;
    let mut profile = ReferenceProfile {
        traits: BTreeMap::new(),
        bucket_hash: xxhash_rust::xxh3::xxh3_64(format!("u:{user}").as_bytes()),
        events: Vec::new(),
    };
    apply(&mut profile, traits);
    profile
}

fn apply(profile: &mut ReferenceProfile, traits: &Map<String, Value>) {
    for (name, value) in flatten_traits(traits).unwrap() {
        match value {
            Some(value) => {
                // The engine stores every test float column as float, integers as integer.
                let value = match (name.as_str(), value) {
                    ("f0", TraitValue::Integer(i)) => TraitValue::Float(i as f64),
                    ("i0", TraitValue::Float(f)) => TraitValue::Integer(f as i64),
                    (_, other) => other,
                };
                profile.traits.insert(name, value);
            }
            None => {
                profile.traits.remove(&name);
            }
        }
    }
}

fn check_all(
    engine: &Engine,
    model: &BTreeMap<String, ReferenceProfile>,
    rules: &BTreeMap<String, Rule>,
    probe: &Rule,
) -> Result<(), TestCaseError> {
    let plan: BTreeSet<String> = engine
        .matching_profiles(probe)
        .unwrap()
        .into_iter()
        .collect();
    let oracle = Oracle { rules, salt: None };
    let expected: BTreeSet<String> = model
        .iter()
        .filter(|(_, profile)| reference::evaluate(probe, profile, &oracle, NOW_MS))
        .map(|(id, _)| id.clone())
        .collect();
    prop_assert_eq!(&plan, &expected, "plan vs reference for {:?}", probe);
    for user in model.keys() {
        let per_profile = engine.profile_matches(probe, user).unwrap();
        prop_assert_eq!(
            per_profile,
            expected.contains(user),
            "per-profile vs reference for {} on {:?}",
            user,
            probe
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn plan_per_profile_and_reference_agree(
        profiles in proptest::collection::vec(traits(), 1..40),
        base_rule in rule(),
        probes in proptest::collection::vec(rule(), 1..4),
        updates in proptest::collection::vec((0usize..40, traits(), any::<bool>()), 0..30),
    ) {
        let clock = ManualClock::new(NOW_MS);
        let engine = Engine::with_clock(EngineOptions { shards: 3, ..EngineOptions::default() }, clock);
        // Fix column types first so random first values do not decide them.
        let mut model: BTreeMap<String, ReferenceProfile> = BTreeMap::new();
        engine.identify(Some("typer"), None, json!({"f0": 0.5, "i0": 1}).as_object().unwrap()).unwrap();
        engine.delete_profile("typer").unwrap();
        let base_rule = strip_segment_refs(base_rule);
        let mut rules = BTreeMap::new();
        rules.insert("base".to_string(), base_rule.clone());
        let base = engine.create_segment("base", "", Some(RuleInput::Ast(base_rule))).unwrap();
        let mut stored = Vec::new();
        for (index, probe) in probes.iter().enumerate() {
            let name = format!("probe{index}");
            let summary = engine.create_segment(&name, "", Some(RuleInput::Ast(probe.clone()))).unwrap();
            rules.insert(name.clone(), probe.clone());
            stored.push((name, summary.id));
        }
        for (index, traits) in profiles.iter().enumerate() {
            let user = format!("user{index}");
            engine.identify(Some(&user), None, traits).unwrap();
            model.insert(user.clone(), reference_profile(&user, traits, true));
        }
        for probe in &probes {
            check_all(&engine, &model, &rules, probe)?;
        }
        // Incremental maintenance under updates and deletes.
        for (index, traits, delete) in updates {
            let user = format!("user{}", index % profiles.len());
            if !model.contains_key(&user) {
                continue;
            }
            if delete && index % 3 == 0 {
                engine.delete_profile(&user).unwrap();
                model.remove(&user);
            } else {
                let mut traits = traits;
                if index % 2 == 0 {
                    traits.insert("s0".into(), Value::Null);
                }
                engine.identify(Some(&user), None, &traits).unwrap();
                apply(model.get_mut(&user).unwrap(), &traits);
            }
        }
        let oracle = Oracle { rules: &rules, salt: None };
        for (name, id) in stored.iter().chain(std::iter::once(&("base".to_string(), base.id))) {
            let members: BTreeSet<String> = engine.all_members(*id).into_iter().collect();
            let expected: BTreeSet<String> = model
                .iter()
                .filter(|(_, profile)| oracle.is_member(name, profile))
                .map(|(id, _)| id.clone())
                .collect();
            prop_assert_eq!(&members, &expected, "incremental membership of {}", name);
        }
        for probe in &probes {
            check_all(&engine, &model, &rules, probe)?;
        }
    }
}

/// `base` may not reference itself.
fn strip_segment_refs(rule: Rule) -> Rule {
    match rule {
        Rule::InSegment { .. } => Rule::Has {
            trait_name: "s0".into(),
        },
        Rule::And { rules } => Rule::And {
            rules: rules.into_iter().map(strip_segment_refs).collect(),
        },
        Rule::Or { rules } => Rule::Or {
            rules: rules.into_iter().map(strip_segment_refs).collect(),
        },
        Rule::Not { rule } => Rule::Not {
            rule: Box::new(strip_segment_refs(*rule)),
        },
        other => other,
    }
}
