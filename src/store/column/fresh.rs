//! Bulk writes for profiles that hold no value in a column yet (imports): each bitmap
//! built in one append pass instead of one insert per value.

use super::numbers::{float_key, TIMESTAMP_BUCKET_MS};
use super::strings::PassThroughHash;
use super::{grow, Column, ColumnData, ABSENT_CODE, DICTIONARY_LIMIT, SMALL_VALUE_LIMIT};
use crate::index::bsi::add_sorted;
use crate::store::value::TraitValue;
use std::collections::{BTreeMap, HashMap};

impl Column {
    /// Whether a bulk write's ids are strictly increasing and none holds a value yet
    /// (the precondition of the fresh-profile fast paths); `first` is the first id.
    fn is_fresh_run<T>(&self, first: u32, entries: &[(u32, T)]) -> bool {
        entries.windows(2).all(|pair| pair[0].0 < pair[1].0)
            && match self.present.max() {
                Some(max) if max >= first => {
                    entries.iter().all(|(id, _)| !self.present.contains(*id))
                }
                _ => true,
            }
    }

    /// Stores values for profiles that hold none in this column yet (bulk import),
    /// building each bitmap in one pass instead of one insert per value. `entries`
    /// must be sorted by id, strictly increasing; anything else (or a value of the
    /// wrong type) falls back to [`Column::set`] one by one, with the same result.
    pub fn extend_fresh(&mut self, entries: &[(u32, TraitValue)]) {
        let Some(&(first, _)) = entries.first() else {
            return;
        };
        let fresh = self.is_fresh_run(first, entries);
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
                add_sorted(&mut self.range.dirty, &ids);
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
                add_sorted(&mut self.range.dirty, &ids);
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
                add_sorted(&mut self.range.dirty, &ids);
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
                        let code = super::list_item_code(items, lookup, members, item);
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
        let fresh = self.is_fresh_run(first, entries);
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
}
