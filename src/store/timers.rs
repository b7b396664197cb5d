//! Per-shard timers for time-driven membership changes.
//!
//! For every (profile, time-dependent segment) pair whose membership can flip only
//! because time passes, the shard keeps the next instant at which it can flip (a
//! window edge: a timestamp leaving `within last 30 days`, an event sliding out of
//! `in last 14 days`, ...). An ordered set keyed by (due time, profile, segment) holds
//! exactly one entry per pair; each profile's own short list says which due time its
//! pairs have, so replacing or clearing a pair is two O(log n) set operations and
//! clearing a profile costs only its own timers. `pop_due` takes entries from the front
//! of the set, so a tick's cost is proportional to the pairs actually due — never a
//! rescan, and never a rebuild pause on the ingest path.

use crate::ids::{LocalId, SegmentId};
use std::collections::BTreeSet;

/// One profile's pending (segment id, due time) pairs.
type ProfileTimers = Vec<(u32, i64)>;

#[derive(Debug, Default)]
pub struct TimerQueue {
    /// (due time, local id, segment id), one entry per pending pair.
    queue: BTreeSet<(i64, u32, u32)>,
    /// Per local id: its pending (segment, due time) pairs; boxed so profiles without
    /// timers cost one pointer.
    by_profile: Vec<Option<Box<ProfileTimers>>>,
}

impl TimerQueue {
    /// Sets (or clears, with `None`) the next due time of a (profile, segment) pair.
    pub fn schedule(&mut self, local: LocalId, segment: SegmentId, due_ms: Option<i64>) {
        let index = local.0 as usize;
        if due_ms.is_none() && self.by_profile.get(index).is_none_or(Option::is_none) {
            return;
        }
        if self.by_profile.len() <= index {
            self.by_profile.resize_with(index + 1, || None);
        }
        let pairs = self.by_profile[index].get_or_insert_with(Default::default);
        let existing = pairs.iter().position(|(owner, _)| *owner == segment.0);
        match (existing, due_ms) {
            (Some(position), Some(due)) => {
                let old = pairs[position].1;
                if old != due {
                    pairs[position].1 = due;
                    self.queue.remove(&(old, local.0, segment.0));
                    self.queue.insert((due, local.0, segment.0));
                }
            }
            (Some(position), None) => {
                let (_, old) = pairs.swap_remove(position);
                self.queue.remove(&(old, local.0, segment.0));
                if pairs.is_empty() {
                    self.by_profile[index] = None;
                }
            }
            (None, Some(due)) => {
                pairs.push((segment.0, due));
                self.queue.insert((due, local.0, segment.0));
            }
            (None, None) => {
                if pairs.is_empty() {
                    self.by_profile[index] = None;
                }
            }
        }
    }

    /// Removes every timer of a profile (deleted or merged away).
    pub fn clear_profile(&mut self, local: LocalId) {
        if let Some(pairs) = self
            .by_profile
            .get_mut(local.0 as usize)
            .and_then(Option::take)
        {
            for (segment, due) in pairs.iter() {
                self.queue.remove(&(*due, local.0, *segment));
            }
        }
    }

    /// Removes every timer of a segment (deleted, or about to be recomputed). Linear in
    /// the shard's timers; only segment definition changes call it.
    pub fn clear_segment(&mut self, segment: SegmentId) {
        self.queue.retain(|(_, _, owner)| *owner != segment.0);
        for slot in &mut self.by_profile {
            if let Some(pairs) = slot {
                pairs.retain(|(owner, _)| *owner != segment.0);
                if pairs.is_empty() {
                    *slot = None;
                }
            }
        }
    }

    /// Pops every pair due at or before `now_ms`, in time order.
    pub fn pop_due(&mut self, now_ms: i64) -> Vec<(LocalId, SegmentId)> {
        let mut due = Vec::new();
        while let Some(&(time, local, segment)) = self.queue.first() {
            if time > now_ms {
                break;
            }
            self.queue.pop_first();
            if let Some(slot) = self.by_profile.get_mut(local as usize) {
                if let Some(pairs) = slot {
                    pairs.retain(|(owner, _)| *owner != segment);
                    if pairs.is_empty() {
                        *slot = None;
                    }
                }
            }
            due.push((LocalId(local), SegmentId(segment)));
        }
        due
    }

    /// Pending timers.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The earliest pending due time.
    pub fn next_due(&self) -> Option<i64> {
        self.queue.first().map(|(due, _, _)| *due)
    }

    /// Every pending (local id, segment id, due time), for snapshots.
    pub fn entries(&self) -> impl Iterator<Item = (u32, u32, i64)> + '_ {
        self.queue
            .iter()
            .map(|(due, local, segment)| (*local, *segment, *due))
    }

    pub fn memory_bytes(&self) -> usize {
        // BTreeSet nodes hold up to 11 keys of 16 bytes plus edges: ~24 B per entry.
        self.queue.len() * 24
            + self.by_profile.capacity() * std::mem::size_of::<Option<Box<ProfileTimers>>>()
            + self
                .by_profile
                .iter()
                .flatten()
                .map(|pairs| 24 + pairs.capacity() * 16)
                .sum::<usize>()
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
        timers.schedule(LocalId(4), SegmentId(2), Some(20));
        timers.schedule(LocalId(4), SegmentId(3), Some(20));
        timers.clear_segment(SegmentId(2));
        timers.clear_profile(LocalId(4));
        assert_eq!(timers.next_due(), Some(50));
        assert_eq!(timers.pop_due(99), vec![(LocalId(2), SegmentId(1))]);
        assert!(timers.pop_due(299).is_empty());
        timers.schedule(LocalId(5), SegmentId(1), Some(200));
        timers.schedule(LocalId(5), SegmentId(1), None);
        assert_eq!(timers.pop_due(300), vec![(LocalId(1), SegmentId(1))]);
        assert!(timers.is_empty());
        assert!(timers.by_profile.iter().all(Option::is_none));
    }
}
