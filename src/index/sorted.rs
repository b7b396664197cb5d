//! Sorted permutation with prefix bitmaps: a read-optimized range index.
//!
//! The ids of one shard's column sorted by value, plus a bitmap of "ids at positions
//! before k × [`PREFIX_STEP`]" for every k. The ids whose value lies in a range are the
//! positions `[lo, hi)` found by two binary searches, and "ids before position p" is
//! the nearest prefix bitmap plus or minus at most `PREFIX_STEP / 2` single ids, so a
//! range costs one bitmap intersection, one difference and ~1,000 edits at most
//! whatever its width (BENCHMARKS.md "Range indexes": 15–200× the bit-sliced index).
//!
//! The structure is immutable: a value change cannot be absorbed without moving ids
//! along the permutation. Columns keep it as a copy built off the write path and check
//! the ids changed since the build exactly (see `store::column::range`).

use roaring::RoaringBitmap;
use std::cmp::Ordering;

/// Positions between two prefix bitmaps (memory ≈ n²/STEP bits per shard, bounded by
/// roaring's dense containers to ~4 bytes per profile at 64Ki ids per shard).
pub const PREFIX_STEP: usize = 2_048;

/// Ranges narrower than this are collected from the permutation directly.
const NARROW_RANGE: usize = PREFIX_STEP;

#[derive(Debug)]
pub struct SortedIndex<K> {
    /// Ascending.
    keys: Vec<K>,
    /// `ids[i]` holds `keys[i]`.
    ids: Vec<u32>,
    /// `prefixes[k]`: ids at positions `< k × PREFIX_STEP`, for every `k × STEP < len`.
    prefixes: Vec<RoaringBitmap>,
    /// Every indexed id.
    all: RoaringBitmap,
}

/// The ids at positions `< p`: `base ∪ add − remove` (`add` is disjoint from `base`,
/// `remove` a subset of it).
struct Before<'a> {
    base: &'a RoaringBitmap,
    add: &'a [u32],
    remove: &'a [u32],
}

impl<K: Copy + PartialOrd> SortedIndex<K> {
    /// Builds from unsorted `(key, id)` pairs; keys must be totally ordered (no NaN).
    pub fn build(mut pairs: Vec<(K, u32)>) -> SortedIndex<K> {
        pairs.sort_unstable_by(|a, b| {
            a.0.partial_cmp(&b.0)
                .unwrap_or(Ordering::Equal)
                .then(a.1.cmp(&b.1))
        });
        let keys: Vec<K> = pairs.iter().map(|pair| pair.0).collect();
        let ids: Vec<u32> = pairs.iter().map(|pair| pair.1).collect();
        drop(pairs);
        let mut prefixes = Vec::with_capacity(ids.len() / PREFIX_STEP + 1);
        let mut running = RoaringBitmap::new();
        let mut chunk_ids = Vec::with_capacity(PREFIX_STEP);
        for chunk in ids.chunks(PREFIX_STEP) {
            prefixes.push(running.clone());
            chunk_ids.clear();
            chunk_ids.extend_from_slice(chunk);
            chunk_ids.sort_unstable();
            if let Ok(more) = RoaringBitmap::from_sorted_iter(chunk_ids.iter().copied()) {
                running |= more;
            }
        }
        SortedIndex {
            keys,
            ids,
            prefixes,
            all: running,
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The first position whose key does not satisfy `below` (which must hold for a
    /// prefix of the keys and not after it).
    pub fn position(&self, below: impl Fn(K) -> bool) -> usize {
        self.keys.partition_point(|key| below(*key))
    }

    fn before(&self, position: usize) -> Before<'_> {
        let len = self.ids.len();
        if position >= len {
            return Before {
                base: &self.all,
                add: &[],
                remove: &[],
            };
        }
        let step = position / PREFIX_STEP;
        let lower = step * PREFIX_STEP;
        let upper = (lower + PREFIX_STEP).min(len);
        if position - lower <= upper - position {
            Before {
                base: &self.prefixes[step],
                add: &self.ids[lower..position],
                remove: &[],
            }
        } else {
            let base = if upper == len {
                &self.all
            } else {
                &self.prefixes[step + 1]
            };
            Before {
                base,
                add: &[],
                remove: &self.ids[position..upper],
            }
        }
    }

    /// The ids of `universe` at positions `[low, high)`.
    pub fn ids_between(&self, low: usize, high: usize, universe: &RoaringBitmap) -> RoaringBitmap {
        let high = high.min(self.ids.len());
        if low >= high {
            return RoaringBitmap::new();
        }
        if high - low <= NARROW_RANGE {
            let mut ids: Vec<u32> = self.ids[low..high]
                .iter()
                .copied()
                .filter(|id| universe.contains(*id))
                .collect();
            ids.sort_unstable();
            return RoaringBitmap::from_sorted_iter(ids).unwrap_or_default();
        }
        let upper = self.before(high);
        let mut result = universe & upper.base;
        for id in upper.add {
            if universe.contains(*id) {
                result.insert(*id);
            }
        }
        for id in upper.remove {
            result.remove(*id);
        }
        if low > 0 {
            let lower = self.before(low);
            // Ids of `lower.base` that are not before `low`: they stay in the result.
            let kept: Vec<u32> = lower
                .remove
                .iter()
                .copied()
                .filter(|id| result.contains(*id))
                .collect();
            result -= lower.base;
            for id in lower.add {
                result.remove(*id);
            }
            for id in kept {
                result.insert(id);
            }
        }
        result
    }

    /// How many ids of `universe` lie at positions `[low, high)`, without building them.
    pub fn count_between(&self, low: usize, high: usize, universe: &RoaringBitmap) -> u64 {
        let high = high.min(self.ids.len());
        if low >= high {
            return 0;
        }
        if high - low <= NARROW_RANGE {
            return self.ids[low..high]
                .iter()
                .filter(|id| universe.contains(**id))
                .count() as u64;
        }
        let count_before = |position: usize| -> u64 {
            if position == 0 {
                return 0;
            }
            let before = self.before(position);
            let inside = |ids: &[u32]| ids.iter().filter(|id| universe.contains(**id)).count();
            universe.intersection_len(before.base) + inside(before.add) as u64
                - inside(before.remove) as u64
        };
        count_before(high) - count_before(low)
    }

    /// Approximate heap bytes.
    pub fn memory_bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<K>()
            + self.ids.capacity() * 4
            + self
                .prefixes
                .iter()
                .map(RoaringBitmap::serialized_size)
                .sum::<usize>()
            + self.all.serialized_size()
    }
}

#[cfg(test)]
mod tests {
    //! Positions, id sets and counts against a direct filter of the (key, id) pairs,
    //! on sizes around the prefix step and universes of every density.
    use super::*;

    #[test]
    fn ranges_and_counts_match_a_direct_filter() {
        for len in [
            0usize,
            1,
            5,
            PREFIX_STEP - 1,
            PREFIX_STEP,
            3 * PREFIX_STEP + 17,
        ] {
            // Keys with duplicates, ids shuffled and sparse.
            let pairs: Vec<(i64, u32)> = (0..len as u64)
                .map(|i| {
                    (
                        ((i * 7_919) % 997) as i64 - 400,
                        (i * 3 + (i % 5)) as u32 * 2,
                    )
                })
                .collect();
            let index = SortedIndex::build(pairs.clone());
            let dense: RoaringBitmap = pairs.iter().map(|p| p.1).collect();
            let sparse: RoaringBitmap = pairs.iter().map(|p| p.1).step_by(7).collect();
            for universe in [&dense, &sparse] {
                for (low_key, high_key) in
                    [(-500, 600), (-400, -399), (0, 1), (100, 350), (596, 700)]
                {
                    let low = index.position(|key| key < low_key);
                    let high = index.position(|key| key < high_key);
                    let expected: RoaringBitmap = pairs
                        .iter()
                        .filter(|(key, id)| {
                            *key >= low_key && *key < high_key && universe.contains(*id)
                        })
                        .map(|(_, id)| *id)
                        .collect();
                    assert_eq!(
                        index.ids_between(low, high, universe),
                        expected,
                        "{len} {low_key}..{high_key}"
                    );
                    assert_eq!(index.count_between(low, high, universe), expected.len());
                }
            }
        }
    }
}
