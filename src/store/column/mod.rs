//! One trait's values inside one shard, stored column-wise with its index.
//!
//! | trait type | storage | index |
//! |---|---|---|
//! | string (few distinct values) | `u32` dictionary code per profile | bitmap per code |
//! | string (many distinct values) | bytes in an arena + 8-byte (offset, length) per profile | none: scanned |
//! | integer | `i64` per profile | sorted range index; bit-sliced index on the exact value |
//! | timestamp | `i64` epoch ms per profile | sorted range index; bit-sliced index on the minute |
//! | float | `f64` per profile | sorted range index; bit-sliced index on `floor(value)` |
//! | boolean | bitmap of `true` | the bitmap itself |
//! | list of strings | bitmap per item (no per-profile copy) | the bitmaps |
//!
//! Every column has a presence bitmap. A string column starts dictionary-encoded and
//! switches to the arena form once it holds more than [`DICTIONARY_LIMIT`] distinct
//! values in the shard (emails, phones, names): a per-value bitmap would cost far more
//! than the string. Bucketed indexes (float, timestamp) answer a comparison exactly by
//! taking the buckets strictly inside the range from the index and checking only the
//! boundary bucket against exact values.
//! Numeric ranges answer first from the sorted range index (`range`), a copy rebuilt
//! off the write path whose changed ids are checked exactly; the bit-sliced index (kept
//! current by every write) answers `!=`, value lists and ranges while the sorted copy
//! is missing or too stale.
//!
//! Files: `mod` (the column kinds, writes, per-profile reads), `fresh` (bulk writes for
//! profiles new to the column), `strings` (dictionary and arena forms, string tests),
//! `numbers` (exact integer/float ordering, range tests through the indexes), `range`
//! (the sorted range index: dirty ids, off-lock builds).

mod fresh;
mod numbers;
mod range;
mod strings;
#[cfg(test)]
mod tests;

pub use numbers::{compare_numbers, ordering_satisfies, Number};
pub use range::{BuiltRange, Interval, RangeBuild, RangeState, REBUILD_DIRTY_RATIO};
pub use strings::{text_matches, ArenaStrings, DictionaryStrings, PassThroughHasher};

use crate::index::bsi::BitSlicedIndex;
use crate::store::value::{TraitType, TraitValue};
use numbers::{float_key, remove_from_value, TIMESTAMP_BUCKET_MS};
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, HashMap};

/// Distinct values per shard above which a string column stops keeping a dictionary.
pub const DICTIONARY_LIMIT: usize = 4_096;
/// Dictionary codes are u16: a dictionary never holds more than DICTIONARY_LIMIT + 1
/// values before the column switches to the arena form.
pub(crate) const ABSENT_CODE: u16 = u16::MAX;
/// Most distinct values an integer column indexes value by value (see `by_value`).
const SMALL_VALUE_LIMIT: usize = 256;

#[derive(Clone, Debug)]
pub enum ColumnData {
    Dictionary(DictionaryStrings),
    Arena(ArenaStrings),
    Integer {
        values: Vec<i64>,
        index: BitSlicedIndex,
        /// Value → profiles while the shard holds at most [`SMALL_VALUE_LIMIT`]
        /// distinct values (ages, counts): a range is then a union of a few bitmaps
        /// instead of a walk over the slices or the candidates. Dropped for good once
        /// exceeded.
        by_value: Option<BTreeMap<i64, RoaringBitmap>>,
    },
    Timestamp {
        values: Vec<i64>,
        index: BitSlicedIndex,
    },
    Float {
        values: Vec<f64>,
        index: BitSlicedIndex,
    },
    Boolean {
        trues: RoaringBitmap,
    },
    List {
        items: Vec<Box<str>>,
        lookup: HashMap<Box<str>, u32>,
        members: Vec<RoaringBitmap>,
    },
}

/// The code of a list item in a list column, added (with an empty member bitmap) on
/// first sight.
pub(super) fn list_item_code(
    items: &mut Vec<Box<str>>,
    lookup: &mut HashMap<Box<str>, u32>,
    members: &mut Vec<RoaringBitmap>,
    item: &str,
) -> u32 {
    if let Some(code) = lookup.get(item) {
        return *code;
    }
    let code = items.len() as u32;
    items.push(item.into());
    lookup.insert(item.into(), code);
    members.push(RoaringBitmap::new());
    code
}

/// One trait column of one shard.
#[derive(Clone, Debug)]
pub struct Column {
    pub present: RoaringBitmap,
    pub data: ColumnData,
    /// Sorted range index of numeric columns (empty for the others).
    pub(crate) range: RangeState,
}

/// Extends a dense column to hold `id`, in steps of at most 64Ki slots so capacity
/// stays close to the profile count (doubling would waste up to half the column).
pub(crate) fn grow<T: Clone>(values: &mut Vec<T>, id: u32, fill: T) {
    const STEP: usize = 1 << 16;
    let needed = id as usize + 1;
    if values.len() < needed {
        if values.capacity() < needed {
            let target = needed.max(values.len() + values.len().min(STEP)).max(16);
            values.reserve_exact(target - values.len());
        }
        values.resize(needed, fill);
    }
}

impl Column {
    pub fn new(trait_type: TraitType) -> Column {
        let data = match trait_type {
            TraitType::String => ColumnData::Dictionary(DictionaryStrings::default()),
            TraitType::Integer => ColumnData::Integer {
                values: Vec::new(),
                index: BitSlicedIndex::new(),
                by_value: Some(BTreeMap::new()),
            },
            TraitType::Timestamp => ColumnData::Timestamp {
                values: Vec::new(),
                index: BitSlicedIndex::new(),
            },
            TraitType::Float => ColumnData::Float {
                values: Vec::new(),
                index: BitSlicedIndex::new(),
            },
            TraitType::Boolean => ColumnData::Boolean {
                trues: RoaringBitmap::new(),
            },
            TraitType::List => ColumnData::List {
                items: Vec::new(),
                lookup: HashMap::new(),
                members: Vec::new(),
            },
        };
        Column {
            present: RoaringBitmap::new(),
            data,
            range: RangeState::default(),
        }
    }

    /// A column from decoded parts (snapshot load). Its range index is not stored: it
    /// is built by the next `Engine::maintain_range_indexes` (run after recovery).
    pub fn from_parts(present: RoaringBitmap, data: ColumnData) -> Column {
        Column {
            present,
            data,
            range: RangeState::default(),
        }
    }

    pub fn trait_type(&self) -> TraitType {
        match self.data {
            ColumnData::Dictionary(_) | ColumnData::Arena(_) => TraitType::String,
            ColumnData::Integer { .. } => TraitType::Integer,
            ColumnData::Timestamp { .. } => TraitType::Timestamp,
            ColumnData::Float { .. } => TraitType::Float,
            ColumnData::Boolean { .. } => TraitType::Boolean,
            ColumnData::List { .. } => TraitType::List,
        }
    }

    /// Converts an integer column to a float column (widening, see `store::value`).
    /// The caller has checked every stored integer is exactly representable.
    pub fn widen_to_float(&mut self) {
        if let ColumnData::Integer { values, .. } = &self.data {
            let mut floats = vec![0.0; values.len()];
            let mut index = BitSlicedIndex::new();
            for id in &self.present {
                let value = values[id as usize] as f64;
                floats[id as usize] = value;
                index.set(id, None, float_key(value));
            }
            self.data = ColumnData::Float {
                values: floats,
                index,
            };
            self.range = RangeState {
                generation: self.range.generation + 1,
                ..RangeState::default()
            };
        }
    }

    /// Largest stored integer magnitude (to check a widening is exact).
    pub fn max_integer_magnitude(&self) -> u64 {
        match &self.data {
            ColumnData::Integer { values, .. } => self
                .present
                .iter()
                .map(|id| values[id as usize].unsigned_abs())
                .max()
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// Stores a value already coerced to this column's type.
    pub fn set(&mut self, id: u32, value: &TraitValue) {
        let was_present = self.present.contains(id);
        match (&mut self.data, value) {
            (ColumnData::Dictionary(dictionary), TraitValue::String(text)) => {
                grow(&mut dictionary.codes, id, ABSENT_CODE);
                let old = dictionary.codes[id as usize];
                if old != ABSENT_CODE {
                    dictionary.members[old as usize].remove(id);
                }
                let code = dictionary.intern(text);
                dictionary.codes[id as usize] = code as u16;
                dictionary.members[code as usize].insert(id);
                self.present.insert(id);
                if dictionary.values.len() > DICTIONARY_LIMIT {
                    self.convert_to_arena();
                }
                return;
            }
            (ColumnData::Arena(arena), TraitValue::String(text)) => {
                arena.set(id, text, was_present);
                self.present.insert(id);
                arena.maybe_compact(&self.present);
                return;
            }
            (
                ColumnData::Integer {
                    values,
                    index,
                    by_value,
                },
                TraitValue::Integer(number),
            ) => {
                grow(values, id, 0);
                let previous = was_present.then(|| values[id as usize]);
                index.set(id, previous, *number);
                values[id as usize] = *number;
                self.range.dirty.insert(id);
                if let Some(map) = by_value {
                    if let Some(previous) = previous {
                        remove_from_value(map, previous, id);
                    }
                    map.entry(*number).or_default().insert(id);
                    if map.len() > SMALL_VALUE_LIMIT {
                        *by_value = None;
                    }
                }
            }
            (ColumnData::Timestamp { values, index }, TraitValue::Timestamp(millis)) => {
                grow(values, id, 0);
                let previous =
                    was_present.then(|| values[id as usize].div_euclid(TIMESTAMP_BUCKET_MS));
                index.set(id, previous, millis.div_euclid(TIMESTAMP_BUCKET_MS));
                values[id as usize] = *millis;
                self.range.dirty.insert(id);
            }
            (ColumnData::Float { values, index }, TraitValue::Float(number)) => {
                grow(values, id, 0.0);
                let previous = was_present.then(|| float_key(values[id as usize]));
                index.set(id, previous, float_key(*number));
                values[id as usize] = *number;
                self.range.dirty.insert(id);
            }
            (ColumnData::Boolean { trues }, TraitValue::Boolean(flag)) => {
                if *flag {
                    trues.insert(id);
                } else {
                    trues.remove(id);
                }
            }
            (
                ColumnData::List {
                    items,
                    lookup,
                    members,
                },
                TraitValue::List(list),
            ) => {
                if was_present {
                    for bitmap in members.iter_mut() {
                        bitmap.remove(id);
                    }
                }
                for item in list {
                    let code = list_item_code(items, lookup, members, item);
                    members[code as usize].insert(id);
                }
            }
            // The store coerces before calling; a mismatch here is a bug, so keep the
            // column unchanged rather than storing a wrong type.
            _ => {
                debug_assert!(false, "value type does not match column type");
                return;
            }
        }
        self.present.insert(id);
    }

    pub fn clear(&mut self, id: u32) {
        if !self.present.remove(id) {
            return;
        }
        match &mut self.data {
            ColumnData::Dictionary(dictionary) => {
                let code = dictionary.codes[id as usize];
                if code != ABSENT_CODE {
                    dictionary.members[code as usize].remove(id);
                }
                dictionary.codes[id as usize] = ABSENT_CODE;
            }
            ColumnData::Arena(arena) => {
                arena.garbage_bytes += arena.spans[id as usize].1 as usize;
                arena.spans[id as usize] = (0, 0);
            }
            ColumnData::Integer {
                values,
                index,
                by_value,
            } => {
                index.remove(id, values[id as usize]);
                if let Some(map) = by_value {
                    remove_from_value(map, values[id as usize], id);
                }
                values[id as usize] = 0;
                self.range.dirty.insert(id);
            }
            ColumnData::Timestamp { values, index } => {
                index.remove(id, values[id as usize].div_euclid(TIMESTAMP_BUCKET_MS));
                values[id as usize] = 0;
                self.range.dirty.insert(id);
            }
            ColumnData::Float { values, index } => {
                index.remove(id, float_key(values[id as usize]));
                values[id as usize] = 0.0;
                self.range.dirty.insert(id);
            }
            ColumnData::Boolean { trues } => {
                trues.remove(id);
            }
            ColumnData::List { members, .. } => {
                for bitmap in members.iter_mut() {
                    bitmap.remove(id);
                }
            }
        }
    }

    fn convert_to_arena(&mut self) {
        if let ColumnData::Dictionary(dictionary) = &self.data {
            let mut arena = ArenaStrings::default();
            for id in &self.present {
                if let Some(text) = dictionary.get(id) {
                    arena.set(id, text, false);
                }
            }
            self.data = ColumnData::Arena(arena);
        }
    }

    /// The stored value for `id`.
    pub fn get(&self, id: u32) -> Option<TraitValue> {
        if !self.present.contains(id) {
            return None;
        }
        Some(match &self.data {
            ColumnData::Dictionary(dictionary) => {
                TraitValue::String(dictionary.get(id)?.to_string())
            }
            ColumnData::Arena(arena) => {
                TraitValue::String(arena.get(id, &self.present)?.to_string())
            }
            ColumnData::Integer { values, .. } => TraitValue::Integer(values[id as usize]),
            ColumnData::Timestamp { values, .. } => TraitValue::Timestamp(values[id as usize]),
            ColumnData::Float { values, .. } => TraitValue::Float(values[id as usize]),
            ColumnData::Boolean { trues } => TraitValue::Boolean(trues.contains(id)),
            ColumnData::List { items, members, .. } => TraitValue::List({
                let mut list: Vec<String> = members
                    .iter()
                    .enumerate()
                    .filter(|(_, bitmap)| bitmap.contains(id))
                    .map(|(code, _)| items[code].to_string())
                    .collect();
                list.sort_unstable();
                list
            }),
        })
    }

    /// Whether `id` holds exactly `value` (same type, same value; floats by bits), so
    /// setting it again would change nothing. Lists compare as stored (sorted); an
    /// unsorted incoming list answers false and is simply set again.
    pub fn holds(&self, id: u32, value: &TraitValue) -> bool {
        if !self.present.contains(id) {
            return false;
        }
        match (&self.data, value) {
            (ColumnData::Dictionary(_) | ColumnData::Arena(_), TraitValue::String(text)) => {
                self.get_str(id) == Some(text.as_str())
            }
            (ColumnData::Integer { values, .. }, TraitValue::Integer(number))
            | (ColumnData::Timestamp { values, .. }, TraitValue::Timestamp(number)) => {
                values.get(id as usize) == Some(number)
            }
            (ColumnData::Float { values, .. }, TraitValue::Float(number)) => values
                .get(id as usize)
                .is_some_and(|stored| stored.to_bits() == number.to_bits()),
            (ColumnData::Boolean { trues }, TraitValue::Boolean(flag)) => {
                trues.contains(id) == *flag
            }
            (ColumnData::List { .. }, TraitValue::List(_)) => self.get(id).as_ref() == Some(value),
            _ => false,
        }
    }

    /// The string value for `id` without copying (string columns only).
    pub fn get_str(&self, id: u32) -> Option<&str> {
        match &self.data {
            ColumnData::Dictionary(dictionary) => dictionary.get(id),
            ColumnData::Arena(arena) => arena.get(id, &self.present),
            _ => None,
        }
    }

    /// The numeric value for `id` (integer and float columns).
    pub fn get_number(&self, id: u32) -> Option<Number> {
        if !self.present.contains(id) {
            return None;
        }
        match &self.data {
            ColumnData::Integer { values, .. } => Some(Number::Integer(values[id as usize])),
            ColumnData::Float { values, .. } => Some(Number::Float(values[id as usize])),
            _ => None,
        }
    }

    pub fn get_timestamp(&self, id: u32) -> Option<i64> {
        match &self.data {
            ColumnData::Timestamp { values, .. } if self.present.contains(id) => {
                Some(values[id as usize])
            }
            _ => None,
        }
    }

    pub fn get_bool(&self, id: u32) -> Option<bool> {
        match &self.data {
            ColumnData::Boolean { trues } if self.present.contains(id) => Some(trues.contains(id)),
            _ => None,
        }
    }

    pub fn list_contains(&self, id: u32, item: &str) -> bool {
        match &self.data {
            ColumnData::List {
                lookup, members, ..
            } => lookup
                .get(item)
                .is_some_and(|code| members[*code as usize].contains(id)),
            _ => false,
        }
    }

    // ---- whole-population operations; each returns a subset of `universe` ----

    /// Profiles in `universe` holding a value.
    pub fn present_in(&self, universe: &RoaringBitmap) -> RoaringBitmap {
        universe & &self.present
    }

    /// The profiles whose list holds `item` (list columns).
    pub fn list_bitmap(&self, item: &str) -> Option<&RoaringBitmap> {
        match &self.data {
            ColumnData::List {
                lookup, members, ..
            } => lookup.get(item).map(|code| &members[*code as usize]),
            _ => None,
        }
    }

    /// How many profiles hold `value` in a boolean column.
    pub fn boolean_frequency(&self, value: bool) -> u64 {
        match &self.data {
            ColumnData::Boolean { trues } if value => trues.len(),
            ColumnData::Boolean { trues } => self.present.len() - trues.len(),
            _ => 0,
        }
    }

    pub fn booleans_equal(&self, flag: bool, universe: &RoaringBitmap) -> RoaringBitmap {
        match &self.data {
            ColumnData::Boolean { trues } => {
                if flag {
                    universe & trues
                } else {
                    (universe & &self.present) - trues
                }
            }
            _ => RoaringBitmap::new(),
        }
    }

    /// Profiles whose list holds any of `items`.
    pub fn list_contains_any(&self, wanted: &[&str], universe: &RoaringBitmap) -> RoaringBitmap {
        match &self.data {
            ColumnData::List {
                lookup, members, ..
            } => {
                use roaring::MultiOps;
                let bitmaps: Vec<&RoaringBitmap> = wanted
                    .iter()
                    .filter_map(|item| lookup.get(*item))
                    .map(|code| &members[*code as usize])
                    .collect();
                universe & bitmaps.into_iter().union()
            }
            _ => RoaringBitmap::new(),
        }
    }

    /// Distinct values and how many profiles hold each (dictionary and list columns).
    pub fn value_counts(&self) -> Option<Vec<(&str, u64)>> {
        match &self.data {
            ColumnData::Dictionary(dictionary) => Some(
                dictionary
                    .values
                    .iter()
                    .zip(&dictionary.members)
                    .map(|(value, members)| (&**value, members.len()))
                    .collect(),
            ),
            ColumnData::List { items, members, .. } => Some(
                items
                    .iter()
                    .zip(members)
                    .map(|(value, members)| (&**value, members.len()))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Approximate heap bytes.
    pub fn memory_bytes(&self) -> usize {
        let present = self.present.serialized_size() + self.range_memory_bytes();
        present
            + match &self.data {
                ColumnData::Dictionary(dictionary) => {
                    dictionary.codes.capacity() * 2
                        + dictionary
                            .values
                            .iter()
                            .map(|v| v.len() * 2 + 56)
                            .sum::<usize>()
                        + dictionary
                            .members
                            .iter()
                            .map(RoaringBitmap::serialized_size)
                            .sum::<usize>()
                }
                ColumnData::Arena(arena) => arena.spans.capacity() * 8 + arena.bytes.capacity(),
                ColumnData::Integer {
                    values,
                    index,
                    by_value,
                } => {
                    values.capacity() * 8
                        + index.memory_bytes()
                        + by_value.as_ref().map_or(0, |map| {
                            map.values()
                                .map(|b| b.serialized_size() + 48)
                                .sum::<usize>()
                        })
                }
                ColumnData::Timestamp { values, index } => {
                    values.capacity() * 8 + index.memory_bytes()
                }
                ColumnData::Float { values, index } => values.capacity() * 8 + index.memory_bytes(),
                ColumnData::Boolean { trues } => trues.serialized_size(),
                ColumnData::List { items, members, .. } => {
                    items.iter().map(|v| v.len() * 2 + 56).sum::<usize>()
                        + members
                            .iter()
                            .map(RoaringBitmap::serialized_size)
                            .sum::<usize>()
                }
            }
    }
}
