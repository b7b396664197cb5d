//! Recovery: newest valid snapshot, then the WAL after it, cutting a torn or corrupt
//! tail at the last valid batch; and removal of files a newer snapshot made obsolete.

use crate::changes::ChangeLog;
use crate::engine::{Engine, EngineError, Mutation};
use crate::persist::record::WalRecord;
use crate::persist::snapshot::{list_snapshots, load_snapshot};
use crate::persist::wal::{list_segments, scan_segment, sync_directory};
use crate::persist::{io_error, DatabaseOptions, PersistError, ReplayClock};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Replay errors kept verbatim in the report (the rest are only counted).
const MAX_REPORTED_ERRORS: usize = 20;

/// What recovery loaded, replayed and dropped.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// The snapshot loaded, if any.
    pub snapshot: Option<PathBuf>,
    pub snapshot_lsn: u64,
    pub snapshot_bytes: u64,
    pub profiles: u64,
    /// Snapshots rejected as damaged, newest first: "path: reason".
    pub rejected_snapshots: Vec<String>,
    pub wal_segments: usize,
    pub replayed_records: u64,
    pub replayed_messages: u64,
    /// Records whose replay returned an error (should be 0: only applied records are
    /// logged, and replay is deterministic).
    pub replay_errors: u64,
    pub replay_error_samples: Vec<String>,
    /// A damaged WAL tail: the segment cut, the offset it was cut at and why.
    pub truncated: Option<(PathBuf, u64, String)>,
    /// Bytes dropped from the WAL (the cut tail plus quarantined later segments).
    pub dropped_bytes: u64,
    /// Later segments renamed to `*.damaged` because an earlier one was cut.
    pub quarantined: Vec<PathBuf>,
    /// Opaque records (webhooks) replayed after the snapshot, for the HTTP layer.
    pub application_records: Vec<Vec<u8>>,
    /// The HTTP layer's state as of the snapshot.
    pub application_state: Vec<u8>,
    pub next_lsn: u64,
    pub load_time: Duration,
    pub replay_time: Duration,
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.snapshot {
            Some(path) => writeln!(
                out,
                "snapshot {} (LSN {}, {} bytes, {} profiles) loaded in {:.3} s",
                path.display(),
                self.snapshot_lsn,
                self.snapshot_bytes,
                self.profiles,
                self.load_time.as_secs_f64()
            )?,
            None => writeln!(out, "no snapshot: starting from an empty store")?,
        }
        for rejected in &self.rejected_snapshots {
            writeln!(out, "rejected damaged snapshot {rejected}")?;
        }
        let rate = self.replayed_messages as f64 / self.replay_time.as_secs_f64().max(1e-9);
        writeln!(
            out,
            "replayed {} WAL records ({} messages) from {} segments in {:.3} s ({rate:.0} messages/s); next LSN {}",
            self.replayed_records,
            self.replayed_messages,
            self.wal_segments,
            self.replay_time.as_secs_f64(),
            self.next_lsn
        )?;
        if self.replay_errors > 0 {
            writeln!(out, "{} records failed to replay:", self.replay_errors)?;
            for sample in &self.replay_error_samples {
                writeln!(out, "  {sample}")?;
            }
        }
        if let Some((path, offset, reason)) = &self.truncated {
            writeln!(
                out,
                "WAL damaged: cut {} at byte {offset} ({reason}); dropped {} bytes",
                path.display(),
                self.dropped_bytes
            )?;
        }
        for path in &self.quarantined {
            writeln!(out, "quarantined {}", path.display())?;
        }
        Ok(())
    }
}

pub(crate) struct Recovered {
    pub engine: Engine,
    pub next_lsn: u64,
    pub reserved_until: u64,
    pub application_state: Vec<u8>,
    pub report: RecoveryReport,
}

/// Removes leftovers of interrupted snapshots (`snapshot-*.tmp`).
fn remove_temporary(data_dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snapshot-") && name.ends_with(".tmp") {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

pub(crate) fn recover(
    options: &DatabaseOptions,
    clock: Arc<ReplayClock>,
) -> Result<Recovered, PersistError> {
    let data_dir = &options.data_dir;
    crate::persist::files::create_private_dir_all(data_dir).map_err(io_error(data_dir))?;
    remove_temporary(data_dir).map_err(io_error(data_dir))?;
    let mut report = RecoveryReport::default();
    let started = Instant::now();

    let snapshots = list_snapshots(data_dir).map_err(io_error(data_dir))?;
    let mut loaded = None;
    for (_, path) in snapshots.iter().rev() {
        match load_snapshot(path, &options.engine, clock.clone()) {
            Ok(snapshot) => {
                loaded = Some((path.clone(), snapshot));
                break;
            }
            Err(error) => {
                tracing::error!(%error, "damaged snapshot rejected; trying the previous one");
                report.rejected_snapshots.push(error.to_string());
            }
        }
    }
    let (mut engine, covered, mut reserved_until) = match loaded {
        Some((path, snapshot)) => {
            report.snapshot = Some(path);
            report.snapshot_lsn = snapshot.metadata.covered_lsn;
            report.snapshot_bytes = snapshot.bytes;
            report.profiles = snapshot.metadata.profile_count;
            report.application_state = snapshot.application_state;
            let reserved = snapshot
                .metadata
                .reserved_sequences_until
                .max(snapshot.metadata.change_head);
            (snapshot.engine, snapshot.metadata.covered_lsn, reserved)
        }
        None => (
            Engine::with_clock(options.engine.clone(), clock.clone()),
            0,
            0,
        ),
    };
    report.load_time = started.elapsed();

    let replay_started = Instant::now();
    let segments = list_segments(data_dir).map_err(io_error(data_dir))?;
    report.wal_segments = segments.len();
    let mut contents = Vec::with_capacity(segments.len());
    for (first_lsn, path) in &segments {
        let bytes = std::fs::read(path).map_err(io_error(path))?;
        contents.push((*first_lsn, path.clone(), bytes));
    }
    // Records are checked for continuity from the first one the snapshot lacks.
    let mut expected = covered + 1;
    let mut to_replay: Vec<(u64, &[u8])> = Vec::new();
    let mut stop_at: Option<usize> = None;
    'segments: for (index, (_, path, bytes)) in contents.iter().enumerate() {
        let scan = scan_segment(bytes);
        for batch in &scan.batches {
            let last = batch.first_lsn + batch.items.len() as u64 - 1;
            if last < expected {
                continue;
            }
            if batch.first_lsn > expected {
                if expected == covered + 1 {
                    let snapshot = report
                        .snapshot
                        .as_ref()
                        .map_or("(none)".to_string(), |p| p.display().to_string());
                    if report.snapshot.is_none() && !snapshots.is_empty() {
                        return Err(PersistError::NoUsableSnapshot(
                            report.rejected_snapshots.join("; "),
                        ));
                    }
                    return Err(PersistError::MissingWal {
                        snapshot,
                        covered,
                        first_available: batch.first_lsn,
                    });
                }
                // A hole after replay started: everything from here on is unusable.
                report.truncated = Some((
                    path.clone(),
                    batch.offset as u64,
                    format!("LSN gap: expected {expected}, found {}", batch.first_lsn),
                ));
                truncate(path, batch.offset as u64, &mut report)?;
                stop_at = Some(index);
                break 'segments;
            }
            for (position, item) in batch.items.iter().enumerate() {
                let lsn = batch.first_lsn + position as u64;
                if lsn >= expected {
                    to_replay.push((lsn, item));
                    expected = lsn + 1;
                }
            }
        }
        if let Some(damage) = &scan.damage {
            // Damage in a segment whose every record the snapshot already covers (the
            // next segment starts at or before the replay position) loses nothing:
            // leave it for the next snapshot's clean-up instead of cutting the WAL.
            let covered_already = contents
                .get(index + 1)
                .is_some_and(|(next_first, _, _)| *next_first <= expected);
            if covered_already {
                tracing::warn!(path = %path.display(), %damage, "damage in a WAL segment the snapshot covers; ignored");
                continue;
            }
            tracing::error!(path = %path.display(), %damage, "WAL damaged; cutting the tail");
            report.truncated = Some((path.clone(), scan.valid_bytes as u64, damage.0.clone()));
            truncate(path, scan.valid_bytes as u64, &mut report)?;
            stop_at = Some(index);
            break;
        }
    }
    if report.snapshot.is_none() && !snapshots.is_empty() && covered == 0 && to_replay.is_empty() {
        // Every snapshot was damaged and no WAL reaches back to the beginning.
        let has_records = contents.iter().any(|(_, _, bytes)| !bytes.is_empty());
        if !has_records {
            return Err(PersistError::NoUsableSnapshot(
                report.rejected_snapshots.join("; "),
            ));
        }
    }
    if let Some(stop) = stop_at {
        for (_, path, bytes) in &contents[stop + 1..] {
            let quarantined = path.with_extension("log.damaged");
            std::fs::rename(path, &quarantined).map_err(io_error(path))?;
            report.dropped_bytes += bytes.len() as u64;
            report.quarantined.push(quarantined);
        }
        sync_directory(data_dir).map_err(io_error(data_dir))?;
    }

    // Sequences: above the snapshot's head and every reservation in the WAL, found
    // before replay (replayed changes are numbered from there).
    let mut records = Vec::with_capacity(to_replay.len());
    for (lsn, bytes) in &to_replay {
        match WalRecord::decode(bytes) {
            Ok(record) => {
                if let WalRecord::ReserveSequences { until } = record {
                    reserved_until = reserved_until.max(until);
                }
                records.push(record);
            }
            Err(error) => {
                // The batch checksum matched, so this is a writer/format bug: skip the
                // record loudly rather than refuse to start.
                report.replay_errors += 1;
                if report.replay_error_samples.len() < MAX_REPORTED_ERRORS {
                    report
                        .replay_error_samples
                        .push(format!("LSN {lsn}: undecodable record: {error}"));
                }
            }
        }
    }
    engine.changes = ChangeLog::new(
        options.engine.change_log,
        reserved_until.max(engine.changes.head()).saturating_add(1),
    );
    let progress = crate::progress::phase(
        "replaying the WAL",
        Some(records.len() as u64),
        crate::progress::Unit::Items,
    );
    for (record, (lsn, _)) in records.into_iter().zip(&to_replay) {
        report.replayed_records += 1;
        if report.replayed_records % 1_024 == 0 {
            progress.set_position(report.replayed_records);
        }
        if let Err(error) = replay(&engine, record, &mut report, &mut reserved_until) {
            report.replay_errors += 1;
            if report.replay_error_samples.len() < MAX_REPORTED_ERRORS {
                report
                    .replay_error_samples
                    .push(format!("LSN {lsn}: {error}"));
            }
        }
    }
    drop(progress);
    report.replay_time = replay_started.elapsed();
    report.next_lsn = expected;
    if report.replay_errors > 0 {
        tracing::error!(
            errors = report.replay_errors,
            "WAL records failed to replay"
        );
    }
    let application_state = report.application_state.clone();
    Ok(Recovered {
        engine,
        next_lsn: expected,
        reserved_until,
        application_state,
        report,
    })
}

fn truncate(path: &Path, length: u64, report: &mut RecoveryReport) -> Result<(), PersistError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    let size = file.metadata().map_err(io_error(path))?.len();
    report.dropped_bytes += size.saturating_sub(length);
    file.set_len(length).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))?;
    Ok(())
}

/// Applies one replayed record exactly as it was applied live: the same
/// [`Engine::apply`], with the clock pinned to the record's time.
fn replay(
    engine: &Engine,
    record: WalRecord,
    report: &mut RecoveryReport,
    reserved_until: &mut u64,
) -> Result<(), EngineError> {
    let _pin = record.at_ms().map(ReplayClock::pin);
    match record {
        WalRecord::Mutation { mutation, .. } => {
            match &mutation {
                Mutation::Messages(messages) => {
                    report.replayed_messages += messages.len() as u64;
                }
                Mutation::ApplicationState(bytes) => {
                    report.application_records.push(bytes.clone());
                }
                _ => {}
            }
            engine.apply(&mutation).map(drop)
        }
        WalRecord::ReserveSequences { until } => {
            *reserved_until = (*reserved_until).max(until);
            Ok(())
        }
    }
}

/// Deletes snapshots beyond the newest `keep`, and WAL segments whose every record the
/// oldest kept snapshot covers. After an erasure (`erased`, which keeps one snapshot)
/// quarantined `*.damaged` files go too, since they may hold erased data; otherwise
/// they stay for inspection.
/// Returns (snapshots removed, WAL segments removed).
pub(crate) fn remove_obsolete(
    data_dir: &Path,
    keep: usize,
    erased: bool,
) -> std::io::Result<(usize, usize)> {
    let keep = if erased { 1 } else { keep };
    let snapshots = list_snapshots(data_dir)?;
    if snapshots.is_empty() {
        return Ok((0, 0));
    }
    let keep = keep.max(1).min(snapshots.len());
    let cut = snapshots.len() - keep;
    for (_, path) in &snapshots[..cut] {
        std::fs::remove_dir_all(path)?;
    }
    crate::persist::failpoint("cleanup_after_snapshots_removed")?;
    let oldest_kept = snapshots[cut].0;
    let segments = list_segments(data_dir)?;
    let mut removed_segments = 0;
    for pair in segments.windows(2) {
        // A segment ends just before the next one starts; the last is never removed.
        if pair[1].0 <= oldest_kept + 1 {
            std::fs::remove_file(&pair[0].1)?;
            removed_segments += 1;
        }
    }
    crate::persist::failpoint("cleanup_after_segments_removed")?;
    if erased {
        for entry in std::fs::read_dir(data_dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(".damaged") {
                if entry.path().is_dir() {
                    std::fs::remove_dir_all(entry.path())?;
                } else {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
    }
    sync_directory(data_dir)?;
    Ok((cut, removed_segments))
}
