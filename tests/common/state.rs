//! The observable state of an engine, for tests that compare two engines (batched vs
//! one by one, lanes vs one thread, live vs replayed).

use segd::engine::{Engine, Mutation};
use segd::segment::ast::Rule;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

/// Everything observable about the engine through its public API: profiles (cards),
/// who owns each of `external_ids`, segments with members, schema, change log, next
/// timer. `exact` adds what legitimately differs after a restart (change-log sequence
/// numbers, which restart above the reserved block, and the counters).
pub fn engine_state(engine: &Engine, exact: bool, external_ids: &[String]) -> Value {
    let mut profiles: Vec<String> = engine
        .map_shards(|shard| {
            shard
                .live
                .iter()
                .map(|local| shard.identities[local as usize].external_id())
                .collect::<Vec<_>>()
        })
        .concat();
    profiles.sort();
    let cards: Vec<Value> = profiles
        .iter()
        .map(|id| serde_json::to_value(engine.profile_card(id, 1_000).unwrap()).unwrap())
        .collect();
    let identifiers: Vec<Value> = external_ids
        .iter()
        .map(|id| {
            let owner = engine
                .resolve(id)
                .and_then(|profile| engine.external_id(profile));
            json!([id, owner])
        })
        .collect();
    let segments: Vec<Value> = engine
        .list_segments()
        .into_iter()
        .map(|segment| {
            let mut members = engine.all_members(segment.id);
            members.sort();
            json!({
                "id": segment.id.0, "name": segment.name, "version": segment.version,
                "count": segment.count, "static": segment.is_static, "rule": segment.rule_ast,
                "members": members,
            })
        })
        .collect();
    let schema: Vec<Value> = engine
        .schema()
        .columns()
        .map(|(id, info)| json!([id.0, info.name, info.trait_type]))
        .collect();
    // After a restart the log's sequences start above the reserved block.
    let log = engine.changes();
    let after = log.oldest().map_or(log.head(), |oldest| oldest - 1);
    let read = log.read(after, None, usize::MAX).unwrap();
    let changes: Vec<Value> = read
        .changes
        .iter()
        .map(|change| {
            let mut value = serde_json::to_value(change).unwrap();
            if !exact {
                value.as_object_mut().unwrap().remove("sequence");
            }
            value
        })
        .collect();
    let mut state = json!({
        "profile_count": engine.profile_count(),
        "profiles": cards,
        "identifiers": identifiers,
        "segments": segments,
        "schema": schema,
        "changes": changes,
        "next_timer": engine.next_timer_ms(),
    });
    if exact {
        let counters = &engine.counters;
        state["head"] = json!(engine.changes().head());
        state["counters"] = json!([
            counters.messages_applied.load(Ordering::Relaxed),
            counters.messages_duplicate.load(Ordering::Relaxed),
            counters.messages_suppressed.load(Ordering::Relaxed),
            counters.membership_changes.load(Ordering::Relaxed),
        ]);
    }
    state
}

pub fn rule(value: Value) -> Option<Rule> {
    Some(serde_json::from_value(value).unwrap())
}

pub fn create(name: &str, rule: Option<Rule>) -> Mutation {
    Mutation::CreateSegment {
        name: name.into(),
        description: String::new(),
        rule,
        emit_initial: true,
    }
}

/// Dynamic segments reading every kind of thing the good messages of `strategies`
/// write: traits of each type, events, other segments, time, and a trait only
/// injections create.
pub fn covering_segments() -> Vec<Mutation> {
    vec![
        create(
            "pro",
            rule(json!({"kind": "compare", "trait": "plan", "op": "=", "value": "pro"})),
        ),
        create(
            "adults",
            rule(json!({"kind": "compare", "trait": "age", "op": ">=", "value": 18})),
        ),
        create(
            "buyers",
            rule(
                json!({"kind": "event_count", "event": "buy", "count_op": "at_least", "count": 1,
                        "window": {"type": "last", "span": {"amount": 7, "unit": "days"}}}),
            ),
        ),
        create(
            "pro_buyers",
            rule(json!({"kind": "and", "rules": [
                {"kind": "in_segment", "segment": "pro"},
                {"kind": "in_segment", "segment": "buyers"}]})),
        ),
        create(
            "vip_berliners",
            rule(json!({"kind": "and", "rules": [
                {"kind": "compare", "trait": "vip", "op": "=", "value": true},
                {"kind": "compare", "trait": "address.city", "op": "=", "value": "Berlin"}]})),
        ),
        create(
            "recent_signups",
            rule(
                json!({"kind": "recent", "trait": "signup_at", "recency": "within_last",
                        "span": {"amount": 30, "unit": "days"}}),
            ),
        ),
        create(
            "high_ratio",
            rule(json!({"kind": "compare", "trait": "ratio", "op": ">", "value": 40})),
        ),
        create(
            "has_pair_trait",
            rule(json!({"kind": "has", "trait": "zz0"})),
        ),
    ]
}
