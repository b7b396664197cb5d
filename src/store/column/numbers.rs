//! Numeric and timestamp columns: exact integer/float ordering and the range tests
//! (`>`, `>=`, `<`, `<=`, `=`, `!=`, `between`) answered through the column's indexes.

use super::range::Interval;
use super::{Column, ColumnData};
use crate::index::bsi::{BitSlicedIndex, KeyComparison};
use crate::segment::ast::CompareOp;
use roaring::RoaringBitmap;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Timestamp index bucket width.
pub(super) const TIMESTAMP_BUCKET_MS: i64 = 60_000;
const FLOAT_KEY_LIMIT: f64 = 4.0e18;
/// A numeric comparison checks candidates one by one when they are fewer than
/// 1/SCAN_RATIO of the column's values (measured: see BENCHMARKS.md).
const SCAN_RATIO: u64 = 4;

/// A number as written in a rule: compared exactly against integer and float columns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Integer(i64),
    Float(f64),
}

/// Exact numeric ordering between integers and finite floats (no rounding through f64
/// for large integers).
pub fn compare_numbers(left: Number, right: Number) -> Ordering {
    match (left, right) {
        (Number::Integer(a), Number::Integer(b)) => a.cmp(&b),
        (Number::Float(a), Number::Float(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (Number::Integer(a), Number::Float(b)) => compare_integer_float(a, b),
        (Number::Float(a), Number::Integer(b)) => compare_integer_float(b, a).reverse(),
    }
}

pub(super) fn compare_integer_float(integer: i64, float: f64) -> Ordering {
    if float >= 9.223_372_036_854_776e18 {
        return Ordering::Less;
    }
    if float < -9.223_372_036_854_776e18 {
        return Ordering::Greater;
    }
    let floor = float.floor();
    let floor_integer = floor as i64;
    match integer.cmp(&floor_integer) {
        Ordering::Equal if float > floor => Ordering::Less,
        other => other,
    }
}

/// Whether `ordering` (stored value vs literal) satisfies `op`.
pub fn ordering_satisfies(ordering: Ordering, op: CompareOp) -> bool {
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::NotEq => ordering != Ordering::Equal,
        CompareOp::Less => ordering == Ordering::Less,
        CompareOp::LessOrEqual => ordering != Ordering::Greater,
        CompareOp::Greater => ordering == Ordering::Greater,
        CompareOp::GreaterOrEqual => ordering != Ordering::Less,
    }
}

pub(super) fn float_key(value: f64) -> i64 {
    value.floor().clamp(-FLOAT_KEY_LIMIT, FLOAT_KEY_LIMIT) as i64
}

impl Column {
    /// Whether `universe` leaves few enough candidates that checking their exact values
    /// one by one beats any index.
    pub fn few_candidates(&self, universe: &RoaringBitmap) -> bool {
        universe.intersection_len(&self.present) * SCAN_RATIO < self.present.len()
    }

    /// Profiles of `universe` with a value in `interval`, from the sorted range index
    /// when it is usable and the candidates are not few; `None` otherwise (the caller's
    /// other paths answer).
    pub fn indexed_interval(
        &self,
        interval: &Interval,
        universe: &RoaringBitmap,
    ) -> Option<RoaringBitmap> {
        if self.range.index.is_none() || self.few_candidates(universe) {
            return None;
        }
        self.interval_from_index(interval, universe)
    }

    /// Timestamps in `[low_ms, high_ms]`.
    pub fn between_timestamps(
        &self,
        low_ms: i64,
        high_ms: i64,
        universe: &RoaringBitmap,
    ) -> RoaringBitmap {
        if low_ms > high_ms {
            return RoaringBitmap::new();
        }
        let interval = Interval::between(Number::Integer(low_ms), Number::Integer(high_ms));
        if let Some(found) = self.indexed_interval(&interval, universe) {
            return found;
        }
        let at_least = self.compare_timestamp(CompareOp::GreaterOrEqual, low_ms, universe);
        self.compare_timestamp(CompareOp::LessOrEqual, high_ms, &at_least)
    }

    /// Candidates few enough that checking their exact values one by one beats the
    /// bit-sliced index (whose cost is depth × containers touched, whatever the count).
    fn scan_candidates(&self, universe: &RoaringBitmap) -> Option<RoaringBitmap> {
        let candidates = universe & &self.present;
        (candidates.len() * SCAN_RATIO < self.present.len()).then_some(candidates)
    }

    /// Numeric comparison (integer and float columns) against an exact number.
    pub fn compare_number(
        &self,
        op: CompareOp,
        literal: Number,
        universe: &RoaringBitmap,
    ) -> RoaringBitmap {
        if let Some(found) = Interval::compare(op, literal)
            .and_then(|interval| self.indexed_interval(&interval, universe))
        {
            return found;
        }
        if let ColumnData::Integer {
            by_value: Some(map),
            ..
        } = &self.data
        {
            return union_of_values(map, universe, |value| {
                ordering_satisfies(compare_numbers(Number::Integer(value), literal), op)
            });
        }
        if let Some(candidates) = self.scan_candidates(universe) {
            return match &self.data {
                ColumnData::Integer { values, .. } => filter_ids(&candidates, |id| {
                    ordering_satisfies(
                        compare_numbers(Number::Integer(values[id as usize]), literal),
                        op,
                    )
                }),
                ColumnData::Float { values, .. } => filter_ids(&candidates, |id| {
                    ordering_satisfies(
                        compare_numbers(Number::Float(values[id as usize]), literal),
                        op,
                    )
                }),
                _ => RoaringBitmap::new(),
            };
        }
        match &self.data {
            ColumnData::Integer { index, .. } => {
                // Turn a fractional literal into the equivalent integer bound.
                let (op, key) = match literal {
                    Number::Integer(value) => (op, value),
                    Number::Float(value) => match integer_bound(op, value) {
                        IntegerBound::Key(op, key) => (op, key),
                        IntegerBound::All => return universe & &self.present,
                        IntegerBound::Nothing => return RoaringBitmap::new(),
                    },
                };
                match op {
                    CompareOp::NotEq => {
                        let equal = index.compare(KeyComparison::Equal, key, universe);
                        (universe & &self.present) - equal
                    }
                    other => index.compare(key_comparison(other), key, universe),
                }
            }
            ColumnData::Float { values, index } => {
                let bucket = match literal {
                    Number::Integer(value) => {
                        value.clamp(-FLOAT_KEY_LIMIT as i64, FLOAT_KEY_LIMIT as i64)
                    }
                    Number::Float(value) => float_key(value),
                };
                let exact = |id: u32| {
                    ordering_satisfies(
                        compare_numbers(Number::Float(values[id as usize]), literal),
                        op,
                    )
                };
                bucketed_compare(index, op, bucket, universe, &self.present, exact)
            }
            _ => RoaringBitmap::new(),
        }
    }

    pub fn between_numbers(
        &self,
        low: Number,
        high: Number,
        universe: &RoaringBitmap,
    ) -> RoaringBitmap {
        if let Some(found) = self.indexed_interval(&Interval::between(low, high), universe) {
            return found;
        }
        if let ColumnData::Integer {
            by_value: Some(map),
            ..
        } = &self.data
        {
            return union_of_values(map, universe, |value| {
                compare_numbers(Number::Integer(value), low) != Ordering::Less
                    && compare_numbers(Number::Integer(value), high) != Ordering::Greater
            });
        }
        // One pass over few candidates instead of two comparisons.
        if let Some(candidates) = self.scan_candidates(universe) {
            let inside = |number: Number| {
                compare_numbers(number, low) != Ordering::Less
                    && compare_numbers(number, high) != Ordering::Greater
            };
            return match &self.data {
                ColumnData::Integer { values, .. } => filter_ids(&candidates, |id| {
                    inside(Number::Integer(values[id as usize]))
                }),
                ColumnData::Float { values, .. } => {
                    filter_ids(&candidates, |id| inside(Number::Float(values[id as usize])))
                }
                _ => RoaringBitmap::new(),
            };
        }
        let at_least = self.compare_number(CompareOp::GreaterOrEqual, low, universe);
        self.compare_number(CompareOp::LessOrEqual, high, &at_least)
    }

    /// Timestamp comparison against epoch milliseconds.
    pub fn compare_timestamp(
        &self,
        op: CompareOp,
        millis: i64,
        universe: &RoaringBitmap,
    ) -> RoaringBitmap {
        if let Some(found) = Interval::compare(op, Number::Integer(millis))
            .and_then(|interval| self.indexed_interval(&interval, universe))
        {
            return found;
        }
        if let Some(candidates) = self.scan_candidates(universe) {
            return match &self.data {
                ColumnData::Timestamp { values, .. } => filter_ids(&candidates, |id| {
                    ordering_satisfies(values[id as usize].cmp(&millis), op)
                }),
                _ => RoaringBitmap::new(),
            };
        }
        match &self.data {
            ColumnData::Timestamp { values, index } => {
                let exact = |id: u32| ordering_satisfies(values[id as usize].cmp(&millis), op);
                bucketed_compare(
                    index,
                    op,
                    millis.div_euclid(TIMESTAMP_BUCKET_MS),
                    universe,
                    &self.present,
                    exact,
                )
            }
            _ => RoaringBitmap::new(),
        }
    }
}

pub(super) fn remove_from_value(map: &mut BTreeMap<i64, RoaringBitmap>, value: i64, id: u32) {
    if let Some(bitmap) = map.get_mut(&value) {
        bitmap.remove(id);
        if bitmap.is_empty() {
            map.remove(&value);
        }
    }
}

/// Profiles of `universe` holding a value for which `wanted` is true.
fn union_of_values(
    map: &BTreeMap<i64, RoaringBitmap>,
    universe: &RoaringBitmap,
    wanted: impl Fn(i64) -> bool,
) -> RoaringBitmap {
    use roaring::MultiOps;
    map.iter()
        .filter(|(value, _)| wanted(**value))
        .map(|(_, bitmap)| universe & bitmap)
        .union()
}

/// `ids` whose `keep` is true (ids come sorted, so the result is built by appending).
fn filter_ids(ids: &RoaringBitmap, keep: impl Fn(u32) -> bool) -> RoaringBitmap {
    // Collecting first and building once is cheaper than growing the bitmap per id.
    let kept: Vec<u32> = ids.iter().filter(|id| keep(*id)).collect();
    RoaringBitmap::from_sorted_iter(kept).unwrap_or_default()
}

enum IntegerBound {
    Key(CompareOp, i64),
    All,
    Nothing,
}

/// The integer comparison equivalent to comparing integers with a fractional float.
fn integer_bound(op: CompareOp, value: f64) -> IntegerBound {
    if value.fract() == 0.0 && value.abs() < 9.2e18 {
        return IntegerBound::Key(op, value as i64);
    }
    if value >= 9.2e18 {
        return match op {
            CompareOp::Less | CompareOp::LessOrEqual | CompareOp::NotEq => IntegerBound::All,
            _ => IntegerBound::Nothing,
        };
    }
    if value <= -9.2e18 {
        return match op {
            CompareOp::Greater | CompareOp::GreaterOrEqual | CompareOp::NotEq => IntegerBound::All,
            _ => IntegerBound::Nothing,
        };
    }
    let floor = value.floor() as i64;
    match op {
        CompareOp::Eq => IntegerBound::Nothing,
        CompareOp::NotEq => IntegerBound::All,
        // v < 2.5 ⟺ v <= 2; v > 2.5 ⟺ v >= 3.
        CompareOp::Less | CompareOp::LessOrEqual => {
            IntegerBound::Key(CompareOp::LessOrEqual, floor)
        }
        CompareOp::Greater | CompareOp::GreaterOrEqual => {
            IntegerBound::Key(CompareOp::Greater, floor)
        }
    }
}

fn key_comparison(op: CompareOp) -> KeyComparison {
    match op {
        CompareOp::Eq | CompareOp::NotEq => KeyComparison::Equal,
        CompareOp::Less => KeyComparison::Less,
        CompareOp::LessOrEqual => KeyComparison::LessOrEqual,
        CompareOp::Greater => KeyComparison::Greater,
        CompareOp::GreaterOrEqual => KeyComparison::GreaterOrEqual,
    }
}

/// Exact comparison through a bucketed index: buckets strictly on the right side come
/// from the index; the boundary bucket is checked value by value.
fn bucketed_compare(
    index: &BitSlicedIndex,
    op: CompareOp,
    bucket: i64,
    universe: &RoaringBitmap,
    present: &RoaringBitmap,
    exact: impl Fn(u32) -> bool,
) -> RoaringBitmap {
    let boundary = index.compare(KeyComparison::Equal, bucket, universe);
    let mut result = match op {
        CompareOp::Eq => RoaringBitmap::new(),
        CompareOp::NotEq => (universe & present) - &boundary,
        CompareOp::Less | CompareOp::LessOrEqual => {
            index.compare(KeyComparison::Less, bucket, universe)
        }
        CompareOp::Greater | CompareOp::GreaterOrEqual => {
            index.compare(KeyComparison::Greater, bucket, universe)
        }
    };
    for id in &boundary {
        if exact(id) {
            result.insert(id);
        }
    }
    result
}
