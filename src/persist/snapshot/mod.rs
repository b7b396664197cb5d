//! Snapshots: a directory `snapshot-<covered LSN, 20 digits>/` holding `manifest.seg`
//! (engine-wide metadata) and one `shard-<index, 4 digits>.seg` per shard, each a
//! sectioned container (see `format`). Bulk data (value arrays, dictionary codes,
//! identifiers, bitmaps) is raw little-endian or roaring's portable format; only the
//! small metadata section of the manifest is bincode 2.
//!
//! Writing: encode (under the caller's ingest lock, so the state is exactly "every
//! record up to the covered LSN"), then write every file into `snapshot-<lsn>.tmp/`,
//! fsync each, fsync the directory, rename it into place, fsync the data directory.
//! Loading: map each file, verify every checksum, then build the in-memory structures
//! with bulk copies; every length and id read is checked before use.
//!
//! The module by responsibility:
//! - `manifest`: the manifest file (engine-wide metadata, suppressed keys, the
//!   de-duplication window, application state): its sections, encoding and decoding.
//! - `shard`: one shard file's sections (profiles, identities, membership, timers,
//!   columns) and their encoding and decoding.
//! - `events`: a shard's event store section.
//! - `write`: encoding the engine's whole state and writing it durably.
//! - `load`: loading a snapshot directory into a fresh engine (and the fuzz entry).

mod events;
mod load;
mod manifest;
mod shard;
mod write;

pub use load::{decode_untrusted, load_snapshot, LoadedSnapshot};
pub use manifest::{read_manifest, Manifest, Metadata, StoredSegment};
pub use shard::shard_identity_hashes;
pub use write::{encode_snapshot, write_snapshot, EncodedSnapshot};

use crate::persist::format::FormatError;
use std::path::{Path, PathBuf};

pub const MANIFEST_FILE: &str = "manifest.seg";

/// The directory name of the snapshot covering WAL records up to `lsn`.
pub fn snapshot_name(lsn: u64) -> String {
    format!("snapshot-{lsn:020}")
}

pub fn shard_file_name(index: usize) -> String {
    format!("shard-{index:04}.seg")
}

/// Snapshot directories in `data_dir`, by covered LSN (temporary ones excluded).
pub fn list_snapshots(data_dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let lsn = name
            .strip_prefix("snapshot-")
            .filter(|digits| digits.len() == 20)
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(lsn) = lsn {
            if entry.path().is_dir() {
                found.push((lsn, entry.path()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Advances a progress phase by one when a shard's work ends (also on an early return).
pub(super) struct Advance<'a>(&'a crate::progress::Phase);

impl Drop for Advance<'_> {
    fn drop(&mut self) {
        self.0.inc(1);
    }
}

/// Where in a snapshot something was wrong.
#[derive(Debug)]
pub struct SnapshotError {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for SnapshotError {}

pub(super) fn at(path: &Path) -> impl Fn(FormatError) -> SnapshotError + '_ {
    move |error| SnapshotError {
        path: path.to_path_buf(),
        reason: error.0,
    }
}

pub(super) fn io_at(path: &Path) -> impl Fn(std::io::Error) -> SnapshotError + '_ {
    move |error| SnapshotError {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}
