//! Stage 2: the CSV header's layout (creating missing columns) and typed rows parsed from
//! CSV lines, grouped by the shard that will own each profile.

use super::chunks::{count_newlines, lines};
use super::{reject, ImportError, RejectedRow, MAX_LINE_BYTES};
use crate::engine::{Engine, EngineError};
use crate::ids::ColumnId;
use crate::store::schema::MAX_COLUMNS;
use crate::store::value::{
    coerce, parse_timestamp, TraitType, TraitValue, MAX_LIST_ITEMS, MAX_STRING_BYTES,
    MAX_TRAITS_PER_MESSAGE, MAX_TRAIT_NAME_BYTES,
};
use serde_json::Value;
use std::borrow::Cow;

/// One column of the CSV file.
#[derive(Clone, Debug)]
pub(super) enum CsvColumn {
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
pub(super) struct CsvLayout {
    pub(super) columns: Vec<CsvColumn>,
    /// Position (among trait columns) of configured identity traits.
    pub(super) identity_traits: Vec<(usize, String)>,
}

impl CsvLayout {
    pub(super) fn traits(&self) -> impl Iterator<Item = (&str, TraitType, TraitType, ColumnId)> {
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
pub(super) enum Cell<'a> {
    Text(Cow<'a, str>),
    Value(TraitValue),
}

impl Cell<'_> {
    pub(super) fn to_json(&self) -> Value {
        match self {
            Cell::Text(text) => Value::String(text.to_string()),
            Cell::Value(value) => value.to_json(),
        }
    }
}

/// A profile row, typed and ready to write.
#[derive(Clone, Debug)]
pub(super) struct ParsedRow<'a> {
    pub(super) line: u64,
    pub(super) user_id: Option<Cow<'a, str>>,
    pub(super) anonymous_id: Option<Cow<'a, str>>,
    /// (trait position in the layout's trait columns, value in the store's type).
    pub(super) values: Vec<(u16, Cell<'a>)>,
}

impl ParsedRow<'_> {
    /// Calls `visit` with each identity key naming this profile, primary first
    /// (`u:<userId>`, `a:<anonymousId>`, `t:<trait>:<value>`), built in one buffer.
    pub(super) fn for_each_key(
        &self,
        layout: &CsvLayout,
        buffer: &mut String,
        mut visit: impl FnMut(&str),
    ) {
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
pub(super) struct ParsedPiece<'a> {
    pub(super) by_shard: Vec<Vec<ParsedRow<'a>>>,
    pub(super) rejected: Vec<RejectedRow>,
    /// The first line longer than [`MAX_LINE_BYTES`] (the import stops there).
    pub(super) too_long: Option<u64>,
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

pub(super) fn parse_piece<'a>(
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

/// Reads and checks the header; creates missing columns in the schema.
pub(super) fn layout_from_header(engine: &Engine, header: &str) -> Result<CsvLayout, ImportError> {
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
