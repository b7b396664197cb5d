//! The write-ahead log: segment files of framed, checksummed batches, with group
//! commit of fsyncs.
//!
//! Segment files are named `wal-<first LSN, 20 digits>.log`. Each batch is
//!
//! ```text
//! Start  magic u32 0x4C415753 ("SWAL"), version u16, reserved u16, first LSN u64,
//!        item count u32, items byte length u32                         (24 bytes)
//! Items  item count × (length u32, record bytes)
//! End    crc32 u32 over Start and Items, end magic u32 0x444E4557 ("WEND") (8 bytes)
//! ```
//!
//! all little-endian. Records inside a batch have consecutive LSNs from the first.
//!
//! Callers append under the database's ingest lock (so LSN order is apply order): the
//! record is framed and written to the segment on the caller's thread. They then wait,
//! outside the lock, until their LSN is as durable as the fsync policy promises: under
//! `always` one waiting caller runs `fdatasync` for every record written so far while
//! the others wait for it (group commit: one fsync for many callers); under
//! `interval:<ms>` a syncer thread fsyncs in the background; `never` leaves it to the
//! OS. There is no hand-off to a writer thread on the acknowledgement path: on a busy
//! two-core machine each hand-off cost milliseconds of scheduling delay (measured: a
//! writer thread made single-caller ingest 35-60% slower under `interval:10`).
//! After any write or sync error the WAL is *failed*: every later append is refused, so
//! nothing is acknowledged that could not be persisted.

use crate::persist::format::{damaged, FormatError};
use parking_lot::{Condvar, Mutex};
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub const BATCH_MAGIC: u32 = 0x4C41_5753;
pub const BATCH_END_MAGIC: u32 = 0x444E_4557;
pub const WAL_FORMAT_VERSION: u16 = 1;
pub const BATCH_START_BYTES: usize = 24;
pub const BATCH_END_BYTES: usize = 8;
/// Largest batch the reader accepts (a bigger length field is corruption).
pub const MAX_BATCH_BYTES: usize = 1 << 30;
/// Default segment size at which the writer starts a new file.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// When the WAL calls `fdatasync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before acknowledging every batch: an acknowledged write survives power loss.
    Always,
    /// At most this many milliseconds after a write (acknowledged once written to the
    /// OS): power loss can lose the last interval of acknowledged writes.
    IntervalMs(u64),
    /// Never (the OS flushes when it likes, ~30 s on Linux): power loss can lose that.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => match text.strip_prefix("interval:").map(str::parse::<u64>) {
                Some(Ok(milliseconds)) if (1..=60_000).contains(&milliseconds) => {
                    Ok(FsyncPolicy::IntervalMs(milliseconds))
                }
                _ => Err(format!(
                    "bad fsync policy `{text}`: use always, never or interval:<1..60000 ms>"
                )),
            },
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => formatter.write_str("always"),
            FsyncPolicy::IntervalMs(milliseconds) => write!(formatter, "interval:{milliseconds}"),
            FsyncPolicy::Never => formatter.write_str("never"),
        }
    }
}

/// Test hooks that make the writer fail as a full or broken disk would.
#[derive(Debug, Default)]
pub struct WalFaults {
    /// Every write fails with an I/O error while set.
    pub fail_writes: AtomicBool,
    /// Every fsync fails while set.
    pub fail_syncs: AtomicBool,
}

#[derive(Clone, Debug)]
pub struct WalOptions {
    pub directory: PathBuf,
    pub fsync: FsyncPolicy,
    pub segment_bytes: u64,
    pub faults: Option<Arc<WalFaults>>,
}

/// The file name of the segment whose first record has `first_lsn`.
pub fn segment_name(first_lsn: u64) -> String {
    format!("wal-{first_lsn:020}.log")
}

/// WAL segments in a directory, by first LSN.
pub fn list_segments(directory: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let lsn = name
            .strip_prefix("wal-")
            .and_then(|rest| rest.strip_suffix(".log"))
            .filter(|digits| digits.len() == 20)
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(lsn) = lsn {
            segments.push((lsn, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Frames records as one batch.
pub fn encode_batch(first_lsn: u64, items: &[&[u8]]) -> Vec<u8> {
    let items_bytes: usize = items.iter().map(|item| 4 + item.len()).sum();
    let mut out = Vec::with_capacity(BATCH_START_BYTES + items_bytes + BATCH_END_BYTES);
    out.extend_from_slice(&BATCH_MAGIC.to_le_bytes());
    out.extend_from_slice(&WAL_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&first_lsn.to_le_bytes());
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    out.extend_from_slice(&(items_bytes as u32).to_le_bytes());
    for item in items {
        out.extend_from_slice(&(item.len() as u32).to_le_bytes());
        out.extend_from_slice(item);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&BATCH_END_MAGIC.to_le_bytes());
    out
}

/// One decoded batch: its first LSN and its records' bytes.
#[derive(Debug)]
pub struct Batch<'a> {
    pub first_lsn: u64,
    pub items: Vec<&'a [u8]>,
    /// Offset of the batch's first byte in the segment.
    pub offset: usize,
}

/// The batches of a segment up to the first invalid one.
#[derive(Debug)]
pub struct SegmentScan<'a> {
    pub batches: Vec<Batch<'a>>,
    /// Bytes covered by the valid batches (the file is cut here when damaged).
    pub valid_bytes: usize,
    /// Why reading stopped before the end, if it did.
    pub damage: Option<FormatError>,
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads one batch at `offset`; every length is checked against the bytes present.
fn read_batch(bytes: &[u8], offset: usize) -> Result<(Batch<'_>, usize), FormatError> {
    let rest = &bytes[offset..];
    if rest.len() < BATCH_START_BYTES + BATCH_END_BYTES {
        return Err(damaged(format!("torn batch start at offset {offset}")));
    }
    if read_u32(rest, 0) != BATCH_MAGIC {
        return Err(damaged(format!("bad batch magic at offset {offset}")));
    }
    let version = u16::from_le_bytes([rest[4], rest[5]]);
    if version != WAL_FORMAT_VERSION {
        return Err(damaged(format!(
            "WAL format version {version} at offset {offset}; this build reads {WAL_FORMAT_VERSION}"
        )));
    }
    let mut lsn_bytes = [0u8; 8];
    lsn_bytes.copy_from_slice(&rest[8..16]);
    let first_lsn = u64::from_le_bytes(lsn_bytes);
    let count = read_u32(rest, 16) as usize;
    let items_bytes = read_u32(rest, 20) as usize;
    let total = BATCH_START_BYTES + items_bytes + BATCH_END_BYTES;
    if items_bytes > MAX_BATCH_BYTES || total > rest.len() {
        return Err(damaged(format!("torn batch at offset {offset}")));
    }
    let body_end = BATCH_START_BYTES + items_bytes;
    if read_u32(rest, body_end + 4) != BATCH_END_MAGIC
        || read_u32(rest, body_end) != crc32fast::hash(&rest[..body_end])
    {
        return Err(damaged(format!(
            "batch checksum mismatch at offset {offset}"
        )));
    }
    // The checksum matched, but lengths are still checked so a writer bug cannot
    // make the reader slice out of bounds.
    let mut items = Vec::with_capacity(count.min(items_bytes / 4));
    let mut position = BATCH_START_BYTES;
    for _ in 0..count {
        if position + 4 > body_end {
            return Err(damaged(format!("batch items overrun at offset {offset}")));
        }
        let length = read_u32(rest, position) as usize;
        position += 4;
        if length > body_end - position {
            return Err(damaged(format!("batch items overrun at offset {offset}")));
        }
        items.push(&rest[position..position + length]);
        position += length;
    }
    if position != body_end {
        return Err(damaged(format!("batch length mismatch at offset {offset}")));
    }
    Ok((
        Batch {
            first_lsn,
            items,
            offset,
        },
        total,
    ))
}

/// Reads every valid batch of a segment, stopping at the first torn or corrupt one.
pub fn scan_segment(bytes: &[u8]) -> SegmentScan<'_> {
    let mut batches = Vec::new();
    let mut offset = 0;
    let mut damage = None;
    while offset < bytes.len() {
        match read_batch(bytes, offset) {
            Ok((batch, length)) => {
                let continues = batches.last().is_none_or(|previous: &Batch<'_>| {
                    previous.first_lsn + previous.items.len() as u64 == batch.first_lsn
                });
                if !continues {
                    damage = Some(damaged(format!("LSN gap at offset {offset}")));
                    break;
                }
                batches.push(batch);
                offset += length;
            }
            Err(error) => {
                damage = Some(error);
                break;
            }
        }
    }
    SegmentScan {
        batches,
        valid_bytes: offset,
        damage,
    }
}

/// What the WAL has done, for `/readyz`, `/metrics` and `inspect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalStatus {
    pub policy: FsyncPolicy,
    /// Why the WAL stopped accepting writes, if it did.
    pub failure: Option<String>,
    /// Highest LSN acknowledged to callers (written; synced under `always`).
    pub acknowledged_lsn: u64,
    /// Highest LSN known to be on stable storage.
    pub durable_lsn: u64,
    pub next_lsn: u64,
    pub current_segment: u64,
    pub batches_written: u64,
    pub records_written: u64,
    pub bytes_written: u64,
    pub syncs: u64,
}

#[derive(Debug)]
struct Progress {
    written_lsn: u64,
    durable_lsn: u64,
    failure: Option<String>,
    /// A caller is running `fdatasync` for everyone (policy `always`).
    syncing: bool,
    syncs: u64,
}

#[derive(Debug)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn fail(&self, reason: String) {
        let mut progress = self.progress.lock();
        if progress.failure.is_none() {
            tracing::error!(%reason, "write-ahead log failed; refusing writes until restart");
            progress.failure = Some(reason);
        }
        self.changed.notify_all();
    }
}

/// An error from the WAL: always the operator's problem (disk), never the caller's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the write-ahead log is failed ({0}); writes are refused until the disk is fixed and segd restarted")]
pub struct WalFailed(pub String);

/// The segment being written, shared with whoever fsyncs.
type CurrentFile = Arc<Mutex<Arc<File>>>;

/// The append side: only one appender at a time.
#[derive(Debug)]
struct Appender {
    file: Arc<File>,
    segment_bytes: u64,
    next_lsn: u64,
    current_segment: u64,
    /// Records written since the last fsync of this segment.
    dirty: bool,
    batches_written: u64,
    bytes_written: u64,
}

/// The write-ahead log.
///
/// Appending writes the framed record straight to the segment file on the caller's
/// thread (the database calls it under its ingest lock, so there is one appender at a
/// time and no hand-off to another thread: under `interval` and `never` an append is
/// acknowledged as soon as `write` returns). Under `always`, waiting callers elect one
/// of them to `fdatasync` everything written so far, so concurrent callers share one
/// fsync (group commit); under `interval:<ms>` a syncer thread fsyncs in the background.
#[derive(Debug)]
pub struct Wal {
    options: WalOptions,
    appender: Mutex<Appender>,
    current: CurrentFile,
    shared: Arc<Shared>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    stop_syncer: Arc<AtomicBool>,
}

impl Wal {
    /// Starts a new segment at `next_lsn` in `options.directory` (and, under
    /// `interval`, the syncer thread).
    pub fn open(options: WalOptions, next_lsn: u64) -> std::io::Result<Wal> {
        crate::persist::files::create_private_dir_all(&options.directory)?;
        let file = Arc::new(create_segment(&options.directory, next_lsn)?);
        let current: CurrentFile = Arc::new(Mutex::new(file.clone()));
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                written_lsn: next_lsn - 1,
                durable_lsn: next_lsn - 1,
                failure: None,
                syncing: false,
                syncs: 0,
            }),
            changed: Condvar::new(),
        });
        let stop_syncer = Arc::new(AtomicBool::new(false));
        let syncer = match options.fsync {
            FsyncPolicy::IntervalMs(milliseconds) => {
                let syncer = Syncer {
                    current: current.clone(),
                    shared: shared.clone(),
                    faults: options.faults.clone(),
                    interval: Duration::from_millis(milliseconds),
                    stop: stop_syncer.clone(),
                };
                Some(
                    std::thread::Builder::new()
                        .name("segd-wal-sync".into())
                        .spawn(move || syncer.run())?,
                )
            }
            _ => None,
        };
        Ok(Wal {
            options,
            appender: Mutex::new(Appender {
                file,
                segment_bytes: 0,
                next_lsn,
                current_segment: next_lsn,
                dirty: false,
                batches_written: 0,
                bytes_written: 0,
            }),
            current,
            shared,
            syncer: Mutex::new(syncer),
            stop_syncer,
        })
    }

    /// The failure, if the WAL has failed.
    pub fn check(&self) -> Result<(), WalFailed> {
        match &self.shared.progress.lock().failure {
            Some(reason) => Err(WalFailed(reason.clone())),
            None => Ok(()),
        }
    }

    fn injected(&self, select: impl Fn(&WalFaults) -> &AtomicBool) -> bool {
        self.options
            .faults
            .as_ref()
            .is_some_and(|faults| select(faults).load(Ordering::SeqCst))
    }

    /// Writes one record (as a batch of its own) and returns its LSN. Callers
    /// serialize appends with applying (the database's ingest lock), so LSN order is
    /// apply order.
    pub fn append(&self, bytes: Vec<u8>) -> Result<u64, WalFailed> {
        self.check()?;
        let mut appender = self.appender.lock();
        let lsn = appender.next_lsn;
        let frame = encode_batch(lsn, &[&bytes]);
        let result = if self.injected(|faults| &faults.fail_writes) {
            Err(std::io::Error::other("injected write failure"))
        } else {
            (&*appender.file).write_all(&frame)
        };
        if let Err(error) = result {
            let reason = format!(
                "write to {} failed: {error}",
                segment_name(appender.current_segment)
            );
            self.shared.fail(reason.clone());
            return Err(WalFailed(reason));
        }
        appender.next_lsn += 1;
        appender.segment_bytes += frame.len() as u64;
        appender.dirty = true;
        appender.batches_written += 1;
        appender.bytes_written += frame.len() as u64;
        self.shared.progress.lock().written_lsn = lsn;
        if appender.segment_bytes >= self.options.segment_bytes {
            // The record is written; a failed rotation fails the WAL for later calls.
            let _ = self.rotate_locked(&mut appender);
        }
        Ok(lsn)
    }

    /// The LSN the next append receives.
    pub fn next_lsn(&self) -> u64 {
        self.appender.lock().next_lsn
    }

    /// Blocks until `lsn` is acknowledged under the fsync policy, or the WAL failed.
    pub fn wait(&self, lsn: u64) -> Result<(), WalFailed> {
        let mut progress = self.shared.progress.lock();
        loop {
            let acknowledged = match self.options.fsync {
                FsyncPolicy::Always => progress.durable_lsn,
                _ => progress.written_lsn,
            };
            if acknowledged >= lsn {
                return Ok(());
            }
            if let Some(reason) = &progress.failure {
                return Err(WalFailed(reason.clone()));
            }
            if progress.syncing {
                self.shared.changed.wait(&mut progress);
                continue;
            }
            // Become the one that syncs for everyone written so far.
            progress.syncing = true;
            let target = progress.written_lsn;
            drop(progress);
            // Records before `target` in earlier segments were synced by rotation.
            let file = self.current.lock().clone();
            let result = if self.injected(|faults| &faults.fail_syncs) {
                Err(std::io::Error::other("injected fsync failure"))
            } else {
                crate::telemetry::timed_fsync(|| file.sync_data())
            };
            progress = self.shared.progress.lock();
            progress.syncing = false;
            match result {
                Ok(()) => {
                    progress.durable_lsn = progress.durable_lsn.max(target);
                    progress.syncs += 1;
                }
                Err(error) => {
                    // After a failed fsync the page cache state is unknown (the kernel
                    // may have dropped the dirty pages): never retry and acknowledge.
                    if progress.failure.is_none() {
                        let reason = format!("fsync of the current WAL segment failed: {error}");
                        tracing::error!(%reason, "write-ahead log failed; refusing writes until restart");
                        progress.failure = Some(reason);
                    }
                }
            }
            self.shared.changed.notify_all();
        }
    }

    /// Syncs the current segment and starts a new one at the next LSN, so every earlier
    /// record lives in files a snapshot can later delete whole. Returns the new
    /// segment's first LSN.
    pub fn rotate(&self) -> Result<u64, WalFailed> {
        self.check()?;
        let mut appender = self.appender.lock();
        self.rotate_locked(&mut appender)?;
        Ok(appender.next_lsn)
    }

    fn sync_locked(&self, appender: &mut Appender) -> Result<(), WalFailed> {
        if !appender.dirty {
            return Ok(());
        }
        let result = if self.injected(|faults| &faults.fail_syncs) {
            Err(std::io::Error::other("injected fsync failure"))
        } else {
            crate::telemetry::timed_fsync(|| appender.file.sync_data())
        };
        match result {
            Ok(()) => {
                appender.dirty = false;
                let mut progress = self.shared.progress.lock();
                progress.durable_lsn = progress.durable_lsn.max(appender.next_lsn - 1);
                progress.syncs += 1;
                drop(progress);
                self.shared.changed.notify_all();
                Ok(())
            }
            Err(error) => {
                let reason = format!(
                    "fsync of {} failed: {error}",
                    segment_name(appender.current_segment)
                );
                self.shared.fail(reason.clone());
                Err(WalFailed(reason))
            }
        }
    }

    fn rotate_locked(&self, appender: &mut Appender) -> Result<(), WalFailed> {
        self.sync_locked(appender)?;
        if appender.segment_bytes == 0 && appender.current_segment == appender.next_lsn {
            return Ok(());
        }
        match create_segment(&self.options.directory, appender.next_lsn) {
            Ok(file) => {
                appender.file = Arc::new(file);
                appender.segment_bytes = 0;
                appender.current_segment = appender.next_lsn;
                *self.current.lock() = appender.file.clone();
                Ok(())
            }
            Err(error) => {
                let reason = format!(
                    "creating {} failed: {error}",
                    segment_name(appender.next_lsn)
                );
                self.shared.fail(reason.clone());
                Err(WalFailed(reason))
            }
        }
    }

    pub fn status(&self) -> WalStatus {
        let appender = self.appender.lock();
        let progress = self.shared.progress.lock();
        WalStatus {
            policy: self.options.fsync,
            failure: progress.failure.clone(),
            acknowledged_lsn: match self.options.fsync {
                FsyncPolicy::Always => progress.durable_lsn,
                _ => progress.written_lsn,
            },
            durable_lsn: progress.durable_lsn,
            next_lsn: appender.next_lsn,
            current_segment: appender.current_segment,
            batches_written: appender.batches_written,
            records_written: appender.batches_written,
            bytes_written: appender.bytes_written,
            syncs: progress.syncs,
        }
    }

    /// Syncs what was written and stops the syncer thread.
    pub fn close(&self) {
        self.stop_syncer.store(true, Ordering::SeqCst);
        if let Some(thread) = self.syncer.lock().take() {
            let _ = thread.join();
        }
        let mut appender = self.appender.lock();
        if self.check().is_ok() {
            let _ = self.sync_locked(&mut appender);
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

fn create_segment(directory: &Path, first_lsn: u64) -> std::io::Result<File> {
    let path = directory.join(segment_name(first_lsn));
    // An existing file of this name holds no valid record (recovery cut it to the last
    // valid batch, and its first LSN is the next one to write), so it is emptied.
    let file = crate::persist::files::create_private_file(&path)?;
    sync_directory(directory)?;
    Ok(file)
}

/// Makes a directory entry change (create, rename, delete) durable.
pub fn sync_directory(directory: &Path) -> std::io::Result<()> {
    File::open(directory)?.sync_all()
}

/// Under `interval:<ms>`: fsyncs the current segment every interval while there are
/// written but unsynced records, so appenders never wait for the disk.
struct Syncer {
    current: CurrentFile,
    shared: Arc<Shared>,
    faults: Option<Arc<WalFaults>>,
    interval: Duration,
    stop: Arc<AtomicBool>,
}

impl Syncer {
    fn run(self) {
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(self.interval);
            let target = {
                let progress = self.shared.progress.lock();
                if progress.failure.is_some() {
                    return;
                }
                if progress.written_lsn <= progress.durable_lsn {
                    continue;
                }
                progress.written_lsn
            };
            // Records before `target` in earlier segments were synced by rotation.
            let file = self.current.lock().clone();
            let injected = self
                .faults
                .as_ref()
                .is_some_and(|faults| faults.fail_syncs.load(Ordering::SeqCst));
            let result = if injected {
                Err(std::io::Error::other("injected fsync failure"))
            } else {
                crate::telemetry::timed_fsync(|| file.sync_data())
            };
            match result {
                Ok(()) => {
                    let mut progress = self.shared.progress.lock();
                    progress.durable_lsn = progress.durable_lsn.max(target);
                    progress.syncs += 1;
                }
                Err(error) => {
                    self.shared
                        .fail(format!("fsync of the current WAL segment failed: {error}"));
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Framing round trips, torn tails stop the scan, group commit, rotation, failure.
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("segd-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn policies_parse_and_print() {
        for text in ["always", "never", "interval:10"] {
            assert_eq!(text.parse::<FsyncPolicy>().unwrap().to_string(), text);
        }
        for bad in ["", "sometimes", "interval:", "interval:0", "interval:60001"] {
            assert!(bad.parse::<FsyncPolicy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn scan_stops_at_the_first_torn_or_corrupt_batch() {
        let mut bytes = encode_batch(1, &[b"one", b"two"]);
        bytes.extend(encode_batch(3, &[b"three"]));
        let valid = bytes.len();
        bytes.extend(encode_batch(4, &[b"four"]));
        let full = scan_segment(&bytes);
        assert_eq!(full.batches.len(), 3);
        assert!(full.damage.is_none());
        for cut in valid..bytes.len() {
            let scan = scan_segment(&bytes[..cut]);
            assert_eq!(scan.batches.len(), 2);
            assert_eq!(scan.valid_bytes, valid);
            assert_eq!(scan.damage.is_some(), cut > valid);
        }
        for index in valid..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[index] ^= 1;
            let scan = scan_segment(&flipped);
            assert_eq!(scan.batches.len(), 2, "flip at {index}");
            assert!(scan.damage.is_some());
        }
        // A batch whose LSN does not follow is a gap, not data.
        let mut gap = encode_batch(1, &[b"one"]);
        gap.extend(encode_batch(5, &[b"five"]));
        assert_eq!(scan_segment(&gap).batches.len(), 1);
    }

    #[test]
    fn appends_are_acknowledged_and_rotate() {
        let dir = temp_dir("append");
        let wal = Wal::open(
            WalOptions {
                directory: dir.clone(),
                fsync: FsyncPolicy::Always,
                segment_bytes: 200,
                faults: None,
            },
            1,
        )
        .unwrap();
        let mut last = 0;
        for index in 0..50u32 {
            last = wal.append(index.to_le_bytes().repeat(4)).unwrap();
        }
        wal.wait(last).unwrap();
        assert_eq!(last, 50);
        let status = wal.status();
        assert_eq!(status.records_written, 50);
        assert!(status.durable_lsn >= 50);
        wal.close();
        let segments = list_segments(&dir).unwrap();
        assert!(segments.len() > 1, "rotation at 200 bytes");
        let mut next = 1;
        for (first, path) in &segments {
            let bytes = std::fs::read(path).unwrap();
            let scan = scan_segment(&bytes);
            assert!(scan.damage.is_none());
            for batch in &scan.batches {
                assert_eq!(batch.first_lsn, next);
                assert!(*first <= batch.first_lsn);
                for item in &batch.items {
                    assert_eq!(&item[..4], &((next - 1) as u32).to_le_bytes());
                    next += 1;
                }
            }
        }
        assert_eq!(next, 51);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_failure_fails_the_wal_for_good() {
        let dir = temp_dir("fail");
        let faults = Arc::new(WalFaults::default());
        let wal = Wal::open(
            WalOptions {
                directory: dir.clone(),
                fsync: FsyncPolicy::IntervalMs(5),
                segment_bytes: DEFAULT_SEGMENT_BYTES,
                faults: Some(faults.clone()),
            },
            7,
        )
        .unwrap();
        let lsn = wal.append(b"fine".to_vec()).unwrap();
        assert_eq!(lsn, 7);
        wal.wait(lsn).unwrap();
        faults.fail_writes.store(true, Ordering::SeqCst);
        let error = wal.append(b"lost".to_vec()).unwrap_err();
        assert!(error.0.contains("injected write failure"), "{error}");
        assert!(wal.status().failure.is_some());
        // Healthy disk again: still refused, since what was lost is unknown.
        faults.fail_writes.store(false, Ordering::SeqCst);
        assert!(wal.append(b"later".to_vec()).is_err());
        assert!(wal.rotate().is_err());
        wal.close();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn interval_policy_acknowledges_before_syncing_and_syncs_within_the_interval() {
        let dir = temp_dir("interval");
        let faults = Arc::new(WalFaults::default());
        let wal = Wal::open(
            WalOptions {
                directory: dir.clone(),
                fsync: FsyncPolicy::IntervalMs(20),
                segment_bytes: DEFAULT_SEGMENT_BYTES,
                faults: Some(faults.clone()),
            },
            1,
        )
        .unwrap();
        let lsn = wal.append(b"x".to_vec()).unwrap();
        wal.wait(lsn).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while wal.status().durable_lsn < lsn {
            assert!(std::time::Instant::now() < deadline, "never synced");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(wal.status().syncs >= 1);
        // A failing background fsync fails the WAL too.
        faults.fail_syncs.store(true, Ordering::SeqCst);
        let lsn = wal.append(b"y".to_vec()).unwrap();
        let _ = wal.wait(lsn);
        while wal.status().failure.is_none() {
            assert!(std::time::Instant::now() < deadline, "failure not noticed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(wal.append(b"z".to_vec()).is_err());
        wal.close();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_callers_share_fsyncs_under_always() {
        let dir = temp_dir("group");
        let wal = Arc::new(
            Wal::open(
                WalOptions {
                    directory: dir.clone(),
                    fsync: FsyncPolicy::Always,
                    segment_bytes: DEFAULT_SEGMENT_BYTES,
                    faults: None,
                },
                1,
            )
            .unwrap(),
        );
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        let lsn = wal.append(vec![7; 100]).unwrap();
                        wal.wait(lsn).unwrap();
                        assert!(wal.status().durable_lsn >= lsn);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let status = wal.status();
        assert_eq!(status.records_written, 200);
        assert!(
            status.syncs < 200,
            "no group commit: {} syncs",
            status.syncs
        );
        wal.close();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_sync_failure_is_not_acknowledged() {
        let dir = temp_dir("sync");
        let faults = Arc::new(WalFaults::default());
        faults.fail_syncs.store(true, Ordering::SeqCst);
        let wal = Wal::open(
            WalOptions {
                directory: dir.clone(),
                fsync: FsyncPolicy::Always,
                segment_bytes: DEFAULT_SEGMENT_BYTES,
                faults: Some(faults),
            },
            1,
        )
        .unwrap();
        let lsn = wal.append(b"x".to_vec()).unwrap();
        assert!(wal.wait(lsn).is_err());
        assert_eq!(wal.status().acknowledged_lsn, 0);
        wal.close();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
