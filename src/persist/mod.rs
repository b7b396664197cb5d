//! Durability: write-ahead log, snapshots, recovery and inspection.
//!
//! [`Database`] wraps an [`Engine`] and exposes its mutations. Each one is validated and
//! applied by the engine under the database's ingest lock, appended to the WAL in that
//! same order (so WAL order is apply order), and acknowledged to the caller only once
//! the WAL has made it as durable as the fsync policy promises. Waiting for the disk
//! happens outside the lock, so many callers share one write and one fsync.
//!
//! Replay is deterministic: every record carries the engine time at which it was
//! applied and the engine's clock is pinned to it (on the applying thread only) both
//! live and during replay, so event times, window edges and segment timestamps repeat.
//!
//! Change-log sequence numbers never go backwards or repeat across restarts: snapshots
//! store the head, and sequence blocks are reserved through the WAL before they can be
//! handed out, so recovery restarts above anything ever handed out.

pub mod erased_scan;
pub mod erasure;
pub mod files;
pub mod format;
pub mod inspect;
pub mod record;
pub mod recovery;
pub mod snapshot;
pub mod wal;

use crate::clock::Clock;
use crate::engine::{Applied, Engine, EngineError, EngineOptions, Mutation};
use crate::persist::record::WalRecord;
use crate::persist::wal::{FsyncPolicy, Wal, WalFailed, WalFaults, WalStatus};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

pub use recovery::RecoveryReport;

/// Change-log sequences reserved through the WAL at a time.
pub const SEQUENCE_RESERVATION_BLOCK: u64 = 1_000_000;
/// Snapshots kept normally: the newest and one fallback (with the WAL since it).
pub const DEFAULT_SNAPSHOTS_KEPT: usize = 2;

#[derive(Clone, Debug)]
pub struct DatabaseOptions {
    pub data_dir: PathBuf,
    pub fsync: FsyncPolicy,
    pub wal_segment_bytes: u64,
    /// Snapshots kept (at least 1). After an erasure only the newest is kept.
    pub snapshots_kept: usize,
    pub engine: EngineOptions,
    /// Test hooks that make WAL writes fail.
    pub faults: Option<Arc<WalFaults>>,
}

impl DatabaseOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> DatabaseOptions {
        DatabaseOptions {
            data_dir: data_dir.into(),
            fsync: FsyncPolicy::IntervalMs(10),
            wal_segment_bytes: wal::DEFAULT_SEGMENT_BYTES,
            snapshots_kept: DEFAULT_SNAPSHOTS_KEPT,
            engine: EngineOptions::default(),
            faults: None,
        }
    }
}

/// Why a database operation failed: the caller's request (`Engine`, a 4xx) or the
/// storage (`Unavailable`, a 503 — nothing was acknowledged).
#[derive(Debug, Error)]
pub enum DatabaseError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Unavailable(#[from] WalFailed),
}

impl DatabaseError {
    pub fn code(&self) -> &'static str {
        match self {
            DatabaseError::Engine(error) => error.code(),
            DatabaseError::Unavailable(_) => "storage_unavailable",
        }
    }
}

/// Errors opening a data directory or writing a snapshot (operator problems).
#[derive(Debug, Error)]
pub enum PersistError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Wal(#[from] WalFailed),
    #[error(
        "snapshot {snapshot} covers the WAL up to LSN {covered}, but the oldest WAL record \
         kept is LSN {first_available}: records in between are missing, so the data \
         directory cannot be brought up to date safely; restore the missing wal-*.log \
         files or move the snapshot away to start from an older one"
    )]
    MissingWal {
        snapshot: String,
        covered: u64,
        first_available: u64,
    },
    #[error("the data directory holds a snapshot and WAL, but every snapshot is damaged: {0}")]
    NoUsableSnapshot(String),
}

pub(crate) fn io_error(path: &Path) -> impl Fn(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A clock that reads the wrapped one, except on a thread applying a WAL record, where
/// it returns the record's time (so live application and replay see the same time).
#[derive(Debug)]
pub struct ReplayClock {
    inner: Arc<dyn Clock>,
}

impl ReplayClock {
    pub fn new(inner: Arc<dyn Clock>) -> Arc<ReplayClock> {
        Arc::new(ReplayClock { inner })
    }

    /// Pins this thread's time until the guard drops.
    pub fn pin(at_ms: i64) -> PinGuard {
        crate::clock::pin_thread(at_ms)
    }
}

impl Clock for ReplayClock {
    fn now_ms(&self) -> i64 {
        crate::clock::pinned_ms().unwrap_or_else(|| self.inner.now_ms())
    }
}

pub use crate::clock::PinGuard;

/// What a failpoint does when hit (tests only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailAction {
    /// Return an I/O error from the operation.
    Error,
    /// Abort the process on the spot, like a crash or power cut.
    Abort,
}

static FAILPOINTS: Mutex<Vec<(String, FailAction)>> = Mutex::new(Vec::new());

/// Arms (or with `None` disarms) a failpoint. Names, in snapshot order:
/// `snapshot_after_shard_sync` (each shard file written and synced),
/// `snapshot_after_manifest_sync`, `snapshot_before_rename` (temporary directory
/// synced), `snapshot_after_set_aside` (an unused same-LSN directory renamed away),
/// `snapshot_before_directory_sync` (renamed in), `snapshot_after_rename` (synced,
/// before clean-up), `cleanup_after_snapshots_removed`, `cleanup_after_segments_removed`,
/// `erasure_marker_before_clear`.
pub fn set_failpoint(name: &str, action: Option<FailAction>) {
    let mut points = FAILPOINTS.lock();
    points.retain(|(existing, _)| existing != name);
    if let Some(action) = action {
        points.push((name.to_string(), action));
    }
}

pub(crate) fn failpoint(name: &str) -> std::io::Result<()> {
    let action = FAILPOINTS
        .lock()
        .iter()
        .find(|(existing, _)| existing == name)
        .map(|(_, action)| *action);
    match action {
        None => Ok(()),
        Some(FailAction::Error) => Err(std::io::Error::other(format!("failpoint {name}"))),
        Some(FailAction::Abort) => std::process::abort(),
    }
}

/// State changed only under the ingest lock.
#[derive(Debug)]
struct IngestState {
    /// Change-log sequences up to here are reserved in the WAL.
    reserved_until: u64,
    /// An erasure happened since the last snapshot: the next one deletes older files.
    erased_since_snapshot: bool,
    /// The HTTP layer's own state (webhooks), kept in snapshots.
    application_state: Vec<u8>,
}

/// What a snapshot did.
#[derive(Clone, Debug)]
pub struct SnapshotReport {
    pub path: PathBuf,
    pub covered_lsn: u64,
    pub bytes: u64,
    /// How long mutations were blocked (encoding under the ingest lock).
    pub pause: Duration,
    pub total: Duration,
    pub removed_snapshots: usize,
    pub removed_wal_segments: usize,
    /// Nothing was logged since the last snapshot: no new one was written (`path` is
    /// the existing one).
    pub skipped: bool,
}

/// An engine made durable by a WAL and snapshots in a data directory.
#[derive(Debug)]
pub struct Database {
    engine: Arc<Engine>,
    wal: Wal,
    ingest: Mutex<IngestState>,
    snapshotting: Mutex<()>,
    /// The LSN the newest snapshot on disk covers (loaded or written by this process).
    snapshot_lsn: Mutex<Option<u64>>,
    options: DatabaseOptions,
}

impl Database {
    /// Opens (or creates) a data directory: loads the newest valid snapshot, replays the
    /// WAL after it, and starts a new WAL segment.
    pub fn open(
        options: DatabaseOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<(Database, RecoveryReport), PersistError> {
        let clock = ReplayClock::new(clock);
        let recovered = recovery::recover(&options, clock)?;
        let wal = Wal::open(
            wal::WalOptions {
                directory: options.data_dir.clone(),
                fsync: options.fsync,
                segment_bytes: options.wal_segment_bytes,
                faults: options.faults.clone(),
            },
            recovered.next_lsn,
        )
        .map_err(io_error(&options.data_dir))?;
        let database = Database {
            engine: Arc::new(recovered.engine),
            wal,
            ingest: Mutex::new(IngestState {
                reserved_until: recovered.reserved_until,
                // Survives crashes: the marker is written before an erasure is logged.
                erased_since_snapshot: erasure::pending(&options.data_dir),
                application_state: recovered.application_state,
            }),
            snapshotting: Mutex::new(()),
            snapshot_lsn: Mutex::new(
                recovered
                    .report
                    .snapshot
                    .is_some()
                    .then_some(recovered.report.snapshot_lsn),
            ),
            options,
        };
        // Reserve a fresh block above everything replay handed out before serving.
        {
            let mut state = database.ingest.lock();
            database.reserve(&mut state, 0)?;
        }
        // Range indexes are not in snapshots: rebuilt here, after replay.
        database.engine.maintain_range_indexes();
        Ok((database, recovered.report))
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn options(&self) -> &DatabaseOptions {
        &self.options
    }

    /// The WAL's state (for `/readyz`: ready only while `failure` is `None`).
    pub fn wal_status(&self) -> WalStatus {
        self.wal.status()
    }

    /// The HTTP layer's persisted state as of the last `append_opaque`.
    /// Sets the application state kept by the next snapshots, without logging it: at
    /// start-up, to carry state rebuilt from replayed records into snapshots.
    pub fn restore_application_state(&self, state: Vec<u8>) {
        self.ingest.lock().application_state = state;
    }

    pub fn application_state(&self) -> Vec<u8> {
        self.ingest.lock().application_state.clone()
    }

    /// Makes sure `bound` more change-log sequences are reserved in the WAL.
    fn reserve(&self, state: &mut IngestState, bound: u64) -> Result<(), WalFailed> {
        let head = self.engine.changes.head();
        if head.saturating_add(bound) < state.reserved_until {
            return Ok(());
        }
        let until = head
            .saturating_add(bound)
            .saturating_add(SEQUENCE_RESERVATION_BLOCK);
        let lsn = self
            .wal
            .append(WalRecord::ReserveSequences { until }.encode())?;
        // Rare (once per block), so waiting under the lock is fine.
        self.wal.wait(lsn)?;
        state.reserved_until = until;
        Ok(())
    }

    /// The most membership changes an operation touching `profiles` profiles (`None`:
    /// all of them) can make.
    fn change_bound(&self, profiles: Option<u64>) -> u64 {
        let segments = self.engine.registry.read().len() as u64;
        let profiles = profiles.unwrap_or_else(|| self.engine.profile_count());
        profiles.saturating_mul(segments + 1)
    }

    /// Applies one mutation and logs it, in that order and under the ingest lock, so
    /// WAL order is apply order and only what was applied is logged (a refused
    /// mutation leaves no trace). Returns once the WAL has made it as durable as the
    /// fsync policy promises; waiting happens outside the lock, so concurrent callers
    /// share one write and one fsync.
    pub fn apply(&self, mutation: Mutation) -> Result<Applied, DatabaseError> {
        let (applied, lsn) = self.apply_unsynced(mutation)?;
        self.wait(lsn)?;
        Ok(applied)
    }

    /// [`Database::apply`] without waiting for durability: returns the LSN to
    /// [`Database::wait`] for before acknowledging (the write path waits once for a
    /// whole group).
    pub fn apply_unsynced(&self, mutation: Mutation) -> Result<(Applied, u64), DatabaseError> {
        self.wal.check()?;
        let bound = self.change_bound(mutation.profiles_touched());
        let mut state = self.ingest.lock();
        let at_ms = self.engine.now_ms();
        let _pin = ReplayClock::pin(at_ms);
        let (applied, logged) = match mutation {
            Mutation::Messages(messages) => {
                // Sequences are reserved once the batch is prepared, so a refused batch
                // leaves no record at all. Messages naming erased identifiers are
                // dropped, and not written to the WAL, so an erased identifier sent
                // again never reaches the disk. Replaying the rest gives the same
                // state: suppression comes first.
                let state = &mut *state;
                let (outcome, kept) = self.engine.apply_batch_with(&messages, |prepared| {
                    self.reserve(state, bound)?;
                    Ok::<_, DatabaseError>(
                        prepared
                            .has_suppressed()
                            .then(|| prepared.kept().collect::<Vec<bool>>()),
                    )
                })?;
                let logged = match kept {
                    None => messages,
                    Some(kept) => messages
                        .into_iter()
                        .zip(kept)
                        .filter_map(|(message, kept)| kept.then_some(message))
                        .collect(),
                };
                (Applied::Batch(outcome), Mutation::Messages(logged))
            }
            mutation => {
                self.reserve(&mut state, bound)?;
                (self.engine.apply(&mutation)?, mutation)
            }
        };
        let erases = matches!(logged, Mutation::EraseProfile { .. });
        if erases {
            // Durable before the erasure is: a crash must not forget the clean-up.
            erasure::mark(&self.options.data_dir).map_err(|error| {
                WalFailed(format!("writing the erasure marker failed: {error}"))
            })?;
        }
        let record = WalRecord::Mutation {
            at_ms,
            mutation: logged,
        };
        let lsn = self.wal.append(record.encode())?;
        state.erased_since_snapshot |= erases;
        Ok((applied, lsn))
    }

    /// Blocks until `lsn` is acknowledged under the fsync policy.
    pub fn wait(&self, lsn: u64) -> Result<(), DatabaseError> {
        Ok(self.wal.wait(lsn)?)
    }

    /// Logs a record of the HTTP layer's own (webhook registrations) and replaces its
    /// persisted state with `state` (kept in snapshots). Replayed records after the
    /// snapshot are handed back in [`RecoveryReport::application_records`].
    pub fn append_opaque(&self, record: Vec<u8>, state: Vec<u8>) -> Result<(), DatabaseError> {
        self.apply(Mutation::ApplicationState(record))?;
        self.ingest.lock().application_state = state;
        Ok(())
    }

    /// [`Engine::tick`] with its change-log sequences reserved first. Ticks are not
    /// logged: they are derived from logged state and the time, and timers survive in
    /// snapshots and replay.
    pub fn tick(&self) -> Result<usize, DatabaseError> {
        let mut state = self.ingest.lock();
        let bound = self.change_bound(None);
        self.reserve(&mut state, bound)?;
        Ok(self.engine.tick())
    }

    /// Writes a snapshot now. Mutations wait while the state is encoded (the pause in
    /// the report); files are written and synced after the lock is released. Then old
    /// snapshots beyond the kept number, and the WAL segments they no longer need, are
    /// deleted (after an erasure: every older snapshot and WAL segment).
    pub fn snapshot_now(&self) -> Result<SnapshotReport, PersistError> {
        let _one_at_a_time = self.snapshotting.lock();
        let started = Instant::now();
        let data_dir = &self.options.data_dir;
        let (encoded, erased, pause) = {
            let mut state = self.ingest.lock();
            let paused = Instant::now();
            let last = *self.snapshot_lsn.lock();
            if last.is_some_and(|lsn| lsn + 1 == self.wal.next_lsn()) {
                // Nothing logged since: rewriting the same state only costs I/O (and a
                // same-LSN directory cannot be swapped in atomically).
                let erased = std::mem::take(&mut state.erased_since_snapshot);
                drop(state);
                let lsn = last.unwrap_or_default();
                return self.finish_snapshot(
                    data_dir.join(snapshot::snapshot_name(lsn)),
                    lsn,
                    0,
                    erased,
                    (Duration::ZERO, started),
                    true,
                );
            }
            // Every record up to `covered` now lies in closed segments.
            let covered = self.wal.rotate()? - 1;
            let encoded = snapshot::encode_snapshot(
                &self.engine,
                covered,
                state.reserved_until,
                &state.application_state,
            );
            let erased = std::mem::take(&mut state.erased_since_snapshot);
            (encoded, erased, paused.elapsed())
        };
        let path = match snapshot::write_snapshot(data_dir, &encoded) {
            Ok(path) => path,
            Err(source) => {
                // The erasure is still only in older files: keep the flag for next time.
                self.ingest.lock().erased_since_snapshot |= erased;
                tracing::error!(%source, "snapshot failed; the previous snapshot stays in use");
                crate::telemetry::record_snapshot_failure();
                return Err(PersistError::Io {
                    path: data_dir.join(snapshot::snapshot_name(encoded.covered_lsn)),
                    source,
                });
            }
        };
        *self.snapshot_lsn.lock() = Some(encoded.covered_lsn);
        self.finish_snapshot(
            path,
            encoded.covered_lsn,
            encoded.bytes(),
            erased,
            (pause, started),
            false,
        )
    }

    /// Deletes what the snapshot at `path` made obsolete (after an erasure: every older
    /// file, then the erasure marker).
    fn finish_snapshot(
        &self,
        path: PathBuf,
        covered_lsn: u64,
        bytes: u64,
        erased: bool,
        (pause, started): (Duration, Instant),
        skipped: bool,
    ) -> Result<SnapshotReport, PersistError> {
        let data_dir = &self.options.data_dir;
        let keep = self.options.snapshots_kept.max(1);
        let removed = failpoint("snapshot_after_rename")
            .and_then(|()| recovery::remove_obsolete(data_dir, keep, erased));
        let (removed_snapshots, removed_wal_segments) = match removed {
            Ok(removed) => removed,
            Err(source) => {
                // Older files may still hold erased data: clean up next time.
                self.ingest.lock().erased_since_snapshot |= erased;
                return Err(PersistError::Io { path, source });
            }
        };
        if erased {
            // Under the ingest lock: an erasure (which writes the marker under it) cannot
            // slip in between the check and the removal.
            let mut state = self.ingest.lock();
            if !state.erased_since_snapshot {
                if let Err(source) =
                    failpoint("erasure_marker_before_clear").and_then(|()| erasure::clear(data_dir))
                {
                    state.erased_since_snapshot = true;
                    return Err(PersistError::Io { path, source });
                }
            }
        }
        let total = started.elapsed();
        crate::telemetry::record_snapshot(total, pause, bytes);
        Ok(SnapshotReport {
            path,
            covered_lsn,
            bytes,
            pause,
            total,
            removed_snapshots,
            removed_wal_segments,
            skipped,
        })
    }

    /// Graceful shutdown: a final snapshot (so the next start replays nothing), then the
    /// WAL is synced and closed.
    pub fn close(&self) -> Result<SnapshotReport, PersistError> {
        let report = self.snapshot_now();
        self.wal.close();
        report
    }

    /// Starts a thread that snapshots every `interval` until the returned handle is
    /// stopped or dropped (it holds only a weak reference to the database).
    pub fn start_snapshots(self: &Arc<Self>, interval: Duration) -> SnapshotThread {
        let (stop, stopped) = crossbeam::channel::bounded::<()>(1);
        let database = Arc::downgrade(self);
        let thread = std::thread::Builder::new()
            .name("segd-snapshots".into())
            .spawn(move || loop {
                match stopped.recv_timeout(interval) {
                    Err(crossbeam::channel::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let Some(database) = database.upgrade() else {
                    return;
                };
                match database.snapshot_now() {
                    Ok(report) => tracing::info!(
                        path = %report.path.display(),
                        pause_ms = report.pause.as_millis() as u64,
                        total_ms = report.total.as_millis() as u64,
                        "snapshot written"
                    ),
                    Err(error) => tracing::error!(%error, "periodic snapshot failed"),
                }
            })
            .ok();
        SnapshotThread {
            stop: Some(stop),
            thread,
        }
    }
}

/// The periodic snapshot thread; stops when dropped.
#[derive(Debug)]
pub struct SnapshotThread {
    stop: Option<crossbeam::channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SnapshotThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
