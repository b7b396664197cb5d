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

use crate::engine::{identity_hash, Engine, EngineError};
use crate::ids::{ColumnId, ProfileRef, ShardId};
use crate::ingest::{parse_batch, parse_message, Message};
use crate::store::schema::MAX_COLUMNS;
use crate::store::value::{
    coerce, parse_timestamp, TraitType, TraitValue, MAX_LIST_ITEMS, MAX_STRING_BYTES,
    MAX_TRAITS_PER_MESSAGE, MAX_TRAIT_NAME_BYTES,
};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};
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

// ---------------------------------------------------------------------------------------
// Stage 1: read whole-line chunks.

/// A run of whole lines and the line number of its first line.
struct RawChunk {
    first_line: u64,
    bytes: Vec<u8>,
}

/// Reads a file as chunks of whole lines.
struct ChunkReader {
    file: std::fs::File,
    path: String,
    chunk_bytes: usize,
    /// Bytes after the last newline of the previous read.
    carry: Vec<u8>,
    next_line: u64,
    bytes_read: u64,
    done: bool,
}

impl ChunkReader {
    fn open(path: &Path, chunk_bytes: usize) -> Result<(ChunkReader, u64), ImportError> {
        let io = |source| ImportError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let total = file.metadata().map_err(io)?.len();
        Ok((
            ChunkReader {
                file,
                path: path.display().to_string(),
                chunk_bytes: chunk_bytes.max(MAX_LINE_BYTES + 1),
                carry: Vec::new(),
                next_line: 1,
                bytes_read: 0,
                done: false,
            },
            total,
        ))
    }

    fn next_chunk(&mut self) -> Result<Option<RawChunk>, ImportError> {
        if self.done {
            return Ok(None);
        }
        let mut bytes = std::mem::take(&mut self.carry);
        let start = bytes.len();
        bytes.resize(self.chunk_bytes.max(start + 1), 0);
        let mut filled = start;
        while filled < bytes.len() {
            let read = self
                .file
                .read(&mut bytes[filled..])
                .map_err(|source| ImportError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if read == 0 {
                self.done = true;
                break;
            }
            filled += read;
        }
        bytes.truncate(filled);
        self.bytes_read += (filled - start) as u64;
        if !self.done {
            match memchr::memrchr(b'\n', &bytes) {
                Some(last) => self.carry = bytes.split_off(last + 1),
                None => {
                    return Err(ImportError::LineTooLong {
                        line: self.next_line,
                    })
                }
            }
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        let first_line = self.next_line;
        self.next_line += count_newlines(&bytes);
        if bytes.last() != Some(&b'\n') {
            self.next_line += 1;
        }
        Ok(Some(RawChunk { first_line, bytes }))
    }
}

/// The lines of `bytes` (split at `\n`; a trailing newline ends the last line).
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', bytes);
    std::iter::from_fn(move || {
        if start > bytes.len() {
            return None;
        }
        match ends.next() {
            Some(end) => {
                let line = &bytes[start..end];
                start = end + 1;
                Some(line)
            }
            None => {
                let line = &bytes[start..];
                start = bytes.len() + 1;
                Some(line)
            }
        }
    })
}

fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Splits a chunk into about `pieces` runs of whole lines, each with its first line
/// number.
fn split_lines(chunk: &RawChunk, pieces: usize) -> Vec<(u64, &[u8])> {
    let bytes = &chunk.bytes[..];
    let target = (bytes.len() / pieces.max(1)).max(1);
    let mut out = Vec::with_capacity(pieces);
    let mut start = 0;
    let mut line = chunk.first_line;
    while start < bytes.len() {
        let mut end = (start + target).min(bytes.len());
        if end < bytes.len() && bytes[end - 1] != b'\n' {
            end = memchr::memchr(b'\n', &bytes[end..]).map_or(bytes.len(), |at| end + at + 1);
        }
        let piece = &bytes[start..end];
        out.push((line, piece));
        line += count_newlines(piece);
        start = end;
    }
    out
}

// ---------------------------------------------------------------------------------------
// Stage 2: parse typed rows.

/// One column of the CSV file.
#[derive(Clone, Debug)]
enum CsvColumn {
    UserId,
    AnonymousId,
    Trait {
        name: String,
        declared: TraitType,
        /// Type of the store's column (may differ from `declared` where coercion is
        /// lossless, e.g. integer into float).
        stored: TraitType,
        column: ColumnId,
    },
}

/// The parsed header: what each cell is.
#[derive(Clone, Debug)]
struct CsvLayout {
    columns: Vec<CsvColumn>,
    /// Position (among trait columns) of configured identity traits.
    identity_traits: Vec<(usize, String)>,
}

impl CsvLayout {
    fn traits(&self) -> impl Iterator<Item = (&str, TraitType, TraitType, ColumnId)> {
        self.columns.iter().filter_map(|column| match column {
            CsvColumn::Trait {
                name,
                declared,
                stored,
                column,
            } => Some((name.as_str(), *declared, *stored, *column)),
            _ => None,
        })
    }
}

/// One trait cell, typed. Strings borrow the chunk's bytes until they are written, so
/// parsing allocates nothing per string cell.
#[derive(Clone, Debug)]
enum Cell<'a> {
    Text(Cow<'a, str>),
    Value(TraitValue),
}

impl Cell<'_> {
    fn to_json(&self) -> Value {
        match self {
            Cell::Text(text) => Value::String(text.to_string()),
            Cell::Value(value) => value.to_json(),
        }
    }
}

/// A profile row, typed and ready to write.
#[derive(Clone, Debug)]
struct ParsedRow<'a> {
    line: u64,
    user_id: Option<Cow<'a, str>>,
    anonymous_id: Option<Cow<'a, str>>,
    /// (trait position in the layout's trait columns, value in the store's type).
    values: Vec<(u16, Cell<'a>)>,
}

impl ParsedRow<'_> {
    /// Calls `visit` with each identity key naming this profile, primary first
    /// (`u:<userId>`, `a:<anonymousId>`, `t:<trait>:<value>`), built in one buffer.
    fn for_each_key(&self, layout: &CsvLayout, buffer: &mut String, mut visit: impl FnMut(&str)) {
        let mut emit = |parts: &[&str]| {
            buffer.clear();
            for part in parts {
                buffer.push_str(part);
            }
            visit(buffer);
        };
        if let Some(user_id) = &self.user_id {
            emit(&["u:", user_id]);
        }
        if let Some(anonymous_id) = &self.anonymous_id {
            emit(&["a:", anonymous_id]);
        }
        for (position, name) in &layout.identity_traits {
            let value = self
                .values
                .iter()
                .find(|(at, _)| usize::from(*at) == *position);
            if let Some((_, Cell::Text(text))) = value {
                emit(&["t:", name, ":", text]);
            }
        }
    }
}

/// Rows of one piece, grouped by owning shard, plus its rejects.
struct ParsedPiece<'a> {
    by_shard: Vec<Vec<ParsedRow<'a>>>,
    rejected: Vec<RejectedRow>,
    /// The first line longer than [`MAX_LINE_BYTES`] (the import stops there).
    too_long: Option<u64>,
}

fn reject(line: u64, code: &'static str, reason: impl Into<String>) -> RejectedRow {
    RejectedRow {
        line,
        code,
        reason: reason.into(),
    }
}

/// Splits one CSV line into cells (RFC 4180 quoting, no line breaks inside cells).
fn split_cells<'a>(line: &'a str, cells: &mut Vec<std::borrow::Cow<'a, str>>) -> Result<(), ()> {
    cells.clear();
    let bytes = line.as_bytes();
    let mut position = 0;
    loop {
        if bytes.get(position) == Some(&b'"') {
            let mut text = String::new();
            let mut at = position + 1;
            loop {
                match bytes[at..].iter().position(|&byte| byte == b'"') {
                    None => return Err(()),
                    Some(offset) => {
                        text.push_str(&line[at..at + offset]);
                        at += offset + 1;
                        if bytes.get(at) == Some(&b'"') {
                            text.push('"');
                            at += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            cells.push(std::borrow::Cow::Owned(text));
            match bytes.get(at) {
                None => return Ok(()),
                Some(b',') => position = at + 1,
                Some(_) => return Err(()),
            }
        } else {
            match bytes[position..].iter().position(|&byte| byte == b',') {
                Some(offset) => {
                    cells.push(std::borrow::Cow::Borrowed(
                        &line[position..position + offset],
                    ));
                    position += offset + 1;
                }
                None => {
                    cells.push(std::borrow::Cow::Borrowed(&line[position..]));
                    return Ok(());
                }
            }
        }
    }
}

/// Parses one cell into a value of the declared type.
fn parse_cell(name: &str, declared: TraitType, cell: &str) -> Result<TraitValue, String> {
    match declared {
        TraitType::String => {
            if cell.len() > MAX_STRING_BYTES {
                return Err(format!(
                    "`{name}` is {} bytes; the limit is {MAX_STRING_BYTES}",
                    cell.len()
                ));
            }
            Ok(TraitValue::String(cell.to_string()))
        }
        TraitType::Integer => cell
            .parse::<i64>()
            .map(TraitValue::Integer)
            .map_err(|_| format!("`{name}` must be a 64-bit integer, got `{}`", clip(cell))),
        TraitType::Float => match cell.parse::<f64>() {
            Ok(number) if number.is_finite() => Ok(TraitValue::Float(number)),
            _ => Err(format!(
                "`{name}` must be a finite number, got `{}`",
                clip(cell)
            )),
        },
        TraitType::Boolean => {
            if cell.eq_ignore_ascii_case("true") {
                Ok(TraitValue::Boolean(true))
            } else if cell.eq_ignore_ascii_case("false") {
                Ok(TraitValue::Boolean(false))
            } else {
                Err(format!(
                    "`{name}` must be true or false, got `{}`",
                    clip(cell)
                ))
            }
        }
        TraitType::Timestamp => parse_timestamp(cell)
            .or_else(|| cell.parse::<i64>().ok())
            .map(TraitValue::Timestamp)
            .ok_or_else(|| {
                format!(
                    "`{name}` must be an RFC 3339 time, a date or epoch milliseconds, got `{}`",
                    clip(cell)
                )
            }),
        TraitType::List => {
            let mut items: Vec<String> = cell
                .split(crate::bulk::CSV_LIST_SEPARATOR)
                .filter(|item| !item.is_empty())
                .map(str::to_string)
                .collect();
            if items.len() > MAX_LIST_ITEMS {
                return Err(format!(
                    "`{name}` has {} items; the limit is {MAX_LIST_ITEMS}",
                    items.len()
                ));
            }
            if let Some(long) = items.iter().find(|item| item.len() > MAX_STRING_BYTES) {
                return Err(format!(
                    "`{name}` has an item of {} bytes; the limit is {MAX_STRING_BYTES}",
                    long.len()
                ));
            }
            items.sort_unstable();
            items.dedup();
            Ok(TraitValue::List(items))
        }
    }
}

fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

fn check_identifier<'a>(
    line: u64,
    what: &str,
    cell: Cow<'a, str>,
) -> Result<Option<Cow<'a, str>>, RejectedRow> {
    if cell.is_empty() {
        return Ok(None);
    }
    if cell.len() > crate::engine::MAX_IDENTIFIER_BYTES {
        return Err(reject(
            line,
            "bad_identifier",
            format!(
                "{what} is longer than {} bytes",
                crate::engine::MAX_IDENTIFIER_BYTES
            ),
        ));
    }
    Ok(Some(cell))
}

/// Parses one line into a row (or says why not).
fn parse_row<'a>(
    layout: &CsvLayout,
    line_number: u64,
    line: &'a str,
    local_cells: &mut Vec<Cow<'a, str>>,
) -> Result<ParsedRow<'a>, RejectedRow> {
    if split_cells(line, local_cells).is_err() {
        return Err(reject(
            line_number,
            "csv_bad_quoting",
            "unbalanced or misplaced double quote (cells may not span lines)",
        ));
    }
    if local_cells.len() != layout.columns.len() {
        return Err(reject(
            line_number,
            "csv_wrong_cell_count",
            format!(
                "{} cells; the header has {} columns",
                local_cells.len(),
                layout.columns.len()
            ),
        ));
    }
    let mut row = ParsedRow {
        line: line_number,
        user_id: None,
        anonymous_id: None,
        values: Vec::with_capacity(local_cells.len()),
    };
    let mut trait_position = 0u16;
    for (column, cell) in layout.columns.iter().zip(local_cells.drain(..)) {
        match column {
            CsvColumn::UserId => row.user_id = check_identifier(line_number, "user_id", cell)?,
            CsvColumn::AnonymousId => {
                row.anonymous_id = check_identifier(line_number, "anonymous_id", cell)?
            }
            CsvColumn::Trait {
                name,
                declared,
                stored,
                ..
            } => {
                if *declared == TraitType::String && !cell.is_empty() {
                    if cell.len() > MAX_STRING_BYTES {
                        return Err(reject(
                            line_number,
                            "invalid_trait",
                            format!(
                                "`{name}` is {} bytes; the limit is {MAX_STRING_BYTES}",
                                cell.len()
                            ),
                        ));
                    }
                    row.values.push((trait_position, Cell::Text(cell)));
                } else if !cell.is_empty() {
                    let value = parse_cell(name, *declared, &cell)
                        .map_err(|reason| reject(line_number, "invalid_trait", reason))?;
                    let value = if declared == stored {
                        value
                    } else {
                        coerce(name, value, *stored).map_err(|error| {
                            reject(line_number, "invalid_trait", error.to_string())
                        })?
                    };
                    row.values.push((trait_position, Cell::Value(value)));
                }
                trait_position += 1;
            }
        }
    }
    if row.user_id.is_none() && row.anonymous_id.is_none() {
        return Err(reject(
            line_number,
            "missing_identifier",
            "the row has neither a user_id nor an anonymous_id",
        ));
    }
    Ok(row)
}

/// The shard a new profile goes to: a hash of its primary key, as the engine places
/// profiles (userId, else anonymousId).
fn shard_of(row: &ParsedRow<'_>, shards: usize, buffer: &mut String) -> usize {
    buffer.clear();
    match (&row.user_id, &row.anonymous_id) {
        (Some(user_id), _) => {
            buffer.push_str("u:");
            buffer.push_str(user_id);
        }
        (None, Some(anonymous_id)) => {
            buffer.push_str("a:");
            buffer.push_str(anonymous_id);
        }
        (None, None) => {}
    }
    (xxhash_rust::xxh3::xxh3_64(buffer.as_bytes()) % shards as u64) as usize
}

fn parse_piece<'a>(
    layout: &CsvLayout,
    shards: usize,
    first_line: u64,
    bytes: &'a [u8],
) -> ParsedPiece<'a> {
    let mut piece = ParsedPiece {
        // Rows spread evenly over shards; a little slack avoids regrowing.
        by_shard: {
            let per_shard = (count_newlines(bytes) as usize / shards.max(1)) * 9 / 8 + 8;
            (0..shards).map(|_| Vec::with_capacity(per_shard)).collect()
        },
        rejected: Vec::new(),
        too_long: None,
    };
    let mut buffer = String::new();
    let mut cells = Vec::with_capacity(layout.columns.len());
    for (offset, raw) in lines(bytes).enumerate() {
        let line_number = first_line + offset as u64;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        if raw.len() > MAX_LINE_BYTES {
            piece.too_long.get_or_insert(line_number);
            break;
        }
        let Ok(line) = std::str::from_utf8(raw) else {
            piece.rejected.push(reject(
                line_number,
                "invalid_utf8",
                "the line is not valid UTF-8",
            ));
            continue;
        };
        match parse_row(layout, line_number, line, &mut cells) {
            Ok(row) => {
                let shard = shard_of(&row, shards, &mut buffer);
                piece.by_shard[shard].push(row);
            }
            Err(rejected) => piece.rejected.push(rejected),
        }
    }
    piece
}

// ---------------------------------------------------------------------------------------
// Stage 3: apply rows to shards.

/// Rows that need the ordinary `identify` path (existing profiles, merges).
struct Deferred<'a> {
    row: ParsedRow<'a>,
}

/// What writing one shard did.
struct ShardOutcome<'a> {
    created: u64,
    suppressed: u64,
    deferred: Vec<Deferred<'a>>,
}

/// Writes new profiles of one shard straight into its columns; returns how many were
/// created and the rows that need the ordinary path.
fn apply_shard<'a>(
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
        identity.user_id = row.user_id.as_deref().map(Box::from);
        identity.anonymous_ids = row
            .anonymous_id
            .as_deref()
            .map(Box::from)
            .into_iter()
            .collect();
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
fn apply_deferred(
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

/// Reads and checks the header; creates missing columns in the schema.
fn layout_from_header(engine: &Engine, header: &str) -> Result<CsvLayout, ImportError> {
    let header = header.strip_suffix('\r').unwrap_or(header);
    let header = header.strip_prefix('\u{feff}').unwrap_or(header);
    let mut cells = Vec::new();
    split_cells(header, &mut cells)
        .map_err(|()| ImportError::BadHeader("unbalanced double quote".into()))?;
    if cells.len() > MAX_TRAITS_PER_MESSAGE + 2 {
        return Err(ImportError::BadHeader(format!(
            "{} columns; at most {} traits per row",
            cells.len(),
            MAX_TRAITS_PER_MESSAGE
        )));
    }
    let mut columns = Vec::with_capacity(cells.len());
    let mut seen = std::collections::HashSet::new();
    let mut schema = engine.schema.write();
    let mut added = false;
    for cell in &cells {
        let cell = cell.trim();
        if !seen.insert(cell.split(':').next().unwrap_or_default().to_string()) {
            return Err(ImportError::BadHeader(format!(
                "column `{cell}` appears twice"
            )));
        }
        match cell {
            "user_id" | "userId" => columns.push(CsvColumn::UserId),
            "anonymous_id" | "anonymousId" => columns.push(CsvColumn::AnonymousId),
            _ => {
                let (name, type_name) = match cell.rsplit_once(':') {
                    Some((name, type_name)) => (name, type_name),
                    None => (cell, "string"),
                };
                let declared = match type_name {
                    "string" => TraitType::String,
                    "integer" => TraitType::Integer,
                    "float" => TraitType::Float,
                    "boolean" => TraitType::Boolean,
                    "timestamp" => TraitType::Timestamp,
                    "list" => TraitType::List,
                    other => {
                        return Err(ImportError::BadHeader(format!(
                            "column `{name}` has unknown type `{other}`; use string, integer, float, boolean, timestamp or list"
                        )))
                    }
                };
                check_trait_name(name)?;
                let (column, stored) = match schema.lookup(name) {
                    Some((column, stored)) => {
                        let compatible = stored == declared
                            || matches!(
                                (declared, stored),
                                (TraitType::Integer, TraitType::Float)
                                    | (TraitType::Integer, TraitType::Timestamp)
                            );
                        if !compatible {
                            return Err(ImportError::TypeConflict {
                                name: name.to_string(),
                                declared,
                                stored,
                            });
                        }
                        (column, stored)
                    }
                    None => {
                        if schema.len() >= MAX_COLUMNS {
                            return Err(EngineError::TooManyTraits(name.to_string()).into());
                        }
                        added = true;
                        (schema.add(name, declared), declared)
                    }
                };
                columns.push(CsvColumn::Trait {
                    name: name.to_string(),
                    declared,
                    stored,
                    column,
                });
            }
        }
    }
    drop(schema);
    if !columns
        .iter()
        .any(|c| matches!(c, CsvColumn::UserId | CsvColumn::AnonymousId))
    {
        return Err(ImportError::BadHeader(
            "no `user_id` or `anonymous_id` column: one of them identifies each profile".into(),
        ));
    }
    if added {
        // Rules naming a trait that did not exist yet start matching now.
        engine.recompile_all();
    }
    let identity_traits = columns
        .iter()
        .filter_map(|column| match column {
            CsvColumn::Trait { name, .. } => Some(name.clone()),
            _ => None,
        })
        .enumerate()
        .filter(|(_, name)| engine.options.identity_traits.contains(name))
        .collect();
    Ok(CsvLayout {
        columns,
        identity_traits,
    })
}

fn check_trait_name(name: &str) -> Result<(), ImportError> {
    let bad = |reason: &str| {
        Err(ImportError::BadHeader(format!(
            "column `{}`: {reason}",
            clip(name)
        )))
    };
    if name.is_empty() {
        return bad("empty trait name");
    }
    if name.len() > MAX_TRAIT_NAME_BYTES {
        return bad("trait names are at most 256 bytes");
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return bad("dotted paths may not have empty parts");
    }
    if name.chars().any(char::is_control) {
        return bad("control characters in the name");
    }
    Ok(())
}

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

// ---------------------------------------------------------------------------------------
// Stage 4: evaluate segments once.

/// Recomputes every dynamic segment (dependency order) over the whole population.
fn evaluate_segments(engine: &Engine, record_changes: bool) -> Duration {
    let started = Instant::now();
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

// ---------------------------------------------------------------------------------------
// NDJSON.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk::{csv_header, csv_row, five_condition_rule, identify_message, load_demo};
    use crate::demo::DemoGenerator;
    use crate::engine::{EngineOptions, RuleInput};
    use crate::segment::ast::{CompareOp, Literal, Rule};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A file in the temp directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn with(contents: &str) -> TempFile {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "segd-import-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn generated_csv(generator: &DemoGenerator, count: u64) -> String {
        let mut text = csv_header();
        text.push('\n');
        for index in 0..count {
            csv_row(&generator.profile(index), &mut text);
            text.push('\n');
        }
        text
    }

    fn engine() -> Engine {
        Engine::new(EngineOptions {
            shards: 4,
            ..EngineOptions::default()
        })
    }

    fn import(engine: &Engine, text: &str) -> Result<ImportSummary, ImportError> {
        let file = TempFile::with(text);
        import_csv(engine, &file.0, &ImportOptions::default(), &mut |_| {})
    }

    fn german() -> Rule {
        Rule::Compare {
            trait_name: "country".into(),
            op: CompareOp::Eq,
            value: Literal::String("DE".into()),
        }
    }

    #[test]
    fn csv_import_gives_the_same_answers_as_the_ordinary_path() {
        let generator = DemoGenerator::new(11);
        let imported = engine();
        // A segment that exists before the import is evaluated once at the end.
        let segment = imported
            .create_segment("german", "", Some(RuleInput::Ast(german())))
            .unwrap();
        let summary = import(&imported, &generated_csv(&generator, 3_000)).unwrap();
        assert_eq!(summary.rows, 3_000);
        assert_eq!(summary.profiles_created, 3_000);
        assert_eq!(summary.rejected, 0, "{:?}", summary.rejected_examples);
        assert_eq!(imported.profile_count(), 3_000);

        let reference = engine();
        load_demo(&reference, &generator, 3_000, 0, 2).unwrap();
        let rule = five_condition_rule();
        assert_eq!(
            imported.count_rule(&rule).unwrap(),
            reference.count_rule(&rule).unwrap()
        );
        assert_eq!(
            imported.count(segment.id),
            reference.count_rule(&german()).unwrap()
        );
        assert!(imported.count(segment.id) > 0);
        for index in [0, 1, 17, 2_999] {
            let user = format!("user-{index}");
            let expected = reference.traits_of(&user).unwrap();
            let got = imported.traits_of(&user).unwrap();
            for name in [
                "email",
                "age",
                "country",
                "ltv",
                "signup_at",
                "push_enabled",
            ] {
                assert_eq!(got.get(name), expected.get(name), "{user} {name}");
            }
            let anonymous = generator.profile(index).anonymous_id;
            assert_eq!(
                imported.resolve(&format!("anon:{anonymous}")),
                imported.resolve(&user)
            );
            assert_eq!(
                imported.is_member(segment.id, &user).unwrap(),
                expected["country"] == "DE"
            );
        }
    }

    #[test]
    fn rows_for_known_profiles_update_them_through_the_ordinary_path() {
        let engine = engine();
        engine
            .identify(Some("known"), None, &serde_json::Map::new())
            .unwrap();
        let summary = import(
            &engine,
            "user_id,age:integer,city\nknown,30,Berlin\nnew,41,Paris\nnew,42,\n",
        )
        .unwrap();
        assert_eq!(summary.profiles_created, 1);
        assert_eq!(summary.applied_individually, 2);
        assert_eq!(engine.profile_count(), 2);
        let known = engine.traits_of("known").unwrap();
        assert_eq!(known["age"], 30);
        assert_eq!(known["city"], "Berlin");
        let new = engine.traits_of("new").unwrap();
        assert_eq!(new["age"], 42, "the later row wins");
        assert_eq!(new["city"], "Paris", "an empty cell leaves the trait unset");
    }

    #[test]
    fn bad_rows_are_rejected_with_line_and_reason_and_the_rest_imported() {
        let engine = engine();
        let text = "user_id,anonymous_id,age:integer,vip:boolean,tags:list,seen:timestamp\n\
                    a,,1,true,x|y,2024-01-01\n\
                    b,,old,true,,\n\
                    c,,3,maybe,,\n\
                    d,,4,true\n\
                    ,,5,true,,\n\
                    \"e,,6,true,,\n\
                    f,,7,false,\"q,r\",1700000000000\n";
        let summary = import(&engine, text).unwrap();
        assert_eq!(summary.rows, 7);
        assert_eq!(summary.profiles_created, 2);
        assert_eq!(summary.rejected, 5);
        let codes: Vec<(u64, &str)> = summary
            .rejected_examples
            .iter()
            .map(|row| (row.line, row.code))
            .collect();
        assert_eq!(
            codes,
            vec![
                (3, "invalid_trait"),
                (4, "invalid_trait"),
                (5, "csv_wrong_cell_count"),
                (6, "missing_identifier"),
                (7, "csv_bad_quoting"),
            ]
        );
        assert!(summary.rejected_examples[0].reason.contains("`age`"));
        let a = engine.traits_of("a").unwrap();
        assert_eq!(a["tags"], serde_json::json!(["x", "y"]));
        assert_eq!(a["seen"], "2024-01-01T00:00:00.000Z");
        let f = engine.traits_of("f").unwrap();
        assert_eq!(f["tags"], serde_json::json!(["q,r"]));
        assert_eq!(f["seen"], "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn header_problems_stop_the_import_with_their_own_codes() {
        let cases = [
            ("user_id,age:number\n", "import_bad_header"),
            ("age:integer,city\n", "import_bad_header"),
            ("user_id,city,city\n", "import_bad_header"),
            ("", "import_empty"),
        ];
        for (text, code) in cases {
            let error = import(&engine(), text).unwrap_err();
            assert_eq!(error.code(), code, "{text:?}: {error}");
        }
        let engine = engine();
        let mut traits = serde_json::Map::new();
        traits.insert("city".into(), "Berlin".into());
        engine.identify(Some("x"), None, &traits).unwrap();
        let error = import(&engine, "user_id,city:integer\ny,5\n").unwrap_err();
        assert_eq!(error.code(), "import_type_conflict");
        assert!(error.to_string().contains("city"));
    }

    #[test]
    fn integers_coerce_into_existing_float_columns() {
        let engine = engine();
        let mut traits = serde_json::Map::new();
        traits.insert("ltv".into(), 1.5.into());
        engine.identify(Some("x"), None, &traits).unwrap();
        import(&engine, "user_id,ltv:integer\ny,7\n").unwrap();
        assert_eq!(engine.traits_of("y").unwrap()["ltv"], 7.0);
    }

    #[test]
    fn large_files_are_read_in_chunks_with_correct_line_numbers() {
        let generator = DemoGenerator::new(3);
        let mut text = generated_csv(&generator, 14_000);
        assert!(text.len() > 2 * MAX_LINE_BYTES, "needs several chunks");
        text.push_str("broken,row\n");
        let file = TempFile::with(&text);
        let mut reports = Vec::new();
        let options = ImportOptions {
            chunk_bytes: 0,
            ..ImportOptions::default()
        };
        let summary = import_csv(&engine(), &file.0, &options, &mut |progress| {
            reports.push(progress.clone())
        })
        .unwrap();
        assert!(reports.len() >= 2, "{reports:?}");
        assert_eq!(reports.last().unwrap().bytes_read, text.len() as u64);
        assert_eq!(summary.profiles_created, 14_000);
        assert_eq!(summary.rejected_examples[0].line, 14_002);
    }

    #[test]
    fn overlong_lines_stop_the_import() {
        let mut text = String::from("user_id,note\nu1,");
        text.push_str(&"x".repeat(MAX_LINE_BYTES + 10));
        text.push('\n');
        let error = import(&engine(), &text).unwrap_err();
        assert_eq!(error.code(), "import_line_too_long");
        assert!(error.to_string().contains("line 2"));
    }

    #[test]
    fn ndjson_import_applies_messages_and_batches_in_order() {
        let generator = DemoGenerator::new(4);
        let mut text = String::new();
        for index in 0..200 {
            let message = identify_message(&generator, index, generator.profile(index));
            text.push_str(&message.to_string());
            text.push('\n');
        }
        text.push_str("{not json}\n");
        text.push_str(r#"{"batch": [{"type": "identify", "userId": "user-0", "traits": {"age": 99}}, {"type": "identify", "userId": "late", "traits": {"age": 1}}]}"#);
        text.push('\n');
        text.push_str(r#"{"type": "identify", "traits": {"age": 2}}"#);
        text.push('\n');
        let file = TempFile::with(&text);
        let engine = engine();
        let summary =
            import_ndjson(&engine, &file.0, &ImportOptions::default(), &mut |_| {}).unwrap();
        assert_eq!(summary.rows, 204);
        assert_eq!(summary.applied_individually, 202);
        assert_eq!(summary.rejected, 2);
        assert_eq!(summary.rejected_examples[0].line, 201);
        assert_eq!(summary.rejected_examples[0].code, "invalid_json");
        assert_eq!(summary.rejected_examples[1].line, 203);
        assert_eq!(engine.profile_count(), 201);
        assert_eq!(engine.traits_of("user-0").unwrap()["age"], 99);
        // Re-importing the same file: every message with a messageId is a duplicate.
        let again =
            import_ndjson(&engine, &file.0, &ImportOptions::default(), &mut |_| {}).unwrap();
        assert_eq!(again.duplicates, 200);
    }

    /// `Column::extend_fresh` (the bulk path) must leave a column exactly as the same
    /// values stored one by one with `Column::set` would: values, presence, indexes.
    #[test]
    fn bulk_column_writes_equal_one_by_one_writes() {
        use crate::segment::ast::CompareOp;
        use crate::store::column::{Column, Number};
        use roaring::RoaringBitmap;
        let count = 6_000u32;
        let value_of = |trait_type: TraitType, id: u32| -> Option<TraitValue> {
            if id % 7 == 3 {
                return None; // absent
            }
            Some(match trait_type {
                // More than DICTIONARY_LIMIT distinct values: converts to the arena form.
                TraitType::String => TraitValue::String(format!("v{}", id % 5_000)),
                TraitType::Integer => TraitValue::Integer(i64::from(id % 300) - 20),
                TraitType::Float => TraitValue::Float(f64::from(id) * 0.37 - 100.0),
                TraitType::Boolean => TraitValue::Boolean(id.is_multiple_of(3)),
                TraitType::Timestamp => {
                    TraitValue::Timestamp(1_700_000_000_000 + i64::from(id) * 61_001)
                }
                TraitType::List => TraitValue::List(
                    (0..id % 3)
                        .map(|item| format!("t{}", (id + item) % 9))
                        .collect(),
                ),
            })
        };
        for trait_type in [
            TraitType::String,
            TraitType::Integer,
            TraitType::Float,
            TraitType::Boolean,
            TraitType::Timestamp,
            TraitType::List,
        ] {
            let mut one_by_one = Column::new(trait_type);
            let mut bulk = Column::new(trait_type);
            let entries: Vec<(u32, TraitValue)> = (0..count)
                .filter_map(|id| value_of(trait_type, id).map(|value| (id, value)))
                .collect();
            for (id, value) in &entries {
                one_by_one.set(*id, value);
            }
            // Two batches, and a third out of order (falls back to `set`).
            let (first, rest) = entries.split_at(entries.len() / 2);
            let (second, third) = rest.split_at(rest.len() - 10);
            bulk.extend_fresh(first);
            bulk.extend_fresh(second);
            let mut reversed = third.to_vec();
            reversed.reverse();
            bulk.extend_fresh(&reversed);
            assert_eq!(bulk.present, one_by_one.present, "{trait_type}");
            for id in 0..count {
                assert_eq!(bulk.get(id), one_by_one.get(id), "{trait_type} id {id}");
            }
            let universe: RoaringBitmap = (0..count).collect();
            match trait_type {
                TraitType::Integer | TraitType::Float => {
                    for op in [CompareOp::Less, CompareOp::Eq, CompareOp::GreaterOrEqual] {
                        for literal in [
                            Number::Integer(-5),
                            Number::Integer(100),
                            Number::Float(0.5),
                        ] {
                            assert_eq!(
                                bulk.compare_number(op, literal, &universe),
                                one_by_one.compare_number(op, literal, &universe),
                                "{trait_type} {op:?} {literal:?}"
                            );
                        }
                    }
                }
                TraitType::Timestamp => {
                    let middle = 1_700_000_000_000 + 3_000 * 61_001;
                    assert_eq!(
                        bulk.compare_timestamp(CompareOp::Greater, middle, &universe),
                        one_by_one.compare_timestamp(CompareOp::Greater, middle, &universe)
                    );
                }
                TraitType::String => assert_eq!(
                    bulk.strings_equal_any(&["v10", "v4999"], &universe),
                    one_by_one.strings_equal_any(&["v10", "v4999"], &universe)
                ),
                TraitType::Boolean => assert_eq!(
                    bulk.booleans_equal(true, &universe),
                    one_by_one.booleans_equal(true, &universe)
                ),
                TraitType::List => assert_eq!(
                    bulk.list_contains_any(&["t1", "t8"], &universe),
                    one_by_one.list_contains_any(&["t1", "t8"], &universe)
                ),
            }
        }
        // Low-cardinality strings stay a dictionary; borrowed-text writes agree too.
        let mut one_by_one = Column::new(TraitType::String);
        let mut bulk = Column::new(TraitType::String);
        let texts: Vec<(u32, String)> =
            (0..count).map(|id| (id, format!("c{}", id % 40))).collect();
        for (id, text) in &texts {
            one_by_one.set(*id, &TraitValue::String(text.clone()));
        }
        let borrowed: Vec<(u32, &str)> = texts
            .iter()
            .map(|(id, text)| (*id, text.as_str()))
            .collect();
        bulk.extend_fresh_strings(&borrowed);
        assert_eq!(bulk.value_counts(), one_by_one.value_counts());
        assert!(bulk.value_counts().is_some(), "still a dictionary");
    }

    #[test]
    fn the_format_comes_from_the_extension_or_the_first_byte() {
        let csv = TempFile::with("user_id,age:integer\nu,1\n");
        let ndjson = TempFile::with(
            "\n  {\"type\": \"identify\", \"userId\": \"u\", \"traits\": {\"age\": 2}}\n",
        );
        let blank = TempFile::with(" \n\n");
        assert_eq!(ImportFormat::detect(&csv.0).unwrap(), ImportFormat::Csv);
        assert_eq!(
            ImportFormat::detect(&ndjson.0).unwrap(),
            ImportFormat::Ndjson
        );
        assert_eq!(
            ImportFormat::detect(&blank.0).unwrap_err().code(),
            "import_empty"
        );
        assert_eq!(
            ImportFormat::detect(Path::new("/nonexistent/x.ndjson")).unwrap(),
            ImportFormat::Ndjson
        );
        assert_eq!(
            ImportFormat::detect(Path::new("/nonexistent/x"))
                .unwrap_err()
                .code(),
            "import_io"
        );
        let engine = engine();
        let (format, summary) =
            import_path(&engine, &ndjson.0, &ImportOptions::default(), &mut |_| {}).unwrap();
        assert_eq!(
            (format, summary.applied_individually),
            (ImportFormat::Ndjson, 1)
        );
        let (format, summary) =
            import_path(&engine, &csv.0, &ImportOptions::default(), &mut |_| {}).unwrap();
        assert_eq!(format, ImportFormat::Csv);
        assert_eq!(summary.applied_individually, 1, "u exists: updated");
        assert_eq!(engine.traits_of("u").unwrap()["age"], 1);
    }

    #[test]
    fn every_rejected_row_is_counted_but_only_the_first_hundred_are_kept() {
        let mut text = String::from("user_id,age:integer\n");
        for index in 0..(MAX_REJECTED_EXAMPLES + 50) {
            text.push_str(&format!("u{index},not-a-number\n"));
        }
        text.push_str("ok,5\n");
        let engine = engine();
        let summary = import(&engine, &text).unwrap();
        assert_eq!(summary.rejected, (MAX_REJECTED_EXAMPLES + 50) as u64);
        assert_eq!(summary.rejected_examples.len(), MAX_REJECTED_EXAMPLES);
        assert_eq!(summary.rejected_examples[0].line, 2);
        assert_eq!(summary.profiles_created, 1);
    }
}
