//! Events survive restarts: after a workload of tracks (properties of every kind, late
//! events, merges moving events between profiles, an alias renaming a profile), the
//! state recovered (a) from the WAL alone and (b) from a snapshot plus WAL tail has the
//! same profile cards (identifiers, traits, per-event summaries, recent events with
//! properties), the same behavioral segment memberships, the same pending timers, and
//! fresh behavioral queries give the same answers.

mod common;

use common::persist::{Suite, NOW_MS};
use segd::engine::{Mutation, RuleInput};
use segd::ingest::parse_batch;
use segd::persist::wal::FsyncPolicy;
use segd::persist::Database;
use serde_json::{json, Value};

const SUITE: Suite = Suite {
    name: "events",
    fsync: FsyncPolicy::Never,
    wal_segment_bytes: None,
    shards: 3,
    identity_traits: &["email"],
};

const DAY_MS: i64 = 86_400_000;

fn time(offset_days: i64) -> String {
    segd::store::value::format_timestamp(NOW_MS - offset_days * DAY_MS)
}

fn workload(database: &Database) {
    for (name, rule) in [
        (
            "buyers",
            r#"did "order_completed" where amount > 20 at least 2 times in last 30 days"#,
        ),
        (
            "spenders",
            r#"sum of "order_completed".amount in last 60 days >= 100"#,
        ),
        ("lapsed", r#"last "email_opened" more than 10 days ago"#),
        (
            "distinct_kinds",
            r#"count distinct of "page".kind in last 7 days >= 2"#,
        ),
    ] {
        database
            .apply(Mutation::CreateSegment {
                name: name.to_string(),
                description: "".to_string(),
                rule: Some(RuleInput::Text(rule.into()).into_rule().unwrap()),
                emit_initial: false,
            })
            .unwrap();
    }
    let mut batch: Vec<Value> = Vec::new();
    for index in 0..60 {
        let user = format!("user-{index}");
        batch.push(json!({"type": "identify", "userId": user, "traits": {"email": format!("p{index}@example.com")}}));
        for order in 0..(index % 5) {
            batch.push(
                json!({"type": "track", "userId": user, "event": "order_completed",
                "timestamp": time(order * 7 + index % 3),
                "properties": {"amount": 10 + order * 17 + index, "currency": "EUR", "coupon": null,
                    "items": ["a", 1, {"sku": "x"}], "gift": index % 2 == 0, "ratio": 0.25}}),
            );
        }
        batch.push(json!({"type": "track", "userId": user, "event": "email_opened", "timestamp": time(index % 20)}));
        batch.push(json!({"type": "page", "anonymousId": format!("anon-{index}"), "name": "Home",
            "properties": {"kind": (["home", "shop", "blog"][(index % 3) as usize]), "url": "https://example.com/"},
            "context": {"campaign": {"source": "news"}}, "timestamp": time(index % 4)}));
    }
    // Late event beyond retention (lifetime only), merges and an alias rename.
    batch.push(json!({"type": "track", "userId": "user-1", "event": "email_opened", "timestamp": time(200)}));
    batch.push(json!({"type": "identify", "userId": "user-2", "anonymousId": "anon-2"}));
    batch.push(json!({"type": "alias", "userId": "user-3", "previousId": "anon-3"}));
    batch.push(
        json!({"type": "identify", "anonymousId": "anon-5", "traits": {"email": "p6@example.com"}}),
    );
    batch.push(json!({"type": "alias", "userId": "new-user-7", "previousId": "anon-7"}));
    database
        .apply(Mutation::Messages(
            parse_batch(&json!({ "batch": batch })).unwrap(),
        ))
        .unwrap();
}

fn fingerprint(database: &Database) -> Value {
    let engine = database.engine();
    let mut cards: Vec<Value> = Vec::new();
    let everybody = serde_json::from_value(json!({"kind": "or", "rules": [
        {"kind": "has", "trait": "email"}, {"kind": "not", "rule": {"kind": "has", "trait": "email"}}]}))
        .unwrap();
    let mut ids = engine.matching_profiles(&everybody).unwrap();
    ids.sort();
    for id in &ids {
        cards.push(serde_json::to_value(engine.profile_card(id, 1_000).unwrap()).unwrap());
    }
    let segments: Vec<Value> = engine
        .list_segments()
        .into_iter()
        .map(|segment| {
            let mut members = engine.all_members(segment.id);
            members.sort();
            json!([segment.name, members])
        })
        .collect();
    let mut queries = Vec::new();
    for rule in [
        r#"did "order_completed" where (gift = true and items contains "a") in last 40 days"#,
        r#"avg of "order_completed".amount in last 60 days > 40"#,
        r#"did "page" where utm_source = "news" at least 1 time in last 10 days"#,
        r#"first "email_opened" more than 100 days ago"#,
        r#"did "email_opened" at least 2 times"#,
    ] {
        let mut members = engine
            .matching_profiles(&segd::segment::parser::parse_rule(rule).unwrap())
            .unwrap();
        members.sort();
        queries.push(json!([rule, members]));
    }
    json!({"cards": cards, "segments": segments, "queries": queries, "next_timer": engine.next_timer_ms()})
}

#[test]
fn events_survive_wal_replay_and_snapshots() {
    let dir = SUITE.data_dir("roundtrip");
    let database = SUITE.open(&dir).0;
    workload(&database);
    let expected = fingerprint(&database);
    assert!(expected["cards"].as_array().unwrap().len() > 50);
    assert!(expected.to_string().contains("utm_source"));
    drop(database);

    // WAL only.
    let database = SUITE.open(&dir).0;
    assert_eq!(fingerprint(&database), expected, "after WAL replay");
    // Snapshot, then restart from it.
    database.snapshot_now().unwrap();
    drop(database);
    let database = SUITE.open(&dir).0;
    assert_eq!(fingerprint(&database), expected, "after snapshot load");
    drop(database);
    let _ = std::fs::remove_dir_all(&dir);
}
