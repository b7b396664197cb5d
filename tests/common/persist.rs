//! Set-up shared by the persistence suites (`persist_*.rs`): one fresh data directory per
//! test, the suite's `DatabaseOptions`, opening at a fixed time, a small identify
//! workload, and finding files on disk that still hold a value.

use segd::clock::ManualClock;
use segd::engine::{EngineOptions, Mutation};
use segd::ingest::parse_batch;
use segd::persist::wal::FsyncPolicy;
use segd::persist::{Database, DatabaseOptions, RecoveryReport};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The fixed time every suite opens its database at.
pub const NOW_MS: i64 = 1_750_000_000_000;

/// One suite's database shape; each suite declares its own as a `const`.
pub struct Suite {
    /// Names its data directories: `segd-<name>-<test>-<pid>` in the temp directory.
    pub name: &'static str,
    pub fsync: FsyncPolicy,
    /// WAL segment size; `None` keeps the default.
    pub wal_segment_bytes: Option<u64>,
    pub shards: usize,
    pub identity_traits: &'static [&'static str],
}

impl Suite {
    /// The data directory of the test `test`, emptied.
    pub fn data_dir(&self, test: &str) -> PathBuf {
        super::temp_data_dir(self.name, test)
    }

    pub fn options(&self, dir: &Path) -> DatabaseOptions {
        let defaults = DatabaseOptions::new(dir);
        DatabaseOptions {
            fsync: self.fsync,
            wal_segment_bytes: self.wal_segment_bytes.unwrap_or(defaults.wal_segment_bytes),
            engine: EngineOptions {
                shards: self.shards,
                identity_traits: self
                    .identity_traits
                    .iter()
                    .map(|name| name.to_string())
                    .collect(),
                ..EngineOptions::default()
            },
            ..defaults
        }
    }

    /// Opens (recovers) the database in `dir` at [`NOW_MS`].
    pub fn open(&self, dir: &Path) -> (Database, RecoveryReport) {
        Database::open(self.options(dir), ManualClock::new(NOW_MS)).unwrap()
    }
}

/// Applies `messages` as one batch.
pub fn send(database: &Database, messages: Vec<Value>) {
    let batch = parse_batch(&json!({ "batch": messages })).unwrap();
    database.apply(Mutation::Messages(batch)).unwrap();
}

/// Identifies `user-<from>` up to `user-<to - 1>` in one batch, with `traits(index)`.
pub fn populate_with(database: &Database, from: usize, to: usize, traits: impl Fn(usize) -> Value) {
    let messages: Vec<Value> = (from..to)
        .map(|index| {
            json!({"type": "identify", "userId": format!("user-{index}"),
                   "traits": traits(index)})
        })
        .collect();
    send(database, messages);
}

/// [`populate_with`] the traits `n` (the index) and `plan` (free, pro, alternating).
pub fn populate(database: &Database, from: usize, to: usize) {
    populate_with(database, from, to, |index| {
        let plan = ["free", "pro"][index % 2];
        json!({"n": index as i64, "plan": plan})
    });
}

/// The traits of `user-0` up to `user-<to - 1>` (null where there is no profile).
pub fn state(database: &Database, to: usize) -> Vec<Value> {
    (0..to)
        .map(|index| {
            database
                .engine()
                .traits_of(&format!("user-{index}"))
                .map_or(Value::Null, Value::Object)
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Every file below `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if contains(&std::fs::read(&path).unwrap(), needle.as_bytes()) {
                found.push(path);
            }
        }
    }
    found
}
