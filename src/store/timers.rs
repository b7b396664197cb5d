//! Per-shard timers for time-driven membership changes.
//!
//! For every (profile, time-dependent segment) pair whose membership can flip only
//! because time passes, the shard keeps the next instant at which it can flip (a
//! window edge: a timestamp leaving `within last 30 days`, an event sliding out of
//! `in last 14 days`, ...). A min-heap orders those instants; a tick pops only the due
//! entries, so its cost is proportional to the profiles actually due, never a rescan.
//! Entries are replaced, not updated in place: the map holds the current due time per
//! pair and a popped heap entry whose time is not the current one is stale and skipped.

use crate::ids::{LocalId, SegmentId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

#[derive(Debug, Default)]
pub struct TimerQueue {
    pub(crate) heap: BinaryHeap<Reverse<(i64, u32, u32)>>,
    pub(crate) current: HashMap<(u32, u32), i64>,
}

impl TimerQueue {
    /// Sets (or clears, with `None`) the next due time of a (profile, segment) pair.
    pub fn schedule(&mut self, local: LocalId, segment: SegmentId, due_ms: Option<i64>) {
        let key = (local.0, segment.0);
        match due_ms {
            Some(due) => {
                if self.current.insert(key, due) != Some(due) {
                    self.heap.push(Reverse((due, local.0, segment.0)));
                }
            }
            None => {
                self.current.remove(&key);
            }
        }
        // Stale heap entries are dropped lazily; compact when they dominate.
        if self.heap.len() > 64 && self.heap.len() > self.current.len() * 4 {
            self.heap = self
                .current
                .iter()
                .map(|((local, segment), due)| Reverse((*due, *local, *segment)))
                .collect();
        }
    }

    /// Removes every timer of a profile (deleted or merged away).
    pub fn clear_profile(&mut self, local: LocalId) {
        self.current.retain(|(profile, _), _| *profile != local.0);
    }

    /// Removes every timer of a segment (deleted, or about to be recomputed).
    pub fn clear_segment(&mut self, segment: SegmentId) {
        self.current.retain(|(_, owner), _| *owner != segment.0);
    }

    /// Pops every pair due at or before `now_ms` (each once; stale entries skipped).
    pub fn pop_due(&mut self, now_ms: i64) -> Vec<(LocalId, SegmentId)> {
        let mut due = Vec::new();
        while let Some(Reverse((time, local, segment))) = self.heap.peek().copied() {
            if time > now_ms {
                break;
            }
            self.heap.pop();
            if self.current.get(&(local, segment)) == Some(&time) {
                self.current.remove(&(local, segment));
                due.push((LocalId(local), SegmentId(segment)));
            }
        }
        due
    }

    /// Pending timers.
    pub fn len(&self) -> usize {
        self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    /// The earliest pending due time.
    pub fn next_due(&self) -> Option<i64> {
        self.current.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    //! Due entries come out once, in time order; replaced and cleared ones never do.
    use super::*;

    #[test]
    fn pops_only_current_due_entries() {
        let mut timers = TimerQueue::default();
        timers.schedule(LocalId(1), SegmentId(1), Some(100));
        timers.schedule(LocalId(2), SegmentId(1), Some(50));
        timers.schedule(LocalId(1), SegmentId(1), Some(300)); // replaces 100
        timers.schedule(LocalId(3), SegmentId(2), Some(10));
        timers.clear_segment(SegmentId(2));
        assert_eq!(timers.pop_due(99), vec![(LocalId(2), SegmentId(1))]);
        assert!(timers.pop_due(299).is_empty());
        assert_eq!(timers.pop_due(300), vec![(LocalId(1), SegmentId(1))]);
        assert!(timers.is_empty());
    }
}
