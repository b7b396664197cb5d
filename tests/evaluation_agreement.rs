//! The three evaluators agree: for random profiles (missing values, empty strings,
//! extreme numbers, unicode) and random valid rules, the bitmap plan (whole population),
//! the per-profile evaluator and the naive reference evaluator select the same profiles.
//! A second round of random updates and deletions then checks that incrementally
//! maintained membership of stored segments equals all three.
//!
//! A third property runs range conditions (integer, float, timestamp) against the sorted
//! range indexes: built, then with values changed since the build (answered through
//! the dirty ids), rebuilt, and rebuilt again when a snapshot is loaded; counts
//! (preview) are checked as well as member sets, since counting takes its own path.

mod common;

use proptest::prelude::*;
use segd::clock::ManualClock;
use segd::engine::{Engine, EngineOptions, RuleInput};
use segd::persist::{Database, DatabaseOptions};
use segd::segment::ast::{CompareOp, Literal, Recency, Rule, Span, TextOp, TimeUnit};
use segd::segment::reference::{self, ReferenceProfile, SegmentOracle};
use segd::store::value::{flatten_traits, TraitValue};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

use common::strategies::{DAY_MS, NOW_MS};

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

/// Thirds of days around now, some a millisecond apart (ties and ms boundaries).
fn timestamp_value() -> impl Strategy<Value = i64> {
    (-400i64..30, 0i64..3).prop_map(|(days, millis)| NOW_MS + days * DAY_MS / 3 + millis)
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

/// Leaves of every kind; a quarter are the numeric and timestamp ranges of [`range_leaf`].
fn leaf() -> impl Strategy<Value = Rule> {
    prop_oneof![1 => range_leaf(), 3 => other_leaf()]
}

/// Integer, float and timestamp ranges: `>`, `>=`, `<`, `<=`, `=`, `!=`, `between`,
/// relative windows (`within last N days`, ...).
fn range_leaf() -> impl Strategy<Value = Rule> {
    prop_oneof![
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
        (timestamp_value(), timestamp_value()).prop_map(|(low, high)| Rule::Between {
            trait_name: "t0".into(),
            low: Literal::String(segd::store::value::format_timestamp(low)),
            high: Literal::String(segd::store::value::format_timestamp(high)),
        }),
    ]
}

/// Every other leaf: strings, text, number lists, booleans, lists, presence, unknown
/// traits, random buckets, segment references.
fn other_leaf() -> impl Strategy<Value = Rule> {
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

/// Range leaves alone and inside `and`/`or`/`not` with other leaves (so ranges run on
/// narrowed universes and as the counted last step of an `and`).
fn range_probe() -> impl Strategy<Value = Rule> {
    prop_oneof![
        range_leaf(),
        (range_leaf(), other_leaf()).prop_map(|(a, b)| Rule::And { rules: vec![a, b] }),
        (other_leaf(), range_leaf(), range_leaf()).prop_map(|(a, b, c)| Rule::And {
            rules: vec![a, b, c]
        }),
        (range_leaf(), range_leaf()).prop_map(|(a, b)| Rule::Or { rules: vec![a, b] }),
        range_leaf().prop_map(|rule| Rule::Not {
            rule: Box::new(rule)
        }),
    ]
    .prop_map(strip_segment_refs)
}

/// [`check_all`] plus the preview count and sample (the count path).
fn check_ranges(
    engine: &Engine,
    model: &BTreeMap<String, ReferenceProfile>,
    probes: &[Rule],
    round: &str,
) -> Result<(), TestCaseError> {
    let rules = BTreeMap::new();
    let oracle = Oracle {
        rules: &rules,
        salt: None,
    };
    for probe in probes {
        check_all(engine, model, &rules, probe)?;
        let expected: BTreeSet<String> = model
            .iter()
            .filter(|(_, profile)| reference::evaluate(probe, profile, &oracle, NOW_MS))
            .map(|(id, _)| id.clone())
            .collect();
        let preview = engine.preview(RuleInput::Ast(probe.clone()), 10).unwrap();
        prop_assert_eq!(
            preview.count,
            expected.len() as u64,
            "{}: preview count of {:?}",
            round,
            probe
        );
        for member in &preview.sample {
            prop_assert!(
                expected.contains(member),
                "{}: sample {} of {:?}",
                round,
                member,
                probe
            );
        }
    }
    Ok(())
}

/// Updates (and deletions) of random profiles, applied to the engine and the model.
fn update(
    engine: &Engine,
    model: &mut BTreeMap<String, ReferenceProfile>,
    profile_count: usize,
    updates: Vec<(usize, Map<String, Value>, bool)>,
) {
    for (index, traits, delete) in updates {
        let user = format!("user{}", index % profile_count);
        if !model.contains_key(&user) {
            continue;
        }
        if delete && index % 4 == 0 {
            engine.delete_profile(&user).unwrap();
            model.remove(&user);
        } else {
            engine.identify(Some(&user), None, &traits).unwrap();
            apply(model.get_mut(&user).unwrap(), &traits);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn range_indexes_agree_through_changes_rebuilds_and_snapshots(
        profiles in proptest::collection::vec(traits(), 1..40),
        probes in proptest::collection::vec(range_probe(), 1..5),
        changes in proptest::collection::vec((0usize..40, traits(), any::<bool>()), 1..20),
        more_changes in proptest::collection::vec((0usize..40, traits(), any::<bool>()), 0..20),
    ) {
        let dir = common::ScratchDir::new("range-index");
        let options = || DatabaseOptions {
            engine: EngineOptions { shards: 3, ..EngineOptions::default() },
            ..DatabaseOptions::new(&dir.0)
        };
        let (database, _) = Database::open(options(), ManualClock::new(NOW_MS)).unwrap();
        let engine = database.engine().clone();
        let mut model: BTreeMap<String, ReferenceProfile> = BTreeMap::new();
        engine.identify(Some("typer"), None, json!({"f0": 0.5, "i0": 1}).as_object().unwrap()).unwrap();
        engine.delete_profile("typer").unwrap();
        for (index, traits) in profiles.iter().enumerate() {
            let user = format!("user{index}");
            engine.identify(Some(&user), None, traits).unwrap();
            model.insert(user.clone(), reference_profile(&user, traits, true));
        }
        engine.maintain_range_indexes();
        let (built, missing, dirty) = engine.range_index_status();
        prop_assert!(built > 0 && missing == 0 && dirty == 0, "built {} missing {} dirty {}", built, missing, dirty);
        check_ranges(&engine, &model, &probes, "built")?;

        // Changed since the build: the dirty ids are decided from the values.
        update(&engine, &mut model, profiles.len(), changes);
        check_ranges(&engine, &model, &probes, "dirty")?;

        engine.maintain_range_indexes();
        prop_assert_eq!(engine.range_index_status().2, 0, "a rebuild leaves nothing dirty");
        check_ranges(&engine, &model, &probes, "rebuilt")?;

        update(&engine, &mut model, profiles.len(), more_changes);
        database.snapshot_now().unwrap();
        drop(engine);
        database.close().unwrap();
        drop(database);
        let (database, _) = Database::open(options(), ManualClock::new(NOW_MS)).unwrap();
        let engine = database.engine().clone();
        let (built, missing, dirty) = engine.range_index_status();
        prop_assert!(missing == 0 && dirty == 0, "loaded: built {} missing {} dirty {}", built, missing, dirty);
        check_ranges(&engine, &model, &probes, "loaded")?;
    }
}
