//! Injectable time, so tests can move the clock.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64)
    }
}

/// A clock that moves only when told.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn new(now_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now_ms: AtomicI64::new(now_ms),
        })
    }

    pub fn set(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, by_ms: i64) {
        self.now_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

thread_local! {
    /// The time a [`crate::persist::ReplayClock`] reports on this thread while a WAL
    /// record is applied (live and in replay).
    static PINNED_MS: Cell<Option<i64>> = const { Cell::new(None) };
}

/// Pins this thread's time (as seen through a replay clock) until the guard drops.
/// Apply lanes re-pin the applying thread's time on their own threads.
pub fn pin_thread(at_ms: i64) -> PinGuard {
    PinGuard {
        previous: PINNED_MS.with(|pinned| pinned.replace(Some(at_ms))),
    }
}

/// The time pinned on this thread, if any.
pub fn pinned_ms() -> Option<i64> {
    PINNED_MS.with(Cell::get)
}

/// Restores the thread's previous pin (usually none) when dropped, so pins nest.
#[derive(Debug)]
pub struct PinGuard {
    previous: Option<i64>,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        PINNED_MS.with(|pinned| pinned.set(self.previous));
    }
}
