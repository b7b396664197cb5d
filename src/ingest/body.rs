//! Ingest bodies parsed with their limits checked while parsing, so a hostile body
//! cannot cost many times its size before it is rejected.
//!
//! A batch body is scanned once: each element of `batch` is kept as a borrowed slice of
//! the body (`RawValue`, no copy) and counted as it is read, so the 5,001st message
//! stops the parse. Then each message is built into a JSON value on its own, through a
//! bounded builder: at most [`MAX_DEPTH`] levels, and at most one value per
//! [`MIN_BYTES_PER_VALUE`] bytes of the message (with a floor of
//! [`MIN_VALUE_BUDGET`]), which caps a message's in-memory form at a small multiple of
//! its size (`[0,0,0,...]` is two bytes per 32-byte value otherwise).

use crate::ingest::{parse_message, Message, MessageError, MAX_BATCH_MESSAGES};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// Deepest nesting accepted in a message (traits and properties nest at most 8 levels;
/// `context` and the message itself add a few).
pub const MAX_DEPTH: usize = 32;
/// A message may hold one JSON value per this many bytes of its text...
pub const MIN_BYTES_PER_VALUE: usize = 4;
/// ...or this many, whichever is more.
pub const MIN_VALUE_BUDGET: usize = 1_024;

/// Why an ingest body was refused.
#[derive(Debug)]
pub enum BodyError {
    /// Not JSON (or truncated): 400 `malformed_json`.
    Syntax(serde_json::Error),
    /// JSON, but not an acceptable message or batch: 422 with the field's path.
    Message(MessageError),
}

impl From<MessageError> for BodyError {
    fn from(error: MessageError) -> BodyError {
        BodyError::Message(error)
    }
}

fn message_error(path: &str, message: impl Into<String>) -> MessageError {
    MessageError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Builds a `Value` while counting values against a budget and bounding depth.
struct Bounded<'a> {
    remaining: &'a Cell<usize>,
    depth: usize,
    /// Set to the reason when the builder stops on a limit (a data error to serde).
    limit_hit: &'a Cell<Option<&'static str>>,
}

impl Bounded<'_> {
    fn take_one<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.remaining.get().checked_sub(1) {
            Some(left) => {
                self.remaining.set(left);
                Ok(())
            }
            None => Err(self.stop("holds too many JSON values for its size")),
        }
    }

    fn stop<E: serde::de::Error>(&self, reason: &'static str) -> E {
        self.limit_hit.set(Some(reason));
        E::custom(reason)
    }

    fn child(&self) -> Bounded<'_> {
        Bounded {
            remaining: self.remaining,
            depth: self.depth + 1,
            limit_hit: self.limit_hit,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Value, E> {
        self.take_one()?;
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Value, E> {
        self.take_one()?;
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Value, E> {
        self.take_one()?;
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Value, E> {
        self.take_one()?;
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Value, E> {
        self.take_one()?;
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Value, E> {
        self.take_one()?;
        Ok(Value::String(value))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.take_one()?;
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        self.take_one()?;
        if self.depth >= MAX_DEPTH {
            return Err(self.stop("nests deeper than 32 levels"));
        }
        let mut items = Vec::new();
        while let Some(item) = access.next_element_seed(self.child())? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        self.take_one()?;
        if self.depth >= MAX_DEPTH {
            return Err(self.stop("nests deeper than 32 levels"));
        }
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            // A key costs about what a value does.
            self.take_one()?;
            let value = access.next_value_seed(self.child())?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// Parses one message's JSON text into a bounded value.
fn bounded_value(text: &str, path: &str) -> Result<Value, BodyError> {
    let remaining = Cell::new((text.len() / MIN_BYTES_PER_VALUE).max(MIN_VALUE_BUDGET));
    let limit_hit = Cell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let seed = Bounded {
        remaining: &remaining,
        depth: 0,
        limit_hit: &limit_hit,
    };
    let parsed = seed.deserialize(&mut deserializer).and_then(|value| {
        deserializer.end()?;
        Ok(value)
    });
    match parsed {
        Ok(value) => Ok(value),
        Err(error) => match limit_hit.get() {
            Some(reason) => Err(BodyError::Message(message_error(
                if path.is_empty() { "body" } else { path },
                reason,
            ))),
            None => Err(BodyError::Syntax(error)),
        },
    }
}

/// Parses the body of a typed endpoint (`/v1/identify`, ...).
pub fn parse_message_body(bytes: &[u8], default_type: &str) -> Result<Message, BodyError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        // Invalid UTF-8 is a JSON syntax error; let serde_json say where.
        return Err(BodyError::Syntax(
            serde_json::from_slice::<IgnoredAny>(bytes)
                .err()
                .unwrap_or_else(|| serde::de::Error::custom("the body is not valid UTF-8")),
        ));
    };
    let value = bounded_value(text, "")?;
    Ok(parse_message(&value, Some(default_type), "")?)
}

/// The `batch` array's elements, borrowed from the body and counted while read.
struct BatchItems<'a, 'de> {
    items: &'a mut Vec<&'de RawValue>,
    too_many: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for BatchItems<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BatchItems<'_, 'de> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an array of messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        while let Some(item) = access.next_element::<&'de RawValue>()? {
            if self.items.len() == MAX_BATCH_MESSAGES {
                self.too_many.set(true);
                return Err(serde::de::Error::custom("too many messages"));
            }
            self.items.push(item);
        }
        Ok(())
    }
}

/// The top-level object of a batch body: `batch` kept, everything else skipped.
struct BatchBody<'a, 'de> {
    items: &'a mut Vec<&'de RawValue>,
    too_many: &'a Cell<bool>,
    seen_batch: &'a Cell<bool>,
}

impl<'de> Visitor<'de> for BatchBody<'_, 'de> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object with a `batch` array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        while let Some(key) = access.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "batch" {
                self.seen_batch.set(true);
                self.items.clear();
                access.next_value_seed(BatchItems {
                    items: self.items,
                    too_many: self.too_many,
                })?;
            } else {
                access.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Parses a `{"batch": [...]}` body: the message count is checked while reading, then
/// every message is validated (errors name it, `batch[3].userId`) before any is applied.
pub fn parse_batch_body(bytes: &[u8]) -> Result<Vec<Message>, BodyError> {
    let mut items: Vec<&RawValue> = Vec::new();
    let too_many = Cell::new(false);
    let seen_batch = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = deserializer
        .deserialize_any(BatchBody {
            items: &mut items,
            too_many: &too_many,
            seen_batch: &seen_batch,
        })
        .and_then(|()| deserializer.end());
    if too_many.get() {
        return Err(BodyError::Message(message_error(
            "batch",
            format!("has more than {MAX_BATCH_MESSAGES} messages; send smaller batches"),
        )));
    }
    if let Err(error) = parsed {
        return Err(match error.classify() {
            // A body that is JSON but of the wrong shape names the field, as before.
            serde_json::error::Category::Data if !seen_batch.get() => {
                BodyError::Message(message_error("body", "must be a JSON object"))
            }
            serde_json::error::Category::Data => {
                BodyError::Message(message_error("batch", "must be an array of messages"))
            }
            _ => BodyError::Syntax(error),
        });
    }
    if !seen_batch.get() {
        return Err(BodyError::Message(message_error("batch", "is required")));
    }
    let mut messages = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let path = format!("batch[{index}]");
        let value = bounded_value(item.get(), &path)?;
        messages.push(parse_message(&value, None, &path)?);
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    //! Limits are checked while parsing; results equal the `Value`-based parser's.
    use super::*;
    use crate::ingest::parse_batch;
    use serde_json::json;

    #[test]
    fn same_messages_as_the_value_parser() {
        let body = json!({"batch": [
            {"type": "identify", "userId": "u1", "traits": {"a": 1, "b": {"c": [1, 2]}}},
            {"type": "track", "anonymousId": "a1", "event": "e", "properties": {"x": 1.5}},
            {"type": "alias", "userId": "u2", "previousId": "u1"}
        ], "sentAt": "2024-01-01T00:00:00Z", "context": {"library": {"name": "x"}}});
        let bytes = serde_json::to_vec(&body).unwrap();
        assert_eq!(
            parse_batch_body(&bytes).unwrap(),
            parse_batch(&body).unwrap()
        );
    }

    #[test]
    fn message_count_is_checked_while_reading() {
        let mut text = String::from("{\"batch\": [");
        for index in 0..=MAX_BATCH_MESSAGES {
            if index > 0 {
                text.push(',');
            }
            text.push('0');
        }
        // Unterminated on purpose: the count error comes before the syntax error.
        let error = parse_batch_body(text.as_bytes()).unwrap_err();
        match error {
            BodyError::Message(error) => {
                assert_eq!(error.path, "batch");
                assert!(
                    error.message.contains("more than 5000"),
                    "{}",
                    error.message
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tiny_values_are_refused_before_they_are_built() {
        let zeros = vec!["0"; 400_000].join(",");
        let text = format!(
            "{{\"type\": \"identify\", \"userId\": \"u\", \"traits\": {{\"a\": [{zeros}]}}}}"
        );
        match parse_message_body(text.as_bytes(), "identify").unwrap_err() {
            BodyError::Message(error) => {
                assert_eq!(error.path, "body");
                assert!(error.message.contains("too many JSON values"));
            }
            other => panic!("{other:?}"),
        }
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        let text = format!("{{\"batch\": [{{\"type\": \"identify\", \"userId\": \"u\", \"traits\": {{\"a\": {deep}}}}}]}}");
        match parse_batch_body(text.as_bytes()).unwrap_err() {
            BodyError::Message(error) => assert_eq!(error.path, "batch[0]"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shapes_and_syntax() {
        assert!(matches!(
            parse_batch_body(b"{\"batch\": [").unwrap_err(),
            BodyError::Syntax(_)
        ));
        for (body, path) in [
            (&b"[1]"[..], "body"),
            (b"{\"batch\": 3}", "batch"),
            (b"{}", "batch"),
            (b"{\"batch\": [3]}", "batch[0]"),
        ] {
            match parse_batch_body(body).unwrap_err() {
                BodyError::Message(error) => assert_eq!(error.path, path, "{body:?}"),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            parse_message_body(b"{\"userId\": \"u\"} x", "identify").unwrap_err(),
            BodyError::Syntax(_)
        ));
    }
}
