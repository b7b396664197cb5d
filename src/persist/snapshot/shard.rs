//! One shard file's sections: the shard's profile table, identities (and their extra
//! keys), its part of the identity map, segment membership, timers, the event store
//! (`events`) and one section per trait column.

use super::events::{decode_events, encode_events};
use crate::ids::{ColumnId, LocalId, SegmentId, ShardId};
use crate::index::bsi::BitSlicedIndex;
use crate::persist::format::{
    damaged, Container, Decoder, Encoder, FileKind, FormatError, Section,
};
use crate::store::column::{ArenaStrings, Column, ColumnData, DictionaryStrings, ABSENT_CODE};
use crate::store::membership::{SlotSet, Slots, NO_SLOT};
use crate::store::schema::Schema;
use crate::store::shard::{ProfileIdentity, Shard};
use crate::store::timers::TimerQueue;
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, HashMap};

// Shard sections. To add one (e.g. the event store), give it the next number, add an
// encoder to `encode_shard` and a decoder to `decode_shard`, and bump the format
// version in `format` with a new fixture.
const SECTION_SHARD: u32 = 1;
const SECTION_IDENTITIES: u32 = 2;
const SECTION_IDENTITY_MAP: u32 = 3;
const SECTION_MEMBERSHIP: u32 = 4;
const SECTION_TIMERS: u32 = 5;
/// Since format version 2: extra userIds and merged identity-trait keys per profile.
const SECTION_IDENTITY_EXTRA: u32 = 6;
/// Since format version 2: the shard's event store.
const SECTION_EVENTS: u32 = 7;
// 6 is reserved for the event store (`shard.events`) once it lands.
const SECTION_COLUMN: u32 = 16;

pub(super) fn encode_shard(shard: &Shard, identity_entries: &[(u128, u32)]) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut meta = Encoder::new();
    meta.u32(u32::from(shard.id.0));
    meta.u32(shard.next_local);
    meta.u32s(&shard.free_ids);
    meta.bitmap(&shard.live);
    meta.u64s(&shard.bucket_hashes);
    sections.push(Section {
        kind: SECTION_SHARD,
        key: 0,
        bytes: meta.bytes,
    });

    let mut identities = Encoder::new();
    let mut user_lengths = Vec::with_capacity(shard.identities.len());
    let mut user_bytes = Vec::new();
    let mut anonymous_counts = Vec::with_capacity(shard.identities.len());
    let mut anonymous_lengths = Vec::new();
    let mut anonymous_bytes = Vec::new();
    for identity in &shard.identities {
        match identity.user_id() {
            Some(id) => {
                user_lengths.push(id.len() as u32);
                user_bytes.extend_from_slice(id.as_bytes());
            }
            None => user_lengths.push(u32::MAX),
        }
        let mut anonymous_count = 0;
        for id in identity.anonymous_ids() {
            anonymous_count += 1;
            anonymous_lengths.push(id.len() as u32);
            anonymous_bytes.extend_from_slice(id.as_bytes());
        }
        anonymous_counts.push(anonymous_count);
    }
    identities.u32s(&user_lengths);
    identities.bytes(&user_bytes);
    identities.u32s(&anonymous_counts);
    identities.u32s(&anonymous_lengths);
    identities.bytes(&anonymous_bytes);
    sections.push(Section {
        kind: SECTION_IDENTITIES,
        key: 0,
        bytes: identities.bytes,
    });

    // Extra identifiers as (count per profile, lengths, bytes) for each of the two lists.
    let mut extra = Encoder::new();
    for which in 0..2 {
        let mut counts = Vec::with_capacity(shard.identities.len());
        let mut lengths = Vec::new();
        let mut bytes = Vec::new();
        for identity in &shard.identities {
            let mut count = 0;
            let items: Box<dyn Iterator<Item = &str>> = if which == 0 {
                Box::new(identity.other_user_ids())
            } else {
                Box::new(identity.other_trait_keys())
            };
            for item in items {
                count += 1;
                lengths.push(item.len() as u32);
                bytes.extend_from_slice(item.as_bytes());
            }
            counts.push(count);
        }
        extra.u32s(&counts);
        extra.u32s(&lengths);
        extra.bytes(&bytes);
    }
    sections.push(Section {
        kind: SECTION_IDENTITY_EXTRA,
        key: 0,
        bytes: extra.bytes,
    });
    sections.push(Section {
        kind: SECTION_EVENTS,
        key: 0,
        bytes: encode_events(&shard.events),
    });

    let mut map = Encoder::new();
    map.u64(identity_entries.len() as u64);
    for (hash, _) in identity_entries {
        map.u128(*hash);
    }
    let locals: Vec<u32> = identity_entries.iter().map(|(_, local)| *local).collect();
    map.u32s(&locals);
    sections.push(Section {
        kind: SECTION_IDENTITY_MAP,
        key: 0,
        bytes: map.bytes,
    });

    let mut membership = Encoder::new();
    membership.u16s(&shard.slots.by_segment);
    let slot_segments: Vec<u32> = shard
        .slots
        .segments
        .iter()
        .map(|segment| segment.map_or(u32::MAX, |id| id.0))
        .collect();
    membership.u32s(&slot_segments);
    membership.u16s(&shard.slots.free);
    let words_per_profile = shard
        .profile_segments
        .iter()
        .map(|set| slot_words(set).len())
        .max()
        .unwrap_or(0)
        .max(2);
    membership.u32(words_per_profile as u32);
    let mut words = Vec::with_capacity(shard.profile_segments.len() * words_per_profile);
    for set in &shard.profile_segments {
        let own = slot_words(set);
        words.extend_from_slice(own);
        words.extend(std::iter::repeat_n(0, words_per_profile - own.len()));
    }
    membership.u64s(&words);
    let mut members: Vec<(&SegmentId, &RoaringBitmap)> = shard.members.iter().collect();
    members.sort_by_key(|(id, _)| **id);
    membership.u64(members.len() as u64);
    for (id, bitmap) in members {
        membership.u32(id.0);
        membership.bitmap(bitmap);
    }
    sections.push(Section {
        kind: SECTION_MEMBERSHIP,
        key: 0,
        bytes: membership.bytes,
    });

    let mut timers = Encoder::new();
    let mut entries: Vec<(u32, u32, i64)> = shard.timers.entries().collect();
    entries.sort_unstable();
    timers.u32s(&entries.iter().map(|e| e.0).collect::<Vec<_>>());
    timers.u32s(&entries.iter().map(|e| e.1).collect::<Vec<_>>());
    timers.i64s(&entries.iter().map(|e| e.2).collect::<Vec<_>>());
    sections.push(Section {
        kind: SECTION_TIMERS,
        key: 0,
        bytes: timers.bytes,
    });

    // The event store's section goes here (SECTION 6) once `shard.events` lands.

    for (index, column) in shard.columns.iter().enumerate() {
        if let Some(column) = column {
            sections.push(Section {
                kind: SECTION_COLUMN,
                key: index as u32,
                bytes: encode_column(column),
            });
        }
    }
    sections
}

fn slot_words(set: &SlotSet) -> &[u64] {
    match set {
        SlotSet::Inline(words) => words,
        SlotSet::Heap(words) => words,
    }
}

const COLUMN_DICTIONARY: u8 = 0;
const COLUMN_ARENA: u8 = 1;
const COLUMN_INTEGER: u8 = 2;
const COLUMN_TIMESTAMP: u8 = 3;
const COLUMN_FLOAT: u8 = 4;
const COLUMN_BOOLEAN: u8 = 5;
const COLUMN_LIST: u8 = 6;

fn encode_bsi(out: &mut Encoder, index: &BitSlicedIndex) {
    out.bitmap(&index.existence);
    out.bitmap(&index.negative);
    out.u64(index.slices.len() as u64);
    for slice in &index.slices {
        out.bitmap(slice);
    }
}

/// Strings whose bitmap is empty are written blank: they may be the last trace of an
/// erased profile's value, and erasure must leave no copy on disk.
fn live_strings<'a>(
    values: &'a [Box<str>],
    members: &'a [RoaringBitmap],
) -> impl ExactSizeIterator<Item = &'a str> {
    values.iter().enumerate().map(|(code, value)| {
        if members.get(code).is_some_and(|m| !m.is_empty()) {
            &**value
        } else {
            ""
        }
    })
}

fn encode_column(column: &Column) -> Vec<u8> {
    // Sized from the column's own estimate: growing by doubling copied every byte again.
    let mut out = Encoder {
        bytes: Vec::with_capacity(column.memory_bytes() + 64),
    };
    match &column.data {
        ColumnData::Dictionary(dictionary) => {
            out.u8(COLUMN_DICTIONARY);
            out.bitmap(&column.present);
            out.u16s(&dictionary.codes);
            out.strings(live_strings(&dictionary.values, &dictionary.members));
            out.u64(dictionary.members.len() as u64);
            for bitmap in &dictionary.members {
                out.bitmap(bitmap);
            }
        }
        ColumnData::Arena(arena) => {
            out.u8(COLUMN_ARENA);
            out.bitmap(&column.present);
            // Written compacted: cleared values (garbage) never reach the disk.
            let mut spans = vec![0u32; arena.spans.len() * 2];
            let mut bytes =
                Vec::with_capacity(arena.bytes.len() - arena.garbage_bytes.min(arena.bytes.len()));
            for id in &column.present {
                let Some(&(offset, length)) = arena.spans.get(id as usize) else {
                    continue;
                };
                let Some(text) = arena
                    .bytes
                    .get(offset as usize..offset as usize + length as usize)
                else {
                    continue;
                };
                spans[id as usize * 2] = bytes.len() as u32;
                spans[id as usize * 2 + 1] = length;
                bytes.extend_from_slice(text);
            }
            out.u32s(&spans);
            out.bytes(&bytes);
        }
        ColumnData::Integer {
            values,
            index,
            by_value,
        } => {
            out.u8(COLUMN_INTEGER);
            out.bitmap(&column.present);
            out.i64s(values);
            encode_bsi(&mut out, index);
            match by_value {
                Some(map) => {
                    out.u8(1);
                    out.u64(map.len() as u64);
                    for (value, bitmap) in map {
                        out.i64(*value);
                        out.bitmap(bitmap);
                    }
                }
                None => out.u8(0),
            }
        }
        ColumnData::Timestamp { values, index } => {
            out.u8(COLUMN_TIMESTAMP);
            out.bitmap(&column.present);
            out.i64s(values);
            encode_bsi(&mut out, index);
        }
        ColumnData::Float { values, index } => {
            out.u8(COLUMN_FLOAT);
            out.bitmap(&column.present);
            out.f64s(values);
            encode_bsi(&mut out, index);
        }
        ColumnData::Boolean { trues } => {
            out.u8(COLUMN_BOOLEAN);
            out.bitmap(&column.present);
            out.bitmap(trues);
        }
        ColumnData::List { items, members, .. } => {
            out.u8(COLUMN_LIST);
            out.bitmap(&column.present);
            out.strings(live_strings(items, members));
            out.u64(members.len() as u64);
            for bitmap in members {
                out.bitmap(bitmap);
            }
        }
    }
    out.bytes
}

/// Checks that every id in `bitmap` indexes into a table of `length` entries.
fn check_ids(bitmap: &RoaringBitmap, length: usize, what: &str) -> Result<(), FormatError> {
    match bitmap.max() {
        Some(max) if max as usize >= length => Err(damaged(format!(
            "{what}: id {max} beyond the {length} entries"
        ))),
        _ => Ok(()),
    }
}

/// The identity-map hashes a shard file holds (for `segd inspect`'s erased-data check).
pub fn shard_identity_hashes(bytes: &[u8]) -> Result<Vec<u128>, FormatError> {
    let container = Container::parse(bytes, FileKind::Shard)?;
    let mut map = Decoder::new(container.find(SECTION_IDENTITY_MAP)?);
    let count = map.count(16)?;
    (0..count).map(|_| map.u128()).collect()
}

pub(super) fn decode_shard(
    bytes: &[u8],
    index: usize,
    schema: &Schema,
    event_retention_ms: i64,
) -> Result<(Shard, Vec<(u128, u32)>), FormatError> {
    let container = Container::parse(bytes, FileKind::Shard)?;
    let mut shard = Shard::new(ShardId(index as u16), event_retention_ms);

    let mut meta = Decoder::new(container.find(SECTION_SHARD)?);
    let stored_index = meta.u32()?;
    if stored_index as usize != index {
        return Err(damaged(format!(
            "file holds shard {stored_index}, expected {index}"
        )));
    }
    shard.next_local = meta.u32()?;
    shard.free_ids = meta.u32s()?;
    shard.live = meta.bitmap()?;
    shard.bucket_hashes = meta.u64s()?;
    let profiles = shard.bucket_hashes.len();
    // Every per-profile table must cover every allocated id, or later lookups by id
    // would index out of bounds.
    if (shard.next_local as usize) > profiles {
        return Err(damaged("fewer profile slots than allocated ids"));
    }
    check_ids(&shard.live, shard.next_local as usize, "live profiles")?;
    if shard.free_ids.iter().any(|id| *id >= shard.next_local) {
        return Err(damaged("free id beyond the allocated ids"));
    }

    let mut identities = Decoder::new(container.find(SECTION_IDENTITIES)?);
    let user_lengths = identities.u32s()?;
    let user_bytes = identities.bytes()?;
    let anonymous_counts = identities.u32s()?;
    let anonymous_lengths = identities.u32s()?;
    let anonymous_bytes = identities.bytes()?;
    if user_lengths.len() != profiles || anonymous_counts.len() != profiles {
        return Err(damaged("identity tables do not match the profile count"));
    }
    let mut user_input = Decoder::new(user_bytes);
    let mut anonymous_input = Decoder::new(anonymous_bytes);
    let mut anonymous_lengths = anonymous_lengths.into_iter();
    shard.identities = Vec::with_capacity(profiles);
    let mut anonymous_ids = Vec::new();
    for (user_length, anonymous_count) in user_lengths.iter().zip(&anonymous_counts) {
        let user_id = match *user_length {
            u32::MAX => None,
            length => Some(identifier_text(&mut user_input, length)?),
        };
        anonymous_ids.clear();
        for _ in 0..*anonymous_count {
            let length = anonymous_lengths
                .next()
                .ok_or_else(|| damaged("anonymous id lengths run out"))?;
            anonymous_ids.push(identifier_text(&mut anonymous_input, length)?);
        }
        shard.identities.push(ProfileIdentity::from_parts(
            user_id,
            anonymous_ids.iter().copied(),
            [],
            [],
        ));
    }
    // Version 1 files predate extra identifiers and events: both start empty.
    if container.version >= 2 {
        let mut extra = Decoder::new(container.find(SECTION_IDENTITY_EXTRA)?);
        for which in 0..2 {
            let counts = extra.u32s()?;
            let lengths = extra.u32s()?;
            let bytes = extra.bytes()?;
            if counts.len() != profiles {
                return Err(damaged(
                    "extra identity table does not match the profile count",
                ));
            }
            let mut input = Decoder::new(bytes);
            let mut lengths = lengths.into_iter();
            for (identity, count) in shard.identities.iter_mut().zip(counts) {
                for _ in 0..count {
                    let length = lengths
                        .next()
                        .ok_or_else(|| damaged("extra identifier lengths run out"))?;
                    let item = identifier_text(&mut input, length)?;
                    if which == 0 {
                        identity.push_other_user_id(item);
                    } else {
                        identity.push_other_trait_key(item);
                    }
                }
            }
        }
        shard.events = decode_events(
            container.find(SECTION_EVENTS)?,
            event_retention_ms,
            profiles,
        )?;
    }

    let mut map = Decoder::new(container.find(SECTION_IDENTITY_MAP)?);
    let count = map.count(16)?;
    let hashes = (0..count)
        .map(|_| map.u128())
        .collect::<Result<Vec<_>, _>>()?;
    let locals = map.u32s()?;
    if locals.len() != hashes.len() || locals.iter().any(|local| !shard.live.contains(*local)) {
        return Err(damaged("identity map names a profile that is not live"));
    }
    let entries: Vec<(u128, u32)> = hashes.into_iter().zip(locals).collect();

    let mut membership = Decoder::new(container.find(SECTION_MEMBERSHIP)?);
    let by_segment = membership.u16s()?;
    let slot_segments = membership.u32s()?;
    let free_slots = membership.u16s()?;
    let slot_count = slot_segments.len();
    if by_segment
        .iter()
        .any(|slot| *slot != NO_SLOT && *slot as usize >= slot_count)
        || free_slots.iter().any(|slot| *slot as usize >= slot_count)
    {
        return Err(damaged("slot table names a slot that does not exist"));
    }
    shard.slots = Slots {
        by_segment,
        segments: slot_segments
            .into_iter()
            .map(|id| (id != u32::MAX).then_some(SegmentId(id)))
            .collect(),
        free: free_slots,
    };
    let words_per_profile = membership.u32()? as usize;
    let words = membership.u64s()?;
    if words_per_profile < 2 || words.len() != profiles * words_per_profile {
        return Err(damaged("membership words do not match the profile count"));
    }
    shard.profile_segments = words
        .chunks_exact(words_per_profile)
        .map(|chunk| {
            if chunk[2..].iter().all(|word| *word == 0) {
                SlotSet::Inline([chunk[0], chunk[1]])
            } else {
                SlotSet::Heap(chunk.to_vec().into_boxed_slice())
            }
        })
        .collect();
    let member_count = membership.count(12)?;
    for _ in 0..member_count {
        let id = SegmentId(membership.u32()?);
        let bitmap = membership.bitmap()?;
        check_ids(&bitmap, profiles, "segment members")?;
        shard.members.insert(id, bitmap);
    }

    let mut timers = Decoder::new(container.find(SECTION_TIMERS)?);
    let timer_locals = timers.u32s()?;
    let timer_segments = timers.u32s()?;
    let timer_dues = timers.i64s()?;
    if timer_locals.len() != timer_segments.len() || timer_locals.len() != timer_dues.len() {
        return Err(damaged("timer arrays differ in length"));
    }
    let mut queue = TimerQueue::default();
    for ((local, segment), due) in timer_locals.into_iter().zip(timer_segments).zip(timer_dues) {
        if local as usize >= profiles {
            return Err(damaged("timer names a profile beyond the shard"));
        }
        queue.schedule(LocalId(local), SegmentId(segment), Some(due));
    }
    shard.timers = queue;

    for entry in container
        .entries
        .iter()
        .filter(|entry| entry.kind == SECTION_COLUMN)
    {
        let column_id = ColumnId(entry.key);
        if column_id.0 as usize >= schema.len() {
            return Err(damaged(format!(
                "column {} is not in the schema",
                entry.key
            )));
        }
        let column = decode_column(container.section(entry), profiles)
            .map_err(|error| damaged(format!("column {}: {error}", entry.key)))?;
        if column.trait_type() != schema.info(column_id).trait_type {
            return Err(damaged(format!(
                "column {} has type {}, the schema says {}",
                entry.key,
                column.trait_type(),
                schema.info(column_id).trait_type
            )));
        }
        let slot = column_id.0 as usize;
        if shard.columns.len() <= slot {
            shard.columns.resize_with(slot + 1, || None);
        }
        shard.columns[slot] = Some(column);
    }
    Ok((shard, entries))
}

fn decode_bsi(input: &mut Decoder<'_>, profiles: usize) -> Result<BitSlicedIndex, FormatError> {
    let existence = input.bitmap()?;
    let negative = input.bitmap()?;
    let count = input.count(8)?;
    if count > 64 {
        return Err(damaged(format!("{count} index slices (at most 64)")));
    }
    let slices = (0..count)
        .map(|_| input.bitmap())
        .collect::<Result<Vec<_>, _>>()?;
    check_ids(&existence, profiles, "index")?;
    Ok(BitSlicedIndex {
        existence,
        negative,
        slices,
    })
}

/// Values, value → code lookup, members per code.
type StringTable = (Vec<Box<str>>, HashMap<Box<str>, u32>, Vec<RoaringBitmap>);

fn decode_strings_and_members(
    input: &mut Decoder<'_>,
    profiles: usize,
) -> Result<StringTable, FormatError> {
    let values: Vec<Box<str>> = input.strings()?.into_iter().map(Box::from).collect();
    let count = input.count(8)?;
    if count != values.len() {
        return Err(damaged("value and bitmap counts differ"));
    }
    let members = (0..count)
        .map(|_| input.bitmap())
        .collect::<Result<Vec<_>, _>>()?;
    let mut lookup = HashMap::with_capacity(values.len());
    for (code, (value, bitmap)) in values.iter().zip(&members).enumerate() {
        check_ids(bitmap, profiles, "value members")?;
        // Blanked values (no members, see `live_strings`) are not looked up again.
        if !bitmap.is_empty() {
            lookup.insert(value.clone(), code as u32);
        }
    }
    Ok((values, lookup, members))
}

fn decode_column(bytes: &[u8], profiles: usize) -> Result<Column, FormatError> {
    let mut input = Decoder::new(bytes);
    let tag = input.u8()?;
    let present = input.bitmap()?;
    check_ids(&present, profiles, "presence")?;
    let present_end = present.max().map_or(0, |max| max as usize + 1);
    let values_cover = |length: usize| {
        if length < present_end {
            Err(damaged("value array shorter than the present ids"))
        } else {
            Ok(())
        }
    };
    let data = match tag {
        COLUMN_DICTIONARY => {
            let codes = input.u16s()?;
            values_cover(codes.len())?;
            let (values, lookup, members) = decode_strings_and_members(&mut input, profiles)?;
            if codes
                .iter()
                .any(|code| *code != ABSENT_CODE && *code as usize >= values.len())
            {
                return Err(damaged("dictionary code beyond the dictionary"));
            }
            ColumnData::Dictionary(DictionaryStrings {
                codes,
                values,
                lookup,
                members,
            })
        }
        COLUMN_ARENA => {
            let raw_spans = input.u32s()?;
            let bytes = input.bytes()?.to_vec();
            let spans: Vec<(u32, u32)> = raw_spans
                .chunks_exact(2)
                .map(|pair| (pair[0], pair[1]))
                .collect();
            values_cover(spans.len())?;
            if spans
                .iter()
                .any(|(offset, length)| *offset as usize + *length as usize > bytes.len())
            {
                return Err(damaged("string span beyond the arena"));
            }
            ColumnData::Arena(ArenaStrings {
                spans,
                bytes,
                garbage_bytes: 0,
            })
        }
        COLUMN_INTEGER => {
            let values = input.i64s()?;
            values_cover(values.len())?;
            let index = decode_bsi(&mut input, profiles)?;
            let by_value = match input.u8()? {
                0 => None,
                1 => {
                    let count = input.count(16)?;
                    let mut map = BTreeMap::new();
                    for _ in 0..count {
                        let value = input.i64()?;
                        let bitmap = input.bitmap()?;
                        check_ids(&bitmap, profiles, "value index")?;
                        map.insert(value, bitmap);
                    }
                    Some(map)
                }
                other => return Err(damaged(format!("bad value-index flag {other}"))),
            };
            ColumnData::Integer {
                values,
                index,
                by_value,
            }
        }
        COLUMN_TIMESTAMP => {
            let values = input.i64s()?;
            values_cover(values.len())?;
            ColumnData::Timestamp {
                values,
                index: decode_bsi(&mut input, profiles)?,
            }
        }
        COLUMN_FLOAT => {
            let values = input.f64s()?;
            values_cover(values.len())?;
            ColumnData::Float {
                values,
                index: decode_bsi(&mut input, profiles)?,
            }
        }
        COLUMN_BOOLEAN => {
            let trues = input.bitmap()?;
            check_ids(&trues, profiles, "booleans")?;
            ColumnData::Boolean { trues }
        }
        COLUMN_LIST => {
            let (items, lookup, members) = decode_strings_and_members(&mut input, profiles)?;
            ColumnData::List {
                items,
                lookup,
                members,
            }
        }
        other => return Err(damaged(format!("unknown column kind {other}"))),
    };
    if !input.is_empty() {
        return Err(damaged("trailing bytes after the column"));
    }
    Ok(Column::from_parts(present, data))
}

/// One stored identifier: `length` bytes of UTF-8 from `input`.
fn identifier_text<'a>(input: &mut Decoder<'a>, length: u32) -> Result<&'a str, FormatError> {
    std::str::from_utf8(input.take(length as usize)?)
        .map_err(|_| damaged("identifier is not UTF-8"))
}
