//! The snapshot life cycle crashed at every step: a failpoint after each fsync, rename
//! and clean-up step of a snapshot taken after an erasure. After each crash the data
//! directory must open to the acknowledged state, the erased profile must stay erased,
//! and the next snapshot must leave exactly one snapshot and no byte of erased data —
//! the erasure is durable even though the crash lost the in-memory flag.
//!
//! Failpoints are process-wide, so everything runs in one test, one step at a time.

mod common;

use common::persist::{files_containing, populate_with, Suite};
use segd::engine::Mutation;
use segd::ingest::parse_batch;
use segd::persist::inspect::inspect;
use segd::persist::wal::FsyncPolicy;
use segd::persist::{set_failpoint, Database, FailAction};
use serde_json::{json, Value};
use std::path::PathBuf;

const SUITE: Suite = Suite {
    name: "lifecycle",
    fsync: FsyncPolicy::Always,
    wal_segment_bytes: Some(8 << 10),
    shards: 2,
    identity_traits: &[],
};

const SECRET: &str = "erase-target-7f3a";

/// Every failpoint of a snapshot that follows an erasure, in the order they are hit.
const STEPS: [&str; 8] = [
    "snapshot_after_shard_sync",
    "snapshot_after_manifest_sync",
    "snapshot_before_rename",
    "snapshot_before_directory_sync",
    "snapshot_after_rename",
    "cleanup_after_snapshots_removed",
    "cleanup_after_segments_removed",
    "erasure_marker_before_clear",
];

fn populate(database: &Database, from: usize, to: usize) {
    populate_with(database, from, to, |index| json!({"n": index as i64}));
}

fn state(database: &Database) -> Vec<Value> {
    (0..150)
        .map(|index| format!("user-{index}"))
        .chain([SECRET.to_string()])
        .map(|id| {
            database
                .engine()
                .traits_of(&id)
                .map_or(Value::Null, Value::Object)
        })
        .collect()
}

fn crash_at(step: &str) {
    let dir = SUITE.data_dir(step);
    let database = SUITE.open(&dir).0;
    populate(&database, 0, 100);
    database
        .apply(Mutation::Messages(
            parse_batch(
                &json!({"batch": [{"type": "identify", "userId": SECRET, "traits": {"n": -1}}]}),
            )
            .unwrap(),
        ))
        .unwrap();
    database.snapshot_now().unwrap();
    populate(&database, 100, 150);
    database.snapshot_now().unwrap();
    database
        .apply(Mutation::EraseProfile {
            external_id: SECRET.to_string(),
        })
        .unwrap();
    let expected = state(&database);
    assert!(
        !files_containing(&dir, SECRET).is_empty(),
        "{step}: on disk before"
    );

    set_failpoint(step, Some(FailAction::Error));
    let outcome = database.snapshot_now();
    set_failpoint(step, None);
    assert!(outcome.is_err(), "{step}: the failpoint was hit");
    drop(database); // the crash

    let database = SUITE.open(&dir).0;
    assert_eq!(state(&database), expected, "{step}: state after the crash");
    assert!(
        !inspect(&dir).unwrap().snapshots.is_empty(),
        "{step}: a snapshot survives"
    );
    database.snapshot_now().unwrap();
    let report = inspect(&dir).unwrap();
    assert_eq!(report.snapshots.len(), 1, "{step}: only one kept\n{report}");
    assert!(report.is_healthy(), "{step}: {report}");
    assert!(!report.erasure_pending, "{step}: {report}");
    assert!(report.erased_data.is_empty(), "{step}: {report}");
    assert_eq!(
        files_containing(&dir, SECRET),
        Vec::<PathBuf>::new(),
        "{step}: no erased bytes on disk"
    );

    // Idle now, with one snapshot kept: the next snapshot must not touch it, even if
    // the disk fails mid-way (formerly: old directory deleted before the rename).
    set_failpoint("snapshot_before_rename", Some(FailAction::Error));
    let idle = database.snapshot_now();
    set_failpoint("snapshot_before_rename", None);
    assert!(idle.unwrap().skipped, "{step}: same-LSN snapshot skipped");
    drop(database);
    let database = SUITE.open(&dir).0;
    assert_eq!(
        state(&database),
        expected,
        "{step}: after the idle snapshot"
    );
    drop(database);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_step_of_the_snapshot_life_cycle_survives_a_crash() {
    for step in STEPS {
        crash_at(step);
    }
}
