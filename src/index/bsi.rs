//! Bit-sliced index (FeatureBase style) for range queries over integer keys.
//!
//! Each value is stored as a sign bit plus its magnitude, one bitmap per magnitude bit
//! ("slice"). A comparison walks the slices from the most significant bit down, keeping
//! the set of ids whose prefix still equals the query's prefix (`equal`) and moving ids
//! out of it into `less`/`greater` as soon as a bit differs (O'Neil & Quass). Every
//! query starts from a caller-given universe, so when earlier `and` conditions already
//! narrowed the candidates, each slice operation touches only those candidates.
//!
//! Cost: O(depth) bitmap operations, where depth is the bit length of the largest
//! magnitude stored. Float and timestamp columns store a coarse monotone *bucket* of the
//! value as key (floor for floats, minute for timestamps) and refine the single boundary
//! bucket against exact values (see `store::column`).

use roaring::RoaringBitmap;

/// A range comparison over keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyComparison {
    Less,
    LessOrEqual,
    Equal,
    GreaterOrEqual,
    Greater,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct BitSlicedIndex {
    pub(crate) existence: RoaringBitmap,
    pub(crate) negative: RoaringBitmap,
    /// Magnitude bits, least significant first.
    pub(crate) slices: Vec<RoaringBitmap>,
}

/// Adds strictly increasing `ids` to `bitmap`: appended in place when they all lie above
/// its maximum (the bulk-import case), merged otherwise.
pub(crate) fn add_sorted(bitmap: &mut RoaringBitmap, ids: &[u32]) {
    let Some(&first) = ids.first() else {
        return;
    };
    if bitmap.max().is_none_or(|max| max < first) && bitmap.append(ids.iter().copied()).is_ok() {
        return;
    }
    if let Ok(more) = RoaringBitmap::from_sorted_iter(ids.iter().copied()) {
        *bitmap |= more;
    } else {
        bitmap.extend(ids.iter().copied());
    }
}

/// The three-way split of a candidate set against one magnitude.
struct Split {
    less: RoaringBitmap,
    equal: RoaringBitmap,
    greater: RoaringBitmap,
}

impl BitSlicedIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn existence(&self) -> &RoaringBitmap {
        &self.existence
    }

    pub fn depth(&self) -> usize {
        self.slices.len()
    }

    /// Stores `key` for `id`, replacing `previous` (which the caller knows from its
    /// value column), touching only the bits that differ.
    pub fn set(&mut self, id: u32, previous: Option<i64>, key: i64) {
        let old = previous.map(|value| (value < 0, value.unsigned_abs()));
        let (new_negative, new_magnitude) = (key < 0, key.unsigned_abs());
        let needed_depth = 64 - new_magnitude.leading_zeros() as usize;
        while self.slices.len() < needed_depth {
            self.slices.push(RoaringBitmap::new());
        }
        self.existence.insert(id);
        let (old_negative, old_magnitude) = old.unwrap_or((false, 0));
        if old_negative != new_negative || old.is_none() {
            if new_negative {
                self.negative.insert(id);
            } else {
                self.negative.remove(id);
            }
        }
        let mut differing = old_magnitude ^ new_magnitude;
        while differing != 0 {
            let bit = differing.trailing_zeros() as usize;
            differing &= differing - 1;
            if new_magnitude & (1 << bit) != 0 {
                self.slices[bit].insert(id);
            } else if bit < self.slices.len() {
                self.slices[bit].remove(id);
            }
        }
    }

    /// Removes `id`, whose stored key is `previous`.
    pub fn remove(&mut self, id: u32, previous: i64) {
        self.existence.remove(id);
        self.negative.remove(id);
        let mut bits = previous.unsigned_abs();
        while bits != 0 {
            let bit = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if bit < self.slices.len() {
                self.slices[bit].remove(id);
            }
        }
    }

    /// Reads the key stored for `id` from the slices (used by tests and snapshot checks;
    /// columns keep exact values for per-profile reads).
    pub fn get(&self, id: u32) -> Option<i64> {
        if !self.existence.contains(id) {
            return None;
        }
        let mut magnitude: u64 = 0;
        for (bit, slice) in self.slices.iter().enumerate() {
            if slice.contains(id) {
                magnitude |= 1 << bit;
            }
        }
        Some(if self.negative.contains(id) {
            (magnitude as i64).wrapping_neg()
        } else {
            magnitude as i64
        })
    }

    /// Ids in `universe` whose key compares to `key` as asked.
    pub fn compare(
        &self,
        comparison: KeyComparison,
        key: i64,
        universe: &RoaringBitmap,
    ) -> RoaringBitmap {
        let candidates = universe & &self.existence;
        if candidates.is_empty() {
            return candidates;
        }
        let negatives = &candidates & &self.negative;
        let positives = candidates - &negatives;
        let magnitude = key.unsigned_abs();
        if key >= 0 {
            let split = self.split(positives, magnitude, comparison);
            match comparison {
                KeyComparison::Less => negatives | split.less,
                KeyComparison::LessOrEqual => negatives | split.less | split.equal,
                KeyComparison::Equal => split.equal,
                KeyComparison::GreaterOrEqual => split.greater | split.equal,
                KeyComparison::Greater => split.greater,
            }
        } else {
            // For negative values a larger magnitude means a smaller value.
            let split = self.split(negatives, magnitude, comparison);
            match comparison {
                KeyComparison::Less => split.greater,
                KeyComparison::LessOrEqual => split.greater | split.equal,
                KeyComparison::Equal => split.equal,
                KeyComparison::GreaterOrEqual => positives | split.less | split.equal,
                KeyComparison::Greater => positives | split.less,
            }
        }
    }

    /// Ids in `universe` with `low <= key <= high`.
    pub fn between(&self, low: i64, high: i64, universe: &RoaringBitmap) -> RoaringBitmap {
        if low > high {
            return RoaringBitmap::new();
        }
        let at_least = self.compare(KeyComparison::GreaterOrEqual, low, universe);
        self.compare(KeyComparison::LessOrEqual, high, &at_least)
    }

    /// Splits `candidates` by magnitude against `magnitude`. Only the parts the
    /// comparison can use are accumulated.
    fn split(&self, candidates: RoaringBitmap, magnitude: u64, comparison: KeyComparison) -> Split {
        let want_less = comparison != KeyComparison::Equal;
        let want_greater = comparison != KeyComparison::Equal;
        let mut less = RoaringBitmap::new();
        let mut greater = RoaringBitmap::new();
        let mut equal = candidates;
        let depth = self.slices.len();
        if depth < 64 && (magnitude >> depth) != 0 {
            // The query has a bit above every stored magnitude: all stored are smaller.
            return Split {
                less: equal,
                equal: RoaringBitmap::new(),
                greater,
            };
        }
        for bit in (0..depth).rev() {
            if equal.is_empty() {
                break;
            }
            let slice = &self.slices[bit];
            if magnitude & (1 << bit) != 0 {
                if want_less {
                    less |= &equal - slice;
                }
                equal &= slice;
            } else {
                if want_greater {
                    greater |= &equal & slice;
                }
                equal -= slice;
            }
        }
        Split {
            less,
            equal,
            greater,
        }
    }

    /// Stores keys for ids that hold none yet, in one pass per bitmap (bulk import):
    /// `entries` are sorted by id, strictly increasing.
    pub fn extend_fresh(&mut self, entries: &[(u32, i64)]) {
        let mut negative = Vec::new();
        let mut slices: Vec<Vec<u32>> = Vec::new();
        for &(id, key) in entries {
            if key < 0 {
                negative.push(id);
            }
            let mut bits = key.unsigned_abs();
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if slices.len() <= bit {
                    slices.resize_with(bit + 1, Vec::new);
                }
                slices[bit].push(id);
            }
        }
        while self.slices.len() < slices.len() {
            self.slices.push(RoaringBitmap::new());
        }
        let ids: Vec<u32> = entries.iter().map(|(id, _)| *id).collect();
        add_sorted(&mut self.existence, &ids);
        add_sorted(&mut self.negative, &negative);
        for (slice, ids) in self.slices.iter_mut().zip(&slices) {
            add_sorted(slice, ids);
        }
    }

    /// Heap bytes used by the bitmaps (serialized size, a close estimate).
    pub fn memory_bytes(&self) -> usize {
        self.existence.serialized_size()
            + self.negative.serialized_size()
            + self
                .slices
                .iter()
                .map(RoaringBitmap::serialized_size)
                .sum::<usize>()
    }

    pub fn parts(&self) -> (&RoaringBitmap, &RoaringBitmap, &[RoaringBitmap]) {
        (&self.existence, &self.negative, &self.slices)
    }

    pub fn from_parts(
        existence: RoaringBitmap,
        negative: RoaringBitmap,
        slices: Vec<RoaringBitmap>,
    ) -> Self {
        BitSlicedIndex {
            existence,
            negative,
            slices,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The index against a plain map, on random keys including extremes, for every
    //! comparison and random universes.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn key_strategy() -> impl Strategy<Value = i64> {
        prop_oneof![
            -50i64..50,
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0),
        ]
    }

    proptest! {
        #[test]
        fn matches_a_plain_map(
            writes in proptest::collection::vec((0u32..200, proptest::option::of(key_strategy())), 1..300),
            query in key_strategy(),
            high in key_strategy(),
            universe_ids in proptest::collection::btree_set(0u32..200, 0..200),
        ) {
            let mut index = BitSlicedIndex::new();
            let mut model: BTreeMap<u32, i64> = BTreeMap::new();
            for (id, value) in writes {
                let previous = model.get(&id).copied();
                match value {
                    Some(key) => { index.set(id, previous, key); model.insert(id, key); }
                    None => if let Some(old) = previous { index.remove(id, old); model.remove(&id); }
                }
            }
            for (id, key) in &model {
                prop_assert_eq!(index.get(*id), Some(*key));
            }
            let universe: RoaringBitmap = universe_ids.iter().copied().collect();
            let expect = |predicate: &dyn Fn(i64) -> bool| -> RoaringBitmap {
                model.iter().filter(|(id, key)| universe.contains(**id) && predicate(**key)).map(|(id, _)| *id).collect()
            };
            prop_assert_eq!(index.compare(KeyComparison::Less, query, &universe), expect(&|k| k < query));
            prop_assert_eq!(index.compare(KeyComparison::LessOrEqual, query, &universe), expect(&|k| k <= query));
            prop_assert_eq!(index.compare(KeyComparison::Equal, query, &universe), expect(&|k| k == query));
            prop_assert_eq!(index.compare(KeyComparison::GreaterOrEqual, query, &universe), expect(&|k| k >= query));
            prop_assert_eq!(index.compare(KeyComparison::Greater, query, &universe), expect(&|k| k > query));
            prop_assert_eq!(index.between(query, high, &universe), expect(&|k| query <= k && k <= high));
        }
    }
}
