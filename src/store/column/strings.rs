//! String columns: the dictionary form (a code and a bitmap per distinct value) and the
//! arena form (bytes per profile, scanned), and the whole-population string tests.

use super::{grow, Column, ColumnData, ABSENT_CODE};
use crate::segment::ast::TextOp;
use roaring::RoaringBitmap;
use std::collections::HashMap;

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

pub(super) type PassThroughHash = std::hash::BuildHasherDefault<PassThroughHasher>;

/// Whether `text` matches `pattern` under a text operator.
pub fn text_matches(op: TextOp, text: &str, pattern: &str) -> bool {
    match op {
        TextOp::Contains => text.contains(pattern),
        TextOp::StartsWith => text.starts_with(pattern),
        TextOp::EndsWith => text.ends_with(pattern),
    }
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

impl DictionaryStrings {
    pub(super) fn code_of(&self, value: &str) -> Option<u32> {
        self.lookup.get(value).copied()
    }

    pub(super) fn intern(&mut self, value: &str) -> u32 {
        if let Some(code) = self.lookup.get(value) {
            return *code;
        }
        let code = self.values.len() as u32;
        self.values.push(value.into());
        self.lookup.insert(value.into(), code);
        self.members.push(RoaringBitmap::new());
        code
    }

    pub(super) fn get(&self, id: u32) -> Option<&str> {
        match self.codes.get(id as usize) {
            Some(&code) if code != ABSENT_CODE => Some(&self.values[code as usize]),
            _ => None,
        }
    }
}

impl ArenaStrings {
    pub(super) fn get(&self, id: u32, present: &RoaringBitmap) -> Option<&str> {
        if !present.contains(id) {
            return None;
        }
        let (offset, length) = *self.spans.get(id as usize)?;
        let bytes = self
            .bytes
            .get(offset as usize..offset as usize + length as usize)?;
        std::str::from_utf8(bytes).ok()
    }

    pub(super) fn set(&mut self, id: u32, value: &str, was_present: bool) {
        grow(&mut self.spans, id, (0, 0));
        if was_present {
            self.garbage_bytes += self.spans[id as usize].1 as usize;
        }
        let offset = self.bytes.len() as u32;
        self.bytes.extend_from_slice(value.as_bytes());
        self.spans[id as usize] = (offset, value.len() as u32);
    }

    /// Rewrites the arena without garbage once more than half of it is dead.
    pub(super) fn maybe_compact(&mut self, present: &RoaringBitmap) {
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

    /// How many profiles hold exactly `value` (an upper bound for arena columns).
    pub fn string_frequency(&self, value: &str) -> u64 {
        match &self.data {
            ColumnData::Dictionary(dictionary) => dictionary
                .code_of(value)
                .map_or(0, |code| dictionary.members[code as usize].len()),
            _ => self.present.len(),
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
}
