//! NDJSON import: Segment messages parsed in parallel and applied through the engine,
//! partitioned by profile so each profile keeps its file order.

use super::chunks::{lines, split_lines, ChunkReader};
use super::{
    reject, ImportError, ImportOptions, ImportSummary, Progress, RejectedRow, NDJSON_APPLY_MESSAGES,
};
use crate::engine::Engine;
use crate::ingest::{parse_batch, parse_message, Message};
use rayon::prelude::*;
use serde_json::Value;
use std::path::Path;
use std::time::Instant;

/// A parsed message and its line.
struct LineMessage {
    line: u64,
    message: Message,
}

fn parse_ndjson_piece(first_line: u64, bytes: &[u8]) -> (Vec<LineMessage>, Vec<RejectedRow>) {
    let mut messages = Vec::new();
    let mut rejected = Vec::new();
    for (offset, raw) in lines(bytes).enumerate() {
        let line = first_line + offset as u64;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Value = match serde_json::from_slice(raw) {
            Ok(value) => value,
            Err(error) => {
                rejected.push(reject(line, "invalid_json", error.to_string()));
                continue;
            }
        };
        let parsed = if value.get("batch").is_some() {
            parse_batch(&value)
        } else {
            parse_message(&value, None, "").map(|message| vec![message])
        };
        match parsed {
            Ok(parsed) => messages.extend(
                parsed
                    .into_iter()
                    .map(|message| LineMessage { line, message }),
            ),
            Err(error) => rejected.push(reject(line, "invalid_message", error.to_string())),
        }
    }
    (messages, rejected)
}

fn message_partition(message: &Message, partitions: usize) -> usize {
    let key = message
        .user_id
        .as_deref()
        .or(message.anonymous_id.as_deref())
        .unwrap_or_default();
    (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % partitions as u64) as usize
}

/// Imports NDJSON Segment messages (or batch bodies, one per line). `progress` is
/// called after every chunk.
pub fn import_ndjson(
    engine: &Engine,
    path: &Path,
    options: &ImportOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ImportSummary, ImportError> {
    let started = Instant::now();
    let (mut reader, total_bytes) = ChunkReader::open(path, options.chunk_bytes)?;
    let threads = options.threads.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|error| ImportError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(error),
        })?;
    let mut summary = ImportSummary::default();
    while let Some(chunk) = reader.next_chunk()? {
        let pieces = split_lines(&chunk, threads * 4);
        let parsed: Vec<(Vec<LineMessage>, Vec<RejectedRow>)> = pool.install(|| {
            pieces
                .par_iter()
                .map(|(line, bytes)| parse_ndjson_piece(*line, bytes))
                .collect()
        });
        // Messages and their line numbers, side by side so message slices go to the
        // engine without copying.
        let mut partitions: Vec<(Vec<Message>, Vec<u64>)> =
            (0..threads).map(|_| (Vec::new(), Vec::new())).collect();
        for (messages, rejected) in parsed {
            for row in rejected {
                summary.rows += 1;
                summary.reject(row);
            }
            for message in messages {
                summary.rows += 1;
                let partition = message_partition(&message.message, threads);
                partitions[partition].0.push(message.message);
                partitions[partition].1.push(message.line);
            }
        }
        let outcomes: Vec<ImportSummary> = pool.install(|| {
            partitions
                .into_par_iter()
                .map(|(messages, lines)| apply_messages(engine, &messages, &lines))
                .collect()
        });
        for outcome in outcomes {
            summary.applied_individually += outcome.applied_individually;
            summary.duplicates += outcome.duplicates;
            summary.suppressed += outcome.suppressed;
            // Rejections beyond the kept examples are still counted.
            let unkept = outcome
                .rejected
                .saturating_sub(outcome.rejected_examples.len() as u64);
            for row in outcome.rejected_examples {
                summary.reject(row);
            }
            summary.rejected += unkept;
        }
        progress(&Progress {
            rows: summary.rows,
            bytes_read: reader.bytes_read,
            total_bytes,
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
    }
    summary.finish(started);
    Ok(summary)
}

/// Applies one partition's messages in order: in groups through `apply_batch`, and one by
/// one when a group has a bad message (so only that message is rejected).
fn apply_messages(engine: &Engine, messages: &[Message], lines: &[u64]) -> ImportSummary {
    let mut outcome = ImportSummary::default();
    let count = |result: crate::engine::BatchOutcome, outcome: &mut ImportSummary| {
        outcome.applied_individually += result.applied as u64;
        outcome.duplicates += result.duplicates as u64;
        outcome.suppressed += result.suppressed as u64;
    };
    for (group, group_lines) in messages
        .chunks(NDJSON_APPLY_MESSAGES)
        .zip(lines.chunks(NDJSON_APPLY_MESSAGES))
    {
        match engine.apply_batch(group) {
            Ok(result) => count(result, &mut outcome),
            Err(_) => {
                for (message, line) in group.iter().zip(group_lines) {
                    match engine.apply_batch(std::slice::from_ref(message)) {
                        Ok(result) => count(result, &mut outcome),
                        Err(error) => {
                            outcome.reject(reject(*line, error.code(), error.to_string()))
                        }
                    }
                }
            }
        }
    }
    outcome
}
