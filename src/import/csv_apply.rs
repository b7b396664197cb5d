//! Stage 3: writing parsed rows into their shards, one thread per shard; rows naming
//! existing profiles take the ordinary `identify` path afterwards, in file order.

use super::csv_parse::{Cell, CsvLayout, ParsedRow};
use super::{reject, ImportSummary};
use crate::engine::{identity_hash, Engine};
use crate::ids::{ColumnId, ProfileRef, ShardId};
use crate::store::shard::ProfileIdentity;
use crate::store::value::{TraitType, TraitValue};
use serde_json::Value;
use std::borrow::Cow;

/// Rows that need the ordinary `identify` path (existing profiles, merges).
pub(super) struct Deferred<'a> {
    pub(super) row: ParsedRow<'a>,
}

/// What writing one shard did.
pub(super) struct ShardOutcome<'a> {
    pub(super) created: u64,
    pub(super) suppressed: u64,
    pub(super) deferred: Vec<Deferred<'a>>,
}

/// Writes new profiles of one shard straight into its columns; returns how many were
/// created and the rows that need the ordinary path.
pub(super) fn apply_shard<'a>(
    engine: &Engine,
    layout: &CsvLayout,
    shard_index: usize,
    // The shard's rows from each piece, in file order (not concatenated: no copy).
    row_groups: Vec<Vec<ParsedRow<'a>>>,
    trait_columns: &[(ColumnId, TraitType)],
) -> ShardOutcome<'a> {
    let total_rows: usize = row_groups.iter().map(Vec::len).sum();
    let mut outcome = ShardOutcome {
        created: 0,
        suppressed: 0,
        deferred: Vec::new(),
    };
    let mut shard = engine.shards[shard_index].write();
    let mut buffer = String::new();
    let mut hashes: Vec<u128> = Vec::with_capacity(4);
    // New profiles' values, column by column: each column is then written in one pass
    // per bitmap (`Column::extend_fresh`) instead of one bitmap insert per value.
    let mut batches: Vec<Vec<(u32, TraitValue)>> = trait_columns
        .iter()
        .map(|(_, stored)| match stored {
            TraitType::String => Vec::new(),
            _ => Vec::with_capacity(total_rows),
        })
        .collect();
    let mut text_batches: Vec<Vec<(u32, Cow<'a, str>)>> = trait_columns
        .iter()
        .map(|(_, stored)| match stored {
            TraitType::String => Vec::with_capacity(total_rows),
            _ => Vec::new(),
        })
        .collect();
    let check_suppressed = !engine.suppressed.is_empty();
    for mut row in row_groups.into_iter().flatten() {
        hashes.clear();
        let mut suppressed = false;
        let mut bucket_hash = None;
        row.for_each_key(layout, &mut buffer, |key| {
            let hash = identity_hash(key);
            suppressed |= check_suppressed && engine.suppressed.contains(&hash);
            bucket_hash.get_or_insert_with(|| xxhash_rust::xxh3::xxh3_64(key.as_bytes()));
            hashes.push(hash);
        });
        if suppressed {
            outcome.suppressed += 1;
            continue;
        }
        if hashes
            .iter()
            .any(|hash| engine.identities.contains_key(hash))
        {
            outcome.deferred.push(Deferred { row });
            continue;
        }
        let local = shard.allocate(bucket_hash.unwrap_or_default());
        let profile = ProfileRef {
            shard: ShardId(shard_index as u16),
            local,
        };
        // Another shard's thread may have claimed a secondary key (a shared
        // anonymousId) meanwhile: the ordinary path merges those afterwards.
        let mut claimed_elsewhere = false;
        for hash in &hashes {
            let owner = *engine.identities.entry(*hash).or_insert(profile);
            claimed_elsewhere |= owner != profile;
        }
        let identity = &mut shard.identities[local.0 as usize];
        *identity = ProfileIdentity::from_parts(
            row.user_id.as_deref(),
            row.anonymous_id.as_deref(),
            [],
            [],
        );
        for (position, cell) in std::mem::take(&mut row.values) {
            match cell {
                Cell::Text(text) => text_batches[usize::from(position)].push((local.0, text)),
                Cell::Value(value) => batches[usize::from(position)].push((local.0, value)),
            }
        }
        outcome.created += 1;
        if claimed_elsewhere {
            outcome.deferred.push(Deferred { row });
        }
    }
    // Reused (freed) local ids can arrive out of order: batches are sorted first.
    for ((column, stored), (mut batch, texts)) in trait_columns
        .iter()
        .zip(batches.into_iter().zip(text_batches))
    {
        if !texts.is_empty() {
            let mut texts: Vec<(u32, &str)> = texts
                .iter()
                .map(|(id, text)| (*id, text.as_ref()))
                .collect();
            if !texts.is_sorted_by_key(|(id, _)| *id) {
                texts.sort_unstable_by_key(|(id, _)| *id);
            }
            shard
                .column_mut(*column, *stored)
                .extend_fresh_strings(&texts);
        }
        if !batch.is_empty() {
            if !batch.is_sorted_by_key(|(id, _)| *id) {
                batch.sort_unstable_by_key(|(id, _)| *id);
            }
            shard.column_mut(*column, *stored).extend_fresh(&batch);
        }
    }
    outcome
}

/// Applies deferred rows through the ordinary path, in file order.
pub(super) fn apply_deferred(
    engine: &Engine,
    layout: &CsvLayout,
    mut deferred: Vec<Deferred<'_>>,
    summary: &mut ImportSummary,
) {
    deferred.sort_by_key(|entry| entry.row.line);
    let names: Vec<&str> = layout.traits().map(|(name, ..)| name).collect();
    for Deferred { row } in deferred {
        let traits: serde_json::Map<String, Value> = row
            .values
            .iter()
            .map(|(position, value)| (names[usize::from(*position)].to_string(), value.to_json()))
            .collect();
        match engine.identify(row.user_id.as_deref(), row.anonymous_id.as_deref(), &traits) {
            Ok(_) => summary.applied_individually += 1,
            Err(error) => summary.reject(reject(row.line, error.code(), error.to_string())),
        }
    }
}
