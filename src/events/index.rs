//! Per event name indexes that let behavioral conditions narrow the population before
//! reading any profile's events (see `segment::behavior::matching`):
//!
//! - **days**: per UTC day, the profiles that had a *stored* event of the name on that
//!   day. The union over a window's days is a superset of the profiles with an event in
//!   the window (events dropped by the per-profile bound, deleted or merged away stay
//!   in their day until the day leaves retention), so a profile outside it certainly
//!   has none there;
//! - **levels**: profiles whose lifetime count of the name reached 2, 3, 4, 8, 16, 32.
//!   A windowed count never exceeds the lifetime count, so `at least N times` (and
//!   `exactly N`, N ≥ 1) can only match inside the level ≤ N.
//!
//! Both are supersets by construction; candidates are always re-checked exactly.
//! Maintained by `EventStore` on insert, merge (attach), deletion and expiry, and
//! rebuilt from stored events and lifetimes when a snapshot is loaded.

use roaring::{MultiOps, RoaringBitmap};
use std::collections::BTreeMap;

pub const DAY_MS: i64 = 86_400_000;
/// Lifetime-count thresholds with a bitmap (count ≥ 1 is `EventStore::profiles_with`).
pub const LEVELS: [u64; 6] = [2, 3, 4, 8, 16, 32];

#[derive(Clone, Debug, Default)]
pub(crate) struct NameIndex {
    days: BTreeMap<i64, RoaringBitmap>,
    levels: [RoaringBitmap; LEVELS.len()],
}

fn day_of(time_ms: i64) -> i64 {
    time_ms.div_euclid(DAY_MS)
}

impl NameIndex {
    /// A stored event of this name for `local` at `time_ms`.
    pub(crate) fn stored(&mut self, local: u32, time_ms: i64) {
        self.days.entry(day_of(time_ms)).or_default().insert(local);
    }

    /// `local`'s lifetime count of this name went from `before` to `after`.
    pub(crate) fn counted(&mut self, local: u32, before: u64, after: u64) {
        for (level, bitmap) in LEVELS.iter().zip(&mut self.levels) {
            if before < *level && *level <= after {
                bitmap.insert(local);
            }
        }
    }

    /// `local` no longer holds this name (deleted, or merged into another profile).
    pub(crate) fn remove(&mut self, local: u32) {
        for bitmap in &mut self.levels {
            bitmap.remove(local);
        }
        for bitmap in self.days.values_mut() {
            bitmap.remove(local);
        }
        self.days.retain(|_, bitmap| !bitmap.is_empty());
    }

    /// Drops whole days before the one holding `cutoff_ms`: no stored event is older.
    pub(crate) fn expire(&mut self, cutoff_ms: i64) {
        let keep = self.days.split_off(&day_of(cutoff_ms));
        self.days = keep;
    }

    /// A superset of the profiles with a stored event in `[from_ms, to_ms]`.
    pub(crate) fn active_between(&self, from_ms: i64, to_ms: i64) -> RoaringBitmap {
        if from_ms > to_ms {
            return RoaringBitmap::new();
        }
        self.days
            .range(day_of(from_ms)..=day_of(to_ms))
            .map(|(_, bitmap)| bitmap)
            .union()
    }

    /// The narrowest kept superset of "lifetime count ≥ `count`", when one is narrower
    /// than "did it at all".
    pub(crate) fn at_least(&self, count: u64) -> Option<&RoaringBitmap> {
        LEVELS
            .iter()
            .zip(&self.levels)
            .rev()
            .find(|(level, _)| **level <= count)
            .map(|(_, bitmap)| bitmap)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.days
            .values()
            .chain(&self.levels)
            .map(RoaringBitmap::serialized_size)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_levels_are_supersets_until_expiry() {
        let mut index = NameIndex::default();
        index.stored(1, 5 * DAY_MS + 10);
        index.stored(2, 7 * DAY_MS);
        index.stored(3, -DAY_MS + 1); // before the epoch: floor division
        assert_eq!(
            index.active_between(5 * DAY_MS + 20, 6 * DAY_MS),
            [1].into_iter().collect()
        );
        assert_eq!(
            index.active_between(-1, 7 * DAY_MS),
            [1, 2, 3].into_iter().collect()
        );
        assert!(index.active_between(8 * DAY_MS, 7 * DAY_MS).is_empty());
        index.expire(6 * DAY_MS + 5);
        assert_eq!(
            index.active_between(i64::MIN, i64::MAX),
            [2].into_iter().collect()
        );
        index.counted(4, 0, 3);
        index.counted(5, 0, 3);
        index.counted(5, 3, 9);
        assert!(index.at_least(1).is_none());
        assert_eq!(index.at_least(3).unwrap(), &[4, 5].into_iter().collect());
        assert_eq!(index.at_least(7).unwrap(), &[5].into_iter().collect());
        assert_eq!(index.at_least(100).unwrap(), &RoaringBitmap::new());
        index.remove(5);
        index.remove(2);
        assert_eq!(index.at_least(3).unwrap(), &[4].into_iter().collect());
        assert!(index.active_between(i64::MIN, i64::MAX).is_empty());
    }
}
