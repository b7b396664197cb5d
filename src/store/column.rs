//! One trait's values inside one shard, stored column-wise with its index.
//!
//! | trait type | storage | index |
//! |---|---|---|
//! | string (few distinct values) | `u32` dictionary code per profile | bitmap per code |
//! | string (many distinct values) | bytes in an arena + 8-byte (offset, length) per profile | none: scanned |
//! | integer | `i64` per profile | bit-sliced index on the exact value |
//! | timestamp | `i64` epoch ms per profile | bit-sliced index on the minute |
//! | float | `f64` per profile | bit-sliced index on `floor(value)` |
//! | boolean | bitmap of `true` | the bitmap itself |
//! | list of strings | bitmap per item (no per-profile copy) | the bitmaps |
//!
//! Every column has a presence bitmap. A string column starts dictionary-encoded and
//! switches to the arena form once it holds more than [`DICTIONARY_LIMIT`] distinct
//! values in the shard (emails, phones, names): a per-value bitmap would cost far more
//! than the string. Bucketed indexes (float, timestamp) answer a comparison exactly by
//! taking the buckets strictly inside the range from the index and checking only the
//! boundary bucket against exact values.

use crate::index::bsi::{add_sorted, BitSlicedIndex, KeyComparison};
use crate::segment::ast::{CompareOp, TextOp};
use crate::store::value::{TraitType, TraitValue};
use roaring::RoaringBitmap;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// Distinct values per shard above which a string column stops keeping a dictionary.
pub const DICTIONARY_LIMIT: usize = 4_096;
/// Timestamp index bucket width.
const TIMESTAMP_BUCKET_MS: i64 = 60_000;
const FLOAT_KEY_LIMIT: f64 = 4.0e18;
/// Dictionary codes are u16: a dictionary never holds more than DICTIONARY_LIMIT + 1
/// values before the column switches to the arena form.
pub(crate) const ABSENT_CODE: u16 = u16::MAX;
/// A numeric comparison checks candidates one by one when they are fewer than
/// 1/SCAN_RATIO of the column's values (measured: see BENCHMARKS.md).
const SCAN_RATIO: u64 = 4;
/// Most distinct values an integer column indexes value by value (see `by_value`).
const SMALL_VALUE_LIMIT: usize = 256;

/// Hasher for keys that are hashes already (xxh3 of a text): uses them as they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassThroughHasher(u64);

impl std::hash::Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed through `write_u64`; fold anything else.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type PassThroughHash = std::hash::BuildHasherDefault<PassThroughHasher>;

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

fn compare_integer_float(integer: i64, float: f64) -> Ordering {
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

/// Whether `text` matches `pattern` under a text operator.
pub fn text_matches(op: TextOp, text: &str, pattern: &str) -> bool {
    match op {
        TextOp::Contains => text.contains(pattern),
        TextOp::StartsWith => text.starts_with(pattern),
        TextOp::EndsWith => text.ends_with(pattern),
    }
}

fn float_key(value: f64) -> i64 {
    value.floor().clamp(-FLOAT_KEY_LIMIT, FLOAT_KEY_LIMIT) as i64
}

#[derive(Clone, Debug, Default)]
pub struct DictionaryStrings {
    pub(crate) codes: Vec<u16>,
    pub(crate) values: Vec<Box<str>>,
    pub(crate) lookup: HashMap<Box<str>, u32>,
    pub(crate) members: Vec<RoaringBitmap>,
}

#[derive(Clone, Debug, Default)]
pub struct ArenaStrings {
    /// (offset, length) into `bytes` per profile; meaningless where not present.
    pub(crate) spans: Vec<(u32, u32)>,
    pub(crate) bytes: Vec<u8>,
    pub(crate) garbage_bytes: usize,
}

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

/// One trait column of one shard.
#[derive(Clone, Debug)]
pub struct Column {
    pub present: RoaringBitmap,
    pub data: ColumnData,
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

impl DictionaryStrings {
    fn code_of(&self, value: &str) -> Option<u32> {
        self.lookup.get(value).copied()
    }

    fn intern(&mut self, value: &str) -> u32 {
        if let Some(code) = self.lookup.get(value) {
            return *code;
        }
        let code = self.values.len() as u32;
        self.values.push(value.into());
        self.lookup.insert(value.into(), code);
        self.members.push(RoaringBitmap::new());
        code
    }

    fn get(&self, id: u32) -> Option<&str> {
        match self.codes.get(id as usize) {
            Some(&code) if code != ABSENT_CODE => Some(&self.values[code as usize]),
            _ => None,
        }
    }
}

impl ArenaStrings {
    fn get(&self, id: u32, present: &RoaringBitmap) -> Option<&str> {
        if !present.contains(id) {
            return None;
        }
        let (offset, length) = *self.spans.get(id as usize)?;
        let bytes = self
            .bytes
            .get(offset as usize..offset as usize + length as usize)?;
        std::str::from_utf8(bytes).ok()
    }

    fn set(&mut self, id: u32, value: &str, was_present: bool) {
        grow(&mut self.spans, id, (0, 0));
        if was_present {
            self.garbage_bytes += self.spans[id as usize].1 as usize;
        }
        let offset = self.bytes.len() as u32;
        self.bytes.extend_from_slice(value.as_bytes());
        self.spans[id as usize] = (offset, value.len() as u32);
    }

    /// Rewrites the arena without garbage once more than half of it is dead.
    fn maybe_compact(&mut self, present: &RoaringBitmap) {
        if self.garbage_bytes * 2 <= self.bytes.len() || self.bytes.len() < 1 << 16 {
            return;
        }
        let mut fresh = Vec::with_capacity(self.bytes.len() - self.garbage_bytes);
        for id in present {
            let (offset, length) = self.spans[id as usize];
            let new_offset = fresh.len() as u32;
            fresh.extend_from_slice(&self.bytes[offset as usize..(offset + length) as usize]);
            self.spans[id as usize] = (new_offset, length);
        }
        self.bytes = fresh;
        self.garbage_bytes = 0;
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
            }
            (ColumnData::Float { values, index }, TraitValue::Float(number)) => {
                grow(values, id, 0.0);
                let previous = was_present.then(|| float_key(values[id as usize]));
                index.set(id, previous, float_key(*number));
                values[id as usize] = *number;
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
                    let code = match lookup.get(item.as_str()) {
                        Some(code) => *code,
                        None => {
                            let code = items.len() as u32;
                            items.push(item.as_str().into());
                            lookup.insert(item.as_str().into(), code);
                            members.push(RoaringBitmap::new());
                            code
                        }
                    };
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

    /// Stores values for profiles that hold none in this column yet (bulk import),
    /// building each bitmap in one pass instead of one insert per value. `entries`
    /// must be sorted by id, strictly increasing; anything else (or a value of the
    /// wrong type) falls back to [`Column::set`] one by one, with the same result.
    pub fn extend_fresh(&mut self, entries: &[(u32, TraitValue)]) {
        let Some(&(first, _)) = entries.first() else {
            return;
        };
        let ordered = entries.windows(2).all(|pair| pair[0].0 < pair[1].0);
        let fresh = ordered
            && match self.present.max() {
                Some(max) if max >= first => {
                    entries.iter().all(|(id, _)| !self.present.contains(*id))
                }
                _ => true,
            };
        let column_type = self.trait_type();
        if !fresh
            || entries
                .iter()
                .any(|(_, value)| value.trait_type() != column_type)
        {
            for (id, value) in entries {
                self.set(*id, value);
            }
            return;
        }
        let last = entries[entries.len() - 1].0;
        let ids: Vec<u32> = entries.iter().map(|(id, _)| *id).collect();
        match &mut self.data {
            ColumnData::Dictionary(_) | ColumnData::Arena(_) => {
                let texts: Vec<(u32, &str)> = entries
                    .iter()
                    .filter_map(|(id, value)| match value {
                        TraitValue::String(text) => Some((*id, text.as_str())),
                        _ => None,
                    })
                    .collect();
                self.extend_fresh_strings(&texts);
                return;
            }
            ColumnData::Integer {
                values,
                index,
                by_value,
            } => {
                grow(values, last, 0);
                let mut keys = Vec::with_capacity(entries.len());
                for (id, value) in entries {
                    if let TraitValue::Integer(number) = value {
                        values[*id as usize] = *number;
                        keys.push((*id, *number));
                    }
                }
                index.extend_fresh(&keys);
                if let Some(map) = by_value {
                    let mut grouped: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
                    for (id, number) in &keys {
                        grouped.entry(*number).or_default().push(*id);
                    }
                    let distinct = map.len()
                        + grouped
                            .keys()
                            .filter(|value| !map.contains_key(value))
                            .count();
                    if distinct > SMALL_VALUE_LIMIT {
                        *by_value = None;
                    } else {
                        for (number, ids) in grouped {
                            add_sorted(map.entry(number).or_default(), &ids);
                        }
                    }
                }
            }
            ColumnData::Timestamp { values, index } => {
                grow(values, last, 0);
                let mut keys = Vec::with_capacity(entries.len());
                for (id, value) in entries {
                    if let TraitValue::Timestamp(millis) = value {
                        values[*id as usize] = *millis;
                        keys.push((*id, millis.div_euclid(TIMESTAMP_BUCKET_MS)));
                    }
                }
                index.extend_fresh(&keys);
            }
            ColumnData::Float { values, index } => {
                grow(values, last, 0.0);
                let mut keys = Vec::with_capacity(entries.len());
                for (id, value) in entries {
                    if let TraitValue::Float(number) = value {
                        values[*id as usize] = *number;
                        keys.push((*id, float_key(*number)));
                    }
                }
                index.extend_fresh(&keys);
            }
            ColumnData::Boolean { trues } => {
                let true_ids: Vec<u32> = entries
                    .iter()
                    .filter(|(_, value)| matches!(value, TraitValue::Boolean(true)))
                    .map(|(id, _)| *id)
                    .collect();
                add_sorted(trues, &true_ids);
            }
            ColumnData::List {
                items,
                lookup,
                members,
            } => {
                let mut per_code: Vec<Vec<u32>> = Vec::new();
                for (id, value) in entries {
                    let TraitValue::List(list) = value else {
                        continue;
                    };
                    for item in list {
                        let code = match lookup.get(item.as_str()) {
                            Some(code) => *code,
                            None => {
                                let code = items.len() as u32;
                                items.push(item.as_str().into());
                                lookup.insert(item.as_str().into(), code);
                                members.push(RoaringBitmap::new());
                                code
                            }
                        };
                        if per_code.len() <= code as usize {
                            per_code.resize_with(code as usize + 1, Vec::new);
                        }
                        per_code[code as usize].push(*id);
                    }
                }
                for (code, ids) in per_code.iter().enumerate() {
                    add_sorted(&mut members[code], ids);
                }
            }
        }
        add_sorted(&mut self.present, &ids);
    }

    /// [`Column::extend_fresh`] for string values given as borrowed text (no
    /// per-value allocation): same preconditions and fallback.
    pub fn extend_fresh_strings(&mut self, entries: &[(u32, &str)]) {
        let Some(&(first, _)) = entries.first() else {
            return;
        };
        let ordered = entries.windows(2).all(|pair| pair[0].0 < pair[1].0);
        let fresh = ordered
            && match self.present.max() {
                Some(max) if max >= first => {
                    entries.iter().all(|(id, _)| !self.present.contains(*id))
                }
                _ => true,
            };
        let last = entries[entries.len() - 1].0;
        match &mut self.data {
            ColumnData::Dictionary(dictionary) if fresh => {
                grow(&mut dictionary.codes, last, ABSENT_CODE);
                let mut per_code: Vec<Vec<u32>> = Vec::new();
                // Codes by xxh3 of the text, checked against the stored value: much
                // cheaper per cell than the dictionary's SipHash lookup.
                let mut codes_by_hash: HashMap<u64, u32, PassThroughHash> = HashMap::default();
                let mut done = 0;
                for &(id, text) in entries {
                    let hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
                    let cached = codes_by_hash
                        .get(&hash)
                        .copied()
                        .filter(|code| &*dictionary.values[*code as usize] == text);
                    let code = match cached {
                        Some(code) => code,
                        None => {
                            if dictionary.values.len() >= DICTIONARY_LIMIT
                                && dictionary.code_of(text).is_none()
                            {
                                break; // the next new value makes the column an arena
                            }
                            let code = dictionary.intern(text);
                            codes_by_hash.insert(hash, code);
                            code
                        }
                    };
                    dictionary.codes[id as usize] = code as u16;
                    if per_code.len() <= code as usize {
                        per_code.resize_with(code as usize + 1, Vec::new);
                    }
                    per_code[code as usize].push(id);
                    done += 1;
                }
                for (code, ids) in per_code.iter().enumerate() {
                    add_sorted(&mut dictionary.members[code], ids);
                }
                let ids: Vec<u32> = entries[..done].iter().map(|(id, _)| *id).collect();
                add_sorted(&mut self.present, &ids);
                for &(id, text) in &entries[done..] {
                    self.set(id, &TraitValue::String(text.to_string()));
                }
            }
            ColumnData::Arena(arena) if fresh => {
                for &(id, text) in entries {
                    arena.set(id, text, false);
                }
                let ids: Vec<u32> = entries.iter().map(|(id, _)| *id).collect();
                add_sorted(&mut self.present, &ids);
            }
            _ => {
                for &(id, text) in entries {
                    self.set(id, &TraitValue::String(text.to_string()));
                }
            }
        }
    }

    /// Removes the value for `id` from the column and its index.
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
            }
            ColumnData::Timestamp { values, index } => {
                index.remove(id, values[id as usize].div_euclid(TIMESTAMP_BUCKET_MS));
                values[id as usize] = 0;
            }
            ColumnData::Float { values, index } => {
                index.remove(id, float_key(values[id as usize]));
                values[id as usize] = 0.0;
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

    /// Profiles whose string value equals one of `values`.
    pub fn strings_equal_any(&self, values: &[&str], universe: &RoaringBitmap) -> RoaringBitmap {
        match &self.data {
            ColumnData::Dictionary(dictionary) => {
                let bitmaps: Vec<&RoaringBitmap> = values
                    .iter()
                    .filter_map(|value| dictionary.code_of(value))
                    .map(|code| &dictionary.members[code as usize])
                    .collect();
                match bitmaps.as_slice() {
                    [] => RoaringBitmap::new(),
                    [single] => universe & *single,
                    _ => {
                        use roaring::MultiOps;
                        universe & bitmaps.into_iter().union()
                    }
                }
            }
            ColumnData::Arena(_) => self.scan_strings(universe, |text| values.contains(&text)),
            _ => RoaringBitmap::new(),
        }
    }

    /// The profiles holding exactly `value`, when the column keeps one bitmap per value
    /// (dictionary columns; `None` for arena columns, which scan, and unknown values).
    pub fn string_bitmap(&self, value: &str) -> Option<&RoaringBitmap> {
        match &self.data {
            ColumnData::Dictionary(dictionary) => dictionary
                .code_of(value)
                .map(|code| &dictionary.members[code as usize]),
            _ => None,
        }
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

    /// How many profiles hold exactly `value` (an upper bound for arena columns).
    pub fn string_frequency(&self, value: &str) -> u64 {
        match &self.data {
            ColumnData::Dictionary(dictionary) => dictionary
                .code_of(value)
                .map_or(0, |code| dictionary.members[code as usize].len()),
            _ => self.present.len(),
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

    /// Profiles whose string value satisfies `predicate` (dictionary columns test each
    /// distinct value once).
    pub fn strings_matching(
        &self,
        universe: &RoaringBitmap,
        predicate: impl Fn(&str) -> bool,
    ) -> RoaringBitmap {
        match &self.data {
            ColumnData::Dictionary(dictionary) => {
                use roaring::MultiOps;
                let matching: Vec<&RoaringBitmap> = dictionary
                    .values
                    .iter()
                    .zip(&dictionary.members)
                    .filter(|(value, members)| !members.is_empty() && predicate(value))
                    .map(|(_, members)| members)
                    .collect();
                universe & matching.into_iter().union()
            }
            ColumnData::Arena(_) => self.scan_strings(universe, predicate),
            _ => RoaringBitmap::new(),
        }
    }

    fn scan_strings(
        &self,
        universe: &RoaringBitmap,
        predicate: impl Fn(&str) -> bool,
    ) -> RoaringBitmap {
        let candidates = universe & &self.present;
        let mut out = RoaringBitmap::new();
        for id in &candidates {
            if self.get_str(id).is_some_and(&predicate) {
                // Ids come in ascending order from the candidates, so appending holds.
                let _ = out.try_push(id);
            }
        }
        out
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
        let present = self.present.serialized_size();
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

fn remove_from_value(map: &mut BTreeMap<i64, RoaringBitmap>, value: i64, id: u32) {
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

#[cfg(test)]
mod tests {
    //! Each column kind against direct checks of its stored values, including updates,
    //! clears, the dictionary→arena switch and int→float widening.
    use super::*;

    #[test]
    fn integer_float_ordering_is_exact() {
        assert_eq!(compare_integer_float(3, 2.5), Ordering::Greater);
        assert_eq!(compare_integer_float(2, 2.5), Ordering::Less);
        assert_eq!(compare_integer_float(2, 2.0), Ordering::Equal);
        assert_eq!(compare_integer_float(-3, -2.5), Ordering::Less);
        assert_eq!(compare_integer_float(i64::MAX, 9.3e18), Ordering::Less);
        assert_eq!(compare_integer_float(i64::MIN, -9.3e18), Ordering::Greater);
        assert_eq!(
            compare_integer_float((1 << 53) + 1, (1u64 << 53) as f64),
            Ordering::Greater
        );
    }

    #[test]
    fn float_column_refines_the_boundary_bucket() {
        let mut column = Column::new(TraitType::Float);
        let values = [300.0, 300.25, 300.5, 299.99, 301.0, -0.5, 0.0];
        for (id, value) in values.iter().enumerate() {
            column.set(id as u32, &TraitValue::Float(*value));
        }
        let universe: RoaringBitmap = (0..10).collect();
        for op in [
            CompareOp::Eq,
            CompareOp::NotEq,
            CompareOp::Less,
            CompareOp::LessOrEqual,
            CompareOp::Greater,
            CompareOp::GreaterOrEqual,
        ] {
            for literal in [
                Number::Float(300.25),
                Number::Integer(300),
                Number::Float(-0.25),
                Number::Integer(0),
            ] {
                let got = column.compare_number(op, literal, &universe);
                let expected: RoaringBitmap = values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| {
                        ordering_satisfies(compare_numbers(Number::Float(**v), literal), op)
                    })
                    .map(|(id, _)| id as u32)
                    .collect();
                assert_eq!(got, expected, "{op:?} {literal:?}");
            }
        }
    }

    #[test]
    fn integer_paths_agree_before_and_after_the_value_index_is_dropped() {
        // Value index (few values), then bit-sliced index and candidate scans (many).
        for distinct in [50i64, SMALL_VALUE_LIMIT as i64 + 50] {
            let mut column = Column::new(TraitType::Integer);
            for id in 0..2_000u32 {
                column.set(
                    id,
                    &TraitValue::Integer((i64::from(id) * 7919) % distinct - distinct / 2),
                );
            }
            for id in (0..2_000).step_by(3) {
                column.clear(id);
            }
            let full: RoaringBitmap = (0..2_100).collect();
            let narrow: RoaringBitmap = (0..2_100).step_by(11).collect();
            for universe in [&full, &narrow] {
                for literal in [
                    Number::Integer(3),
                    Number::Float(-2.5),
                    Number::Integer(distinct),
                ] {
                    for op in [
                        CompareOp::Eq,
                        CompareOp::NotEq,
                        CompareOp::Less,
                        CompareOp::LessOrEqual,
                        CompareOp::Greater,
                        CompareOp::GreaterOrEqual,
                    ] {
                        let expected: RoaringBitmap = universe
                            .iter()
                            .filter(|id| match column.get_number(*id) {
                                Some(number) => {
                                    ordering_satisfies(compare_numbers(number, literal), op)
                                }
                                None => false,
                            })
                            .collect();
                        assert_eq!(
                            column.compare_number(op, literal, universe),
                            expected,
                            "{distinct} {op:?} {literal:?}"
                        );
                    }
                }
                let expected: RoaringBitmap = universe
                    .iter()
                    .filter(|id| {
                        column.get_number(*id).is_some_and(|n| {
                            compare_numbers(n, Number::Integer(-5)).is_ge()
                                && compare_numbers(n, Number::Float(10.5)).is_le()
                        })
                    })
                    .collect();
                assert_eq!(
                    column.between_numbers(Number::Integer(-5), Number::Float(10.5), universe),
                    expected
                );
            }
        }
    }

    #[test]
    fn dictionary_switches_to_arena_and_keeps_values() {
        let mut column = Column::new(TraitType::String);
        for id in 0..(DICTIONARY_LIMIT as u32 + 10) {
            column.set(id, &TraitValue::String(format!("user{id}@example.com")));
        }
        assert!(matches!(column.data, ColumnData::Arena(_)));
        assert_eq!(column.get_str(7), Some("user7@example.com"));
        column.set(7, &TraitValue::String("changed".into()));
        column.clear(8);
        assert_eq!(column.get_str(7), Some("changed"));
        assert_eq!(column.get(8), None);
        let universe: RoaringBitmap = (0..20).collect();
        let found = column.strings_matching(&universe, |text| text.ends_with("9@example.com"));
        assert_eq!(found.iter().collect::<Vec<_>>(), vec![9, 19]);
    }

    #[test]
    fn widening_keeps_values_and_index() {
        let mut column = Column::new(TraitType::Integer);
        column.set(1, &TraitValue::Integer(10));
        column.set(2, &TraitValue::Integer(-4));
        column.widen_to_float();
        column.set(3, &TraitValue::Float(10.5));
        let universe: RoaringBitmap = (0..5).collect();
        let got = column.compare_number(CompareOp::GreaterOrEqual, Number::Integer(10), &universe);
        assert_eq!(got.iter().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(column.get(2), Some(TraitValue::Float(-4.0)));
    }

    #[test]
    fn list_updates_replace_the_whole_set() {
        let mut column = Column::new(TraitType::List);
        column.set(1, &TraitValue::List(vec!["a".into(), "b".into()]));
        column.set(1, &TraitValue::List(vec!["c".into()]));
        assert_eq!(column.get(1), Some(TraitValue::List(vec!["c".into()])));
        assert!(!column.list_contains(1, "a"));
        column.clear(1);
        assert!(!column.list_contains(1, "c"));
    }
}
