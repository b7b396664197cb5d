//! Snapshots: a directory `snapshot-<covered LSN, 20 digits>/` holding `manifest.seg`
//! (engine-wide metadata) and one `shard-<index, 4 digits>.seg` per shard, each a
//! sectioned container (see `format`). Bulk data (value arrays, dictionary codes,
//! identifiers, bitmaps) is raw little-endian or roaring's portable format; only the
//! small metadata section of the manifest is bincode 2.
//!
//! Writing: encode (under the caller's ingest lock, so the state is exactly "every
//! record up to the covered LSN"), then write every file into `snapshot-<lsn>.tmp/`,
//! fsync each, fsync the directory, rename it into place, fsync the data directory.
//! Loading: map each file, verify every checksum, then build the in-memory structures
//! with bulk copies; every length and id read is checked before use.

use crate::changes::ChangeLog;
use crate::clock::Clock;
use crate::engine::{Engine, EngineOptions};
use crate::events::EventStore;
use crate::ids::{ColumnId, LocalId, ProfileRef, SegmentId, ShardId};
use crate::index::bsi::BitSlicedIndex;
use crate::mmap::MappedFile;
use crate::persist::format::{
    container_size, damaged, write_container, Container, Decoder, Encoder, FileKind, FormatError,
    Section,
};
use crate::segment::ast::Rule;
use crate::segment::compile::{compile, CompileContext};
use crate::segment::registry::{Registry, SegmentDefinition, SegmentKind};
use crate::store::column::{ArenaStrings, Column, ColumnData, DictionaryStrings, ABSENT_CODE};
use crate::store::membership::{SlotSet, Slots, NO_SLOT};
use crate::store::schema::Schema;
use crate::store::shard::{ProfileIdentity, Shard};
use crate::store::timers::TimerQueue;
use crate::store::value::TraitType;
use parking_lot::RwLock;
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const MANIFEST_FILE: &str = "manifest.seg";

// Manifest sections.
const SECTION_METADATA: u32 = 1;
const SECTION_SUPPRESSED: u32 = 2;
/// Format versions 1–2: the de-duplication window's message ids as strings.
const SECTION_SEEN_MESSAGES: u32 = 3;
const SECTION_APPLICATION_STATE: u32 = 4;
/// Since format version 3: the de-duplication window as message-id hashes.
const SECTION_SEEN_MESSAGE_HASHES: u32 = 5;

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

/// The directory name of the snapshot covering WAL records up to `lsn`.
pub fn snapshot_name(lsn: u64) -> String {
    format!("snapshot-{lsn:020}")
}

pub fn shard_file_name(index: usize) -> String {
    format!("shard-{index:04}.seg")
}

/// Snapshot directories in `data_dir`, by covered LSN (temporary ones excluded).
pub fn list_snapshots(data_dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let lsn = name
            .strip_prefix("snapshot-")
            .filter(|digits| digits.len() == 20)
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(lsn) = lsn {
            if entry.path().is_dir() {
                found.push((lsn, entry.path()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// A segment definition as stored (rules as their JSON AST; recompiled on load).
#[derive(Clone, Debug, PartialEq, bincode::Encode, bincode::Decode)]
pub struct StoredSegment {
    pub id: u32,
    pub name: String,
    pub description: String,
    pub version: u32,
    pub rule_json: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// The small, engine-wide part of a snapshot.
#[derive(Clone, Debug, PartialEq, bincode::Encode, bincode::Decode)]
pub struct Metadata {
    /// Every WAL record with an LSN up to this one is in the snapshot; none after.
    pub covered_lsn: u64,
    /// Change-log sequences up to here may have been handed out.
    pub reserved_sequences_until: u64,
    pub change_head: u64,
    pub shard_count: u32,
    pub written_ms: i64,
    pub profile_count: u64,
    /// (trait name, type code) by column id.
    pub columns: Vec<(String, u8)>,
    pub segments: Vec<StoredSegment>,
    pub next_segment_id: u32,
}

fn type_code(trait_type: TraitType) -> u8 {
    match trait_type {
        TraitType::String => 0,
        TraitType::Integer => 1,
        TraitType::Float => 2,
        TraitType::Boolean => 3,
        TraitType::Timestamp => 4,
        TraitType::List => 5,
    }
}

fn type_from_code(code: u8) -> Result<TraitType, FormatError> {
    Ok(match code {
        0 => TraitType::String,
        1 => TraitType::Integer,
        2 => TraitType::Float,
        3 => TraitType::Boolean,
        4 => TraitType::Timestamp,
        5 => TraitType::List,
        other => return Err(damaged(format!("unknown trait type code {other}"))),
    })
}

fn bincode_config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::NoLimit,
> {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
}

/// How many bytes of memory one byte of encoded metadata may claim while decoding: every
/// element of a container takes at least one encoded byte, and no metadata type is
/// larger than this in memory.
const METADATA_CLAIM_PER_BYTE: usize = 256;

/// Decodes the metadata section. bincode's decode limit (what lengths read from the
/// file may pre-allocate) is derived from the section's size instead of a fixed cap, so
/// any metadata a snapshot could write loads again, while a forged length still cannot
/// claim more than a fixed multiple of the file.
fn decode_metadata(bytes: &[u8]) -> Result<(Metadata, usize), bincode::error::DecodeError> {
    macro_rules! with_limit {
        ($($shift:literal),*) => {{
            let needed = bytes.len().saturating_mul(METADATA_CLAIM_PER_BYTE).max(1 << 26);
            $(
                if needed <= (1usize << $shift) {
                    return bincode::decode_from_slice(
                        bytes,
                        bincode_config().with_limit::<{ 1usize << $shift }>(),
                    );
                }
            )*
            bincode::decode_from_slice(bytes, bincode_config())
        }};
    }
    with_limit!(26, 28, 30, 32, 34, 36, 38, 40)
}

/// A snapshot encoded in memory as sections, ready to be written (headers and
/// checksums are computed while writing, outside the ingest lock).
#[derive(Debug)]
pub struct EncodedSnapshot {
    pub covered_lsn: u64,
    pub manifest: Vec<Section>,
    pub shards: Vec<Vec<Section>>,
}

impl EncodedSnapshot {
    pub fn bytes(&self) -> u64 {
        container_size(&self.manifest)
            + self
                .shards
                .iter()
                .map(|sections| container_size(sections))
                .sum::<u64>()
    }
}

/// Encodes the engine's whole state. The caller guarantees no mutation runs meanwhile
/// (the database's ingest lock), so the result is exactly the state at `covered_lsn`.
pub fn encode_snapshot(
    engine: &Engine,
    covered_lsn: u64,
    reserved_sequences_until: u64,
    application_state: &[u8],
) -> EncodedSnapshot {
    use rayon::prelude::*;
    let schema = engine.schema.read().clone();
    let registry = engine.registry.read();
    let segments = registry
        .all()
        .map(|definition| StoredSegment {
            id: definition.id.0,
            name: definition.name.clone(),
            description: definition.description.clone(),
            version: definition.version,
            rule_json: definition
                .rule()
                .map(|rule| serde_json::to_string(rule).unwrap_or_default()),
            created_ms: definition.created_ms,
            updated_ms: definition.updated_ms,
        })
        .collect();
    let next_segment_id = registry.next_id;
    drop(registry);
    let shard_count = engine.shards.len();
    // The identity map is global; each shard file keeps the entries naming its profiles.
    let mut identity_entries: Vec<Vec<(u128, u32)>> = vec![Vec::new(); shard_count];
    for entry in engine.identities.iter() {
        let profile = *entry.value();
        if let Some(list) = identity_entries.get_mut(profile.shard.0 as usize) {
            list.push((*entry.key(), profile.local.0));
        }
    }
    let progress = crate::progress::phase(
        "encoding snapshot shards",
        Some(shard_count as u64),
        crate::progress::Unit::Items,
    );
    let shards: Vec<Vec<Section>> = engine
        .shards
        .par_iter()
        .zip(identity_entries.par_iter())
        .map(|(shard, entries)| {
            let _advance = Advance(&progress);
            encode_shard(&shard.read(), entries)
        })
        .collect();
    drop(progress);
    let metadata = Metadata {
        covered_lsn,
        reserved_sequences_until: reserved_sequences_until.max(engine.changes.head()),
        change_head: engine.changes.head(),
        shard_count: shard_count as u32,
        written_ms: engine.now_ms(),
        profile_count: engine.profile_count(),
        columns: schema
            .columns()
            .map(|(_, info)| (info.name.clone(), type_code(info.trait_type)))
            .collect(),
        segments,
        next_segment_id,
    };
    let metadata_bytes = bincode::encode_to_vec(&metadata, bincode_config()).unwrap_or_default();
    let mut suppressed = Encoder::new();
    let keys = engine.suppressed_keys();
    suppressed.u64(keys.len() as u64);
    for key in keys {
        suppressed.u128(key);
    }
    let mut seen = Encoder::new();
    {
        let seen_messages = engine.seen_messages.lock();
        seen.u64(seen_messages.1.len() as u64);
        for hash in &seen_messages.1 {
            seen.u128(*hash);
        }
    }
    let mut application = Encoder::new();
    application.bytes(application_state);
    let manifest = vec![
        Section {
            kind: SECTION_METADATA,
            key: 0,
            bytes: metadata_bytes,
        },
        Section {
            kind: SECTION_SUPPRESSED,
            key: 0,
            bytes: suppressed.bytes,
        },
        Section {
            kind: SECTION_SEEN_MESSAGE_HASHES,
            key: 0,
            bytes: seen.bytes,
        },
        Section {
            kind: SECTION_APPLICATION_STATE,
            key: 0,
            bytes: application.bytes,
        },
    ];
    EncodedSnapshot {
        covered_lsn,
        manifest,
        shards,
    }
}

fn encode_shard(shard: &Shard, identity_entries: &[(u128, u32)]) -> Vec<Section> {
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
        match &identity.user_id {
            Some(id) => {
                user_lengths.push(id.len() as u32);
                user_bytes.extend_from_slice(id.as_bytes());
            }
            None => user_lengths.push(u32::MAX),
        }
        anonymous_counts.push(identity.anonymous_ids.len() as u32);
        for id in &identity.anonymous_ids {
            anonymous_lengths.push(id.len() as u32);
            anonymous_bytes.extend_from_slice(id.as_bytes());
        }
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
    for list in [
        |identity: &ProfileIdentity| identity.other_user_ids.clone(),
        |identity: &ProfileIdentity| identity.other_trait_keys.clone(),
    ] {
        let mut counts = Vec::with_capacity(shard.identities.len());
        let mut lengths = Vec::new();
        let mut bytes = Vec::new();
        for identity in &shard.identities {
            let items = list(identity);
            counts.push(items.len() as u32);
            for item in &items {
                lengths.push(item.len() as u32);
                bytes.extend_from_slice(item.as_bytes());
            }
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

/// Advances a progress phase by one when a shard's work ends (also on an early return).
struct Advance<'a>(&'a crate::progress::Phase);

impl Drop for Advance<'_> {
    fn drop(&mut self) {
        self.0.inc(1);
    }
}

/// Writes an encoded snapshot durably; returns its directory. A crash at any point
/// leaves either no `snapshot-<lsn>` directory (only a `.tmp` one, removed at the next
/// start) or a complete one. Failpoints (tests) sit after each fsync and rename.
pub fn write_snapshot(data_dir: &Path, encoded: &EncodedSnapshot) -> std::io::Result<PathBuf> {
    use crate::persist::failpoint;
    let final_path = data_dir.join(snapshot_name(encoded.covered_lsn));
    let temporary = data_dir.join(format!("{}.tmp", snapshot_name(encoded.covered_lsn)));
    if temporary.exists() {
        std::fs::remove_dir_all(&temporary)?;
    }
    crate::persist::files::create_private_dir_all(&temporary)?;
    let write = |name: &str, kind: FileKind, sections: &[Section]| -> std::io::Result<()> {
        let mut file = std::io::BufWriter::with_capacity(
            1 << 20,
            crate::persist::files::create_private_file(&temporary.join(name))?,
        );
        write_container(&mut file, kind, sections)?;
        file.into_inner()
            .map_err(|error| error.into_error())?
            .sync_all()
    };
    let progress = crate::progress::phase(
        "writing snapshot shards",
        Some(encoded.shards.len() as u64),
        crate::progress::Unit::Items,
    );
    for (index, sections) in encoded.shards.iter().enumerate() {
        write(&shard_file_name(index), FileKind::Shard, sections)?;
        progress.inc(1);
        failpoint("snapshot_after_shard_sync")?;
    }
    drop(progress);
    // The manifest last: a directory without it is never taken for a snapshot.
    write(MANIFEST_FILE, FileKind::Manifest, &encoded.manifest)?;
    failpoint("snapshot_after_manifest_sync")?;
    crate::persist::wal::sync_directory(&temporary)?;
    failpoint("snapshot_before_rename")?;
    if final_path.exists() {
        // A directory of this LSN that recovery did not use (the database skips
        // snapshots of an unchanged state): set it aside rather than delete it before
        // the new one is in place; the next clean-up after an erasure removes it.
        let aside = final_path.with_extension("damaged");
        if aside.exists() {
            std::fs::remove_dir_all(&aside)?;
        }
        std::fs::rename(&final_path, aside)?;
        failpoint("snapshot_after_set_aside")?;
    }
    std::fs::rename(&temporary, &final_path)?;
    failpoint("snapshot_before_directory_sync")?;
    crate::persist::wal::sync_directory(data_dir)?;
    Ok(final_path)
}

/// A snapshot loaded into a fresh engine.
#[derive(Debug)]
pub struct LoadedSnapshot {
    pub engine: Engine,
    pub metadata: Metadata,
    pub application_state: Vec<u8>,
    pub bytes: u64,
}

/// Where in a snapshot something was wrong.
#[derive(Debug)]
pub struct SnapshotError {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for SnapshotError {}

fn at(path: &Path) -> impl Fn(FormatError) -> SnapshotError + '_ {
    move |error| SnapshotError {
        path: path.to_path_buf(),
        reason: error.0,
    }
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> SnapshotError + '_ {
    move |error| SnapshotError {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

/// A manifest's contents.
#[derive(Debug)]
pub struct Manifest {
    pub metadata: Metadata,
    /// Hashes of suppressed identity keys.
    pub suppressed: Vec<u128>,
    /// Hashes of recently seen message ids (`engine::message_hash`), oldest first.
    pub seen_messages: Vec<u128>,
    pub application_state: Vec<u8>,
    /// Size of the manifest file.
    pub bytes: u64,
}

/// Reads and verifies a manifest.
pub fn read_manifest(path: &Path) -> Result<Manifest, SnapshotError> {
    let mapped = MappedFile::open(path).map_err(io_at(path))?;
    parse_manifest(mapped.bytes(), path)
}

/// Decodes snapshot file bytes the way loading does — as a manifest, and as shard 0
/// under the manifest's schema when `manifest` is given (else an empty one) — for the
/// fuzz targets and their bounded run in the test suite. Never panics.
pub fn decode_untrusted(bytes: &[u8], manifest: Option<&[u8]>) -> Result<(), String> {
    let path = Path::new("(fuzz input)");
    let mut schema = Schema::default();
    if let Some(manifest) = manifest {
        let parsed = parse_manifest(manifest, path).map_err(|error| error.to_string())?;
        for (name, code) in &parsed.metadata.columns {
            if schema.lookup(name).is_none() {
                schema.add(name, type_from_code(*code).map_err(|error| error.0)?);
            }
        }
    }
    let manifest = parse_manifest(bytes, path)
        .map(drop)
        .map_err(|error| error.to_string());
    let shard = decode_shard(bytes, 0, &schema, 86_400_000)
        .map(drop)
        .map_err(|error| error.0);
    manifest.or(shard)
}

fn parse_manifest(bytes: &[u8], path: &Path) -> Result<Manifest, SnapshotError> {
    let container = Container::parse(bytes, FileKind::Manifest).map_err(at(path))?;
    let metadata_bytes = container.find(SECTION_METADATA).map_err(at(path))?;
    let (metadata, used): (Metadata, usize) =
        decode_metadata(metadata_bytes).map_err(|error| SnapshotError {
            path: path.to_path_buf(),
            reason: format!("metadata: {error}"),
        })?;
    if used != metadata_bytes.len() {
        return Err(at(path)(damaged("trailing bytes after the metadata")));
    }
    let mut suppressed_input = Decoder::new(container.find(SECTION_SUPPRESSED).map_err(at(path))?);
    let count = suppressed_input.count(16).map_err(at(path))?;
    let suppressed = (0..count)
        .map(|_| suppressed_input.u128())
        .collect::<Result<Vec<_>, _>>()
        .map_err(at(path))?;
    let seen = if container.version >= 3 {
        let mut input = Decoder::new(
            container
                .find(SECTION_SEEN_MESSAGE_HASHES)
                .map_err(at(path))?,
        );
        let count = input.count(16).map_err(at(path))?;
        (0..count)
            .map(|_| input.u128())
            .collect::<Result<Vec<_>, _>>()
            .map_err(at(path))?
    } else {
        let mut input = Decoder::new(container.find(SECTION_SEEN_MESSAGES).map_err(at(path))?);
        input
            .strings()
            .map_err(at(path))?
            .into_iter()
            .map(crate::engine::message_hash)
            .collect()
    };
    let mut application_input = Decoder::new(
        container
            .find(SECTION_APPLICATION_STATE)
            .map_err(at(path))?,
    );
    let application = application_input.bytes().map_err(at(path))?.to_vec();
    Ok(Manifest {
        metadata,
        suppressed,
        seen_messages: seen,
        application_state: application,
        bytes: bytes.len() as u64,
    })
}

/// Loads the snapshot in `directory` into a new engine. The shard count comes from the
/// snapshot (profiles are placed by hash modulo the count), not from `options`.
pub fn load_snapshot(
    directory: &Path,
    options: &EngineOptions,
    clock: Arc<dyn Clock>,
) -> Result<LoadedSnapshot, SnapshotError> {
    use rayon::prelude::*;
    let manifest_path = directory.join(MANIFEST_FILE);
    let Manifest {
        metadata,
        suppressed,
        seen_messages: seen,
        application_state,
        bytes: manifest_bytes,
    } = read_manifest(&manifest_path)?;
    let fail = |reason: String| SnapshotError {
        path: manifest_path.clone(),
        reason,
    };
    if metadata.shard_count == 0 || metadata.shard_count > 1024 {
        return Err(fail(format!("bad shard count {}", metadata.shard_count)));
    }
    let mut schema = Schema::default();
    for (name, code) in &metadata.columns {
        if schema.lookup(name).is_some() {
            return Err(fail(format!("trait `{name}` listed twice")));
        }
        schema.add(name, type_from_code(*code).map_err(|e| fail(e.0))?);
    }
    let registry = rebuild_registry(&metadata, &schema, options).map_err(fail)?;
    let shard_count = metadata.shard_count as usize;
    let mut engine_options = options.clone();
    engine_options.shards = shard_count;
    let mut engine = Engine::with_clock(engine_options, clock);
    // Sized up front (userId, anonymousId and identity traits per profile): growing a
    // table of millions of keys step by step rehashes it over and over.
    let keys_per_profile = 2 + options.identity_traits.len();
    engine.identities = dashmap::DashMap::with_capacity(
        (metadata.profile_count as usize).saturating_mul(keys_per_profile),
    );
    type DecodedShard = (Shard, Vec<(u128, u32)>, u64);
    let progress = crate::progress::phase(
        "loading snapshot shards",
        Some(shard_count as u64),
        crate::progress::Unit::Items,
    );
    let decoded: Vec<Result<DecodedShard, SnapshotError>> = (0..shard_count)
        .into_par_iter()
        .map(|index| {
            let _advance = Advance(&progress);
            let path = directory.join(shard_file_name(index));
            let mapped = MappedFile::open(&path).map_err(io_at(&path))?;
            let size = mapped.bytes().len() as u64;
            let (shard, entries) =
                decode_shard(mapped.bytes(), index, &schema, options.event_retention_ms)
                    .map_err(at(&path))?;
            Ok((shard, entries, size))
        })
        .collect();
    let mut shards = Vec::with_capacity(shard_count);
    let mut total_bytes = manifest_bytes;
    for (index, result) in decoded.into_iter().enumerate() {
        let (shard, entries, size) = result?;
        total_bytes += size;
        // One thread inserts: two threads contending for the map's spin locks on a
        // busy two-core machine made this step twice as slow.
        for (hash, local) in entries {
            engine.identities.insert(
                hash,
                ProfileRef {
                    shard: ShardId(index as u16),
                    local: LocalId(local),
                },
            );
        }
        shards.push(RwLock::new(shard));
    }
    engine.shards = shards;
    *engine.schema.write() = schema;
    *engine.registry.write() = registry;
    for key in suppressed {
        engine.suppressed.insert(key);
    }
    {
        let mut seen_messages = engine.seen_messages.lock();
        for hash in seen {
            if seen_messages.0.insert(hash) {
                seen_messages.1.push_back(hash);
            }
        }
    }
    engine.changes = ChangeLog::new(
        options.change_log,
        metadata
            .reserved_sequences_until
            .max(metadata.change_head)
            .saturating_add(1),
    );
    Ok(LoadedSnapshot {
        engine,
        metadata,
        application_state,
        bytes: total_bytes,
    })
}

/// Recompiles the stored rules against the loaded schema (names resolved through the
/// stored segments, so order does not matter).
fn rebuild_registry(
    metadata: &Metadata,
    schema: &Schema,
    options: &EngineOptions,
) -> Result<Registry, String> {
    let by_name: HashMap<&str, SegmentId> = metadata
        .segments
        .iter()
        .map(|segment| (segment.name.as_str(), SegmentId(segment.id)))
        .collect();
    let mut registry = Registry::default();
    for stored in &metadata.segments {
        let kind = match &stored.rule_json {
            None => SegmentKind::Static,
            Some(json) => {
                let rule: Rule = serde_json::from_str(json)
                    .map_err(|error| format!("segment `{}`: rule: {error}", stored.name))?;
                let lookup = |name: &str| by_name.get(name).copied();
                let context = CompileContext {
                    schema,
                    segment_lookup: &lookup,
                    segment_name: Some(&stored.name),
                    event_retention_ms: options.event_retention_ms,
                };
                let condition = compile(&rule, &context)
                    .map_err(|error| format!("segment `{}`: {error}", stored.name))?;
                SegmentKind::Dynamic {
                    rule: Box::new(rule),
                    condition: Box::new(condition),
                }
            }
        };
        registry.put(SegmentDefinition {
            id: SegmentId(stored.id),
            name: stored.name.clone(),
            description: stored.description.clone(),
            version: stored.version,
            kind,
            created_ms: stored.created_ms,
            updated_ms: stored.updated_ms,
        });
    }
    registry.next_id = registry.next_id.max(metadata.next_segment_id);
    Ok(registry)
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

fn decode_shard(
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
    let text = |input: &mut Decoder<'_>, length: u32| -> Result<Box<str>, FormatError> {
        let raw = input.take(length as usize)?;
        std::str::from_utf8(raw)
            .map(Box::from)
            .map_err(|_| damaged("identifier is not UTF-8"))
    };
    shard.identities = Vec::with_capacity(profiles);
    for (user_length, anonymous_count) in user_lengths.iter().zip(&anonymous_counts) {
        let user_id = match *user_length {
            u32::MAX => None,
            length => Some(text(&mut user_input, length)?),
        };
        let mut anonymous_ids = Vec::with_capacity((*anonymous_count as usize).min(64));
        for _ in 0..*anonymous_count {
            let length = anonymous_lengths
                .next()
                .ok_or_else(|| damaged("anonymous id lengths run out"))?;
            anonymous_ids.push(text(&mut anonymous_input, length)?);
        }
        shard.identities.push(ProfileIdentity {
            user_id,
            anonymous_ids,
            ..ProfileIdentity::default()
        });
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
                    let item = text(&mut input, length)?;
                    if which == 0 {
                        identity.other_user_ids.push(item);
                    } else {
                        identity.other_trait_keys.push(item);
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
    Ok(Column { present, data })
}

/// The event store as bulk arrays: names, per-profile counts, then every profile's
/// events, property arenas and lifetime aggregates concatenated in profile order.
fn encode_events(store: &EventStore) -> Vec<u8> {
    let mut out = Encoder::new();
    for names in [&store.name_list, &store.property_list] {
        out.u32s(
            &names
                .iter()
                .map(|name| name.len() as u32)
                .collect::<Vec<_>>(),
        );
        out.bytes(
            &names
                .iter()
                .flat_map(|name| name.bytes())
                .collect::<Vec<_>>(),
        );
    }
    let mut event_counts = Vec::with_capacity(store.profiles.len());
    let mut lifetime_counts = Vec::with_capacity(store.profiles.len());
    let mut arena_lengths = Vec::with_capacity(store.profiles.len());
    let (mut times, mut names, mut starts, mut lengths) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut arenas = Vec::new();
    let (mut lifetime_names, mut counts, mut firsts, mut lasts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for profile in &store.profiles {
        let Some(profile) = profile else {
            event_counts.push(u32::MAX);
            lifetime_counts.push(0);
            arena_lengths.push(0);
            continue;
        };
        event_counts.push(profile.events.len() as u32);
        lifetime_counts.push(profile.lifetime.len() as u32);
        arena_lengths.push(profile.properties.len() as u32);
        for event in &profile.events {
            times.push(event.time_ms);
            names.push(event.name.0);
            starts.push(event.properties_start);
            lengths.push(event.properties_len);
        }
        arenas.extend_from_slice(&profile.properties);
        for (name, lifetime) in &profile.lifetime {
            lifetime_names.push(name.0);
            counts.push(lifetime.count);
            firsts.push(lifetime.first_ms);
            lasts.push(lifetime.last_ms);
        }
    }
    out.u32s(&event_counts);
    out.u32s(&lifetime_counts);
    out.u32s(&arena_lengths);
    out.i64s(&times);
    out.u32s(&names);
    out.u32s(&starts);
    out.u32s(&lengths);
    out.bytes(&arenas);
    out.u32s(&lifetime_names);
    out.u64s(&counts);
    out.i64s(&firsts);
    out.i64s(&lasts);
    out.bytes
}

fn decode_events(
    bytes: &[u8],
    retention_ms: i64,
    profiles: usize,
) -> Result<EventStore, FormatError> {
    let mut input = Decoder::new(bytes);
    let mut name_tables = Vec::with_capacity(2);
    for _ in 0..2 {
        let lengths = input.u32s()?;
        let mut text = Decoder::new(input.bytes()?);
        let mut names = Vec::with_capacity(lengths.len());
        for length in lengths {
            let raw = text.take(length as usize)?;
            let name = std::str::from_utf8(raw).map_err(|_| damaged("event name is not UTF-8"))?;
            names.push(Box::<str>::from(name));
        }
        name_tables.push(names);
    }
    let event_counts = input.u32s()?;
    let lifetime_counts = input.u32s()?;
    let arena_lengths = input.u32s()?;
    let times = input.i64s()?;
    let names = input.u32s()?;
    let starts = input.u32s()?;
    let lengths = input.u32s()?;
    let mut arenas = Decoder::new(input.bytes()?);
    let lifetime_names = input.u32s()?;
    let counts = input.u64s()?;
    let firsts = input.i64s()?;
    let lasts = input.i64s()?;
    // The per-profile tables must cover at most the shard's profiles, and the flat
    // arrays must be exactly as long as the counts say, before anything is indexed.
    if event_counts.len() > profiles
        || lifetime_counts.len() != event_counts.len()
        || arena_lengths.len() != event_counts.len()
    {
        return Err(damaged("event tables do not match the profile count"));
    }
    let total_events: u64 = event_counts
        .iter()
        .filter(|c| **c != u32::MAX)
        .map(|c| u64::from(*c))
        .sum();
    let total_lifetimes: u64 = lifetime_counts.iter().map(|c| u64::from(*c)).sum();
    if [times.len(), names.len(), starts.len(), lengths.len()]
        .iter()
        .any(|l| *l as u64 != total_events)
        || [
            lifetime_names.len(),
            counts.len(),
            firsts.len(),
            lasts.len(),
        ]
        .iter()
        .any(|l| *l as u64 != total_lifetimes)
    {
        return Err(damaged("event arrays do not match their counts"));
    }
    let mut profile_table = Vec::with_capacity(event_counts.len());
    let (mut next_event, mut next_lifetime) = (0usize, 0usize);
    for ((event_count, lifetime_count), arena_length) in event_counts
        .iter()
        .zip(&lifetime_counts)
        .zip(&arena_lengths)
    {
        if *event_count == u32::MAX {
            profile_table.push(None);
            continue;
        }
        let mut profile = crate::events::ProfileEvents::default();
        for index in next_event..next_event + *event_count as usize {
            profile.events.push(crate::events::StoredEvent {
                time_ms: times[index],
                name: crate::events::EventNameId(names[index]),
                properties_start: starts[index],
                properties_len: lengths[index],
            });
        }
        next_event += *event_count as usize;
        profile.properties = arenas.take(*arena_length as usize)?.to_vec();
        for index in next_lifetime..next_lifetime + *lifetime_count as usize {
            profile.lifetime.push((
                crate::events::EventNameId(lifetime_names[index]),
                crate::events::Lifetime {
                    count: counts[index],
                    first_ms: firsts[index],
                    last_ms: lasts[index],
                },
            ));
        }
        next_lifetime += *lifetime_count as usize;
        profile_table.push(Some(Box::new(profile)));
    }
    let mut name_tables = name_tables.into_iter();
    let event_names = name_tables.next().unwrap_or_default();
    let property_names = name_tables.next().unwrap_or_default();
    EventStore::from_parts(retention_ms, event_names, property_names, profile_table)
        .map_err(damaged)
}

#[cfg(test)]
mod tests {
    //! Metadata decoding: no fixed size cap that valid state can exceed, and forged
    //! lengths fail cleanly.
    use super::*;

    fn metadata_with_description(bytes: usize) -> Metadata {
        Metadata {
            covered_lsn: 7,
            reserved_sequences_until: 9,
            change_head: 3,
            shard_count: 2,
            written_ms: 1,
            profile_count: 0,
            columns: vec![("plan".into(), 0)],
            segments: vec![StoredSegment {
                id: 0,
                name: "big".into(),
                description: "d".repeat(bytes),
                version: 1,
                rule_json: None,
                created_ms: 1,
                updated_ms: 1,
            }],
            next_segment_id: 1,
        }
    }

    #[test]
    fn metadata_larger_than_64_mib_decodes() {
        let metadata = metadata_with_description(70 << 20);
        let encoded = bincode::encode_to_vec(&metadata, bincode_config()).unwrap();
        let (decoded, used) = decode_metadata(&encoded).unwrap();
        assert_eq!(used, encoded.len());
        assert_eq!(decoded, metadata);
    }

    #[test]
    fn forged_lengths_fail_without_allocating() {
        let metadata = metadata_with_description(10);
        let mut encoded = bincode::encode_to_vec(&metadata, bincode_config()).unwrap();
        // The column list's length (fixed u64 after six fixed fields) set to 2^60.
        let at = 8 + 8 + 8 + 4 + 8 + 8;
        encoded[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(decode_metadata(&encoded).is_err());
    }
}
