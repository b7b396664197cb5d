//! Durability end to end on small data: WAL-only recovery, snapshot + WAL recovery,
//! damaged snapshots and WAL tails, a failing WAL, sequence numbers across restarts,
//! de-duplication and suppression across restarts, durable erasure, inspect.

mod common;

use common::persist::{files_containing, send, Suite, NOW_MS};
use segd::clock::ManualClock;
use segd::engine::{Mutation, StaticEdit};
use segd::ingest::parse_batch;
use segd::persist::inspect::inspect;
use segd::persist::wal::{FsyncPolicy, WalFaults};
use segd::persist::{Database, DatabaseError, DatabaseOptions};
use segd::segment::ast::Rule;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

const SUITE: Suite = Suite {
    name: "persist",
    fsync: FsyncPolicy::Always,
    wal_segment_bytes: Some(64 << 10),
    shards: 3,
    identity_traits: &["email"],
};

fn rule(value: Value) -> Option<Rule> {
    Some(serde_json::from_value(value).unwrap())
}

fn identify(id: &str, traits: Value) -> Value {
    json!({"type": "identify", "userId": id, "traits": traits, "messageId": format!("m-{id}-{traits}")})
}

/// Profiles with every column kind: dictionary strings, arena strings (more distinct
/// values than a dictionary keeps), integers (with and without the value index),
/// floats, timestamps, booleans, lists.
fn profile_message(index: usize) -> Value {
    let plan = ["free", "pro", "team"][index % 3];
    let city = ["Berlin", "Paris", "Rome", "Oslo"][index % 4];
    identify(
        &format!("user-{index}"),
        json!({
            "plan": plan,
            "email": format!("person{index}@example.com"),
            "age": 18 + (index % 60) as i64,
            "visits": (index * 7919) as i64,
            "ltv": index as f64 * 1.25,
            "signup_at": "2025-06-01T10:00:00Z",
            "subscribed": index.is_multiple_of(2),
            "tags": [format!("t{}", index % 5), "all"],
            "address": {"city": city},
        }),
    )
}

fn populate(database: &Database, from: usize, to: usize) {
    let messages: Vec<Value> = (from..to).map(profile_message).collect();
    for chunk in messages.chunks(500) {
        send(database, chunk.to_vec());
    }
}

fn define_segments(database: &Database) {
    database
        .apply(Mutation::CreateSegment {
            name: "pro".to_string(),
            description: "paying".to_string(),
            rule: rule(json!({"kind": "compare", "trait": "plan", "op": "=", "value": "pro"})),
            emit_initial: false,
        })
        .unwrap();
    database
        .apply(Mutation::CreateSegment {
            name: "rich_berliners".to_string(),
            description: "".to_string(),
            rule: rule(json!({"kind": "and", "rules": [
                {"kind": "compare", "trait": "ltv", "op": ">", "value": 100},
                {"kind": "compare", "trait": "address.city", "op": "=", "value": "Berlin"},
                {"kind": "in_segment", "segment": "pro"}
            ]})),
            emit_initial: false,
        })
        .unwrap();
    database
        .apply(Mutation::CreateSegment {
            name: "young_subscribers".to_string(),
            description: "".to_string(),
            rule: rule(json!({"kind": "and", "rules": [
                {"kind": "between", "trait": "age", "low": 18, "high": 30},
                {"kind": "compare", "trait": "subscribed", "op": "=", "value": true},
                {"kind": "text", "trait": "tags", "op": "contains", "value": "t1"}
            ]})),
            emit_initial: false,
        })
        .unwrap();
    database
        .apply(Mutation::CreateSegment { name: "recent_signups".to_string(), description: "".to_string(), rule: rule(json!({"kind": "recent", "trait": "signup_at", "recency": "within_last", "span": {"amount": 30, "unit": "days"}})), emit_initial: false })
        .unwrap();
    database
        .apply(Mutation::CreateSegment {
            name: "hand_picked".to_string(),
            description: "".to_string(),
            rule: None,
            emit_initial: false,
        })
        .unwrap();
}

/// Everything observable about the engine, as one comparable value.
fn fingerprint(database: &Database, ids: &[String]) -> Value {
    let engine = database.engine();
    let segments: Vec<Value> = engine
        .list_segments()
        .into_iter()
        .map(|s| {
            let mut members = engine.all_members(s.id);
            members.sort();
            json!({
                "id": s.id.0, "name": s.name, "version": s.version, "count": s.count,
                "static": s.is_static, "rule": s.rule_ast, "description": s.description,
                "members": members,
            })
        })
        .collect();
    let profiles: Vec<Value> = ids
        .iter()
        .map(|id| match engine.traits_of(id) {
            Ok(traits) => json!({
                "id": id,
                "traits": traits,
                "segments": engine.segments_of(id).unwrap().iter().map(|s| s.0).collect::<Vec<_>>(),
            }),
            Err(_) => json!({"id": id, "missing": true}),
        })
        .collect();
    let schema: Vec<Value> = engine
        .schema()
        .columns()
        .map(|(id, info)| json!([id.0, info.name, info.trait_type]))
        .collect();
    // Fresh whole-population queries read the loaded indexes of every column kind.
    let queries: Vec<Value> = [
        json!({"kind": "compare", "trait": "plan", "op": "=", "value": "pro"}),
        json!({"kind": "compare", "trait": "email", "op": "=", "value": "person42@example.com"}),
        json!({"kind": "text", "trait": "email", "op": "starts_with", "value": "person1"}),
        json!({"kind": "between", "trait": "age", "low": 20, "high": 40}),
        json!({"kind": "compare", "trait": "visits", "op": ">", "value": 10_000_000}),
        json!({"kind": "compare", "trait": "visits", "op": "<=", "value": 400_000}),
        json!({"kind": "compare", "trait": "ltv", "op": ">=", "value": 2000.5}),
        json!({"kind": "compare", "trait": "signup_at", "op": ">", "value": "2025-01-01T00:00:00Z"}),
        json!({"kind": "compare", "trait": "subscribed", "op": "=", "value": true}),
        json!({"kind": "text", "trait": "tags", "op": "contains", "value": "t3"}),
        json!({"kind": "in", "trait": "address.city", "values": ["Rome", "Oslo"]}),
        json!({"kind": "not", "rule": {"kind": "has", "trait": "device"}}),
    ]
    .into_iter()
    .map(|query| {
        let rule = serde_json::from_value(query.clone()).unwrap();
        let mut members = engine.matching_profiles(&rule).unwrap();
        members.sort();
        json!([query, members.len(), members.first(), members.last()])
    })
    .collect();
    json!({
        "queries": queries,
        "profiles": engine.profile_count(),
        "segments": segments,
        "schema": schema,
        "each": profiles,
        "next_timer": engine.next_timer_ms(),
    })
}

fn ids(to: usize) -> Vec<String> {
    (0..to).map(|index| format!("user-{index}")).collect()
}

/// A workload touching every kind of record.
fn workload(database: &Database) {
    populate(database, 0, 600);
    define_segments(database);
    populate(database, 600, 5_200);
    let hand_picked = database.engine().segment_id("hand_picked").unwrap();
    database
        .apply(Mutation::EditStatic {
            id: hand_picked,
            edit: StaticEdit::Add,
            profiles: ["user-1".into(), "user-2".into(), "user-3".into()].to_vec(),
        })
        .unwrap();
    database
        .apply(Mutation::EditStatic {
            id: hand_picked,
            edit: StaticEdit::Remove,
            profiles: ["user-2".into()].to_vec(),
        })
        .unwrap();
    let pro = database.engine().segment_id("young_subscribers").unwrap();
    database
        .apply(Mutation::UpdateSegment {
            id: pro,
            rule: rule(json!({"kind": "compare", "trait": "age", "op": "<", "value": 25})).unwrap(),
            description: Some("edited".to_string()),
        })
        .unwrap();
    database
        .apply(Mutation::EraseProfile {
            external_id: "user-10".to_string(),
        })
        .unwrap();
    database
        .apply(Mutation::DeleteProfile {
            external_id: "user-11".to_string(),
        })
        .unwrap();
    let temporary = database
        .apply(Mutation::CreateSegment {
            name: "temporary".to_string(),
            description: "".to_string(),
            rule: rule(json!({"kind": "has", "trait": "plan"})),
            emit_initial: false,
        })
        .unwrap()
        .into_segment()
        .unwrap();
    database
        .apply(Mutation::DeleteSegment { id: temporary.id })
        .unwrap();
    // Updates, removals (null) and a merge through a shared email.
    send(
        database,
        vec![
            identify("user-20", json!({"plan": "team", "ltv": null})),
            json!({"type": "identify", "anonymousId": "device-9", "traits": {"email": "person21@example.com", "device": "ios"}}),
            json!({"type": "alias", "userId": "user-22", "previousId": "device-9"}),
        ],
    );
}

#[test]
fn wal_only_recovery_reproduces_the_state() {
    let dir = SUITE.data_dir("wal-only");
    let (database, report) = SUITE.open(&dir);
    assert!(report.snapshot.is_none());
    workload(&database);
    let before = fingerprint(&database, &ids(5_200));
    let head_before = database.engine().changes().head();
    drop(database);

    let (database, report) = SUITE.open(&dir);
    assert!(report.snapshot.is_none());
    assert!(report.replayed_messages >= 5_200, "{report}");
    assert_eq!(report.replay_errors, 0, "{report}");
    assert_eq!(fingerprint(&database, &ids(5_200)), before);
    assert!(database.engine().changes().head() > head_before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn snapshot_then_wal_recovery_reproduces_the_state() {
    let dir = SUITE.data_dir("snapshot");
    let (database, _) = SUITE.open(&dir);
    workload(&database);
    let snapshot = database.snapshot_now().unwrap();
    assert!(snapshot.bytes > 0);
    populate(&database, 5_200, 5_400);
    database
        .apply(Mutation::EraseProfile {
            external_id: "user-5300".to_string(),
        })
        .unwrap();
    let before = fingerprint(&database, &ids(5_400));
    let head_before = database.engine().changes().head();
    drop(database);

    let (database, report) = SUITE.open(&dir);
    assert_eq!(report.snapshot.as_deref(), Some(snapshot.path.as_path()));
    assert_eq!(report.replayed_messages, 200, "{report}");
    assert_eq!(fingerprint(&database, &ids(5_400)), before);
    assert!(database.engine().changes().head() > head_before);

    // Snapshot of a snapshot-loaded engine, then load again: still identical.
    database.snapshot_now().unwrap();
    drop(database);
    let (database, report) = SUITE.open(&dir);
    assert_eq!(report.replayed_records, 0, "{report}");
    assert_eq!(fingerprint(&database, &ids(5_400)), before);

    // De-duplication and suppression survive restarts.
    let again = parse_batch(&json!({"batch": [identify("user-5", json!({"plan": "x"}))]})).unwrap();
    let first_time = parse_batch(&json!({"batch": [profile_message(5)]})).unwrap();
    let outcome = database
        .apply(Mutation::Messages(first_time))
        .unwrap()
        .into_batch()
        .unwrap();
    assert_eq!(outcome.duplicates, 1);
    database.apply(Mutation::Messages(again)).unwrap();
    let outcome = database
        .apply(Mutation::Messages(parse_batch(&json!({"batch": [{"type": "identify", "userId": "user-10", "traits": {"plan": "pro"}}]})).unwrap()))
        .unwrap()
        .into_batch()
        .unwrap();
    assert_eq!(outcome.suppressed, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn flip_byte(path: &Path, at_fraction: f64) {
    let mut bytes = std::fs::read(path).unwrap();
    let index = ((bytes.len() as f64 * at_fraction) as usize).min(bytes.len() - 1);
    bytes[index] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_snapshot_is_rejected_and_the_previous_one_used() {
    for damage in ["flip", "truncate", "version", "missing"] {
        let dir = SUITE.data_dir(&format!("damaged-{damage}"));
        let (database, _) = SUITE.open(&dir);
        populate(&database, 0, 300);
        define_segments(&database);
        let first = database.snapshot_now().unwrap();
        populate(&database, 300, 400);
        let second = database.snapshot_now().unwrap();
        populate(&database, 400, 450);
        let before = fingerprint(&database, &ids(450));
        drop(database);

        let shard = second.path.join("shard-0001.seg");
        match damage {
            "flip" => flip_byte(&shard, 0.6),
            "truncate" => {
                let bytes = std::fs::read(&shard).unwrap();
                std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
            }
            "version" => {
                let mut bytes = std::fs::read(&shard).unwrap();
                bytes[8] = 99;
                std::fs::write(&shard, bytes).unwrap();
            }
            _ => std::fs::remove_file(&shard).unwrap(),
        }
        let inspected = inspect(&dir).unwrap();
        assert!(!inspected.is_healthy(), "{damage}: {inspected}");

        let (database, report) = SUITE.open(&dir);
        assert_eq!(
            report.snapshot.as_deref(),
            Some(first.path.as_path()),
            "{damage}"
        );
        assert_eq!(report.rejected_snapshots.len(), 1, "{damage}");
        assert!(
            report.rejected_snapshots[0].contains("shard-0001.seg"),
            "{damage}: {}",
            report.rejected_snapshots[0]
        );
        assert_eq!(fingerprint(&database, &ids(450)), before, "{damage}");
        drop(database);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_torn_wal_tail_is_cut_at_the_last_valid_batch() {
    let dir = SUITE.data_dir("torn");
    let (database, _) = SUITE.open(&dir);
    populate(&database, 0, 100);
    let before = fingerprint(&database, &ids(120));
    send(
        &database,
        vec![identify("user-110", json!({"plan": "late"}))],
    );
    let status = database.wal_status();
    drop(database);

    let segments = segd::persist::wal::list_segments(&dir).unwrap();
    let (_, last) = segments.last().unwrap();
    let bytes = std::fs::read(last).unwrap();
    // Cut inside the last batch, as a crash mid-write would.
    std::fs::write(last, &bytes[..bytes.len() - 5]).unwrap();

    let (database, report) = SUITE.open(&dir);
    let (path, _, reason) = report.truncated.clone().expect("tail cut");
    assert_eq!(&path, last);
    assert!(
        reason.contains("torn") || reason.contains("checksum"),
        "{reason}"
    );
    assert!(report.dropped_bytes > 0);
    assert_eq!(fingerprint(&database, &ids(120)), before);
    assert_eq!(report.next_lsn, status.next_lsn - 1, "one record dropped");
    // Writes go on after the cut and survive another restart.
    send(
        &database,
        vec![identify("user-111", json!({"plan": "after"}))],
    );
    drop(database);
    let (database, report) = SUITE.open(&dir);
    assert!(report.truncated.is_none(), "{report}");
    assert_eq!(
        database.engine().traits_of("user-111").unwrap()["plan"],
        json!("after")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failing_wal_refuses_writes_and_acknowledges_nothing_lost() {
    let dir = SUITE.data_dir("failing");
    let faults = Arc::new(WalFaults::default());
    let options = DatabaseOptions {
        faults: Some(faults.clone()),
        ..SUITE.options(&dir)
    };
    let (database, _) = Database::open(options, ManualClock::new(NOW_MS)).unwrap();
    populate(&database, 0, 10);
    faults.fail_writes.store(true, Ordering::SeqCst);
    let batch =
        parse_batch(&json!({"batch": [identify("user-50", json!({"plan": "pro"}))]})).unwrap();
    let error = database
        .apply(Mutation::Messages(batch.clone()))
        .unwrap_err();
    assert!(matches!(error, DatabaseError::Unavailable(_)));
    assert_eq!(error.code(), "storage_unavailable");
    assert!(database.wal_status().failure.is_some());
    faults.fail_writes.store(false, Ordering::SeqCst);
    // Refused even once the disk is back: what was lost is unknown until a restart.
    assert!(database.apply(Mutation::Messages(batch)).is_err());
    assert!(database
        .apply(Mutation::CreateSegment {
            name: "x".to_string(),
            description: "".to_string(),
            rule: None,
            emit_initial: false
        })
        .is_err());
    drop(database);

    let (database, _) = SUITE.open(&dir);
    assert!(database.engine().traits_of("user-9").is_ok());
    assert!(database.engine().traits_of("user-50").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn erasure_leaves_no_trace_on_disk_after_the_next_snapshot() {
    let dir = SUITE.data_dir("erasure");
    let (database, _) = SUITE.open(&dir);
    populate(&database, 0, 5_000);
    define_segments(&database);
    // Unique values: an id, an anonymous id, an email (identity trait, arena column)
    // and a dictionary string only this profile holds.
    send(
        &database,
        vec![
            json!({"type": "identify", "userId": "erase-me-uid", "anonymousId": "erase-me-anon",
                    "traits": {"email": "erase-me@secret.example", "plan": "erase-me-plan", "address": {"city": "Erasemeville"}}}),
        ],
    );
    database.snapshot_now().unwrap();
    populate(&database, 5_000, 5_010);
    let needles = [
        "erase-me-uid",
        "erase-me-anon",
        "erase-me@secret.example",
        "erase-me-plan",
        "Erasemeville",
    ];
    for needle in needles {
        assert!(
            !files_containing(&dir, needle).is_empty(),
            "{needle} on disk before"
        );
    }
    database
        .apply(Mutation::EraseProfile {
            external_id: "erase-me-uid".to_string(),
        })
        .unwrap();
    database.snapshot_now().unwrap();
    for needle in needles {
        assert_eq!(
            files_containing(&dir, needle),
            Vec::<PathBuf>::new(),
            "{needle}"
        );
    }
    drop(database);
    let (database, _) = SUITE.open(&dir);
    assert!(database.engine().traits_of("erase-me-uid").is_err());
    let outcome = database
        .apply(Mutation::Messages(parse_batch(&json!({"batch": [{"type": "identify", "anonymousId": "erase-me-anon", "traits": {"plan": "back"}}]})).unwrap()))
        .unwrap()
        .into_batch()
        .unwrap();
    assert_eq!(outcome.suppressed, 1, "suppression survived the restart");
    // Sent again after erasure, the identifier is not written to disk either.
    for needle in needles {
        assert_eq!(
            files_containing(&dir, needle),
            Vec::<PathBuf>::new(),
            "{needle}"
        );
    }
    assert_eq!(database.engine().profile_count(), 5_010);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn snapshots_rotate_the_wal_and_inspect_lists_everything() {
    let dir = SUITE.data_dir("inspect");
    let (database, _) = SUITE.open(&dir);
    populate(&database, 0, 2_000);
    let first = database.snapshot_now().unwrap();
    populate(&database, 2_000, 2_500);
    let second = database.snapshot_now().unwrap();
    populate(&database, 2_500, 2_600);
    let third = database.snapshot_now().unwrap();
    assert_eq!(third.removed_snapshots, 1);
    assert!(third.removed_wal_segments >= 1);
    assert!(!first.path.exists());
    assert!(second.path.exists() && third.path.exists());
    let report = inspect(&dir).unwrap();
    assert!(report.is_healthy(), "{report}");
    assert_eq!(report.snapshots.len(), 2);
    assert_eq!(report.snapshots[1].profiles, 2_600);
    assert_eq!(report.snapshots[1].shards, 3);
    // The WAL since the older kept snapshot is still there, and nothing before it.
    let first_wal = report.wal_segments.first().unwrap();
    assert_eq!(first_wal.first_lsn, second.covered_lsn + 1);
    let printed = report.to_string();
    assert!(printed.contains("all checksums verified"), "{printed}");
    assert!(printed.contains("snapshot-"), "{printed}");
    drop(database);
    // A flipped WAL byte shows up as a damaged tail.
    let (_, last) = segd::persist::wal::list_segments(&dir)
        .unwrap()
        .pop()
        .unwrap();
    if std::fs::metadata(&last).unwrap().len() > 0 {
        flip_byte(&last, 0.5);
        assert!(!inspect(&dir).unwrap().is_healthy());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn concurrent_ingest_replays_in_apply_order() {
    let dir = SUITE.data_dir("concurrent");
    let (database, _) = SUITE.open(&dir);
    define_segments(&database);
    let database = Arc::new(database);
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let database = database.clone();
            std::thread::spawn(move || {
                for batch in 0..40 {
                    // Every thread also overwrites one shared profile: its final value
                    // depends on the order batches were applied, which replay must repeat.
                    let mut messages: Vec<Value> = (0..10)
                        .map(|index| profile_message(thread * 1_000 + batch * 10 + index))
                        .collect();
                    let plan = ["free", "pro"][batch % 2];
                    messages.push(json!({"type": "identify", "userId": "shared",
                        "traits": {"last": format!("{thread}-{batch}"), "plan": plan}}));
                    send(&database, messages);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut everyone: Vec<String> = (0..4)
        .flat_map(|thread| (0..400).map(move |index| format!("user-{}", thread * 1_000 + index)))
        .collect();
    everyone.push("shared".into());
    let before = fingerprint(&database, &everyone);
    drop(database);
    let (database, report) = SUITE.open(&dir);
    assert_eq!(report.replay_errors, 0, "{report}");
    assert_eq!(fingerprint(&database, &everyone), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The de-duplication window holds 16-byte hashes: a snapshot keeps no message id, and
/// a message id seen before the snapshot is still a duplicate after loading it.
#[test]
fn snapshots_keep_message_id_hashes_not_the_ids() {
    let dir = SUITE.data_dir("dedup-hashes");
    let (database, _) = SUITE.open(&dir);
    let message_id = "message-id-that-must-not-reach-the-disk-7f3a";
    let message = json!({"type": "identify", "userId": "dedup-user", "traits": {"plan": "pro"}, "messageId": message_id});
    send(&database, vec![message.clone()]);
    let snapshot = database.snapshot_now().unwrap();
    drop(database);
    for entry in std::fs::read_dir(&snapshot.path).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes
                .windows(message_id.len())
                .any(|window| window == message_id.as_bytes()),
            "a snapshot file holds the message id"
        );
    }
    let (database, report) = SUITE.open(&dir);
    assert!(report.snapshot.is_some(), "{report}");
    let outcome = database
        .apply(Mutation::Messages(
            parse_batch(&json!({ "batch": [message] })).unwrap(),
        ))
        .unwrap()
        .into_batch()
        .unwrap();
    assert_eq!(outcome.duplicates, 1, "still a duplicate after loading");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A refused batch writes nothing to the WAL, not even a change-sequence reservation:
/// reservations are made once the batch is prepared. The batch here needs more
/// sequences than one reservation block (2 × 5,000 messages × 101 segment slots), so a
/// reservation made before preparing it would show as a WAL record.
#[test]
fn a_refused_batch_needing_a_reservation_writes_nothing() {
    let dir = SUITE.data_dir("refused-reservation");
    let (database, _) = SUITE.open(&dir);
    for index in 0..100 {
        database
            .apply(Mutation::CreateSegment {
                name: format!("s{index}"),
                description: String::new(),
                rule: rule(json!({"kind": "has", "trait": "plan"})),
                emit_initial: false,
            })
            .unwrap();
    }
    let mut batch: Vec<Value> = (0..4_999)
        .map(|index| identify(&format!("r{index}"), json!({"plan": "pro"})))
        .collect();
    batch.push(identify("r-bad", json!({"plan": 7})));
    let before = database.wal_status();
    let refused = database.apply(Mutation::Messages(
        parse_batch(&json!({ "batch": batch })).unwrap(),
    ));
    assert!(refused.is_err(), "the type conflict refuses the batch");
    let after = database.wal_status();
    assert_eq!(
        (after.next_lsn, after.records_written, after.bytes_written),
        (
            before.next_lsn,
            before.records_written,
            before.bytes_written
        ),
        "the refused batch wrote to the WAL"
    );
    // Without the bad message the batch applies (and reserves then).
    batch.pop();
    database
        .apply(Mutation::Messages(
            parse_batch(&json!({ "batch": batch })).unwrap(),
        ))
        .unwrap();
    assert!(database.wal_status().records_written >= before.records_written + 2);
    drop(database);
    std::fs::remove_dir_all(&dir).unwrap();
}
