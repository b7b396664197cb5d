//! Stage 1: reading a file in chunks of whole lines, and splitting a chunk into pieces
//! at line boundaries for the parallel parsers.

use super::{ImportError, MAX_LINE_BYTES};
use std::io::Read;
use std::path::Path;

/// A run of whole lines and the line number of its first line.
pub(super) struct RawChunk {
    pub(super) first_line: u64,
    pub(super) bytes: Vec<u8>,
}

/// Reads a file as chunks of whole lines.
pub(super) struct ChunkReader {
    pub(super) file: std::fs::File,
    pub(super) path: String,
    pub(super) chunk_bytes: usize,
    /// Bytes after the last newline of the previous read.
    pub(super) carry: Vec<u8>,
    pub(super) next_line: u64,
    pub(super) bytes_read: u64,
    pub(super) done: bool,
}

impl ChunkReader {
    pub(super) fn open(path: &Path, chunk_bytes: usize) -> Result<(ChunkReader, u64), ImportError> {
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

    pub(super) fn next_chunk(&mut self) -> Result<Option<RawChunk>, ImportError> {
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
pub(super) fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
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

pub(super) fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Splits a chunk into about `pieces` runs of whole lines, each with its first line
/// number.
pub(super) fn split_lines(chunk: &RawChunk, pieces: usize) -> Vec<(u64, &[u8])> {
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
