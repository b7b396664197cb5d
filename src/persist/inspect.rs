//! `segd inspect <data-dir>`: what a data directory holds, with every checksum verified.
//! Read-only: nothing is cut, renamed or deleted.

use crate::mmap::MappedFile;
use crate::persist::format::{Container, FileKind};
use crate::persist::record::WalRecord;
use crate::persist::snapshot::{list_snapshots, read_manifest, shard_file_name};
use crate::persist::wal::{list_segments, scan_segment};
use std::fmt;
use std::path::{Path, PathBuf};

/// One snapshot directory.
#[derive(Clone, Debug)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    pub covered_lsn: u64,
    pub bytes: u64,
    pub shards: u32,
    pub profiles: u64,
    pub traits: usize,
    pub segments: usize,
    pub change_head: u64,
    pub suppressed: usize,
    /// Problems found (empty when every checksum matched).
    pub problems: Vec<String>,
}

/// One WAL segment file.
#[derive(Clone, Debug)]
pub struct WalSegmentInfo {
    pub path: PathBuf,
    pub first_lsn: u64,
    /// LSN range of the valid records (`None` when the file holds none).
    pub lsn_range: Option<(u64, u64)>,
    pub bytes: u64,
    pub batches: usize,
    pub records: usize,
    pub messages: u64,
    /// Why reading stopped early (a torn or corrupt tail), if it did.
    pub damage: Option<String>,
}

/// The contents of a data directory.
#[derive(Clone, Debug)]
pub struct InspectReport {
    pub data_dir: PathBuf,
    pub snapshots: Vec<SnapshotInfo>,
    pub wal_segments: Vec<WalSegmentInfo>,
    /// Other entries (temporary snapshot directories, quarantined segments, ...).
    pub other_files: Vec<PathBuf>,
}

impl InspectReport {
    /// Whether every checksum verified and no WAL segment is damaged.
    pub fn is_healthy(&self) -> bool {
        self.snapshots.iter().all(|s| s.problems.is_empty())
            && self.wal_segments.iter().all(|s| s.damage.is_none())
    }
}

impl fmt::Display for InspectReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(out, "data directory {}", self.data_dir.display())?;
        writeln!(out, "snapshots: {}", self.snapshots.len())?;
        for snapshot in &self.snapshots {
            writeln!(
                out,
                "  {}  covers LSN ≤ {}  {} bytes  {} shards  {} profiles  {} traits  {} segments  change head {}  {} suppressed  {}",
                snapshot.path.display(),
                snapshot.covered_lsn,
                snapshot.bytes,
                snapshot.shards,
                snapshot.profiles,
                snapshot.traits,
                snapshot.segments,
                snapshot.change_head,
                snapshot.suppressed,
                if snapshot.problems.is_empty() { "checksums ok" } else { "DAMAGED" }
            )?;
            for problem in &snapshot.problems {
                writeln!(out, "    {problem}")?;
            }
        }
        writeln!(out, "WAL segments: {}", self.wal_segments.len())?;
        for segment in &self.wal_segments {
            let range = segment
                .lsn_range
                .map_or("no records".to_string(), |(first, last)| {
                    format!("LSN {first}..={last}")
                });
            writeln!(
                out,
                "  {}  {range}  {} bytes  {} batches  {} records  {} messages  {}",
                segment.path.display(),
                segment.bytes,
                segment.batches,
                segment.records,
                segment.messages,
                segment
                    .damage
                    .as_deref()
                    .map_or("checksums ok".to_string(), |damage| format!(
                        "DAMAGED TAIL: {damage}"
                    ))
            )?;
        }
        for other in &self.other_files {
            writeln!(out, "other: {}", other.display())?;
        }
        write!(
            out,
            "{}",
            if self.is_healthy() {
                "all checksums verified"
            } else {
                "DAMAGE FOUND"
            }
        )
    }
}

/// Lists and verifies everything in `data_dir` without changing it.
pub fn inspect(data_dir: &Path) -> std::io::Result<InspectReport> {
    let snapshots = list_snapshots(data_dir)?
        .into_iter()
        .map(|(lsn, path)| inspect_snapshot(lsn, path))
        .collect();
    let mut wal_segments = Vec::new();
    for (first_lsn, path) in list_segments(data_dir)? {
        let bytes = std::fs::read(&path)?;
        let scan = scan_segment(&bytes);
        let records: usize = scan.batches.iter().map(|b| b.items.len()).sum();
        let mut messages = 0;
        for batch in &scan.batches {
            for item in &batch.items {
                if let Ok(WalRecord::Mutation {
                    mutation: crate::engine::Mutation::Messages(list),
                    ..
                }) = WalRecord::decode(item)
                {
                    messages += list.len() as u64;
                }
            }
        }
        let lsn_range = match (scan.batches.first(), scan.batches.last()) {
            (Some(first), Some(last)) => Some((
                first.first_lsn,
                last.first_lsn + last.items.len() as u64 - 1,
            )),
            _ => None,
        };
        wal_segments.push(WalSegmentInfo {
            path,
            first_lsn,
            lsn_range,
            bytes: bytes.len() as u64,
            batches: scan.batches.len(),
            records,
            messages,
            damage: scan.damage.map(|d| d.0),
        });
    }
    let mut other_files = Vec::new();
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let path = entry.path();
        let known = snapshots_contains(&path) || wal_segments.iter().any(|s| s.path == path);
        if !known {
            other_files.push(path);
        }
    }
    other_files.sort();
    Ok(InspectReport {
        data_dir: data_dir.to_path_buf(),
        snapshots,
        wal_segments,
        other_files,
    })
}

fn snapshots_contains(path: &Path) -> bool {
    path.is_dir()
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|name| name.starts_with("snapshot-") && !name.ends_with(".tmp"))
}

fn inspect_snapshot(covered_lsn: u64, path: PathBuf) -> SnapshotInfo {
    let mut info = SnapshotInfo {
        path: path.clone(),
        covered_lsn,
        bytes: 0,
        shards: 0,
        profiles: 0,
        traits: 0,
        segments: 0,
        change_head: 0,
        suppressed: 0,
        problems: Vec::new(),
    };
    let manifest_path = path.join(crate::persist::snapshot::MANIFEST_FILE);
    match read_manifest(&manifest_path) {
        Ok(manifest) => {
            let metadata = manifest.metadata;
            let suppressed = manifest.suppressed;
            info.bytes += manifest.bytes;
            info.shards = metadata.shard_count;
            info.profiles = metadata.profile_count;
            info.traits = metadata.columns.len();
            info.segments = metadata.segments.len();
            info.change_head = metadata.change_head;
            info.suppressed = suppressed.len();
            if metadata.covered_lsn != covered_lsn {
                info.problems.push(format!(
                    "manifest covers LSN {}, directory name says {covered_lsn}",
                    metadata.covered_lsn
                ));
            }
        }
        Err(error) => info.problems.push(error.to_string()),
    }
    for index in 0..info.shards as usize {
        let shard_path = path.join(shard_file_name(index));
        match MappedFile::open(&shard_path) {
            Ok(mapped) => {
                info.bytes += mapped.bytes().len() as u64;
                if let Err(error) = Container::parse(mapped.bytes(), FileKind::Shard) {
                    info.problems
                        .push(format!("{}: {error}", shard_path.display()));
                }
            }
            Err(error) => info
                .problems
                .push(format!("{}: {error}", shard_path.display())),
        }
    }
    info
}
