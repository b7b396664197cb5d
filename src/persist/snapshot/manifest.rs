//! The manifest file: engine-wide metadata (bincode 2), suppressed identity keys, the
//! de-duplication window and the application's state, one section each.

use super::{at, io_at, SnapshotError};
use crate::engine::Engine;
use crate::mmap::MappedFile;
use crate::persist::format::{
    damaged, Container, Decoder, Encoder, FileKind, FormatError, Section,
};
use crate::store::value::TraitType;
use std::path::Path;

// Manifest sections.
const SECTION_METADATA: u32 = 1;
const SECTION_SUPPRESSED: u32 = 2;
/// Format versions 1–2: the de-duplication window's message ids as strings.
const SECTION_SEEN_MESSAGES: u32 = 3;
const SECTION_APPLICATION_STATE: u32 = 4;
/// Since format version 3: the de-duplication window as message-id hashes.
const SECTION_SEEN_MESSAGE_HASHES: u32 = 5;

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

pub(super) fn type_code(trait_type: TraitType) -> u8 {
    match trait_type {
        TraitType::String => 0,
        TraitType::Integer => 1,
        TraitType::Float => 2,
        TraitType::Boolean => 3,
        TraitType::Timestamp => 4,
        TraitType::List => 5,
    }
}

pub(super) fn type_from_code(code: u8) -> Result<TraitType, FormatError> {
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

pub(super) fn bincode_config() -> bincode::config::Configuration<
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

/// The manifest's sections for `metadata` and the engine's suppressed keys and
/// de-duplication window (under the caller's ingest lock, like the shards).
pub(super) fn manifest_sections(
    engine: &Engine,
    metadata: &Metadata,
    application_state: &[u8],
) -> Vec<Section> {
    let metadata_bytes = bincode::encode_to_vec(metadata, bincode_config()).unwrap_or_default();
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
    vec![
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
    ]
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

pub(super) fn parse_manifest(bytes: &[u8], path: &Path) -> Result<Manifest, SnapshotError> {
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
