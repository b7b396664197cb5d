//! Faults in the data directory: damage in a WAL segment the newest snapshot already
//! covers, erasure that must stay durable across a crash (and `segd inspect` naming
//! files that still hold erased data), and idle servers not rewriting snapshots.
//!
//! No failpoints here (they are process-wide; see `persist_lifecycle.rs`).

mod common;

use common::persist::{files_containing, state, Suite};
use segd::engine::Mutation;
use segd::ingest::parse_batch;
use segd::persist::inspect::inspect;
use segd::persist::wal::{list_segments, FsyncPolicy};
use segd::persist::Database;
use serde_json::json;
use std::path::{Path, PathBuf};

const SUITE: Suite = Suite {
    name: "faults",
    fsync: FsyncPolicy::Always,
    wal_segment_bytes: Some(16 << 10),
    shards: 2,
    identity_traits: &["email"],
};

/// Identifies in batches of 50 (each as `common::persist::populate`).
fn populate(database: &Database, from: usize, to: usize) {
    for chunk_start in (from..to).step_by(50) {
        common::persist::populate(database, chunk_start, to.min(chunk_start + 50));
    }
}

fn flip_byte_at(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn damage_in_a_covered_wal_segment_loses_nothing() {
    let dir = SUITE.data_dir("covered");
    let (database, _) = SUITE.open(&dir);
    populate(&database, 0, 200);
    let older = database.snapshot_now().unwrap();
    populate(&database, 200, 600);
    let newer = database.snapshot_now().unwrap();
    // Acknowledged after the newest snapshot: only the WAL holds these.
    populate(&database, 600, 700);
    let before = state(&database, 700);
    drop(database);

    // A segment between the two snapshots: every record in it is covered by the newer.
    let segments = list_segments(&dir).unwrap();
    let covered: Vec<&(u64, PathBuf)> = segments
        .windows(2)
        .filter(|pair| pair[0].0 > older.covered_lsn && pair[1].0 <= newer.covered_lsn + 1)
        .map(|pair| &pair[0])
        .collect();
    assert!(
        !covered.is_empty(),
        "a covered segment exists: {segments:?}"
    );
    let (_, victim) = covered[0];
    let length = std::fs::metadata(victim).unwrap().len() as usize;
    flip_byte_at(victim, length / 2);

    let (database, report) = SUITE.open(&dir);
    assert_eq!(report.snapshot.as_deref(), Some(newer.path.as_path()));
    assert!(report.quarantined.is_empty(), "{report}");
    assert!(report.truncated.is_none(), "{report}");
    assert_eq!(state(&database, 700), before, "nothing acknowledged lost");
    drop(database);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn erasure_survives_a_crash_and_inspect_names_files_holding_erased_data() {
    let dir = SUITE.data_dir("erasure-crash");
    let (database, _) = SUITE.open(&dir);
    populate(&database, 0, 100);
    database
        .apply(Mutation::Messages(
            parse_batch(
                &json!({"batch": [{"type": "identify", "userId": "erase-me-uid",
                "anonymousId": "erase-me-anon", "traits": {"email": "erase-me@secret.example"}}]}),
            )
            .unwrap(),
        ))
        .unwrap();
    // A quarantined segment holding the identifier, as recovery leaves after damage.
    let (_, last_segment) = list_segments(&dir).unwrap().pop().unwrap();
    let quarantined = dir.join("wal-quarantined-test.log.damaged");
    std::fs::copy(&last_segment, &quarantined).unwrap();
    database.snapshot_now().unwrap();
    populate(&database, 100, 200);
    database.snapshot_now().unwrap();
    database
        .apply(Mutation::EraseProfile {
            external_id: "erase-me-uid".to_string(),
        })
        .unwrap();
    // Crash: no snapshot after the erasure.
    drop(database);

    let report = inspect(&dir).unwrap();
    assert!(report.erasure_pending, "{report}");
    let holders: Vec<&PathBuf> = report.erased_data.iter().map(|(path, _)| path).collect();
    assert!(
        holders
            .iter()
            .any(|path| path.to_string_lossy().contains("snapshot-")),
        "the snapshots hold the erased profile: {report}"
    );
    assert!(holders.contains(&&quarantined), "{report}");
    assert!(report.to_string().contains("ERASED DATA"), "{report}");

    // The next snapshot after the restart deletes every older file, quarantined too.
    let (database, _) = SUITE.open(&dir);
    assert!(database.engine().traits_of("erase-me-uid").is_err());
    let written = database.snapshot_now().unwrap();
    assert!(!written.skipped);
    for needle in ["erase-me-uid", "erase-me-anon", "erase-me@secret.example"] {
        assert_eq!(
            files_containing(&dir, needle),
            Vec::<PathBuf>::new(),
            "{needle}"
        );
    }
    let report = inspect(&dir).unwrap();
    assert_eq!(report.snapshots.len(), 1, "{report}");
    assert!(!report.erasure_pending, "{report}");
    assert!(report.erased_data.is_empty(), "{report}");
    drop(database);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_idle_database_does_not_rewrite_its_snapshot() {
    let dir = SUITE.data_dir("idle");
    let (database, _) = SUITE.open(&dir);
    populate(&database, 0, 50);
    let first = database.snapshot_now().unwrap();
    assert!(!first.skipped);
    let modified = std::fs::metadata(first.path.join("manifest.seg"))
        .unwrap()
        .modified()
        .unwrap();
    let again = database.snapshot_now().unwrap();
    assert!(again.skipped, "nothing logged since: no new snapshot");
    assert_eq!(again.path, first.path);
    assert_eq!(again.covered_lsn, first.covered_lsn);
    assert_eq!(
        std::fs::metadata(first.path.join("manifest.seg"))
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );
    drop(database);
    // A restart logs a fresh sequence reservation: one snapshot, then nothing to write.
    let (database, _) = SUITE.open(&dir);
    database.snapshot_now().unwrap();
    assert!(database.snapshot_now().unwrap().skipped);
    populate(&database, 50, 60);
    let next = database.snapshot_now().unwrap();
    assert!(!next.skipped);
    assert!(next.covered_lsn > first.covered_lsn);
    drop(database);
    std::fs::remove_dir_all(&dir).unwrap();
}
