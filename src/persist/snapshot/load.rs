//! Loading a snapshot directory into a fresh engine: the manifest, every shard file in
//! parallel, the identity map, and the segment registry recompiled from stored rules.

use super::manifest::{parse_manifest, read_manifest, type_from_code, Manifest, Metadata};
use super::shard::decode_shard;
use super::{at, io_at, shard_file_name, Advance, SnapshotError, MANIFEST_FILE};
use crate::changes::ChangeLog;
use crate::clock::Clock;
use crate::engine::{Engine, EngineOptions};
use crate::ids::{LocalId, ProfileRef, SegmentId, ShardId};
use crate::mmap::MappedFile;
use crate::segment::ast::Rule;
use crate::segment::compile::{compile, CompileContext};
use crate::segment::registry::{Registry, SegmentDefinition, SegmentKind};
use crate::store::schema::Schema;
use crate::store::shard::Shard;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// A snapshot loaded into a fresh engine.
#[derive(Debug)]
pub struct LoadedSnapshot {
    pub engine: Engine,
    pub metadata: Metadata,
    pub application_state: Vec<u8>,
    pub bytes: u64,
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
