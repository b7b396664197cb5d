//! The read-optimized range index of a numeric column (integer, float, timestamp).
//!
//! A [`SortedIndex`] of the column's values, built off the write path from a copy of the
//! column, plus `dirty`: the ids whose value changed (set, cleared, deleted) since the
//! copy was taken. A write costs one bitmap insert into `dirty`; a query takes the
//! range from the index, drops the dirty ids and checks those of its universe exactly
//! against the value column. `Engine::maintain_range_indexes` (run by the server's
//! ticker, after recovery and after bulk loads) rebuilds a column once its dirty ids
//! pass [`REBUILD_DIRTY_RATIO`] of its values.
//!
//! A build never holds the shard lock while sorting: [`Column::range_build_input`]
//! copies the values under the read lock, [`RangeBuild::build`] sorts with no lock and
//! [`Column::install_range`] swaps the result in under the write lock, keeping dirty
//! only the ids whose value now differs from the copy (a change during the build).

use super::numbers::{compare_numbers, Number};
use super::{Column, ColumnData};
use crate::index::sorted::SortedIndex;
use crate::segment::ast::CompareOp;
use roaring::RoaringBitmap;
use std::cmp::Ordering;
use std::sync::Arc;

/// A column is rebuilt once more than 1/REBUILD_DIRTY_RATIO of its values changed.
pub const REBUILD_DIRTY_RATIO: u64 = 32;
/// Queries use the index while dirty ids are at most 1/USABLE_DIRTY_RATIO of the values
/// or at most USABLE_DIRTY_FLOOR (checking that many ids exactly is cheap anyway);
/// beyond, the bit-sliced index answers.
const USABLE_DIRTY_RATIO: u64 = 8;
const USABLE_DIRTY_FLOOR: u64 = 1_024;

#[derive(Debug)]
pub enum RangeKeys {
    /// Integer values and timestamps (epoch ms).
    Integer(SortedIndex<i64>),
    Float(SortedIndex<f64>),
}

/// A numeric column's range index and the ids changed since it was built.
#[derive(Clone, Debug, Default)]
pub struct RangeState {
    pub(crate) index: Option<Arc<RangeKeys>>,
    pub(crate) dirty: RoaringBitmap,
    /// Bumped when the column changes type (widening): a build from before is dropped.
    pub(crate) generation: u64,
}

/// Values copied from a column for a build.
#[derive(Debug)]
pub enum RangeValues {
    Integer(Vec<i64>),
    Float(Vec<f64>),
}

/// A column's values copied under the read lock, to be sorted without any lock.
#[derive(Debug)]
pub struct RangeBuild {
    generation: u64,
    present: RoaringBitmap,
    values: RangeValues,
}

/// A built index with the copy it was built from (to find changes made meanwhile).
#[derive(Debug)]
pub struct BuiltRange {
    build: RangeBuild,
    index: RangeKeys,
}

/// A range of values: each bound a number and whether it is included.
#[derive(Clone, Copy, Debug)]
pub struct Interval {
    pub low: Option<(Number, bool)>,
    pub high: Option<(Number, bool)>,
}

impl Interval {
    /// The values satisfying `value op literal`; `None` for `!=` (not one interval).
    pub fn compare(op: CompareOp, literal: Number) -> Option<Interval> {
        let (low, high) = match op {
            CompareOp::Eq => (Some((literal, true)), Some((literal, true))),
            CompareOp::NotEq => return None,
            CompareOp::Less => (None, Some((literal, false))),
            CompareOp::LessOrEqual => (None, Some((literal, true))),
            CompareOp::Greater => (Some((literal, false)), None),
            CompareOp::GreaterOrEqual => (Some((literal, true)), None),
        };
        Some(Interval { low, high })
    }

    /// `low ≤ value ≤ high` (empty when `low > high`).
    pub fn between(low: Number, high: Number) -> Interval {
        Interval {
            low: Some((low, true)),
            high: Some((high, true)),
        }
    }

    pub fn contains(&self, value: Number) -> bool {
        let above = self.low.is_none_or(|(low, inclusive)| {
            let ordering = compare_numbers(value, low);
            ordering == Ordering::Greater || (inclusive && ordering == Ordering::Equal)
        });
        above
            && self.high.is_none_or(|(high, inclusive)| {
                let ordering = compare_numbers(value, high);
                ordering == Ordering::Less || (inclusive && ordering == Ordering::Equal)
            })
    }
}

impl RangeBuild {
    pub fn build(self) -> BuiltRange {
        let index = match &self.values {
            RangeValues::Integer(values) => RangeKeys::Integer(SortedIndex::build(
                self.present
                    .iter()
                    .map(|id| (values[id as usize], id))
                    .collect(),
            )),
            RangeValues::Float(values) => RangeKeys::Float(SortedIndex::build(
                self.present
                    .iter()
                    .map(|id| (values[id as usize], id))
                    .collect(),
            )),
        };
        BuiltRange { build: self, index }
    }
}

/// Positions `[low, high)` of the index holding the values inside `interval`.
fn positions<K: Copy + PartialOrd>(
    index: &SortedIndex<K>,
    interval: &Interval,
    number: impl Fn(K) -> Number,
) -> (usize, usize) {
    let low = match interval.low {
        None => 0,
        Some((low, true)) => index.position(|key| compare_numbers(number(key), low).is_lt()),
        Some((low, false)) => index.position(|key| compare_numbers(number(key), low).is_le()),
    };
    let high = match interval.high {
        None => index.len(),
        Some((high, true)) => index.position(|key| compare_numbers(number(key), high).is_le()),
        Some((high, false)) => index.position(|key| compare_numbers(number(key), high).is_lt()),
    };
    (low, high)
}

impl Column {
    fn numeric_values(&self) -> Option<RangeValues> {
        match &self.data {
            ColumnData::Integer { values, .. } | ColumnData::Timestamp { values, .. } => {
                Some(RangeValues::Integer(values.clone()))
            }
            ColumnData::Float { values, .. } => Some(RangeValues::Float(values.clone())),
            _ => None,
        }
    }

    /// The stored value of `id` as a number (integer, float and timestamp columns).
    fn number_at(&self, id: u32) -> Option<Number> {
        if !self.present.contains(id) {
            return None;
        }
        match &self.data {
            ColumnData::Integer { values, .. } | ColumnData::Timestamp { values, .. } => {
                Some(Number::Integer(values[id as usize]))
            }
            ColumnData::Float { values, .. } => Some(Number::Float(values[id as usize])),
            _ => None,
        }
    }

    /// Whether the range index is missing or stale enough to rebuild.
    pub fn range_needs_build(&self) -> bool {
        if !matches!(
            self.data,
            ColumnData::Integer { .. } | ColumnData::Timestamp { .. } | ColumnData::Float { .. }
        ) {
            return false;
        }
        match &self.range.index {
            // Even an empty column: building clears its dirty ids.
            None => true,
            Some(_) => self.range.dirty.len() * REBUILD_DIRTY_RATIO > self.present.len(),
        }
    }

    /// Copies what a build needs (call under the shard's read lock; cheap: a memcpy).
    pub fn range_build_input(&self) -> Option<RangeBuild> {
        Some(RangeBuild {
            generation: self.range.generation,
            present: self.present.clone(),
            values: self.numeric_values()?,
        })
    }

    /// Installs a build (under the shard's write lock). Ids changed since the copy stay
    /// dirty unless their value is back to the copied one. Returns false (and changes
    /// nothing) when the column changed type since the copy.
    pub fn install_range(&mut self, built: BuiltRange) -> bool {
        let BuiltRange { build, index } = built;
        if build.generation != self.range.generation {
            return false;
        }
        let copied = |id: u32| -> Option<u64> {
            if !build.present.contains(id) {
                return None;
            }
            Some(match &build.values {
                RangeValues::Integer(values) => values[id as usize] as u64,
                RangeValues::Float(values) => values[id as usize].to_bits(),
            })
        };
        let current = |id: u32| -> Option<u64> {
            match self.number_at(id)? {
                Number::Integer(value) => Some(value as u64),
                Number::Float(value) => Some(value.to_bits()),
            }
        };
        let still_dirty: Vec<u32> = self
            .range
            .dirty
            .iter()
            .filter(|id| copied(*id) != current(*id))
            .collect();
        self.range.dirty = RoaringBitmap::from_sorted_iter(still_dirty).unwrap_or_default();
        self.range.index = Some(Arc::new(index));
        true
    }

    /// The index, when built and not too stale to answer from.
    fn usable_range_index(&self) -> Option<&RangeKeys> {
        let index = self.range.index.as_deref()?;
        let dirty = self.range.dirty.len();
        (dirty <= USABLE_DIRTY_FLOOR || dirty * USABLE_DIRTY_RATIO <= self.present.len())
            .then_some(index)
    }

    /// Whether range queries can answer from the sorted index now.
    pub fn range_index_usable(&self) -> bool {
        self.usable_range_index().is_some()
    }

    /// Profiles of `universe` whose value lies in `interval`, from the range index;
    /// `None` when the column has no usable index.
    pub fn interval_from_index(
        &self,
        interval: &Interval,
        universe: &RoaringBitmap,
    ) -> Option<RoaringBitmap> {
        let index = self.usable_range_index()?;
        let mut result = match index {
            RangeKeys::Integer(sorted) => {
                let (low, high) = positions(sorted, interval, Number::Integer);
                sorted.ids_between(low, high, universe)
            }
            RangeKeys::Float(sorted) => {
                let (low, high) = positions(sorted, interval, Number::Float);
                sorted.ids_between(low, high, universe)
            }
        };
        if !self.range.dirty.is_empty() {
            // The index holds these ids' values at build time: decide them afresh.
            let dirty_here = universe & &self.range.dirty;
            result -= &dirty_here;
            // Ids come in ascending order: one union instead of an insert per id.
            let matching: Vec<u32> = dirty_here
                .iter()
                .filter(|id| {
                    self.number_at(*id)
                        .is_some_and(|value| interval.contains(value))
                })
                .collect();
            result |= RoaringBitmap::from_sorted_iter(matching).unwrap_or_default();
        }
        Some(result)
    }

    /// How many profiles of `universe` hold a value in `interval`, and the first
    /// `sample` of them in id order, without building the whole answer; `None` when the
    /// column has no usable index.
    pub fn interval_count_sample(
        &self,
        interval: &Interval,
        universe: &RoaringBitmap,
        sample: usize,
    ) -> Option<(u64, Vec<u32>)> {
        let index = self.usable_range_index()?;
        let dirty_here = universe & &self.range.dirty;
        let clean;
        let counted_universe = if dirty_here.is_empty() {
            universe
        } else {
            clean = universe - &dirty_here;
            &clean
        };
        let mut count = match index {
            RangeKeys::Integer(sorted) => {
                let (low, high) = positions(sorted, interval, Number::Integer);
                sorted.count_between(low, high, counted_universe)
            }
            RangeKeys::Float(sorted) => {
                let (low, high) = positions(sorted, interval, Number::Float);
                sorted.count_between(low, high, counted_universe)
            }
        };
        let holds = |id: u32| {
            self.number_at(id)
                .is_some_and(|value| interval.contains(value))
        };
        count += dirty_here.iter().filter(|id| holds(*id)).count() as u64;
        if sample == 0 || count == 0 {
            return Some((count, Vec::new()));
        }
        // Sparse answers would walk most of the universe to find a sample: build them.
        if count.saturating_mul(64) < universe.len() {
            let members = self.interval_from_index(interval, universe)?;
            return Some((count, members.iter().take(sample).collect()));
        }
        // The current values decide, so dirty ids need no special case here.
        Some((
            count,
            universe
                .iter()
                .filter(|id| holds(*id))
                .take(sample)
                .collect(),
        ))
    }

    /// Approximate heap bytes of the range index and its dirty ids.
    pub fn range_memory_bytes(&self) -> usize {
        self.range.dirty.serialized_size()
            + match self.range.index.as_deref() {
                Some(RangeKeys::Integer(sorted)) => sorted.memory_bytes(),
                Some(RangeKeys::Float(sorted)) => sorted.memory_bytes(),
                None => 0,
            }
    }

    /// (whether the range index is built, how many ids are dirty) — for tests and
    /// `segd-memory`.
    pub fn range_status(&self) -> (bool, u64) {
        (self.range.index.is_some(), self.range.dirty.len())
    }
}
