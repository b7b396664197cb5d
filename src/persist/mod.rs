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

pub mod format;
pub mod inspect;
pub mod record;
pub mod recovery;
pub mod snapshot;
pub mod wal;

use crate::clock::Clock;
use crate::engine::{
    BatchOutcome, Engine, EngineError, EngineOptions, MembershipChange, RuleInput, SegmentSummary,
    StaticEdit,
};
use crate::ids::SegmentId;
use crate::ingest::Message;
use crate::persist::record::WalRecord;
use crate::persist::wal::{FsyncPolicy, Wal, WalFailed, WalFaults, WalStatus};
use parking_lot::Mutex;
use std::cell::Cell;
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

thread_local! {
    /// The time the engine sees on this thread while a record is applied.
    static PINNED_MS: Cell<Option<i64>> = const { Cell::new(None) };
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
        PINNED_MS.with(|pinned| pinned.set(Some(at_ms)));
        PinGuard
    }
}

impl Clock for ReplayClock {
    fn now_ms(&self) -> i64 {
        PINNED_MS
            .with(Cell::get)
            .unwrap_or_else(|| self.inner.now_ms())
    }
}

#[derive(Debug)]
pub struct PinGuard;

impl Drop for PinGuard {
    fn drop(&mut self) {
        PINNED_MS.with(|pinned| pinned.set(None));
    }
}

/// What a failpoint does when hit (tests only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailAction {
    /// Return an I/O error from the operation.
    Error,
    /// Abort the process on the spot, like a crash or power cut.
    Abort,
}

static FAILPOINTS: Mutex<Vec<(String, FailAction)>> = Mutex::new(Vec::new());

/// Arms (or with `None` disarms) a failpoint. Names: `snapshot_before_rename` (files
/// written and synced, directory not yet renamed), `snapshot_after_rename` (before old
/// snapshots and WAL segments are deleted).
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
}

/// An engine made durable by a WAL and snapshots in a data directory.
#[derive(Debug)]
pub struct Database {
    engine: Arc<Engine>,
    wal: Wal,
    ingest: Mutex<IngestState>,
    snapshotting: Mutex<()>,
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
                erased_since_snapshot: false,
                application_state: recovered.application_state,
            }),
            snapshotting: Mutex::new(()),
            options,
        };
        // Reserve a fresh block above everything replay handed out before serving.
        {
            let mut state = database.ingest.lock();
            database.reserve(&mut state, 0)?;
        }
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

    /// The most membership changes an operation touching `profiles` profiles can make.
    fn change_bound(&self, profiles: u64) -> u64 {
        let segments = self.engine.registry.read().len() as u64;
        profiles.saturating_mul(segments + 1)
    }

    /// Applies and logs one mutation; returns after the WAL acknowledged it.
    fn logged<T>(
        &self,
        record: &WalRecord,
        change_bound: u64,
        apply: impl FnOnce(&Engine) -> Result<T, EngineError>,
    ) -> Result<T, DatabaseError> {
        self.wal.check()?;
        let at_ms = record.at_ms().unwrap_or_default();
        let erases = matches!(record, WalRecord::EraseProfile { .. });
        let bytes = record.encode();
        let (value, lsn) = {
            let mut state = self.ingest.lock();
            self.reserve(&mut state, change_bound)?;
            let value = {
                let _pin = ReplayClock::pin(at_ms);
                apply(&self.engine)?
            };
            // Only what was applied is logged: a rejected request leaves no trace.
            let lsn = self.wal.append(bytes)?;
            state.erased_since_snapshot |= erases;
            (value, lsn)
        };
        self.wal.wait(lsn)?;
        Ok(value)
    }

    fn now_ms(&self) -> i64 {
        self.engine.now_ms()
    }

    /// [`Engine::apply_batch`], durably. Messages naming erased (suppressed)
    /// identifiers are dropped by the engine and not written to the WAL, so an erased
    /// identifier sent again does not reach the disk.
    pub fn apply_batch(&self, messages: Vec<Message>) -> Result<BatchOutcome, DatabaseError> {
        let bound = self.change_bound(2 * messages.len() as u64);
        let at_ms = self.now_ms();
        if !messages.iter().any(|m| self.engine.is_suppressed(m)) {
            let record = WalRecord::Messages { at_ms, messages };
            return self.logged(&record, bound, |engine| match &record {
                WalRecord::Messages { messages, .. } => engine.apply_batch(messages),
                _ => Ok(BatchOutcome::default()),
            });
        }
        // The whole batch is still validated and applied (counting the suppressed);
        // replaying the rest gives the same state, since suppression happens first.
        let kept = messages
            .iter()
            .filter(|message| !self.engine.is_suppressed(message))
            .cloned()
            .collect();
        let record = WalRecord::Messages {
            at_ms,
            messages: kept,
        };
        self.logged(&record, bound, |engine| engine.apply_batch(&messages))
    }

    pub fn create_segment(
        &self,
        name: &str,
        description: &str,
        rule: Option<RuleInput>,
    ) -> Result<SegmentSummary, DatabaseError> {
        self.create_segment_with(name, description, rule, false)
    }

    /// [`Engine::create_segment_with`], durably.
    pub fn create_segment_with(
        &self,
        name: &str,
        description: &str,
        rule: Option<RuleInput>,
        emit_initial: bool,
    ) -> Result<SegmentSummary, DatabaseError> {
        let rule = rule.map(RuleInput::into_rule).transpose()?;
        let bound = self.change_bound(self.engine.profile_count());
        let record = WalRecord::CreateSegment {
            at_ms: self.now_ms(),
            name: name.to_string(),
            description: description.to_string(),
            rule: rule.clone(),
            emit_initial,
        };
        self.logged(&record, bound, |engine| {
            engine.create_segment_with(name, description, rule.map(RuleInput::Ast), emit_initial)
        })
    }

    /// [`Engine::update_segment`], durably.
    pub fn update_segment(
        &self,
        id: SegmentId,
        rule: RuleInput,
        description: Option<&str>,
    ) -> Result<(SegmentSummary, Vec<MembershipChange>), DatabaseError> {
        let rule = rule.into_rule()?;
        let bound = self.change_bound(self.engine.profile_count());
        let record = WalRecord::UpdateSegment {
            at_ms: self.now_ms(),
            id,
            rule: rule.clone(),
            description: description.map(str::to_string),
        };
        self.logged(&record, bound, |engine| {
            engine.update_segment(id, RuleInput::Ast(rule), description)
        })
    }

    pub fn delete_segment(&self, id: SegmentId) -> Result<(), DatabaseError> {
        let record = WalRecord::DeleteSegment {
            at_ms: self.now_ms(),
            id,
        };
        self.logged(&record, 0, |engine| engine.delete_segment(id))
    }

    pub fn edit_static(
        &self,
        id: SegmentId,
        edit: StaticEdit,
        profiles: &[String],
    ) -> Result<(Vec<MembershipChange>, Vec<String>), DatabaseError> {
        let bound = self.change_bound(self.engine.profile_count());
        let record = WalRecord::EditStatic {
            at_ms: self.now_ms(),
            id,
            edit,
            profiles: profiles.to_vec(),
        };
        self.logged(&record, bound, |engine| {
            engine.edit_static(id, edit, profiles)
        })
    }

    /// Erasure with suppression. The identifiers stay on disk (in the WAL and the
    /// previous snapshot) until the next snapshot, which then deletes every older file.
    pub fn erase_profile(&self, external_id: &str) -> Result<Vec<MembershipChange>, DatabaseError> {
        let bound = self.change_bound(1);
        let record = WalRecord::EraseProfile {
            at_ms: self.now_ms(),
            external_id: external_id.to_string(),
        };
        self.logged(&record, bound, |engine| engine.erase_profile(external_id))
    }

    pub fn delete_profile(
        &self,
        external_id: &str,
    ) -> Result<Vec<MembershipChange>, DatabaseError> {
        let bound = self.change_bound(1);
        let record = WalRecord::DeleteProfile {
            at_ms: self.now_ms(),
            external_id: external_id.to_string(),
        };
        self.logged(&record, bound, |engine| engine.delete_profile(external_id))
    }

    /// Logs a record of the HTTP layer's own (webhook registrations) and replaces its
    /// persisted state with `state` (kept in snapshots). Replayed records after the
    /// snapshot are handed back in [`RecoveryReport::application_records`].
    pub fn append_opaque(&self, record: Vec<u8>, state: Vec<u8>) -> Result<(), DatabaseError> {
        let record = WalRecord::Opaque {
            at_ms: self.now_ms(),
            bytes: record,
        };
        self.logged(&record, 0, |_| Ok(()))?;
        self.ingest.lock().application_state = state;
        Ok(())
    }

    /// [`Engine::tick`] with its change-log sequences reserved first. Ticks are not
    /// logged: they are derived from logged state and the time, and timers survive in
    /// snapshots and replay.
    pub fn tick(&self) -> Result<usize, DatabaseError> {
        let mut state = self.ingest.lock();
        let bound = self.change_bound(self.engine.profile_count());
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
        let (encoded, erased, pause) = {
            let mut state = self.ingest.lock();
            let paused = Instant::now();
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
        let data_dir = &self.options.data_dir;
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
        failpoint("snapshot_after_rename").map_err(io_error(&path))?;
        let keep = if erased {
            1
        } else {
            self.options.snapshots_kept.max(1)
        };
        let (removed_snapshots, removed_wal_segments) =
            recovery::remove_obsolete(data_dir, keep).map_err(io_error(data_dir))?;
        let total = started.elapsed();
        crate::telemetry::record_snapshot(total, pause, encoded.bytes());
        Ok(SnapshotReport {
            path,
            covered_lsn: encoded.covered_lsn,
            bytes: encoded.bytes(),
            pause,
            total,
            removed_snapshots,
            removed_wal_segments,
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
