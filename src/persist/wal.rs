//! The write-ahead log: segment files of framed, checksummed batches, written by one
//! thread with group commit.
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
//! Callers hand records to a bounded channel under the database's ingest lock (so LSN
//! order is apply order) and then wait, outside the lock, until the writer thread has
//! made their LSN as durable as the fsync policy promises. The writer drains whatever
//! is queued into one batch: one `write` and (policy `always`) one `fdatasync` for many
//! callers. After any write or sync error the WAL is *failed*: every later append is
//! refused, so nothing is acknowledged that could not be persisted.

use crate::persist::format::{damaged, FormatError};
use crossbeam::channel::{bounded, Receiver, Sender};
use parking_lot::{Condvar, Mutex};
use std::fmt;
use std::fs::{File, OpenOptions};
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
/// Most records the writer puts in one batch.
pub const MAX_BATCH_ITEMS: usize = 8_192;
/// Bytes the writer collects before writing a batch even if more are queued.
pub const BATCH_TARGET_BYTES: usize = 8 << 20;
/// Records that may wait in the writer's queue; appends block beyond (backpressure).
pub const QUEUE_CAPACITY: usize = 65_536;
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
    acknowledged_lsn: u64,
    durable_lsn: u64,
    failure: Option<String>,
    current_segment: u64,
    batches_written: u64,
    records_written: u64,
    bytes_written: u64,
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

enum Request {
    Append {
        lsn: u64,
        bytes: Vec<u8>,
    },
    /// Close the current segment and start one at `next_lsn`; replies with its path.
    Rotate {
        next_lsn: u64,
        done: Sender<Result<(), String>>,
    },
    Stop,
}

/// An error from the WAL: always the operator's problem (disk), never the caller's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the write-ahead log is failed ({0}); writes are refused until the disk is fixed and segd restarted")]
pub struct WalFailed(pub String);

/// The WAL writer handle.
#[derive(Debug)]
pub struct Wal {
    sender: Sender<Request>,
    next_lsn: Mutex<u64>,
    shared: Arc<Shared>,
    policy: FsyncPolicy,
    thread: Mutex<Option<JoinHandle<()>>>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    stop_syncer: Arc<AtomicBool>,
}

impl Wal {
    /// Starts a new segment at `next_lsn` in `options.directory` and the writer thread.
    pub fn open(options: WalOptions, next_lsn: u64) -> std::io::Result<Wal> {
        std::fs::create_dir_all(&options.directory)?;
        let file = Arc::new(create_segment(&options.directory, next_lsn)?);
        let current: CurrentFile = Arc::new(Mutex::new(file.clone()));
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                acknowledged_lsn: next_lsn - 1,
                durable_lsn: next_lsn - 1,
                failure: None,
                current_segment: next_lsn,
                batches_written: 0,
                records_written: 0,
                bytes_written: 0,
                syncs: 0,
            }),
            changed: Condvar::new(),
        });
        let (sender, receiver) = bounded(QUEUE_CAPACITY);
        let policy = options.fsync;
        let stop_syncer = Arc::new(AtomicBool::new(false));
        let syncer = match policy {
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
        let writer = Writer {
            options,
            file,
            current,
            segment_bytes: 0,
            dirty: false,
            last_written_lsn: next_lsn - 1,
            shared: shared.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("segd-wal".into())
            .spawn(move || writer.run(receiver))?;
        Ok(Wal {
            sender,
            next_lsn: Mutex::new(next_lsn),
            shared,
            policy,
            thread: Mutex::new(Some(thread)),
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

    /// Queues a record and returns its LSN. Callers serialize appends with applying
    /// (the database's ingest lock), so LSN order is apply order.
    pub fn append(&self, bytes: Vec<u8>) -> Result<u64, WalFailed> {
        self.check()?;
        let mut next = self.next_lsn.lock();
        let lsn = *next;
        self.sender
            .send(Request::Append { lsn, bytes })
            .map_err(|_| WalFailed("the WAL writer stopped".into()))?;
        *next += 1;
        Ok(lsn)
    }

    /// The LSN the next append receives.
    pub fn next_lsn(&self) -> u64 {
        *self.next_lsn.lock()
    }

    /// Blocks until `lsn` is acknowledged under the fsync policy, or the WAL failed.
    pub fn wait(&self, lsn: u64) -> Result<(), WalFailed> {
        let mut progress = self.shared.progress.lock();
        loop {
            if progress.acknowledged_lsn >= lsn {
                return Ok(());
            }
            if let Some(reason) = &progress.failure {
                return Err(WalFailed(reason.clone()));
            }
            self.shared.changed.wait(&mut progress);
        }
    }

    /// Closes the current segment (synced) and starts a new one at the next LSN, so
    /// every earlier record lives in files a snapshot can later delete whole.
    pub fn rotate(&self) -> Result<u64, WalFailed> {
        let next = self.next_lsn.lock();
        let (done, reply) = bounded(1);
        self.sender
            .send(Request::Rotate {
                next_lsn: *next,
                done,
            })
            .map_err(|_| WalFailed("the WAL writer stopped".into()))?;
        let next_lsn = *next;
        drop(next);
        match reply.recv() {
            Ok(Ok(())) => Ok(next_lsn),
            Ok(Err(reason)) => Err(WalFailed(reason)),
            Err(_) => Err(WalFailed("the WAL writer stopped".into())),
        }
    }

    pub fn status(&self) -> WalStatus {
        let progress = self.shared.progress.lock();
        WalStatus {
            policy: self.policy,
            failure: progress.failure.clone(),
            acknowledged_lsn: progress.acknowledged_lsn,
            durable_lsn: progress.durable_lsn,
            next_lsn: *self.next_lsn.lock(),
            current_segment: progress.current_segment,
            batches_written: progress.batches_written,
            records_written: progress.records_written,
            bytes_written: progress.bytes_written,
            syncs: progress.syncs,
        }
    }

    /// Writes and syncs everything queued, then stops the writer thread.
    pub fn close(&self) {
        let _ = self.sender.send(Request::Stop);
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
        self.stop_syncer.store(true, Ordering::SeqCst);
        if let Some(thread) = self.syncer.lock().take() {
            let _ = thread.join();
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
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    sync_directory(directory)?;
    Ok(file)
}

/// Makes a directory entry change (create, rename, delete) durable.
pub fn sync_directory(directory: &Path) -> std::io::Result<()> {
    File::open(directory)?.sync_all()
}

/// The segment being written, shared with the interval syncer.
type CurrentFile = Arc<Mutex<Arc<File>>>;

struct Writer {
    options: WalOptions,
    file: Arc<File>,
    current: CurrentFile,
    segment_bytes: u64,
    dirty: bool,
    last_written_lsn: u64,
    shared: Arc<Shared>,
}

impl Writer {
    fn failed(&self) -> bool {
        self.shared.progress.lock().failure.is_some()
    }

    fn run(mut self, receiver: Receiver<Request>) {
        let mut batch: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut deferred: Option<Request> = None;
        loop {
            let request = match deferred.take() {
                Some(request) => request,
                None => match receiver.recv() {
                    Ok(request) => request,
                    Err(_) => {
                        self.sync();
                        return;
                    }
                },
            };
            match request {
                Request::Append { lsn, bytes } => {
                    let mut batch_bytes = bytes.len();
                    batch.push((lsn, bytes));
                    // Group commit: take whatever else is already queued.
                    while batch.len() < MAX_BATCH_ITEMS && batch_bytes < BATCH_TARGET_BYTES {
                        match receiver.try_recv() {
                            Ok(Request::Append { lsn, bytes }) => {
                                batch_bytes += bytes.len();
                                batch.push((lsn, bytes));
                            }
                            Ok(other) => {
                                deferred = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.write_batch(&batch);
                    batch.clear();
                }
                Request::Rotate { next_lsn, done } => {
                    let result = self.rotate(next_lsn);
                    let _ = done.send(result);
                }
                Request::Stop => {
                    self.sync();
                    return;
                }
            }
        }
    }

    fn write_batch(&mut self, batch: &[(u64, Vec<u8>)]) {
        let Some(&(first_lsn, _)) = batch.first() else {
            return;
        };
        let last_lsn = first_lsn + batch.len() as u64 - 1;
        if self.failed() {
            return;
        }
        let items: Vec<&[u8]> = batch.iter().map(|(_, bytes)| bytes.as_slice()).collect();
        let frame = encode_batch(first_lsn, &items);
        let injected = self
            .options
            .faults
            .as_ref()
            .is_some_and(|faults| faults.fail_writes.load(Ordering::SeqCst));
        let result = if injected {
            Err(std::io::Error::other("injected write failure"))
        } else {
            (&*self.file).write_all(&frame)
        };
        if let Err(error) = result {
            self.shared.fail(format!(
                "write to {} failed: {error}",
                segment_name(self.current_segment())
            ));
            return;
        }
        self.dirty = true;
        self.segment_bytes += frame.len() as u64;
        self.last_written_lsn = last_lsn;
        // Under `interval` the syncer thread fsyncs, so acknowledging never waits
        // for the disk.
        if self.options.fsync == FsyncPolicy::Always && !self.sync() {
            return;
        }
        {
            let mut progress = self.shared.progress.lock();
            progress.acknowledged_lsn = last_lsn;
            progress.batches_written += 1;
            progress.records_written += batch.len() as u64;
            progress.bytes_written += frame.len() as u64;
        }
        self.shared.changed.notify_all();
        if self.segment_bytes >= self.options.segment_bytes {
            // Rotation failures are recorded by `rotate`; the batch is already written.
            let _ = self.rotate(last_lsn + 1);
        }
    }

    fn current_segment(&self) -> u64 {
        self.shared.progress.lock().current_segment
    }

    /// fdatasync; false (and the WAL failed) on error.
    fn sync(&mut self) -> bool {
        if !self.dirty {
            return true;
        }
        let injected = self
            .options
            .faults
            .as_ref()
            .is_some_and(|faults| faults.fail_syncs.load(Ordering::SeqCst));
        let result = if injected {
            Err(std::io::Error::other("injected fsync failure"))
        } else {
            self.file.sync_data()
        };
        match result {
            Ok(()) => {
                self.dirty = false;
                let mut progress = self.shared.progress.lock();
                progress.durable_lsn = progress.durable_lsn.max(self.last_written_lsn);
                progress.syncs += 1;
                true
            }
            Err(error) => {
                // After a failed fsync the page cache state is unknown (the kernel may
                // have dropped the dirty pages): never retry and acknowledge.
                self.shared.fail(format!(
                    "fsync of {} failed: {error}",
                    segment_name(self.current_segment())
                ));
                false
            }
        }
    }

    fn rotate(&mut self, next_lsn: u64) -> Result<(), String> {
        if let Some(reason) = &self.shared.progress.lock().failure {
            return Err(reason.clone());
        }
        if !self.sync() {
            return Err(self
                .shared
                .progress
                .lock()
                .failure
                .clone()
                .unwrap_or_default());
        }
        if self.segment_bytes == 0 && self.current_segment() == next_lsn {
            return Ok(());
        }
        match create_segment(&self.options.directory, next_lsn) {
            Ok(file) => {
                self.file = Arc::new(file);
                *self.current.lock() = self.file.clone();
                self.segment_bytes = 0;
                self.shared.progress.lock().current_segment = next_lsn;
                Ok(())
            }
            Err(error) => {
                let reason = format!("creating {} failed: {error}", segment_name(next_lsn));
                self.shared.fail(reason.clone());
                Err(reason)
            }
        }
    }
}

/// Under `interval:<ms>`: fsyncs the current segment every interval while there are
/// acknowledged but unsynced records, so writers and callers never wait for the disk.
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
                if progress.acknowledged_lsn <= progress.durable_lsn {
                    continue;
                }
                progress.acknowledged_lsn
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
                file.sync_data()
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
    fn appends_are_acknowledged_in_batches_and_rotate() {
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
        let lsn = wal.append(b"lost".to_vec()).unwrap();
        let error = wal.wait(lsn).unwrap_err();
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
