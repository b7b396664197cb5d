//! Crashes: failpoints between snapshot fsync and rename, and (see `crash_cycles`)
//! a child process killed with SIGKILL at random moments.
//!
//! Failpoints are process-wide, so they live in this test binary, apart from the
//! other persistence tests.

use segd::clock::ManualClock;
use segd::engine::EngineOptions;
use segd::ingest::parse_batch;
use segd::persist::inspect::inspect;
use segd::persist::wal::FsyncPolicy;
use segd::persist::{set_failpoint, Database, DatabaseOptions, FailAction, PersistError};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const NOW_MS: i64 = 1_750_000_000_000;

fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("segd-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn options(dir: &Path) -> DatabaseOptions {
    DatabaseOptions {
        fsync: FsyncPolicy::Always,
        wal_segment_bytes: 16 << 10,
        engine: EngineOptions {
            shards: 3,
            ..EngineOptions::default()
        },
        ..DatabaseOptions::new(dir)
    }
}

fn open(dir: &Path) -> (Database, segd::persist::RecoveryReport) {
    Database::open(options(dir), ManualClock::new(NOW_MS)).unwrap()
}

fn populate(database: &Database, from: usize, to: usize) {
    let messages: Vec<Value> = (from..to)
        .map(|index| {
            let plan = ["free", "pro"][index % 2];
            json!({"type": "identify", "userId": format!("user-{index}"),
                   "traits": {"n": index as i64, "plan": plan}})
        })
        .collect();
    database
        .apply_batch(parse_batch(&json!({ "batch": messages })).unwrap())
        .unwrap();
}

fn state(database: &Database, to: usize) -> Vec<Value> {
    (0..to)
        .map(|index| {
            database
                .engine()
                .traits_of(&format!("user-{index}"))
                .map_or(Value::Null, Value::Object)
        })
        .collect()
}
#[test]
fn a_crash_between_snapshot_fsync_and_rename_keeps_the_previous_snapshot() {
    let dir = data_dir("before-rename");
    let (database, _) = open(&dir);
    populate(&database, 0, 200);
    let first = database.snapshot_now().unwrap();
    populate(&database, 200, 300);
    set_failpoint("snapshot_before_rename", Some(FailAction::Error));
    let error = database.snapshot_now().unwrap_err();
    set_failpoint("snapshot_before_rename", None);
    assert!(matches!(error, PersistError::Io { .. }), "{error}");
    let before = state(&database, 300);
    drop(database);
    let (database, report) = open(&dir);
    assert_eq!(report.snapshot.as_deref(), Some(first.path.as_path()));
    assert_eq!(state(&database, 300), before);
    // The temporary directory was cleaned up.
    assert!(inspect(&dir).unwrap().other_files.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
