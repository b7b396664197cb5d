//! The membership change log: an append-only, in-memory feed of "profile P entered/exited
//! segment S at time T", numbered with global sequence numbers.
//!
//! # Sequence numbers
//! Every change gets a sequence number one higher than the one before it; numbers never
//! repeat, never go backwards and have no gaps. `append` takes one lock for a whole group,
//! so the changes caused by one event are numbered consecutively and become visible to
//! readers together. `ChangeLog::new` takes `first_sequence`, the number the next change
//! receives, so an engine that persisted its head resumes numbering after a restart
//! (`first_sequence = persisted head + 1`). Sequence 0 is never assigned: it means "before
//! everything", so a fresh reader starts with `after = 0`; a `first_sequence` of 0 is
//! treated as 1.
//!
//! # Reading and resuming
//! A reader remembers the sequence of the last change it processed and passes it as
//! `after`; `read` returns changes with `sequence > after`, oldest first, plus `head` (the
//! newest sequence assigned) and `next_after` (what to pass as `after` next time).
//!
//! The exact fell-behind rule: let `floor` be the sequence of the oldest retained change, or
//! `head + 1` when nothing is retained (everything up to `head` was dropped or never kept
//! since a restart). The reader needs `after + 1` next, so the read succeeds when
//! `after + 1 >= floor` and fails with [`FellBehind`] (`oldest_available = floor`) when
//! `after + 1 < floor`, i.e. when at least one change the reader has not seen was dropped.
//! Consequences: a reader at `after = 0` on a log that still holds sequence 1 is fine; a
//! reader whose `after` is exactly `floor - 1` is fine; a reader that reconnects with its
//! last sequence either gets every change after it or is told it fell behind, never a
//! silent gap. With a segment filter the rule is the same (the log does not remember
//! which segments dropped changes belonged to, so it errs on the side of telling). An
//! `after` beyond `head` is not an error: it returns no changes and `next_after = after`.
//!
//! `next_after` is the sequence of the last change *examined*, not only the last one
//! returned: a filtered reader skips over other segments' changes instead of re-scanning
//! them. One `read` examines at most [`MAX_SCAN_PER_READ`] changes so a filtered read over a
//! long log never holds the lock for long; it may return fewer than `limit` changes while
//! more exist, so a reader keeps reading until `next_after == head`.
//!
//! # Retention
//! At most `retention_count` changes are kept (enforced on every append, so memory is
//! bounded), and changes older than `retention_age_ms` are dropped. Age is measured against
//! the newest `time_ms` the log has seen (on `append`) or the time given to `expire`. Only
//! the oldest end is dropped, so sequences stay contiguous: a change stamped with an older
//! time that sits behind a newer one waits until the ones before it go. The engine must
//! stamp changes with its own clock at the time it records them, never with a client's
//! event time: one change stamped far in the future would expire everything before it.
//!
//! # Waiting
//! `subscribe` hands out a `tokio::sync::watch` receiver of the head sequence (for SSE and
//! async long-poll, see also `wait_async`); `wait_for` blocks a plain thread on a condition
//! variable. Both wake on every append that adds changes.
use std::collections::VecDeque;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::watch;

/// Most changes one `read` call examines (matching or not), so a filtered read never holds
/// the log's lock for long.
pub const MAX_SCAN_PER_READ: usize = 65_536;

/// Whether the profile entered or left the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Entered,
    Exited,
}

/// Why the membership changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// An ingested event or trait update re-evaluated the profile.
    Event,
    /// Time passed: a window slid or a relative-time condition flipped.
    Time,
    /// The segment's rule was edited (or the segment created) and re-evaluated.
    RuleEdit,
    /// Two profiles were merged by identity resolution.
    Merge,
    /// The profile or the segment was deleted.
    Delete,
    /// A static segment's member list was edited by hand.
    StaticEdit,
    /// Initial membership computed when a segment was first evaluated.
    Initial,
}

/// A change as the engine hands it to the log, before it has a sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingChange {
    pub time_ms: i64,
    pub segment_id: u32,
    pub segment_version: u32,
    /// External profile id: the userId, or `anon:<anonymousId>`.
    pub profile: Arc<str>,
    pub kind: ChangeKind,
    pub cause: Cause,
}

/// One recorded membership change. Serializes to the JSON of the change feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    pub sequence: u64,
    pub time_ms: i64,
    pub segment_id: u32,
    pub segment_version: u32,
    /// External profile id: the userId, or `anon:<anonymousId>`.
    #[schema(value_type = String)]
    #[serde(
        serialize_with = "serialize_arc_str",
        deserialize_with = "deserialize_arc_str"
    )]
    pub profile: Arc<str>,
    pub kind: ChangeKind,
    pub cause: Cause,
}

// serde's `Arc` support needs its `rc` feature; these two keep the manifest unchanged.
fn serialize_arc_str<S: Serializer>(value: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value)
}

fn deserialize_arc_str<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
    String::deserialize(deserializer).map(Arc::from)
}

/// Retention limits of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeLogOptions {
    /// Most changes kept; 0 is treated as 1.
    pub retention_count: usize,
    /// Changes older than this (relative to the newest time seen) are dropped.
    pub retention_age_ms: i64,
}

impl Default for ChangeLogOptions {
    fn default() -> Self {
        ChangeLogOptions {
            retention_count: 1_000_000,
            retention_age_ms: 7 * 24 * 60 * 60 * 1000,
        }
    }
}

/// The reader asked for changes that retention already dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[error(
    "change feed reader asked for changes after sequence {requested_after}, but retention \
     already dropped changes before sequence {oldest_available}; the reader fell behind: \
     re-read the full membership of the segments it follows, then resume from the current head"
)]
pub struct FellBehind {
    pub requested_after: u64,
    /// The lowest sequence that can still be read (the oldest retained change, or head + 1
    /// when none is retained).
    pub oldest_available: u64,
}

/// The answer to `read`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReadResult {
    /// Matching changes with `sequence > after`, oldest first, at most `limit`.
    pub changes: Vec<Change>,
    /// The newest sequence assigned so far (0 when none ever was).
    pub head: u64,
    /// Pass this as `after` on the next read.
    pub next_after: u64,
}

struct Inner {
    entries: VecDeque<Change>,
    /// The sequence the next change receives; entries hold `next_sequence - len ..`.
    next_sequence: u64,
    /// Newest time seen by `append` or `expire`, the reference for age retention.
    latest_time_ms: i64,
    /// Entries and exits ever appended, per segment id (for `/metrics`; bounded by the
    /// segments ever defined).
    transitions: std::collections::BTreeMap<u32, [u64; 2]>,
}

impl Inner {
    fn head(&self) -> u64 {
        self.next_sequence - 1
    }

    /// The lowest readable sequence: the oldest retained change, or head + 1.
    fn floor(&self) -> u64 {
        self.next_sequence - self.entries.len() as u64
    }

    fn expire_older_than(&mut self, cutoff_ms: i64) -> usize {
        let mut dropped = 0;
        while self.entries.front().is_some_and(|c| c.time_ms < cutoff_ms) {
            self.entries.pop_front();
            dropped += 1;
        }
        dropped
    }
}

/// The membership change log. Thread-safe; share it behind an `Arc`.
pub struct ChangeLog {
    options: ChangeLogOptions,
    inner: Mutex<Inner>,
    appended: Condvar,
    head_sender: watch::Sender<u64>,
}

impl fmt::Debug for ChangeLog {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.lock();
        formatter
            .debug_struct("ChangeLog")
            .field("options", &self.options)
            .field("head", &inner.head())
            .field("len", &inner.entries.len())
            .finish()
    }
}

impl ChangeLog {
    /// An empty log whose next change gets `first_sequence` (0 is treated as 1).
    pub fn new(options: ChangeLogOptions, first_sequence: u64) -> Self {
        let options = ChangeLogOptions {
            retention_count: options.retention_count.max(1),
            retention_age_ms: options.retention_age_ms.max(0),
        };
        let next_sequence = first_sequence.max(1);
        let (head_sender, _) = watch::channel(next_sequence - 1);
        ChangeLog {
            options,
            inner: Mutex::new(Inner {
                // Grow on demand: a large retention_count should not reserve memory up front.
                entries: VecDeque::new(),
                next_sequence,
                latest_time_ms: i64::MIN,
                transitions: std::collections::BTreeMap::new(),
            }),
            appended: Condvar::new(),
            head_sender,
        }
    }

    pub fn options(&self) -> ChangeLogOptions {
        self.options
    }

    /// Appends a group of changes with consecutive sequence numbers, atomically with respect
    /// to readers and other appenders. Returns the assigned range, or `None` for an empty
    /// group. Applies retention and wakes waiters. The iterator runs under the log's lock:
    /// pass changes already computed (a `Vec` or array), never a lazy iterator that does
    /// real work or touches this log.
    pub fn append(
        &self,
        changes: impl IntoIterator<Item = PendingChange>,
    ) -> Option<RangeInclusive<u64>> {
        let mut inner = self.inner.lock();
        let first = inner.next_sequence;
        for pending in changes {
            let sequence = inner.next_sequence;
            inner.next_sequence += 1;
            inner.latest_time_ms = inner.latest_time_ms.max(pending.time_ms);
            let kind_index = match pending.kind {
                ChangeKind::Entered => 0,
                ChangeKind::Exited => 1,
            };
            inner.transitions.entry(pending.segment_id).or_default()[kind_index] += 1;
            inner.entries.push_back(Change {
                sequence,
                time_ms: pending.time_ms,
                segment_id: pending.segment_id,
                segment_version: pending.segment_version,
                profile: pending.profile,
                kind: pending.kind,
                cause: pending.cause,
            });
            // Trim inside the loop so even a huge group never exceeds the bound.
            if inner.entries.len() > self.options.retention_count {
                inner.entries.pop_front();
            }
        }
        let last = inner.next_sequence - 1;
        if last < first {
            return None;
        }
        let cutoff_ms = inner
            .latest_time_ms
            .saturating_sub(self.options.retention_age_ms);
        inner.expire_older_than(cutoff_ms);
        // Publish under the lock so the watch value moves forward in sequence order.
        self.head_sender.send_replace(last);
        drop(inner);
        self.appended.notify_all();
        Some(first..=last)
    }

    /// `(segment id, entries, exits)` ever appended to this log, by segment id.
    pub fn transitions_by_segment(&self) -> Vec<(u32, u64, u64)> {
        let inner = self.inner.lock();
        inner
            .transitions
            .iter()
            .map(|(segment, [entered, exited])| (*segment, *entered, *exited))
            .collect()
    }

    /// Changes with `sequence > after` (only those of `segment` when given), at most
    /// `limit`. See the module doc for the fell-behind rule and `next_after`.
    pub fn read(
        &self,
        after: u64,
        segment: Option<u32>,
        limit: usize,
    ) -> Result<ReadResult, FellBehind> {
        let inner = self.inner.lock();
        let head = inner.head();
        let floor = inner.floor();
        if after.saturating_add(1) < floor {
            return Err(FellBehind {
                requested_after: after,
                oldest_available: floor,
            });
        }
        let mut result = ReadResult {
            changes: Vec::new(),
            head,
            next_after: after,
        };
        if after >= head || limit == 0 {
            return Ok(result);
        }
        // Entries are contiguous, so the first wanted change sits at a known position.
        let start = (after + 1 - floor) as usize;
        for change in inner.entries.range(start..).take(MAX_SCAN_PER_READ) {
            if segment.is_none_or(|id| id == change.segment_id) {
                result.changes.push(change.clone());
            }
            result.next_after = change.sequence;
            if result.changes.len() == limit {
                break;
            }
        }
        Ok(result)
    }

    /// The newest sequence assigned (0 when none ever was; `first_sequence - 1` after a
    /// restart until the first append).
    pub fn head(&self) -> u64 {
        self.inner.lock().head()
    }

    /// The sequence of the oldest retained change, if any is retained.
    pub fn oldest(&self) -> Option<u64> {
        self.inner.lock().entries.front().map(|c| c.sequence)
    }

    /// Number of retained changes.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.lock().entries.is_empty()
    }

    /// Drops changes older than `retention_age_ms` before `now_ms` (or before the newest
    /// time already seen, whichever is later). Returns how many were dropped.
    pub fn expire(&self, now_ms: i64) -> usize {
        let mut inner = self.inner.lock();
        inner.latest_time_ms = inner.latest_time_ms.max(now_ms);
        let cutoff_ms = inner
            .latest_time_ms
            .saturating_sub(self.options.retention_age_ms);
        inner.expire_older_than(cutoff_ms)
    }

    /// A watch of the head sequence; it changes on every append that adds changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head_sender.subscribe()
    }

    /// Blocks the calling thread until the head passes `after` or `timeout` elapses.
    /// Returns whether the head is past `after`. Do not call from async code; use
    /// `wait_async` or `subscribe` there.
    pub fn wait_for(&self, after: u64, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut inner = self.inner.lock();
        while inner.head() <= after {
            match deadline {
                Some(deadline) => {
                    if self.appended.wait_until(&mut inner, deadline).timed_out() {
                        return inner.head() > after;
                    }
                }
                // A timeout too large to represent means "wait forever".
                None => self.appended.wait(&mut inner),
            }
        }
        true
    }

    /// Waits asynchronously until the head passes `after` or `timeout` elapses (the
    /// long-poll `wait_ms`). Returns whether the head is past `after`.
    pub async fn wait_async(&self, after: u64, timeout: Duration) -> bool {
        let mut receiver = self.subscribe();
        let waited = tokio::time::timeout(timeout, receiver.wait_for(|&head| head > after)).await;
        match waited {
            Ok(Ok(_)) => true,
            // Timed out (or the sender is gone, which cannot happen while `self` lives).
            _ => self.head() > after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::thread;

    const DAY_MS: i64 = 24 * 60 * 60 * 1000;

    fn pending(time_ms: i64, segment_id: u32, profile: &str) -> PendingChange {
        PendingChange {
            time_ms,
            segment_id,
            segment_version: 1,
            profile: Arc::from(profile),
            kind: ChangeKind::Entered,
            cause: Cause::Event,
        }
    }

    fn options(retention_count: usize, retention_age_ms: i64) -> ChangeLogOptions {
        ChangeLogOptions {
            retention_count,
            retention_age_ms,
        }
    }

    #[test]
    fn transitions_count_every_change_even_after_retention_drops_it() {
        let log = ChangeLog::new(options(2, DAY_MS), 1);
        let exit = |time_ms, segment_id, profile| PendingChange {
            kind: ChangeKind::Exited,
            ..pending(time_ms, segment_id, profile)
        };
        log.append([pending(1, 7, "a"), pending(2, 7, "b"), pending(3, 9, "a")]);
        log.append([exit(4, 7, "a")]);
        assert_eq!(log.len(), 2, "retention keeps two");
        assert_eq!(log.transitions_by_segment(), vec![(7, 2, 1), (9, 1, 0)]);
    }

    fn sequences(result: &ReadResult) -> Vec<u64> {
        result.changes.iter().map(|c| c.sequence).collect()
    }

    // Several threads append groups at once: every sequence 1..=N is handed out exactly
    // once, each group gets a consecutive range, and the log holds them in order.
    #[test]
    fn concurrent_appenders_get_unique_gap_free_sequences() {
        let log = Arc::new(ChangeLog::new(ChangeLogOptions::default(), 1));
        let threads = 4;
        let groups_per_thread = 200;
        let handles: Vec<_> = (0..threads)
            .map(|thread_index| {
                let log = Arc::clone(&log);
                thread::spawn(move || {
                    let mut ranges = Vec::new();
                    for group in 0..groups_per_thread {
                        let size = 1 + (group % 5) as usize;
                        let profile = format!("t{thread_index}-g{group}");
                        let range = log
                            .append((0..size).map(|_| pending(0, thread_index, &profile)))
                            .expect("non-empty group gets a range");
                        assert_eq!(range.clone().count(), size);
                        ranges.push((range, profile));
                    }
                    ranges
                })
            })
            .collect();
        let mut seen = HashSet::new();
        let all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("appender thread panicked"))
            .collect();
        for (range, _) in &all {
            for sequence in range.clone() {
                assert!(
                    seen.insert(sequence),
                    "sequence {sequence} handed out twice"
                );
            }
        }
        let total = seen.len() as u64;
        assert_eq!(
            seen,
            (1..=total).collect::<HashSet<_>>(),
            "gap in sequences"
        );
        assert_eq!(log.head(), total);
        // Each group is contiguous in the log: all of a range carries the group's profile.
        let read = log.read(0, None, usize::MAX).expect("nothing dropped");
        assert_eq!(sequences(&read), (1..=total).collect::<Vec<_>>());
        for (range, profile) in &all {
            for sequence in range.clone() {
                assert_eq!(&*read.changes[(sequence - 1) as usize].profile, profile);
            }
        }
    }

    // An empty group assigns nothing and does not move the head.
    #[test]
    fn empty_append_assigns_nothing() {
        let log = ChangeLog::new(ChangeLogOptions::default(), 1);
        assert_eq!(log.append(Vec::new()), None);
        assert_eq!(log.head(), 0);
        assert_eq!(log.append(vec![pending(0, 1, "a")]), Some(1..=1));
    }

    // Count retention keeps the newest retention_count changes, even within one big group.
    #[test]
    fn retention_by_count() {
        let log = ChangeLog::new(options(10, i64::MAX), 1);
        log.append((0..25).map(|i| pending(i, 1, "p")));
        assert_eq!(log.len(), 10);
        assert_eq!(log.oldest(), Some(16));
        assert_eq!(log.head(), 25);
        log.append((0..3).map(|i| pending(i, 1, "p")));
        assert_eq!(log.len(), 10);
        assert_eq!(log.oldest(), Some(19));
        let read = log.read(18, None, 100).expect("after = oldest - 1 is fine");
        assert_eq!(sequences(&read), (19..=28).collect::<Vec<_>>());
    }

    // Age retention drops changes older than retention_age_ms before the newest time seen
    // (on append) or before the time given to expire; the cutoff itself is kept.
    #[test]
    fn retention_by_age() {
        let log = ChangeLog::new(options(1_000, 7 * DAY_MS), 1);
        log.append([pending(0, 1, "a"), pending(DAY_MS, 1, "b")]);
        log.append([pending(3 * DAY_MS, 1, "c")]);
        assert_eq!(log.len(), 3);
        // Newest time 8 days: cutoff 1 day, so "a" (day 0) goes and "b" (exactly day 1) stays.
        log.append([pending(8 * DAY_MS, 1, "d")]);
        assert_eq!(log.oldest(), Some(2));
        assert_eq!(log.len(), 3);
        // expire with a later clock drops more; an earlier clock never resurrects anything.
        assert_eq!(log.expire(10 * DAY_MS + 1), 2);
        assert_eq!(log.oldest(), Some(4));
        assert_eq!(log.expire(0), 0);
        assert_eq!(log.expire(20 * DAY_MS), 1);
        assert!(log.is_empty());
        assert_eq!(log.head(), 4);
        assert_eq!(log.oldest(), None);
    }

    // The fell-behind rule at its exact boundaries, with changes retained and with none.
    #[test]
    fn fell_behind_at_exact_boundaries() {
        let log = ChangeLog::new(options(5, DAY_MS), 1);
        log.append((0..5).map(|i| pending(i, 1, "p")));
        // Sequence 1 still retained: a fresh reader is fine.
        assert_eq!(
            sequences(&log.read(0, None, 100).unwrap()),
            vec![1, 2, 3, 4, 5]
        );
        log.append([pending(5, 1, "p")]); // drops 1; retained 2..=6
        assert_eq!(
            log.read(0, None, 100),
            Err(FellBehind {
                requested_after: 0,
                oldest_available: 2
            })
        );
        assert_eq!(
            sequences(&log.read(1, None, 100).unwrap()),
            vec![2, 3, 4, 5, 6]
        );
        // At or beyond the head: nothing, no error.
        let at_head = log.read(6, None, 100).unwrap();
        assert!(at_head.changes.is_empty());
        assert_eq!((at_head.head, at_head.next_after), (6, 6));
        let beyond = log.read(99, None, 100).unwrap();
        assert_eq!((beyond.head, beyond.next_after), (6, 99));
        // Everything expired: floor is head + 1, so only a reader at the head is fine.
        assert_eq!(log.expire(2 * DAY_MS), 5);
        assert!(log.is_empty());
        assert_eq!(
            log.read(5, None, 100),
            Err(FellBehind {
                requested_after: 5,
                oldest_available: 7
            })
        );
        assert!(log.read(6, None, 100).unwrap().changes.is_empty());
        // The error message tells the reader what happened and what to do.
        let message = log.read(0, None, 1).unwrap_err().to_string();
        assert!(message.contains("fell behind") && message.contains("sequence 7"));
    }

    // A segment filter returns only that segment's changes, and next_after moves past the
    // skipped ones so the reader does not scan them again; limit caps the answer.
    #[test]
    fn segment_filter_and_limit() {
        let log = ChangeLog::new(ChangeLogOptions::default(), 1);
        log.append((1..=10).map(|i| pending(0, (i % 3) as u32, &format!("p{i}"))));
        // Segment 1 holds sequences 1, 4, 7, 10.
        let first = log.read(0, Some(1), 2).unwrap();
        assert_eq!(sequences(&first), vec![1, 4]);
        assert_eq!(first.next_after, 4);
        let second = log.read(first.next_after, Some(1), 10).unwrap();
        assert_eq!(sequences(&second), vec![7, 10]);
        assert_eq!(second.next_after, 10);
        // Segment 2 holds 2, 5, 8; its reader ends at the head, not at 8.
        let other = log.read(0, Some(2), 10).unwrap();
        assert_eq!(sequences(&other), vec![2, 5, 8]);
        assert_eq!((other.next_after, other.head), (10, 10));
        assert!(log.read(0, Some(99), 10).unwrap().changes.is_empty());
        let unfiltered = log.read(3, None, 4).unwrap();
        assert_eq!(sequences(&unfiltered), vec![4, 5, 6, 7]);
        assert_eq!(unfiltered.next_after, 7);
        assert!(log.read(0, None, 0).unwrap().changes.is_empty());
    }

    // A filtered read examines at most MAX_SCAN_PER_READ changes and reports how far it got.
    #[test]
    fn filtered_read_is_bounded() {
        let log = ChangeLog::new(ChangeLogOptions::default(), 1);
        let total = MAX_SCAN_PER_READ as u64 + 10;
        log.append((0..total).map(|_| pending(0, 1, "p")));
        log.append([pending(0, 2, "q")]);
        let first = log.read(0, Some(2), 10).unwrap();
        assert!(first.changes.is_empty());
        assert_eq!(first.next_after, MAX_SCAN_PER_READ as u64);
        let second = log.read(first.next_after, Some(2), 10).unwrap();
        assert_eq!(sequences(&second), vec![total + 1]);
        assert_eq!(second.next_after, second.head);
    }

    // After a restart with first_sequence = persisted head + 1, numbering continues, and a
    // reader from before the restart is told the older changes are gone.
    #[test]
    fn resume_after_restart() {
        let before = ChangeLog::new(ChangeLogOptions::default(), 1);
        before.append((0..7).map(|i| pending(i, 1, "p")));
        let persisted_head = before.head();
        let after = ChangeLog::new(ChangeLogOptions::default(), persisted_head + 1);
        assert_eq!(after.head(), 7);
        assert_eq!(*after.subscribe().borrow(), 7);
        assert!(after.read(7, None, 10).unwrap().changes.is_empty());
        assert_eq!(after.read(3, None, 10).unwrap_err().oldest_available, 8);
        assert_eq!(after.append([pending(0, 1, "p")]), Some(8..=8));
        assert_eq!(sequences(&after.read(7, None, 10).unwrap()), vec![8]);
        // first_sequence 0 means "start at 1".
        let zero = ChangeLog::new(ChangeLogOptions::default(), 0);
        assert_eq!(zero.append([pending(0, 1, "p")]), Some(1..=1));
    }

    // The watch receiver sees the new head after an append from another thread.
    #[tokio::test]
    async fn watch_wakes_on_append() {
        let log = Arc::new(ChangeLog::new(ChangeLogOptions::default(), 1));
        let mut receiver = log.subscribe();
        assert_eq!(*receiver.borrow_and_update(), 0);
        let writer = Arc::clone(&log);
        let handle = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            writer.append([pending(0, 1, "a"), pending(0, 1, "b")]);
        });
        tokio::time::timeout(Duration::from_secs(5), receiver.changed())
            .await
            .expect("watch woke within 5 s")
            .expect("sender alive");
        assert_eq!(*receiver.borrow(), 2);
        handle.join().unwrap();
        assert!(log.wait_async(1, Duration::from_millis(1)).await);
        assert!(!log.wait_async(2, Duration::from_millis(20)).await);
    }

    // wait_for wakes a blocked thread on append and times out when nothing comes.
    #[test]
    fn blocking_wait_wakes_and_times_out() {
        let log = Arc::new(ChangeLog::new(ChangeLogOptions::default(), 1));
        let started = Instant::now();
        assert!(!log.wait_for(0, Duration::from_millis(30)));
        assert!(started.elapsed() >= Duration::from_millis(30));
        let writer = Arc::clone(&log);
        let handle = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            writer.append([pending(0, 1, "a")]);
        });
        assert!(log.wait_for(0, Duration::from_secs(10)));
        assert_eq!(log.head(), 1);
        handle.join().unwrap();
        // Already past: returns at once.
        assert!(log.wait_for(0, Duration::ZERO));
    }

    // The feed's JSON shape: snake_case kind and cause, profile as a plain string.
    #[test]
    fn change_serializes_to_feed_json() {
        let log = ChangeLog::new(ChangeLogOptions::default(), 41);
        log.append([PendingChange {
            time_ms: 1_700_000_000_000,
            segment_id: 3,
            segment_version: 2,
            profile: Arc::from("anon:abc"),
            kind: ChangeKind::Exited,
            cause: Cause::RuleEdit,
        }]);
        let change = log.read(40, None, 1).unwrap().changes.remove(0);
        let json = serde_json::to_value(&change).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"sequence": 41, "time_ms": 1_700_000_000_000_i64,
                "segment_id": 3, "segment_version": 2, "profile": "anon:abc",
                "kind": "exited", "cause": "rule_edit"})
        );
        let back: Change = serde_json::from_value(json).unwrap();
        assert_eq!(back, change);
    }
}
