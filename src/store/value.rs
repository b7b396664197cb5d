//! Trait values: JSON in, typed values out.
//!
//! Type inference happens on first sight of a trait name (see [`TraitType`]):
//! - JSON `true`/`false` → boolean; integers (fitting `i64`) → integer; other numbers → float;
//! - a string that is an RFC 3339 time (`2024-05-01T10:00:00Z`) or a calendar date
//!   (`1990-05-12`, read as midnight UTC) → timestamp (millisecond precision); other
//!   strings → string;
//! - an array of strings → list of strings (a set: duplicates collapse, order is not kept);
//! - a nested object → one trait per leaf, named by the dotted path (`a.b.c`);
//! - `null` → the trait is removed from the profile.
//!
//! Coercion into an existing column (never lossy, otherwise the value is rejected):
//! - integer → float column: stored as float when exactly representable (|v| ≤ 2^53);
//! - float with no fraction → integer column: stored as integer; a float with a fraction
//!   widens the integer column to float for good (every stored integer is kept exactly
//!   when |v| ≤ 2^53, larger ones make the widening fail with an error);
//! - timestamp string → timestamp column; integer → timestamp column: epoch milliseconds;
//! - string column accepts only strings (a timestamp-looking string is kept as text);
//! - anything else (e.g. a string into a number column) is rejected with an error naming
//!   the trait, its type and the value's type.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Longest string value accepted, in bytes.
pub const MAX_STRING_BYTES: usize = 4_096;
/// Longest trait name (dotted path), in bytes.
pub const MAX_TRAIT_NAME_BYTES: usize = 256;
/// Most items in one list trait.
pub const MAX_LIST_ITEMS: usize = 256;
/// Deepest object nesting in traits.
pub const MAX_TRAIT_NESTING: usize = 8;
/// Most traits set by one message.
pub const MAX_TRAITS_PER_MESSAGE: usize = 512;

/// The type of a trait column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TraitType {
    String,
    Integer,
    Float,
    Boolean,
    Timestamp,
    List,
}

impl TraitType {
    pub fn name(self) -> &'static str {
        match self {
            TraitType::String => "string",
            TraitType::Integer => "integer",
            TraitType::Float => "float",
            TraitType::Boolean => "boolean",
            TraitType::Timestamp => "timestamp",
            TraitType::List => "list of strings",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, TraitType::Integer | TraitType::Float)
    }
}

impl fmt::Display for TraitType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A typed trait value.
#[derive(Clone, Debug, PartialEq)]
pub enum TraitValue {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// Sorted, de-duplicated.
    List(Vec<String>),
}

impl TraitValue {
    pub fn trait_type(&self) -> TraitType {
        match self {
            TraitValue::String(_) => TraitType::String,
            TraitValue::Integer(_) => TraitType::Integer,
            TraitValue::Float(_) => TraitType::Float,
            TraitValue::Boolean(_) => TraitType::Boolean,
            TraitValue::Timestamp(_) => TraitType::Timestamp,
            TraitValue::List(_) => TraitType::List,
        }
    }

    /// JSON form for profile cards and exports (timestamps as RFC 3339).
    pub fn to_json(&self) -> Value {
        match self {
            TraitValue::String(text) => Value::String(text.clone()),
            TraitValue::Integer(number) => Value::from(*number),
            TraitValue::Float(number) => Value::from(*number),
            TraitValue::Boolean(flag) => Value::Bool(*flag),
            TraitValue::Timestamp(millis) => Value::String(format_timestamp(*millis)),
            TraitValue::List(items) => Value::from(items.clone()),
        }
    }
}

/// Why a value could not be stored.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ValueError {
    #[error("trait `{name}` is {expected}; got {found} `{value}` — send a {expected} value or use another trait name")]
    TypeMismatch {
        name: String,
        expected: TraitType,
        found: &'static str,
        value: String,
    },
    #[error(
        "trait `{name}`: number {value} does not fit a 64-bit signed integer or a finite float"
    )]
    NumberOutOfRange { name: String, value: String },
    #[error(
        "trait `{name}`: string of {length} bytes exceeds the limit of {MAX_STRING_BYTES} bytes"
    )]
    StringTooLong { name: String, length: usize },
    #[error("trait name `{name}` is invalid: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("trait `{name}`: list has {length} items, the limit is {MAX_LIST_ITEMS}")]
    ListTooLong { name: String, length: usize },
    #[error("trait `{name}`: lists may hold only strings; item {index} is {found}")]
    ListItemNotString {
        name: String,
        index: usize,
        found: &'static str,
    },
    #[error("trait `{name}`: objects may nest at most {MAX_TRAIT_NESTING} levels")]
    TooDeep { name: String },
    #[error("a message may set at most {MAX_TRAITS_PER_MESSAGE} traits; this one sets {count}")]
    TooManyTraits { count: usize },
}

/// A flattened trait assignment: `None` removes the trait.
pub type TraitAssignment = (String, Option<TraitValue>);

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_name(name: &str) -> Result<(), ValueError> {
    let bad = |reason| {
        Err(ValueError::BadName {
            name: name.chars().take(64).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_TRAIT_NAME_BYTES {
        return bad("it is longer than 256 bytes");
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return bad("dotted paths may not have empty parts");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains control characters");
    }
    Ok(())
}

/// Flattens a JSON traits object into dotted names with inferred values, validating
/// everything first so nothing is half-applied.
pub fn flatten_traits(
    traits: &serde_json::Map<String, Value>,
) -> Result<Vec<TraitAssignment>, ValueError> {
    let mut out = Vec::new();
    flatten_into("", traits, 1, &mut out)?;
    if out.len() > MAX_TRAITS_PER_MESSAGE {
        return Err(ValueError::TooManyTraits { count: out.len() });
    }
    Ok(out)
}

fn flatten_into(
    prefix: &str,
    object: &serde_json::Map<String, Value>,
    depth: usize,
    out: &mut Vec<TraitAssignment>,
) -> Result<(), ValueError> {
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        check_name(&name)?;
        match value {
            Value::Object(inner) => {
                if depth >= MAX_TRAIT_NESTING {
                    return Err(ValueError::TooDeep { name });
                }
                flatten_into(&name, inner, depth + 1, out)?;
            }
            Value::Null => out.push((name, None)),
            other => {
                let inferred = infer_value(&name, other)?;
                out.push((name, Some(inferred)));
            }
        }
        if out.len() > MAX_TRAITS_PER_MESSAGE {
            return Err(ValueError::TooManyTraits { count: out.len() });
        }
    }
    Ok(())
}

/// Infers the value's own type (first-sight typing), without looking at any column.
pub fn infer_value(name: &str, value: &Value) -> Result<TraitValue, ValueError> {
    match value {
        Value::Bool(flag) => Ok(TraitValue::Boolean(*flag)),
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Ok(TraitValue::Integer(integer))
            } else if number.is_u64() {
                Err(ValueError::NumberOutOfRange {
                    name: name.to_string(),
                    value: number.to_string(),
                })
            } else {
                match number.as_f64() {
                    Some(float) if float.is_finite() => Ok(TraitValue::Float(float)),
                    _ => Err(ValueError::NumberOutOfRange {
                        name: name.to_string(),
                        value: number.to_string(),
                    }),
                }
            }
        }
        Value::String(text) => {
            if text.len() > MAX_STRING_BYTES {
                return Err(ValueError::StringTooLong {
                    name: name.to_string(),
                    length: text.len(),
                });
            }
            match parse_timestamp(text) {
                Some(millis) => Ok(TraitValue::Timestamp(millis)),
                None => Ok(TraitValue::String(text.clone())),
            }
        }
        Value::Array(items) => {
            if items.len() > MAX_LIST_ITEMS {
                return Err(ValueError::ListTooLong {
                    name: name.to_string(),
                    length: items.len(),
                });
            }
            let mut strings = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                match item {
                    Value::String(text) => {
                        if text.len() > MAX_STRING_BYTES {
                            return Err(ValueError::StringTooLong {
                                name: name.to_string(),
                                length: text.len(),
                            });
                        }
                        strings.push(text.clone());
                    }
                    other => {
                        return Err(ValueError::ListItemNotString {
                            name: name.to_string(),
                            index,
                            found: json_kind(other),
                        })
                    }
                }
            }
            strings.sort_unstable();
            strings.dedup();
            Ok(TraitValue::List(strings))
        }
        Value::Null | Value::Object(_) => Err(ValueError::TypeMismatch {
            name: name.to_string(),
            expected: TraitType::String,
            found: json_kind(value),
            value: value.to_string(),
        }),
    }
}

/// Converts an inferred value to what a column of type `column_type` stores, or says
/// why it cannot (see the module doc for the rules).
pub fn coerce(
    name: &str,
    value: TraitValue,
    column_type: TraitType,
) -> Result<TraitValue, ValueError> {
    const EXACT_FLOAT_LIMIT: i64 = 1 << 53;
    let mismatch = |value: &TraitValue| ValueError::TypeMismatch {
        name: name.to_string(),
        expected: column_type,
        found: value.trait_type().name(),
        value: match value {
            TraitValue::String(text) => text.chars().take(64).collect(),
            other => format!("{:?}", other.to_json()),
        },
    };
    match (column_type, value) {
        (TraitType::String, TraitValue::Timestamp(millis)) => {
            // The string looked like a time but the column holds text: keep the text.
            // Re-formatting would change the user's spelling, so the caller passes the
            // original through `coerce_original` instead; this arm is a fallback.
            Ok(TraitValue::String(format_timestamp(millis)))
        }
        (column, value) if column == value.trait_type() => Ok(value),
        (TraitType::Float, TraitValue::Integer(integer)) => {
            if integer.abs() <= EXACT_FLOAT_LIMIT {
                Ok(TraitValue::Float(integer as f64))
            } else {
                Err(ValueError::NumberOutOfRange {
                    name: name.to_string(),
                    value: integer.to_string(),
                })
            }
        }
        (TraitType::Integer, TraitValue::Float(float))
            if float.fract() == 0.0 && float.abs() <= 9.0e15 =>
        {
            Ok(TraitValue::Integer(float as i64))
        }
        (TraitType::Timestamp, TraitValue::Integer(millis)) => Ok(TraitValue::Timestamp(millis)),
        (_, value) => Err(mismatch(&value)),
    }
}

/// Like [`coerce`], but given the original JSON so a timestamp-looking string sent to a
/// string column is stored exactly as sent.
pub fn coerce_json(
    name: &str,
    original: &Value,
    inferred: TraitValue,
    column_type: TraitType,
) -> Result<TraitValue, ValueError> {
    if let (TraitType::String, Value::String(text)) = (column_type, original) {
        return Ok(TraitValue::String(text.clone()));
    }
    coerce(name, inferred, column_type)
}

/// Parses RFC 3339 (`2024-05-01T10:00:00Z`, `...+02:00`, fractional seconds) or a
/// calendar date `YYYY-MM-DD` (midnight UTC) into epoch milliseconds.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    // Cheap shape check first: most strings are not times.
    if bytes.len() < 10
        || !bytes[0..4].iter().all(u8::is_ascii_digit)
        || bytes[4] != b'-'
        || bytes[7] != b'-'
    {
        return None;
    }
    if bytes.len() == 10 {
        let with_time = format!("{text}T00:00:00Z");
        return OffsetDateTime::parse(&with_time, &Rfc3339)
            .ok()
            .map(|time| (time.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(|time| (time.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Formats epoch milliseconds as RFC 3339 UTC with millisecond precision.
pub fn format_timestamp(millis: i64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(time) => {
            let date = time.date();
            let clock = time.time();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                date.year(),
                u8::from(date.month()),
                date.day(),
                clock.hour(),
                clock.minute(),
                clock.second(),
                clock.millisecond()
            )
        }
        Err(_) => millis.to_string(),
    }
}

#[cfg(test)]
mod tests {
    //! Inference, flattening and coercion rules from the module doc, one case each.
    use super::*;
    use serde_json::json;

    fn flat(value: Value) -> Result<Vec<TraitAssignment>, ValueError> {
        flatten_traits(value.as_object().unwrap())
    }

    #[test]
    fn infers_each_type_and_flattens_nested_objects() {
        let traits = flat(json!({
            "name": "Ada", "age": 36, "ltv": 12.5, "vip": true,
            "signup_at": "2024-05-01T10:00:00Z", "birth_date": "1990-05-12",
            "tags": ["b", "a", "b"], "phone": null,
            "subscriptions": {"newsletter": {"email": {"status": "subscribed"}}}
        }))
        .unwrap();
        let get = |name: &str| traits.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(get("name"), Some(TraitValue::String("Ada".into())));
        assert_eq!(get("age"), Some(TraitValue::Integer(36)));
        assert_eq!(get("ltv"), Some(TraitValue::Float(12.5)));
        assert_eq!(get("vip"), Some(TraitValue::Boolean(true)));
        assert_eq!(
            get("signup_at"),
            Some(TraitValue::Timestamp(1_714_557_600_000))
        );
        assert_eq!(
            get("birth_date"),
            Some(TraitValue::Timestamp(642_470_400_000))
        );
        assert_eq!(
            get("tags"),
            Some(TraitValue::List(vec!["a".into(), "b".into()]))
        );
        assert_eq!(get("phone"), None);
        assert_eq!(
            get("subscriptions.newsletter.email.status"),
            Some(TraitValue::String("subscribed".into()))
        );
    }

    #[test]
    fn rejects_what_cannot_be_stored() {
        assert!(matches!(
            flat(json!({"n": 18446744073709551615u64})),
            Err(ValueError::NumberOutOfRange { .. })
        ));
        assert!(matches!(
            flat(json!({"l": [1, 2]})),
            Err(ValueError::ListItemNotString { .. })
        ));
        assert!(matches!(
            flat(json!({"": 1})),
            Err(ValueError::BadName { .. })
        ));
        assert!(matches!(
            flat(json!({"s": "x".repeat(MAX_STRING_BYTES + 1)})),
            Err(ValueError::StringTooLong { .. })
        ));
        let mut deep = json!(1);
        for _ in 0..MAX_TRAIT_NESTING + 1 {
            deep = json!({ "a": deep });
        }
        assert!(matches!(flat(deep), Err(ValueError::TooDeep { .. })));
    }

    #[test]
    fn coercion_rules() {
        assert_eq!(
            coerce("x", TraitValue::Integer(3), TraitType::Float),
            Ok(TraitValue::Float(3.0))
        );
        assert_eq!(
            coerce("x", TraitValue::Float(3.0), TraitType::Integer),
            Ok(TraitValue::Integer(3))
        );
        assert!(coerce("x", TraitValue::Float(3.5), TraitType::Integer).is_err());
        assert!(coerce("x", TraitValue::String("a".into()), TraitType::Integer).is_err());
        assert!(coerce("x", TraitValue::Integer(1 << 60), TraitType::Float).is_err());
        assert_eq!(
            coerce_json(
                "x",
                &json!("2024-01-01"),
                TraitValue::Timestamp(0),
                TraitType::String
            ),
            Ok(TraitValue::String("2024-01-01".into()))
        );
    }

    #[test]
    fn timestamps_round_trip_through_formatting() {
        for millis in [0, 1_714_557_600_123, -86_400_000] {
            assert_eq!(parse_timestamp(&format_timestamp(millis)), Some(millis));
        }
        assert_eq!(parse_timestamp("hello world"), None);
        assert_eq!(parse_timestamp("2024-13-01"), None);
    }
}
