//! Bulk import of profiles (CSV) and Segment messages (NDJSON) into an engine.
//!
//! # CSV
//! One profile per line. The header names the columns: `user_id` and/or `anonymous_id`
//! (at least one), then one trait per column as `name` or `name:type`, with type one of
//! `string` (the default), `integer`, `float`, `boolean` (`true`/`false`), `timestamp`
//! (RFC 3339, a date, or epoch milliseconds) or `list` (items separated by `|`). Cells
//! follow RFC 4180 quoting (`"a,b"`, `""` for a quote) except that a cell may not span
//! lines. An empty cell leaves the trait unset. `segd-gen profiles --format csv` writes
//! this format with 16 traits.
//!
//! The CSV path is a staged pipeline built for throughput:
//! 1. **read**: the file is read in chunks of whole lines ([`ImportOptions::chunk_bytes`]);
//! 2. **parse**: each chunk is split at line boundaries and parsed on every core into
//!    typed rows ([`ParsedRow`]), grouped by the shard that will own each profile;
//!    malformed rows are rejected with their line number and reason;
//! 3. **apply**: shards are written in parallel, one thread per shard: new profiles get
//!    a local id and their values go straight into the columns; rows naming a profile
//!    that exists already (or an identifier of another profile) take the ordinary
//!    `identify` path afterwards, in file order, so updates and merges keep their
//!    usual semantics;
//! 4. **evaluate**: once every chunk is in, each dynamic segment is recomputed once over
//!    the whole population (like creating it), instead of once per profile.
//!
//! Like segment creation, the bulk path records no change-log entries unless
//! [`ImportOptions::record_changes`] is set (a million "entered" entries would push
//! everything else out of a bounded log).
//!
//! Durability: both paths write into the [`Engine`] directly, not through the write-ahead
//! log (`persist::Database` logs what goes through its own methods). A caller importing
//! into a data directory (`segd import`) opens the `Database`, imports into its engine and
//! then takes a snapshot (`Database::snapshot_now`), which makes the import durable in
//! one write instead of one WAL record per row.
//!
//! # NDJSON
//! One Segment message per line (`identify`, `track`, `page`, `screen`, `group`,
//! `alias`), or one `{"batch": [...]}` body per line. Lines are parsed in parallel; the
//! messages are then applied through the ordinary engine path on every core,
//! partitioned by profile so each profile's messages keep their file order.
//!
//! # Files
//! - `chunks`: stage 1, reading a file in chunks of whole lines (both formats).
//! - `csv`: the CSV pipeline ([`import_csv`]) and stage 4, evaluating segments once.
//! - `csv_parse`: stage 2, the header's layout and typed rows from CSV lines.
//! - `csv_apply`: stage 3, writing parsed rows into the shards.
//! - `ndjson`: Segment messages ([`import_ndjson`]).

mod chunks;
mod csv;
mod csv_apply;
mod csv_parse;
mod ndjson;
#[cfg(test)]
mod tests;

pub use csv::import_csv;
pub use ndjson::import_ndjson;

use crate::engine::{Engine, EngineError};
use crate::store::value::TraitType;
use serde::Serialize;
use std::io::Read;
use std::path::Path;
use std::time::Instant;
use thiserror::Error;

/// Longest line accepted, in bytes.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Default read chunk: large enough to keep both cores busy, small enough to bound
/// memory (a chunk and its parsed rows) to a few hundred MiB at most.
pub const DEFAULT_CHUNK_BYTES: usize = 32 << 20;
/// Rejected rows kept with their reason in the summary (all are counted).
pub const MAX_REJECTED_EXAMPLES: usize = 100;
/// Messages per call into the engine on the NDJSON path.
const NDJSON_APPLY_MESSAGES: usize = 256;

/// How an import runs.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Worker threads for parsing and applying.
    pub threads: usize,
    /// Bytes read per chunk (at least [`MAX_LINE_BYTES`] + 1, so any line fits).
    pub chunk_bytes: usize,
    /// Record the membership changes of the final evaluation in the change log
    /// (cause `event`).
    pub record_changes: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            threads: crate::bulk::default_threads(),
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            record_changes: false,
        }
    }
}

/// Reported after every chunk.
#[derive(Clone, Debug, Serialize)]
pub struct Progress {
    pub rows: u64,
    pub bytes_read: u64,
    pub total_bytes: u64,
    pub elapsed_ms: u64,
}

/// One row that was not imported, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RejectedRow {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    pub code: &'static str,
    pub reason: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportSummary {
    /// Data rows (CSV) or messages (NDJSON) read.
    pub rows: u64,
    /// Profiles created by the bulk path.
    pub profiles_created: u64,
    /// Rows/messages applied through the ordinary path (updates of existing profiles,
    /// merges, events).
    pub applied_individually: u64,
    /// Rows naming an erased (suppressed) identifier: dropped.
    pub suppressed: u64,
    /// Messages skipped because their `messageId` was seen recently.
    pub duplicates: u64,
    pub rejected: u64,
    /// The first [`MAX_REJECTED_EXAMPLES`] rejected rows.
    pub rejected_examples: Vec<RejectedRow>,
    /// Wall time spent reading, parsing, and writing shards (stages 1-3), and in the
    /// final segment evaluation (stage 4).
    pub read_ms: u64,
    pub parse_ms: u64,
    pub apply_ms: u64,
    pub evaluate_ms: u64,
    pub elapsed_ms: u64,
    /// Rows per second over the whole import, evaluation included.
    pub rows_per_second: f64,
}

impl ImportSummary {
    fn reject(&mut self, row: RejectedRow) {
        self.rejected += 1;
        if self.rejected_examples.len() < MAX_REJECTED_EXAMPLES {
            self.rejected_examples.push(row);
        }
    }

    fn finish(&mut self, started: Instant) {
        let elapsed = started.elapsed();
        self.elapsed_ms = elapsed.as_millis() as u64;
        self.rows_per_second = self.rows as f64 / elapsed.as_secs_f64().max(1e-9);
    }
}

/// Why an import stopped. Everything but `Io` on a good path is the file's fault.
#[derive(Debug, Error)]
pub enum ImportError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("CSV header: {0}")]
    BadHeader(String),
    #[error("line {line} is longer than {MAX_LINE_BYTES} bytes — is this a CSV/NDJSON file?")]
    LineTooLong { line: u64 },
    #[error("the file is empty: nothing to import (a CSV needs at least a header line)")]
    Empty,
    #[error("column `{name}` is {declared} in the file but the store holds it as {stored}; convert the column or rename it")]
    TypeConflict {
        name: String,
        declared: TraitType,
        stored: TraitType,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ImportError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ImportError::Io { .. } => "import_io",
            ImportError::BadHeader(_) => "import_bad_header",
            ImportError::LineTooLong { .. } => "import_line_too_long",
            ImportError::Empty => "import_empty",
            ImportError::TypeConflict { .. } => "import_type_conflict",
            ImportError::Engine(error) => error.code(),
        }
    }
}

/// The two import formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportFormat {
    Csv,
    Ndjson,
}

impl ImportFormat {
    /// The format of a file: by extension (`.csv`; `.ndjson`, `.jsonl`, `.json`), else
    /// by its first non-blank byte (`{` means NDJSON).
    pub fn detect(path: &Path) -> Result<ImportFormat, ImportError> {
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("csv") => return Ok(ImportFormat::Csv),
            Some("ndjson" | "jsonl" | "json") => return Ok(ImportFormat::Ndjson),
            _ => {}
        }
        let io = |source| ImportError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut head = [0u8; 4096];
        let read = std::fs::File::open(path)
            .and_then(|mut file| file.read(&mut head))
            .map_err(io)?;
        match head[..read].iter().find(|byte| !byte.is_ascii_whitespace()) {
            Some(b'{') => Ok(ImportFormat::Ndjson),
            Some(_) => Ok(ImportFormat::Csv),
            None => Err(ImportError::Empty),
        }
    }
}

/// Imports a file in either format (see [`ImportFormat::detect`]): the entry point for
/// `segd import <file>`.
pub fn import_path(
    engine: &Engine,
    path: &Path,
    options: &ImportOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(ImportFormat, ImportSummary), ImportError> {
    let format = ImportFormat::detect(path)?;
    let summary = match format {
        ImportFormat::Csv => import_csv(engine, path, options, progress)?,
        ImportFormat::Ndjson => import_ndjson(engine, path, options, progress)?,
    };
    Ok((format, summary))
}

fn reject(line: u64, code: &'static str, reason: impl Into<String>) -> RejectedRow {
    RejectedRow {
        line,
        code,
        reason: reason.into(),
    }
}
