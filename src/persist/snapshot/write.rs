//! Writing a snapshot: encoding the engine's state into sections under the caller's
//! ingest lock, then writing every file into a temporary directory, fsyncing and
//! renaming it into place.

use super::manifest::{manifest_sections, type_code, Metadata, StoredSegment};
use super::shard::encode_shard;
use super::{shard_file_name, snapshot_name, Advance, MANIFEST_FILE};
use crate::engine::Engine;
use crate::persist::format::{container_size, write_container, FileKind, Section};
use std::path::{Path, PathBuf};

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
    let manifest = manifest_sections(engine, &metadata, application_state);
    EncodedSnapshot {
        covered_lsn,
        manifest,
        shards,
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
