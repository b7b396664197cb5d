//! Byte-level building blocks shared by the WAL and the snapshot files: an explicit
//! little-endian encoder, a bounds-checked decoder, and the sectioned container every
//! snapshot file uses (header, section table with per-section CRC32, raw sections).
//!
//! The decoder never trusts a length read from disk: every count is checked against the
//! bytes that remain *before* anything is allocated or sliced, so a flipped bit yields
//! an error, never a panic, an out-of-bounds read or a huge allocation.

use roaring::RoaringBitmap;
use std::fmt;

/// Snapshot files start with these bytes.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"SEGDSNAP";
/// Current snapshot format version; bump on any layout change (fixtures catch misses).
/// Version 3 keeps the de-duplication window as 16-byte hashes (manifest section 5)
/// instead of the message ids (section 3).
pub const SNAPSHOT_FORMAT_VERSION: u32 = 3;
/// Oldest snapshot format this build still reads (version 1 lacks the event store and
/// extra identifiers; they load empty).
pub const OLDEST_READABLE_SNAPSHOT_VERSION: u32 = 1;
/// Fixed header bytes before the section table.
pub const HEADER_BYTES: usize = 32;
/// Bytes per section table entry.
pub const SECTION_ENTRY_BYTES: usize = 32;
/// Most sections in one file (a shard has a few plus one per trait column).
pub const MAX_SECTIONS: usize = 20_000;
/// Sections start at multiples of this, so raw arrays are aligned in the mapped file.
pub const SECTION_ALIGNMENT: usize = 8;

/// What kind of snapshot file a container is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Manifest = 1,
    Shard = 2,
}

/// Bytes that do not decode: what was wrong, without the file name (callers add it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError(pub String);

impl fmt::Display for FormatError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for FormatError {}

pub fn damaged(reason: impl Into<String>) -> FormatError {
    FormatError(reason.into())
}

/// Little-endian encoder into a growable buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    pub bytes: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    pub fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub fn u16(&mut self, value: u16) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub fn i64(&mut self, value: i64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub fn u128(&mut self, value: u128) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    /// Length-prefixed (u64) bytes.
    pub fn bytes(&mut self, value: &[u8]) {
        self.u64(value.len() as u64);
        self.bytes.extend_from_slice(value);
    }

    pub fn str(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    /// An optional string: a u8 flag then the string.
    pub fn optional_str(&mut self, value: Option<&str>) {
        match value {
            Some(text) => {
                self.u8(1);
                self.str(text);
            }
            None => self.u8(0),
        }
    }

    pub fn u16s(&mut self, values: &[u16]) {
        self.u64(values.len() as u64);
        self.bytes.reserve(values.len() * 2);
        for value in values {
            self.u16(*value);
        }
    }

    pub fn u32s(&mut self, values: &[u32]) {
        self.u64(values.len() as u64);
        self.bytes.reserve(values.len() * 4);
        for value in values {
            self.u32(*value);
        }
    }

    pub fn u64s(&mut self, values: &[u64]) {
        self.u64(values.len() as u64);
        self.bytes.reserve(values.len() * 8);
        for value in values {
            self.u64(*value);
        }
    }

    pub fn i64s(&mut self, values: &[i64]) {
        self.u64(values.len() as u64);
        self.bytes.reserve(values.len() * 8);
        for value in values {
            self.i64(*value);
        }
    }

    pub fn f64s(&mut self, values: &[f64]) {
        self.u64(values.len() as u64);
        self.bytes.reserve(values.len() * 8);
        for value in values {
            self.u64(value.to_bits());
        }
    }

    /// A roaring bitmap in its portable serialization, length-prefixed.
    pub fn bitmap(&mut self, bitmap: &RoaringBitmap) {
        self.u64(bitmap.serialized_size() as u64);
        // Writing into a Vec cannot fail.
        let _ = bitmap.serialize_into(&mut self.bytes);
    }

    /// A table of strings: count, then each length-prefixed.
    pub fn strings<'a>(&mut self, values: impl ExactSizeIterator<Item = &'a str>) {
        self.u64(values.len() as u64);
        for value in values {
            self.str(value);
        }
    }
}

/// Bounds-checked little-endian decoder over a byte slice.
#[derive(Debug)]
pub struct Decoder<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder { bytes, position: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    pub fn position(&self) -> usize {
        self.position
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `length` bytes; an error (not a panic) when fewer remain.
    pub fn take(&mut self, length: usize) -> Result<&'a [u8], FormatError> {
        if length > self.remaining() {
            return Err(damaged(format!(
                "truncated: needs {length} bytes at offset {}, {} remain",
                self.position,
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.position..self.position + length];
        self.position += length;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let slice = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    pub fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, FormatError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub fn u128(&mut self) -> Result<u128, FormatError> {
        Ok(u128::from_le_bytes(self.array()?))
    }

    /// A count of items of `item_bytes` each, checked against the remaining bytes so a
    /// corrupted count cannot trigger a huge allocation.
    pub fn count(&mut self, item_bytes: usize) -> Result<usize, FormatError> {
        let count = self.u64()?;
        let needed = count.checked_mul(item_bytes.max(1) as u64);
        match needed {
            Some(needed) if needed <= self.remaining() as u64 => Ok(count as usize),
            _ => Err(damaged(format!(
                "count {count} at offset {} exceeds the {} remaining bytes",
                self.position - 8,
                self.remaining()
            ))),
        }
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], FormatError> {
        let length = self.count(1)?;
        self.take(length)
    }

    pub fn str(&mut self) -> Result<&'a str, FormatError> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).map_err(|_| damaged("string is not UTF-8"))
    }

    pub fn optional_str(&mut self) -> Result<Option<&'a str>, FormatError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            other => Err(damaged(format!("bad optional flag {other}"))),
        }
    }

    pub fn u16s(&mut self) -> Result<Vec<u16>, FormatError> {
        let count = self.count(2)?;
        let raw = self.take(count * 2)?;
        Ok(raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect())
    }

    pub fn u32s(&mut self) -> Result<Vec<u32>, FormatError> {
        let count = self.count(4)?;
        let raw = self.take(count * 4)?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    pub fn u64s(&mut self) -> Result<Vec<u64>, FormatError> {
        let count = self.count(8)?;
        let raw = self.take(count * 8)?;
        Ok(raw.chunks_exact(8).map(le_u64).collect())
    }

    pub fn i64s(&mut self) -> Result<Vec<i64>, FormatError> {
        let count = self.count(8)?;
        let raw = self.take(count * 8)?;
        Ok(raw.chunks_exact(8).map(|c| le_u64(c) as i64).collect())
    }

    pub fn f64s(&mut self) -> Result<Vec<f64>, FormatError> {
        let count = self.count(8)?;
        let raw = self.take(count * 8)?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| f64::from_bits(le_u64(c)))
            .collect())
    }

    pub fn bitmap(&mut self) -> Result<RoaringBitmap, FormatError> {
        let bytes = self.bytes()?;
        // The checked deserializer validates container structure (the CRC already
        // matched, but a bug or a crafted file must still not yield a broken bitmap).
        RoaringBitmap::deserialize_from(bytes).map_err(|error| damaged(format!("bitmap: {error}")))
    }

    pub fn strings(&mut self) -> Result<Vec<&'a str>, FormatError> {
        let count = self.count(8)?;
        (0..count).map(|_| self.str()).collect()
    }
}

fn le_u64(chunk: &[u8]) -> u64 {
    u64::from_le_bytes([
        chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
    ])
}

/// One section of a container: a kind, a key (e.g. the column id) and its bytes.
#[derive(Debug)]
pub struct Section {
    pub kind: u32,
    pub key: u32,
    pub bytes: Vec<u8>,
}

/// A section table entry as read from a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionEntry {
    pub kind: u32,
    pub key: u32,
    pub offset: u64,
    pub length: u64,
    pub crc32: u32,
}

/// Lays out a container: header, section table, header CRC, aligned sections.
///
/// ```text
/// 0   magic "SEGDSNAP"           8 bytes
/// 8   format version             u32
/// 12  file kind                  u32 (1 manifest, 2 shard)
/// 16  section count              u32
/// 20  reserved (0)               u32
/// 24  total file size            u64
/// 32  section table              count × 32 bytes:
///       kind u32, key u32, offset u64, length u64, crc32 u32, reserved u32
/// ..  header crc32               u32 over bytes [0, 32 + 32 × count)
/// ..  sections, each starting at a multiple of 8, zero padding between
/// ```
pub fn container_bytes(kind: FileKind, sections: &[Section]) -> Vec<u8> {
    let mut out = Vec::with_capacity(container_size(sections) as usize);
    // Writing into a Vec cannot fail.
    let _ = write_container(&mut out, kind, sections);
    out
}

/// The size of the container holding `sections`.
pub fn container_size(sections: &[Section]) -> u64 {
    let mut offset = align(HEADER_BYTES + sections.len() * SECTION_ENTRY_BYTES + 4);
    for section in sections {
        offset = align(offset + section.bytes.len());
    }
    offset as u64
}

/// Writes a container piece by piece (no copy of the sections into one buffer), with
/// the checksums computed here, so encoding under a lock stays cheap.
pub fn write_container(
    out: &mut impl std::io::Write,
    kind: FileKind,
    sections: &[Section],
) -> std::io::Result<()> {
    let table_end = HEADER_BYTES + sections.len() * SECTION_ENTRY_BYTES;
    let mut offset = align(table_end + 4);
    let mut entries = Vec::with_capacity(sections.len());
    for section in sections {
        entries.push(SectionEntry {
            kind: section.kind,
            key: section.key,
            offset: offset as u64,
            length: section.bytes.len() as u64,
            crc32: crc32fast::hash(&section.bytes),
        });
        offset = align(offset + section.bytes.len());
    }
    let total = offset;
    let mut header = Vec::with_capacity(table_end + 4);
    header.extend_from_slice(&SNAPSHOT_MAGIC);
    header.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&(kind as u32).to_le_bytes());
    header.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&(total as u64).to_le_bytes());
    for entry in &entries {
        header.extend_from_slice(&entry.kind.to_le_bytes());
        header.extend_from_slice(&entry.key.to_le_bytes());
        header.extend_from_slice(&entry.offset.to_le_bytes());
        header.extend_from_slice(&entry.length.to_le_bytes());
        header.extend_from_slice(&entry.crc32.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
    }
    let header_crc = crc32fast::hash(&header);
    header.extend_from_slice(&header_crc.to_le_bytes());
    out.write_all(&header)?;
    let mut written = header.len();
    let zeros = [0u8; SECTION_ALIGNMENT];
    for (section, entry) in sections.iter().zip(&entries) {
        out.write_all(&zeros[..entry.offset as usize - written])?;
        out.write_all(&section.bytes)?;
        written = entry.offset as usize + section.bytes.len();
    }
    out.write_all(&zeros[..total - written])?;
    Ok(())
}

fn align(offset: usize) -> usize {
    offset.div_ceil(SECTION_ALIGNMENT) * SECTION_ALIGNMENT
}

/// A parsed, fully verified container: every section's bounds and CRC checked.
#[derive(Debug)]
pub struct Container<'a> {
    pub kind: u32,
    pub version: u32,
    pub entries: Vec<SectionEntry>,
    bytes: &'a [u8],
}

impl<'a> Container<'a> {
    /// Checks magic, version, sizes, the header CRC and every section CRC.
    pub fn parse(bytes: &'a [u8], expected: FileKind) -> Result<Container<'a>, FormatError> {
        let mut header = Decoder::new(bytes);
        let magic = header
            .take(8)
            .map_err(|_| damaged("shorter than a header"))?;
        if magic != SNAPSHOT_MAGIC {
            return Err(damaged("not a segd snapshot file (bad magic)"));
        }
        let version = header.u32()?;
        if !(OLDEST_READABLE_SNAPSHOT_VERSION..=SNAPSHOT_FORMAT_VERSION).contains(&version) {
            return Err(damaged(format!(
                "format version {version}; this build reads versions {OLDEST_READABLE_SNAPSHOT_VERSION} to {SNAPSHOT_FORMAT_VERSION}"
            )));
        }
        let kind = header.u32()?;
        if kind != expected as u32 {
            return Err(damaged(format!(
                "file kind {kind}, expected {}",
                expected as u32
            )));
        }
        let count = header.u32()? as usize;
        let _reserved = header.u32()?;
        let total = header.u64()?;
        if count > MAX_SECTIONS {
            return Err(damaged(format!("{count} sections (limit {MAX_SECTIONS})")));
        }
        if total != bytes.len() as u64 {
            return Err(damaged(format!(
                "header says {total} bytes, file has {} (truncated or extended)",
                bytes.len()
            )));
        }
        let table_end = HEADER_BYTES + count * SECTION_ENTRY_BYTES;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let kind = header.u32()?;
            let key = header.u32()?;
            let offset = header.u64()?;
            let length = header.u64()?;
            let crc32 = header.u32()?;
            let _reserved = header.u32()?;
            entries.push(SectionEntry {
                kind,
                key,
                offset,
                length,
                crc32,
            });
        }
        let stored_crc = header.u32()?;
        if crc32fast::hash(&bytes[..table_end]) != stored_crc {
            return Err(damaged("header checksum mismatch"));
        }
        for entry in &entries {
            // Bounds before slicing: offset + length must lie inside the file.
            let end = entry.offset.checked_add(entry.length);
            if end.is_none_or(|end| end > bytes.len() as u64) || entry.offset < table_end as u64 {
                return Err(damaged(format!(
                    "section {} ({}) lies outside the file",
                    entry.kind, entry.key
                )));
            }
            let data = &bytes[entry.offset as usize..(entry.offset + entry.length) as usize];
            if crc32fast::hash(data) != entry.crc32 {
                return Err(damaged(format!(
                    "section {} ({}) checksum mismatch",
                    entry.kind, entry.key
                )));
            }
        }
        Ok(Container {
            kind,
            version,
            entries,
            bytes,
        })
    }

    /// The bytes of a verified section.
    pub fn section(&self, entry: &SectionEntry) -> &'a [u8] {
        // Bounds were checked in `parse`.
        &self.bytes[entry.offset as usize..(entry.offset + entry.length) as usize]
    }

    /// The first section of a kind.
    pub fn find(&self, kind: u32) -> Result<&'a [u8], FormatError> {
        self.entries
            .iter()
            .find(|entry| entry.kind == kind)
            .map(|entry| self.section(entry))
            .ok_or_else(|| damaged(format!("missing section {kind}")))
    }
}

#[cfg(test)]
mod tests {
    //! Round trips, and every single-byte corruption of a container is rejected.
    use super::*;

    fn sample() -> Vec<u8> {
        let mut first = Encoder::new();
        first.u32s(&[1, 2, 3]);
        first.str("hello");
        let mut bitmap = RoaringBitmap::new();
        bitmap.insert_range(10..2000);
        first.bitmap(&bitmap);
        container_bytes(
            FileKind::Shard,
            &[
                Section {
                    kind: 1,
                    key: 0,
                    bytes: first.bytes,
                },
                Section {
                    kind: 2,
                    key: 7,
                    bytes: vec![9; 13],
                },
            ],
        )
    }

    #[test]
    fn container_round_trips() {
        let bytes = sample();
        assert_eq!(bytes.len() % SECTION_ALIGNMENT, 0);
        let container = Container::parse(&bytes, FileKind::Shard).unwrap();
        assert_eq!(container.entries.len(), 2);
        let mut decoder = Decoder::new(container.find(1).unwrap());
        assert_eq!(decoder.u32s().unwrap(), vec![1, 2, 3]);
        assert_eq!(decoder.str().unwrap(), "hello");
        assert_eq!(decoder.bitmap().unwrap().len(), 1990);
        assert!(decoder.is_empty());
        assert_eq!(container.find(2).unwrap(), &[9; 13][..]);
        assert!(Container::parse(&bytes, FileKind::Manifest).is_err());
    }

    #[test]
    fn every_flipped_byte_and_truncation_is_rejected() {
        let bytes = sample();
        for index in 0..bytes.len() {
            let mut damaged_bytes = bytes.clone();
            damaged_bytes[index] ^= 0x5a;
            // Padding bytes are not covered by any checksum; everything else is.
            let is_padding = {
                let container = Container::parse(&bytes, FileKind::Shard).unwrap();
                let in_header = index < HEADER_BYTES + 2 * SECTION_ENTRY_BYTES + 4;
                let in_section = container
                    .entries
                    .iter()
                    .any(|e| (e.offset..e.offset + e.length).contains(&(index as u64)));
                !in_header && !in_section
            };
            assert_eq!(
                Container::parse(&damaged_bytes, FileKind::Shard).is_err(),
                !is_padding,
                "byte {index}"
            );
        }
        for length in 0..bytes.len() {
            assert!(Container::parse(&bytes[..length], FileKind::Shard).is_err());
        }
    }

    #[test]
    fn corrupted_counts_do_not_allocate_or_panic() {
        let mut encoder = Encoder::new();
        encoder.u64(u64::MAX / 2);
        let mut decoder = Decoder::new(&encoder.bytes);
        assert!(decoder.u64s().is_err());
        let mut decoder = Decoder::new(&encoder.bytes);
        assert!(decoder.str().is_err());
        let mut decoder = Decoder::new(&[1, 2]);
        assert!(decoder.u32().is_err());
    }
}
