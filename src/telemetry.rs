//! Process-wide operator figures that live below the HTTP layer: fsync latency, the last
//! snapshot, and what recovery did at start. `GET /metrics` renders them
//! (src/http/metrics.rs). Updating them costs a few relaxed atomic operations, only on
//! paths that already do I/O (an fsync, a snapshot), never on lookups or ingest.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds (microseconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000, 10_000_000,
];

/// A fixed-bucket latency histogram with atomic counters.
#[derive(Debug)]
pub struct Histogram {
    pub(crate) buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    pub(crate) count: AtomicU64,
    pub(crate) sum_us: AtomicU64,
}

impl Histogram {
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS_US.len()],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe_us(&self, value_us: u64) {
        if let Some(index) = LATENCY_BUCKETS_US
            .iter()
            .position(|bound| value_us <= *bound)
        {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(value_us, Ordering::Relaxed);
    }

    pub fn observe(&self, elapsed: Duration) {
        self.observe_us(elapsed.as_micros().min(u64::MAX as u128) as u64);
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// Latency of WAL `fdatasync` calls.
pub static WAL_FSYNC: Histogram = Histogram::new();

/// Runs one fsync and records its latency (failures too: a slow failing disk shows).
pub fn timed_fsync<T>(sync: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = sync();
    WAL_FSYNC.observe(started.elapsed());
    result
}

/// The last snapshot written successfully.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SnapshotFigures {
    pub finished_unix_ms: i64,
    pub duration_s: f64,
    pub pause_s: f64,
    pub bytes: u64,
}

static LAST_SNAPSHOT: Mutex<Option<SnapshotFigures>> = Mutex::new(None);
pub static SNAPSHOTS_WRITTEN: AtomicU64 = AtomicU64::new(0);
pub static SNAPSHOTS_FAILED: AtomicU64 = AtomicU64::new(0);

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

pub fn record_snapshot(total: Duration, pause: Duration, bytes: u64) {
    *LAST_SNAPSHOT.lock() = Some(SnapshotFigures {
        finished_unix_ms: unix_ms_now(),
        duration_s: total.as_secs_f64(),
        pause_s: pause.as_secs_f64(),
        bytes,
    });
    SNAPSHOTS_WRITTEN.fetch_add(1, Ordering::Relaxed);
}

pub fn record_snapshot_failure() {
    SNAPSHOTS_FAILED.fetch_add(1, Ordering::Relaxed);
}

pub fn last_snapshot() -> Option<SnapshotFigures> {
    *LAST_SNAPSHOT.lock()
}

/// What recovery did when the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RecoveryFigures {
    pub snapshot_bytes: u64,
    pub snapshot_load_s: f64,
    pub replayed_records: u64,
    pub replayed_messages: u64,
    pub replay_s: f64,
    pub replay_errors: u64,
}

static RECOVERY: Mutex<Option<RecoveryFigures>> = Mutex::new(None);

pub fn record_recovery(figures: RecoveryFigures) {
    *RECOVERY.lock() = Some(figures);
}

pub fn recovery() -> Option<RecoveryFigures> {
    *RECOVERY.lock()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_into_the_first_bucket_that_holds_the_value() {
        let histogram = Histogram::new();
        histogram.observe_us(10);
        histogram.observe_us(11);
        histogram.observe(Duration::from_secs(60));
        let counts: Vec<u64> = histogram
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts[0], 1);
        assert_eq!(counts[1], 1);
        assert_eq!(counts.iter().sum::<u64>(), 2, "60 s is above every bound");
        assert_eq!(histogram.count.load(Ordering::Relaxed), 3);
    }
}
