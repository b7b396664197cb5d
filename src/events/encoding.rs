//! The encoded form of one stored event's properties in the shard's byte arena
//! (`[property id u16][tag u8][payload]`, little-endian) and reading it back.

use super::*;

/// A stored event seen through the store: its time and its properties.
#[derive(Clone, Copy, Debug)]
pub struct EventView<'a> {
    pub time_ms: i64,
    pub(super) encoded: &'a [u8],
}

pub(super) const TAG_STRING: u8 = 0;
pub(super) const TAG_INTEGER: u8 = 1;
pub(super) const TAG_FLOAT: u8 = 2;
pub(super) const TAG_BOOL: u8 = 3;
pub(super) const TAG_LIST: u8 = 4;

/// Reads a little-endian u32 at `at`. The arena is written only by `encode_properties`,
/// so lengths are always in bounds; slicing still checks.
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn read_str(bytes: &[u8], at: usize) -> (&str, usize) {
    let length = read_u32(bytes, at) as usize;
    let text = std::str::from_utf8(&bytes[at + 4..at + 4 + length]).unwrap_or_default();
    (text, at + 4 + length)
}

/// Decodes one property starting at `at`; returns its id, value and the next offset.
fn decode_property(bytes: &[u8], at: usize) -> (PropertyNameId, PropertyValue<'_>, usize) {
    let id = PropertyNameId(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    let tag = bytes[at + 2];
    let at = at + 3;
    match tag {
        TAG_STRING => {
            let (text, next) = read_str(bytes, at);
            (id, PropertyValue::Str(text), next)
        }
        TAG_INTEGER => (
            id,
            PropertyValue::Integer(i64::from_le_bytes(
                bytes[at..at + 8].try_into().expect("8 bytes"),
            )),
            at + 8,
        ),
        TAG_FLOAT => (
            id,
            PropertyValue::Float(f64::from_le_bytes(
                bytes[at..at + 8].try_into().expect("8 bytes"),
            )),
            at + 8,
        ),
        TAG_BOOL => (id, PropertyValue::Bool(bytes[at] != 0), at + 1),
        _ => {
            let count = u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
            let mut next = at + 2;
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                let (text, after) = read_str(bytes, next);
                items.push(text);
                next = after;
            }
            (id, PropertyValue::List(items), next)
        }
    }
}

/// Whether `bytes` is a well-formed sequence of encoded properties with ids below
/// `property_count` (checked walk; the unchecked decoder trusts what we wrote).
pub(super) fn valid_encoding(bytes: &[u8], property_count: usize) -> bool {
    fn text(bytes: &[u8], at: usize) -> Option<usize> {
        let length = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize;
        let end = (at + 4).checked_add(length)?;
        std::str::from_utf8(bytes.get(at + 4..end)?).ok()?;
        Some(end)
    }
    let mut at = 0;
    while at < bytes.len() {
        let Some(header) = bytes.get(at..at + 3) else {
            return false;
        };
        if u16::from_le_bytes([header[0], header[1]]) as usize >= property_count {
            return false;
        }
        let next = match header[2] {
            TAG_STRING => text(bytes, at + 3),
            TAG_INTEGER | TAG_FLOAT => (bytes.len() >= at + 11).then_some(at + 11),
            TAG_BOOL => (bytes.len() >= at + 4).then_some(at + 4),
            TAG_LIST => {
                let Some(count) = bytes.get(at + 3..at + 5) else {
                    return false;
                };
                let mut next = Some(at + 5);
                for _ in 0..u16::from_le_bytes([count[0], count[1]]) {
                    next = next.and_then(|position| text(bytes, position));
                }
                next
            }
            _ => None,
        };
        match next {
            Some(next) => at = next,
            None => return false,
        }
    }
    true
}

impl<'a> EventView<'a> {
    /// The value of one property, if the event carries it.
    pub fn property(&self, id: PropertyNameId) -> Option<PropertyValue<'a>> {
        let mut at = 0;
        while at < self.encoded.len() {
            let (property, value, next) = decode_property(self.encoded, at);
            if property == id {
                return Some(value);
            }
            at = next;
        }
        None
    }

    /// Every property (for profile cards and merges).
    pub fn properties(&self) -> Vec<(PropertyNameId, PropertyValue<'a>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < self.encoded.len() {
            let (property, value, next) = decode_property(self.encoded, at);
            out.push((property, value));
            at = next;
        }
        out
    }
}
