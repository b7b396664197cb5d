//! `segd inspect`'s erased-data check: which files still hold data of an erased
//! identifier, found by the identity hashes snapshots store for suppression (and the
//! identifiers of logged erasures), so the check needs no plaintext copy of them.

use crate::engine::{identity_hash, identity_key_for_external, Mutation};
use crate::ingest::MessageKind;
use crate::persist::record::WalRecord;
use crate::persist::snapshot::{read_manifest, shard_identity_hashes, MANIFEST_FILE};
use crate::persist::wal::scan_segment;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Hashes of every erased identity key known from `snapshots` (their suppression lists)
/// and from erase records in `wal_files`.
pub fn erased_hashes(snapshots: &[PathBuf], wal_files: &[PathBuf]) -> HashSet<u128> {
    let mut erased = HashSet::new();
    for snapshot in snapshots {
        if let Ok(manifest) = read_manifest(&snapshot.join(MANIFEST_FILE)) {
            erased.extend(manifest.suppressed);
        }
    }
    for path in wal_files {
        for_each_record(path, |record| {
            if let WalRecord::Mutation {
                mutation: Mutation::EraseProfile { external_id },
                ..
            } = record
            {
                erased.insert(identity_hash(&identity_key_for_external(external_id)));
            }
        });
    }
    erased
}

fn for_each_record(path: &Path, mut visit: impl FnMut(&WalRecord)) {
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    for batch in scan_segment(&bytes).batches {
        for item in batch.items {
            if let Ok(record) = WalRecord::decode(item) {
                visit(&record);
            }
        }
    }
}

/// Identity-trait keys (`t:<dotted name>:<text>`) a message's traits could create.
fn trait_keys(prefix: &str, traits: &Map<String, Value>, out: &mut Vec<String>) {
    for (name, value) in traits {
        let dotted = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            Value::String(text) => out.push(format!("t:{dotted}:{text}")),
            Value::Object(inner) => trait_keys(&dotted, inner, out),
            _ => {}
        }
    }
}

/// Identity keys a WAL record names.
fn record_keys(record: &WalRecord) -> Vec<String> {
    let mut keys = Vec::new();
    let WalRecord::Mutation { mutation, .. } = record else {
        return keys;
    };
    match mutation {
        Mutation::Messages(messages) => {
            for message in messages {
                keys.extend(message.user_id.iter().map(|id| format!("u:{id}")));
                keys.extend(message.anonymous_id.iter().map(|id| format!("a:{id}")));
                match &message.kind {
                    MessageKind::Alias { previous_id } => keys.push(format!("u:{previous_id}")),
                    MessageKind::Identify { traits } => trait_keys("", traits, &mut keys),
                    MessageKind::Track { .. } => {}
                }
            }
        }
        Mutation::EraseProfile { external_id } | Mutation::DeleteProfile { external_id } => {
            keys.push(identity_key_for_external(external_id));
        }
        Mutation::EditStatic { profiles, .. } => {
            keys.extend(profiles.iter().map(|id| identity_key_for_external(id)));
        }
        _ => {}
    }
    keys
}

/// How many erased identity keys a WAL file (live or quarantined) names.
pub fn wal_file_hits(path: &Path, erased: &HashSet<u128>) -> usize {
    let mut hits = HashSet::new();
    for_each_record(path, |record| {
        for key in record_keys(record) {
            let hash = identity_hash(&key);
            if erased.contains(&hash) {
                hits.insert(hash);
            }
        }
    });
    hits.len()
}

/// Shard files of a snapshot directory whose identity map holds an erased key, with the
/// number of such keys.
pub fn snapshot_hits(directory: &Path, erased: &HashSet<u128>) -> Vec<(PathBuf, usize)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(directory) else {
        return found;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.file_name().is_some_and(|name| name != MANIFEST_FILE))
        .collect();
    paths.sort();
    for path in paths {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if let Ok(hashes) = shard_identity_hashes(&bytes) {
            let hits = hashes.iter().filter(|hash| erased.contains(hash)).count();
            if hits > 0 {
                found.push((path, hits));
            }
        }
    }
    found
}
