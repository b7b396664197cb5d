//! The engine's library API end to end on small hand-made data: identity resolution,
//! erasure and id reuse, static segments, set algebra, paging, rule edits and their
//! change-log diff, and every explicit limit and rejection.

use segd::changes::{Cause, ChangeKind};
use segd::clock::ManualClock;
use segd::engine::{Engine, EngineError, EngineOptions, RuleInput, SetExpression, StaticEdit};
use segd::segment::ast::{CompareOp, Literal, Rule};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

const NOW_MS: i64 = 1_750_000_000_000;

fn engine() -> Engine {
    Engine::with_clock(
        EngineOptions {
            shards: 4,
            identity_traits: vec!["email".into()],
            max_segments: 6,
            ..EngineOptions::default()
        },
        ManualClock::new(NOW_MS),
    )
}

fn traits(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn equals(name: &str, value: Literal) -> RuleInput {
    RuleInput::Ast(Rule::Compare {
        trait_name: name.into(),
        op: CompareOp::Eq,
        value,
    })
}

fn text(value: &str) -> Literal {
    Literal::String(value.into())
}

fn set(items: Vec<String>) -> BTreeSet<String> {
    items.into_iter().collect()
}

#[test]
fn user_anonymous_and_email_identify_one_profile() {
    let engine = engine();
    let (first, _) = engine
        .identify(None, Some("device-1"), &traits(json!({"email": "a@x.io"})))
        .unwrap();
    let (second, _) = engine
        .identify(
            Some("u1"),
            Some("device-1"),
            &traits(json!({"city": "Berlin"})),
        )
        .unwrap();
    let (third, _) = engine
        .identify(
            None,
            Some("device-2"),
            &traits(json!({"email": "a@x.io", "age": 30})),
        )
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(first, third);
    assert_eq!(engine.profile_count(), 1);
    assert_eq!(engine.resolve("anon:device-2"), Some(first));
    assert_eq!(engine.external_id(first).as_deref(), Some("u1"));
    let card = engine.traits_of("u1").unwrap();
    assert_eq!(card["city"], "Berlin");
    assert_eq!(card["age"], 30);
    // A changed email no longer identifies the profile by the old address.
    engine
        .identify(Some("u1"), None, &traits(json!({"email": "b@x.io"})))
        .unwrap();
    let (other, _) = engine
        .identify(None, Some("device-3"), &traits(json!({"email": "a@x.io"})))
        .unwrap();
    assert_ne!(other, first);
}

#[test]
fn deleted_profiles_vanish_and_reused_ids_start_clean() {
    let engine = engine();
    let vip = engine
        .create_segment("berlin", "", Some(equals("city", text("Berlin"))))
        .unwrap();
    engine
        .identify(
            Some("gone"),
            None,
            &traits(json!({"city": "Berlin", "tags": ["a"], "ltv": 5.5})),
        )
        .unwrap();
    assert_eq!(engine.count(vip.id), 1);
    let changes = engine.delete_profile("gone").unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(engine.count(vip.id), 0);
    assert!(engine.resolve("gone").is_none());
    assert!(matches!(
        engine.traits_of("gone"),
        Err(EngineError::ProfileNotFound(_))
    ));
    // Fill every shard so the freed local id is reused; nothing of "gone" may show.
    for index in 0..16 {
        engine
            .identify(Some(&format!("new{index}")), None, &Map::new())
            .unwrap();
    }
    for index in 0..16 {
        let card = engine.traits_of(&format!("new{index}")).unwrap();
        assert!(card.is_empty(), "new{index} inherited {card:?}");
        assert!(engine
            .segments_of(&format!("new{index}"))
            .unwrap()
            .is_empty());
    }
    assert_eq!(engine.count(vip.id), 0);
}

#[test]
fn static_segments_and_set_algebra() {
    let engine = engine();
    for index in 0..10 {
        let city = if index % 2 == 0 { "Berlin" } else { "Paris" };
        engine
            .identify(
                Some(&format!("p{index}")),
                None,
                &traits(json!({"city": city})),
            )
            .unwrap();
    }
    let berlin = engine
        .create_segment("berlin", "", Some(equals("city", text("Berlin"))))
        .unwrap();
    let picked = engine.create_segment("picked", "hand-made", None).unwrap();
    let ids = |range: std::ops::Range<i32>| range.map(|i| format!("p{i}")).collect::<Vec<_>>();
    let (_, unknown) = engine
        .edit_static(
            picked.id,
            StaticEdit::Add,
            &[ids(0..4), vec!["nobody".into()]].concat(),
        )
        .unwrap();
    assert_eq!(unknown, vec!["nobody".to_string()]);
    assert_eq!(engine.count(picked.id), 4);
    engine
        .edit_static(picked.id, StaticEdit::Remove, &ids(0..1))
        .unwrap();
    assert_eq!(set(engine.all_members(picked.id)), set(ids(1..4)));
    // A dynamic segment over the static one follows its edits.
    let both = engine
        .create_segment(
            "picked_in_berlin",
            "",
            Some(RuleInput::Ast(Rule::And {
                rules: vec![
                    Rule::InSegment {
                        segment: "picked".into(),
                    },
                    Rule::InSegment {
                        segment: "berlin".into(),
                    },
                ],
            })),
        )
        .unwrap();
    assert_eq!(set(engine.all_members(both.id)), set(vec!["p2".into()]));
    engine
        .edit_static(picked.id, StaticEdit::Replace, &ids(4..9))
        .unwrap();
    assert_eq!(
        set(engine.all_members(both.id)),
        set(vec!["p4".into(), "p6".into(), "p8".into()])
    );
    let and = SetExpression::And(vec![
        SetExpression::Segment(berlin.id),
        SetExpression::Segment(picked.id),
    ]);
    assert_eq!(engine.count_expression(&and).unwrap(), 3);
    let or = SetExpression::Or(vec![
        SetExpression::Segment(berlin.id),
        SetExpression::Segment(picked.id),
    ]);
    assert_eq!(engine.count_expression(&or).unwrap(), 7);
    let and_not = SetExpression::AndNot(
        Box::new(SetExpression::Segment(picked.id)),
        Box::new(SetExpression::Segment(berlin.id)),
    );
    assert_eq!(engine.count_expression(&and_not).unwrap(), 2);
    assert!(matches!(
        engine.edit_static(berlin.id, StaticEdit::Add, &ids(0..1)),
        Err(EngineError::WrongSegmentKind(..))
    ));
    // Deleting a referenced segment is refused.
    assert!(matches!(
        engine.delete_segment(picked.id),
        Err(EngineError::SegmentInUse { .. })
    ));
    engine.delete_segment(both.id).unwrap();
    engine.delete_segment(picked.id).unwrap();
    assert!(engine
        .segments_of("p4")
        .unwrap()
        .iter()
        .all(|id| *id == berlin.id));
}

#[test]
fn member_pages_cover_everyone_once() {
    let engine = engine();
    for index in 0..57 {
        engine
            .identify(
                Some(&format!("m{index}")),
                None,
                &traits(json!({"kind": "x"})),
            )
            .unwrap();
    }
    let segment = engine
        .create_segment("all", "", Some(equals("kind", text("x"))))
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = engine.members(segment.id, cursor.as_deref(), 10).unwrap();
        assert!(page.members.len() <= 10);
        seen.extend(page.members);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 57);
    assert_eq!(set(seen).len(), 57);
    assert!(matches!(
        engine.members(segment.id, Some("zz-not-hex"), 10),
        Err(EngineError::BadCursor(_))
    ));
}

#[test]
fn rule_edit_records_exactly_the_diff() {
    let engine = engine();
    for (user, age) in [("a", 20), ("b", 30), ("c", 40)] {
        engine
            .identify(Some(user), None, &traits(json!({"age": age})))
            .unwrap();
    }
    let older = |limit: i64| {
        RuleInput::Ast(Rule::Compare {
            trait_name: "age".into(),
            op: CompareOp::GreaterOrEqual,
            value: Literal::Integer(limit),
        })
    };
    let segment = engine.create_segment("older", "", Some(older(30))).unwrap();
    assert_eq!(segment.version, 1);
    assert_eq!(
        engine.changes().head(),
        0,
        "creating records nothing without emit_initial"
    );
    let (summary, diff) = engine.update_segment(segment.id, older(25), None).unwrap();
    assert_eq!(summary.version, 2);
    assert!(diff.is_empty());
    let (_, diff) = engine.update_segment(segment.id, older(35), None).unwrap();
    assert_eq!(diff.len(), 1);
    let read = engine.changes().read(0, None, 100).unwrap();
    assert_eq!(read.changes.len(), 1);
    assert_eq!(&*read.changes[0].profile, "b");
    assert_eq!(read.changes[0].kind, ChangeKind::Exited);
    assert_eq!(read.changes[0].cause, Cause::RuleEdit);
    assert_eq!(read.changes[0].segment_version, 3);
    assert_eq!(set(engine.all_members(segment.id)), set(vec!["c".into()]));
    // An event-driven change is recorded with its cause.
    engine
        .identify(Some("a"), None, &traits(json!({"age": 50})))
        .unwrap();
    let read = engine.changes().read(1, None, 100).unwrap();
    assert_eq!(read.changes[0].cause, Cause::Event);
    assert_eq!(read.changes[0].kind, ChangeKind::Entered);
}

#[test]
fn rejections_are_specific_and_change_nothing() {
    let engine = engine();
    engine
        .identify(
            Some("x"),
            None,
            &traits(json!({"age": 3, "city": "Rome", "flag": true})),
        )
        .unwrap();
    // Wrong literal type for a known trait.
    let error = engine
        .create_segment("bad", "", Some(equals("age", text("old"))))
        .unwrap_err();
    assert_eq!(error.code(), "rule_type_mismatch");
    let error = engine
        .create_segment(
            "bad",
            "",
            Some(RuleInput::Ast(Rule::Text {
                trait_name: "age".into(),
                op: segd::segment::ast::TextOp::Contains,
                value: "1".into(),
            })),
        )
        .unwrap_err();
    assert_eq!(error.code(), "rule_unsupported_operator");
    // Unknown trait: valid, matches nobody; `not` of it matches everybody.
    let unknown = engine
        .create_segment("unknown", "", Some(equals("nope", text("x"))))
        .unwrap();
    assert_eq!(unknown.count, 0);
    let not_unknown = engine
        .create_segment(
            "not_unknown",
            "",
            Some(RuleInput::Ast(Rule::Not {
                rule: Box::new(Rule::Has {
                    trait_name: "nope".into(),
                }),
            })),
        )
        .unwrap();
    assert_eq!(not_unknown.count, 1);
    // The unknown trait arrives later: the segment starts matching.
    engine
        .identify(Some("x"), None, &traits(json!({"nope": "x"})))
        .unwrap();
    assert_eq!(engine.count(unknown.id), 1);
    // Duplicate names, unknown and self references, depth, empty groups.
    assert_eq!(
        engine
            .create_segment("unknown", "", Some(equals("age", Literal::Integer(1))))
            .unwrap_err()
            .code(),
        "duplicate_segment_name"
    );
    assert_eq!(
        engine
            .create_segment(
                "r",
                "",
                Some(RuleInput::Ast(Rule::InSegment {
                    segment: "missing".into()
                }))
            )
            .unwrap_err()
            .code(),
        "rule_unknown_segment"
    );
    assert_eq!(
        engine
            .create_segment(
                "selfish",
                "",
                Some(RuleInput::Ast(Rule::InSegment {
                    segment: "selfish".into()
                }))
            )
            .unwrap_err()
            .code(),
        "rule_segment_cycle"
    );
    let mut deep = Rule::Has {
        trait_name: "age".into(),
    };
    for _ in 0..segd::segment::limits::MAX_RULE_DEPTH {
        deep = Rule::Not {
            rule: Box::new(deep),
        };
    }
    assert_eq!(
        engine
            .create_segment("deep", "", Some(RuleInput::Ast(deep)))
            .unwrap_err()
            .code(),
        "rule_too_deep"
    );
    assert_eq!(
        engine
            .create_segment(
                "empty",
                "",
                Some(RuleInput::Ast(Rule::And { rules: vec![] }))
            )
            .unwrap_err()
            .code(),
        "rule_empty_group"
    );
    let long_list = Rule::In {
        trait_name: "city".into(),
        values: vec![Literal::String("a".into()); segd::segment::limits::MAX_LIST_LENGTH + 1],
        negated: false,
    };
    assert_eq!(
        engine
            .create_segment("long", "", Some(RuleInput::Ast(long_list)))
            .unwrap_err()
            .code(),
        "rule_list_too_long"
    );
    assert_eq!(
        engine.create_segment("", "", None).unwrap_err().code(),
        "bad_segment_name"
    );
    // Segment count limit (6 here).
    for index in 0..3 {
        engine
            .create_segment(&format!("filler{index}"), "", None)
            .unwrap();
    }
    assert_eq!(engine.list_segments().len(), 5);
    engine.create_segment("sixth", "", None).unwrap();
    assert_eq!(
        engine
            .create_segment("seventh", "", None)
            .unwrap_err()
            .code(),
        "too_many_segments"
    );
    // A cycle through an edit is refused.
    let a = engine.segment_id("filler0").unwrap();
    engine.delete_segment(a).unwrap();
    let first = engine
        .create_segment("first", "", Some(equals("city", text("Rome"))))
        .unwrap();
    let second_id = engine.segment_id("filler1").unwrap();
    engine.delete_segment(second_id).unwrap();
    engine
        .create_segment(
            "second",
            "",
            Some(RuleInput::Ast(Rule::InSegment {
                segment: "first".into(),
            })),
        )
        .unwrap();
    let error = engine
        .update_segment(
            first.id,
            RuleInput::Ast(Rule::InSegment {
                segment: "second".into(),
            }),
            None,
        )
        .unwrap_err();
    assert_eq!(error.code(), "rule_segment_cycle");
    // Bad trait values are rejected whole: nothing of the message is applied.
    let before = engine.traits_of("x").unwrap();
    let error = engine
        .identify(
            Some("x"),
            None,
            &traits(json!({"city": "Oslo", "age": "three"})),
        )
        .unwrap_err();
    assert_eq!(error.code(), "invalid_trait");
    assert_eq!(engine.traits_of("x").unwrap(), before);
    assert_eq!(
        engine.identify(None, None, &Map::new()).unwrap_err().code(),
        "missing_identifier"
    );
    assert_eq!(
        engine
            .identify(Some(&"u".repeat(600)), None, &Map::new())
            .unwrap_err()
            .code(),
        "bad_identifier"
    );
}

#[test]
fn integer_trait_widens_to_float_and_rules_keep_working() {
    let engine = engine();
    engine
        .identify(Some("a"), None, &traits(json!({"ltv": 100})))
        .unwrap();
    let rich = engine
        .create_segment(
            "rich",
            "",
            Some(RuleInput::Ast(Rule::Compare {
                trait_name: "ltv".into(),
                op: CompareOp::Greater,
                value: Literal::Integer(100),
            })),
        )
        .unwrap();
    assert_eq!(rich.count, 0);
    engine
        .identify(Some("b"), None, &traits(json!({"ltv": 100.5})))
        .unwrap();
    assert_eq!(engine.count(rich.id), 1);
    assert_eq!(engine.traits_of("a").unwrap()["ltv"], json!(100.0));
}

#[test]
fn relative_time_membership_changes_when_time_passes() {
    let clock = ManualClock::new(NOW_MS);
    let engine = Engine::with_clock(
        EngineOptions {
            shards: 2,
            ..EngineOptions::default()
        },
        clock.clone(),
    );
    let day = 86_400_000;
    let signup = |days_ago: i64| {
        traits(json!({"signup_at": segd::store::value::format_timestamp(NOW_MS - days_ago * day)}))
    };
    engine.identify(Some("fresh"), None, &signup(29)).unwrap();
    engine.identify(Some("old"), None, &signup(40)).unwrap();
    engine
        .identify(
            Some("future"),
            None,
            &traits(json!({"signup_at": segd::store::value::format_timestamp(NOW_MS + day)})),
        )
        .unwrap();
    let recent = engine
        .create_segment(
            "recent",
            "",
            Some(RuleInput::Ast(Rule::Recent {
                trait_name: "signup_at".into(),
                recency: segd::segment::ast::Recency::WithinLast,
                span: segd::segment::ast::Span {
                    amount: 30,
                    unit: segd::segment::ast::TimeUnit::Days,
                },
            })),
        )
        .unwrap();
    assert_eq!(
        set(engine.all_members(recent.id)),
        set(vec!["fresh".into()])
    );
    // Only the two profiles with a future edge have timers: "old" has none.
    assert_eq!(engine.next_timer_ms(), Some(NOW_MS + day));
    assert_eq!(engine.tick(), 0, "nothing due yet");
    clock.advance(day);
    assert_eq!(engine.tick(), 1, "the future signup enters");
    clock.advance(day);
    assert_eq!(
        engine.tick(),
        1,
        "the 29-day-old signup leaves one day later"
    );
    assert_eq!(
        set(engine.all_members(recent.id)),
        set(vec!["future".into()])
    );
    let read = engine.changes().read(0, None, 10).unwrap();
    assert_eq!(read.changes.len(), 2);
    assert!(read
        .changes
        .iter()
        .all(|change| change.cause == Cause::Time));
    assert_eq!(&*read.changes[1].profile, "fresh");
    assert_eq!(read.changes[1].kind, ChangeKind::Exited);
}

#[test]
fn identity_merges_move_traits_and_memberships() {
    let engine = engine();
    let berlin = engine
        .create_segment("berlin", "", Some(equals("city", text("Berlin"))))
        .unwrap();
    let picked = engine.create_segment("picked", "", None).unwrap();
    // An anonymous visitor with history, later identified.
    engine
        .identify(
            None,
            Some("cookie-1"),
            &traits(json!({"city": "Berlin", "utm": "ad"})),
        )
        .unwrap();
    engine
        .edit_static(picked.id, StaticEdit::Add, &["anon:cookie-1".to_string()])
        .unwrap();
    engine
        .identify(Some("known"), None, &traits(json!({"city": "Paris"})))
        .unwrap();
    assert_eq!(engine.profile_count(), 2);
    // identify with both ids links them: the userId profile survives, its city wins.
    engine
        .identify(Some("known"), Some("cookie-1"), &Map::new())
        .unwrap();
    assert_eq!(engine.profile_count(), 1);
    assert_eq!(engine.resolve("anon:cookie-1"), engine.resolve("known"));
    let card = engine.traits_of("known").unwrap();
    assert_eq!(card["city"], "Paris");
    assert_eq!(card["utm"], "ad");
    assert_eq!(engine.count(berlin.id), 0);
    assert_eq!(
        set(engine.all_members(picked.id)),
        set(vec!["known".into()])
    );
    let causes: Vec<Cause> = engine
        .changes()
        .read(0, None, 100)
        .unwrap()
        .changes
        .iter()
        .map(|c| c.cause)
        .collect();
    assert!(causes.contains(&Cause::Merge), "{causes:?}");
    // alias merges an earlier anonymous profile into a known user.
    engine
        .identify(
            None,
            Some("cookie-2"),
            &traits(json!({"city": "Berlin", "age": 40})),
        )
        .unwrap();
    engine.alias("known", "cookie-2").unwrap();
    assert_eq!(engine.profile_count(), 1);
    assert_eq!(engine.traits_of("known").unwrap()["age"], 40);
    assert_eq!(engine.resolve("anon:cookie-2"), engine.resolve("known"));
    // A shared identity trait (email) merges two profiles.
    engine
        .identify(Some("other"), None, &traits(json!({"email": "x@y.io"})))
        .unwrap();
    engine
        .identify(Some("known"), None, &traits(json!({"email": "x@y.io"})))
        .unwrap();
    assert_eq!(engine.profile_count(), 1);
    assert_eq!(engine.resolve("other"), engine.resolve("known"));
    // alias of an unknown previous id attaches nothing but keeps the user.
    engine.alias("newcomer", "never-seen").unwrap();
    assert!(engine.resolve("newcomer").is_some());
}

/// The compiled-plan cache never serves a plan compiled against an older schema or
/// segment set: a rule on a trait nobody has yet, a trait widened from integer to
/// float, and an `in segment` whose segment was deleted and re-created under the same
/// name all answer as a fresh compilation does.
#[test]
fn cached_plans_follow_schema_and_segment_changes() {
    let engine = engine();
    let preview = |rule: &str| {
        engine
            .preview(RuleInput::Text(rule.into()), 10)
            .unwrap()
            .count
    };
    let set = |user: &str, traits: Value| {
        engine
            .identify(Some(user), None, traits.as_object().unwrap())
            .unwrap();
    };
    assert_eq!(preview("score > 1"), 0); // unknown trait: matches nobody
    set("a", json!({"score": 2}));
    assert_eq!(preview("score > 1"), 1);
    assert_eq!(preview("score > 2"), 0);
    set("b", json!({"score": 2.5})); // widens `score` to float
    assert_eq!(preview("score > 2"), 1);
    engine
        .create_segment("s", "", Some(RuleInput::Text("score > 2".into())))
        .unwrap();
    assert_eq!(preview(r#"in segment "s""#), 1);
    let id = engine.segment_id("s").unwrap();
    engine.delete_segment(id).unwrap();
    engine
        .create_segment("s", "", Some(RuleInput::Text("score > 1".into())))
        .unwrap();
    assert_eq!(preview(r#"in segment "s""#), 2);
    // The same rule as a JSON AST shares nothing with the text entry but answers alike.
    let ast = RuleInput::Ast(Rule::Compare {
        trait_name: "score".into(),
        op: CompareOp::Greater,
        value: Literal::Integer(2),
    });
    assert_eq!(engine.preview(ast, 10).unwrap().count, 1);
    assert_eq!(preview("score > 2"), 1);
    assert_eq!(preview("score > 2"), 1);
    let (hits, misses) = engine.plan_cache_stats();
    assert!(hits >= 1, "repeated rule text is served from the cache");
    assert!(misses >= 6);
}
