//! The CSV pipeline: read, parse, apply, then evaluate every dynamic segment once.

use super::chunks::{split_lines, ChunkReader, RawChunk};
use super::csv_apply::{apply_deferred, apply_shard, ShardOutcome};
use super::csv_parse::{layout_from_header, parse_piece, ParsedPiece, ParsedRow};
use super::{ImportError, ImportOptions, ImportSummary, Progress};
use crate::engine::Engine;
use crate::ids::ColumnId;
use crate::store::value::TraitType;
use rayon::prelude::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// Imports a CSV file of profiles (see the module doc for the format). `progress` is
/// called after every chunk.
pub fn import_csv(
    engine: &Engine,
    path: &Path,
    options: &ImportOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ImportSummary, ImportError> {
    let started = Instant::now();
    let (mut reader, total_bytes) = ChunkReader::open(path, options.chunk_bytes)?;
    let mut summary = ImportSummary::default();
    let Some(first) = reader.next_chunk()? else {
        return Err(ImportError::Empty);
    };
    let header_end = first
        .bytes
        .iter()
        .position(|&byte| byte == b'\n')
        .unwrap_or(first.bytes.len());
    let header = std::str::from_utf8(&first.bytes[..header_end])
        .map_err(|_| ImportError::BadHeader("the header is not valid UTF-8".into()))?;
    let layout = layout_from_header(engine, header)?;
    let trait_columns: Vec<(ColumnId, TraitType)> = layout
        .traits()
        .map(|(_, _, stored, column)| (column, stored))
        .collect();
    let shards = engine.shards.len();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads.max(1))
        .build()
        .map_err(|error| ImportError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(error),
        })?;
    let mut chunk = Some(RawChunk {
        first_line: first.first_line + 1,
        bytes: first
            .bytes
            .get(header_end + 1..)
            .unwrap_or_default()
            .to_vec(),
    });
    let mut read_time = Duration::ZERO;
    let mut parse_time = Duration::ZERO;
    let mut apply_time = Duration::ZERO;
    while let Some(current) = chunk.take() {
        let parse_started = Instant::now();
        let pieces = split_lines(&current, options.threads.max(1) * 4);
        let parsed: Vec<ParsedPiece> = pool.install(|| {
            pieces
                .par_iter()
                .map(|(line, bytes)| parse_piece(&layout, shards, *line, bytes))
                .collect()
        });
        if let Some(line) = parsed.iter().filter_map(|piece| piece.too_long).min() {
            return Err(ImportError::LineTooLong { line });
        }
        let mut by_shard: Vec<Vec<Vec<ParsedRow>>> = (0..shards).map(|_| Vec::new()).collect();
        for piece in parsed {
            for rejected in piece.rejected {
                summary.rows += 1;
                summary.reject(rejected);
            }
            for (shard, rows) in piece.by_shard.into_iter().enumerate() {
                summary.rows += rows.len() as u64;
                by_shard[shard].push(rows);
            }
        }
        parse_time += parse_started.elapsed();
        let apply_started = Instant::now();
        let applied: Vec<ShardOutcome> = {
            // Serialize with the engine's own profile creation so a concurrent
            // identify cannot create the same profile twice.
            let _creating = engine.creation.lock();
            pool.install(|| {
                by_shard
                    .into_par_iter()
                    .enumerate()
                    .map(|(shard, rows)| apply_shard(engine, &layout, shard, rows, &trait_columns))
                    .collect()
            })
        };
        let mut deferred = Vec::new();
        for outcome in applied {
            summary.profiles_created += outcome.created;
            summary.suppressed += outcome.suppressed;
            deferred.extend(outcome.deferred);
        }
        apply_deferred(engine, &layout, deferred, &mut summary);
        apply_time += apply_started.elapsed();
        progress(&Progress {
            rows: summary.rows,
            bytes_read: reader.bytes_read,
            total_bytes,
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
        let read_started = Instant::now();
        chunk = reader.next_chunk()?;
        read_time += read_started.elapsed();
    }
    summary.read_ms = read_time.as_millis() as u64;
    summary.parse_ms = parse_time.as_millis() as u64;
    summary.apply_ms = apply_time.as_millis() as u64;
    summary.evaluate_ms = evaluate_segments(engine, options.record_changes).as_millis() as u64;
    summary.finish(started);
    Ok(summary)
}

/// Recomputes every dynamic segment (dependency order) over the whole population.
fn evaluate_segments(engine: &Engine, record_changes: bool) -> Duration {
    let started = Instant::now();
    // Segment evaluation below answers range conditions from fresh indexes.
    engine.maintain_range_indexes();
    let order = engine.registry.read().order().to_vec();
    let progress = crate::progress::phase(
        "evaluating segments",
        Some(order.len() as u64),
        crate::progress::Unit::Items,
    );
    for id in order {
        progress.inc(1);
        let changes = engine.recompute(id);
        if record_changes {
            engine.record(&changes, crate::changes::Cause::Event);
        }
    }
    started.elapsed()
}
