//! WAL records: one applied [`Mutation`] each (with the engine time it was applied
//! at), or a bookkeeping record, in a hand-written little-endian format: a tag byte,
//! then fields. Messages (tag 10) carry traits and properties as a compact binary
//! value tree; tag 1 (the same with JSON text) is still read, so WAL segments written
//! by earlier versions replay. Rules stay JSON text (rare, and already an AST).

use crate::engine::{Mutation, StaticEdit};
use crate::ids::SegmentId;
use crate::ingest::{Message, MessageKind};
use crate::persist::format::{damaged, Decoder, Encoder, FormatError};
use crate::segment::ast::Rule;
use serde_json::{Map, Number, Value};

/// One WAL record.
#[derive(Clone, Debug, PartialEq)]
pub enum WalRecord {
    /// A mutation as applied; replay pins the clock to `at_ms` and applies it again.
    Mutation { at_ms: i64, mutation: Mutation },
    /// Change-log sequences up to `until` may be handed out; recovery starts above.
    ReserveSequences { until: u64 },
}

const TAG_MESSAGES: u8 = 1;
const TAG_CREATE_SEGMENT: u8 = 2;
const TAG_UPDATE_SEGMENT: u8 = 3;
const TAG_DELETE_SEGMENT: u8 = 4;
const TAG_EDIT_STATIC: u8 = 5;
const TAG_ERASE_PROFILE: u8 = 6;
const TAG_DELETE_PROFILE: u8 = 7;
const TAG_OPAQUE: u8 = 8;
const TAG_RESERVE: u8 = 9;
const TAG_MESSAGES_BINARY: u8 = 10;

const MESSAGE_IDENTIFY: u8 = 0;
const MESSAGE_TRACK: u8 = 1;
const MESSAGE_ALIAS: u8 = 2;

impl WalRecord {
    /// The engine time the record was applied at (`None` for bookkeeping records).
    pub fn at_ms(&self) -> Option<i64> {
        match self {
            WalRecord::Mutation { at_ms, .. } => Some(*at_ms),
            WalRecord::ReserveSequences { .. } => None,
        }
    }

    /// Short name for reports.
    pub fn kind_name(&self) -> &'static str {
        match self {
            WalRecord::Mutation { mutation, .. } => mutation.kind_name(),
            WalRecord::ReserveSequences { .. } => "reserve_sequences",
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Encoder::new();
        let (at_ms, mutation) = match self {
            WalRecord::ReserveSequences { until } => {
                out.u8(TAG_RESERVE);
                out.u64(*until);
                return out.bytes;
            }
            WalRecord::Mutation { at_ms, mutation } => (*at_ms, mutation),
        };
        match mutation {
            Mutation::Messages(messages) => {
                out.u8(TAG_MESSAGES_BINARY);
                out.i64(at_ms);
                out.u64(messages.len() as u64);
                for message in messages {
                    encode_message(&mut out, message);
                }
            }
            Mutation::CreateSegment {
                name,
                description,
                rule,
                emit_initial,
            } => {
                out.u8(TAG_CREATE_SEGMENT);
                out.i64(at_ms);
                out.str(name);
                out.str(description);
                let rule_json = rule.as_ref().map(rule_to_json);
                out.optional_str(rule_json.as_deref());
                out.u8(u8::from(*emit_initial));
            }
            Mutation::UpdateSegment {
                id,
                rule,
                description,
            } => {
                out.u8(TAG_UPDATE_SEGMENT);
                out.i64(at_ms);
                out.u32(id.0);
                out.str(&rule_to_json(rule));
                out.optional_str(description.as_deref());
            }
            Mutation::DeleteSegment { id } => {
                out.u8(TAG_DELETE_SEGMENT);
                out.i64(at_ms);
                out.u32(id.0);
            }
            Mutation::EditStatic { id, edit, profiles } => {
                out.u8(TAG_EDIT_STATIC);
                out.i64(at_ms);
                out.u32(id.0);
                out.u8(match edit {
                    StaticEdit::Add => 0,
                    StaticEdit::Remove => 1,
                    StaticEdit::Replace => 2,
                });
                out.strings(profiles.iter().map(String::as_str));
            }
            Mutation::EraseProfile { external_id } => {
                out.u8(TAG_ERASE_PROFILE);
                out.i64(at_ms);
                out.str(external_id);
            }
            Mutation::DeleteProfile { external_id } => {
                out.u8(TAG_DELETE_PROFILE);
                out.i64(at_ms);
                out.str(external_id);
            }
            Mutation::ApplicationState(bytes) => {
                out.u8(TAG_OPAQUE);
                out.i64(at_ms);
                out.bytes(bytes);
            }
        }
        out.bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<WalRecord, FormatError> {
        let mut input = Decoder::new(bytes);
        let tag = input.u8()?;
        if tag == TAG_RESERVE {
            let record = WalRecord::ReserveSequences {
                until: input.u64()?,
            };
            return finish(input, record);
        }
        let at_ms = input.i64()?;
        let mutation = match tag {
            TAG_MESSAGES | TAG_MESSAGES_BINARY => {
                let binary = tag == TAG_MESSAGES_BINARY;
                // Each message takes at least 5 bytes (kind and four flags).
                let count = input.count(5)?;
                let messages = (0..count)
                    .map(|_| decode_message(&mut input, binary))
                    .collect::<Result<_, _>>()?;
                Mutation::Messages(messages)
            }
            TAG_CREATE_SEGMENT => Mutation::CreateSegment {
                name: input.str()?.to_string(),
                description: input.str()?.to_string(),
                rule: input.optional_str()?.map(rule_from_json).transpose()?,
                emit_initial: input.u8()? != 0,
            },
            TAG_UPDATE_SEGMENT => Mutation::UpdateSegment {
                id: SegmentId(input.u32()?),
                rule: rule_from_json(input.str()?)?,
                description: input.optional_str()?.map(str::to_string),
            },
            TAG_DELETE_SEGMENT => Mutation::DeleteSegment {
                id: SegmentId(input.u32()?),
            },
            TAG_EDIT_STATIC => Mutation::EditStatic {
                id: SegmentId(input.u32()?),
                edit: match input.u8()? {
                    0 => StaticEdit::Add,
                    1 => StaticEdit::Remove,
                    2 => StaticEdit::Replace,
                    other => return Err(damaged(format!("bad static edit {other}"))),
                },
                profiles: input.strings()?.into_iter().map(str::to_string).collect(),
            },
            TAG_ERASE_PROFILE => Mutation::EraseProfile {
                external_id: input.str()?.to_string(),
            },
            TAG_DELETE_PROFILE => Mutation::DeleteProfile {
                external_id: input.str()?.to_string(),
            },
            TAG_OPAQUE => Mutation::ApplicationState(input.bytes()?.to_vec()),
            other => return Err(damaged(format!("unknown record tag {other}"))),
        };
        finish(input, WalRecord::Mutation { at_ms, mutation })
    }
}

/// The record, if nothing follows it.
fn finish(input: Decoder<'_>, record: WalRecord) -> Result<WalRecord, FormatError> {
    if !input.is_empty() {
        return Err(damaged(format!(
            "{} trailing bytes after a {} record",
            input.remaining(),
            record.kind_name()
        )));
    }
    Ok(record)
}

fn rule_to_json(rule: &Rule) -> String {
    // A Rule is plain data; serializing it cannot fail.
    serde_json::to_string(rule).unwrap_or_default()
}

fn rule_from_json(text: &str) -> Result<Rule, FormatError> {
    serde_json::from_str(text).map_err(|error| damaged(format!("rule: {error}")))
}

fn encode_message(out: &mut Encoder, message: &Message) {
    match &message.kind {
        MessageKind::Identify { traits } => {
            out.u8(MESSAGE_IDENTIFY);
            encode_object(out, traits);
        }
        MessageKind::Track { event, properties } => {
            out.u8(MESSAGE_TRACK);
            out.str(event);
            encode_object(out, properties);
        }
        MessageKind::Alias { previous_id } => {
            out.u8(MESSAGE_ALIAS);
            out.str(previous_id);
        }
    }
    out.optional_str(message.user_id.as_deref());
    out.optional_str(message.anonymous_id.as_deref());
    out.optional_str(message.message_id.as_deref());
    match message.timestamp_ms {
        Some(time) => {
            out.u8(1);
            out.i64(time);
        }
        None => out.u8(0),
    }
}

// Binary value tree: a tag byte, then the value.
const VALUE_NULL: u8 = 0;
const VALUE_FALSE: u8 = 1;
const VALUE_TRUE: u8 = 2;
const VALUE_I64: u8 = 3;
const VALUE_U64: u8 = 4;
const VALUE_F64: u8 = 5;
const VALUE_STRING: u8 = 6;
const VALUE_ARRAY: u8 = 7;
const VALUE_OBJECT: u8 = 8;
/// Deepest value tree decoded (ingest accepts far less; this only stops a damaged
/// record from recursing without bound).
const MAX_VALUE_DEPTH: usize = 64;

fn encode_object(out: &mut Encoder, object: &Map<String, Value>) {
    out.u64(object.len() as u64);
    for (key, value) in object {
        out.str(key);
        encode_value(out, value);
    }
}

fn encode_value(out: &mut Encoder, value: &Value) {
    match value {
        Value::Null => out.u8(VALUE_NULL),
        Value::Bool(false) => out.u8(VALUE_FALSE),
        Value::Bool(true) => out.u8(VALUE_TRUE),
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                out.u8(VALUE_I64);
                out.i64(integer);
            } else if let Some(integer) = number.as_u64() {
                out.u8(VALUE_U64);
                out.u64(integer);
            } else {
                out.u8(VALUE_F64);
                out.u64(number.as_f64().unwrap_or(0.0).to_bits());
            }
        }
        Value::String(text) => {
            out.u8(VALUE_STRING);
            out.str(text);
        }
        Value::Array(items) => {
            out.u8(VALUE_ARRAY);
            out.u64(items.len() as u64);
            for item in items {
                encode_value(out, item);
            }
        }
        Value::Object(object) => {
            out.u8(VALUE_OBJECT);
            encode_object(out, object);
        }
    }
}

fn decode_object(input: &mut Decoder<'_>, depth: usize) -> Result<Map<String, Value>, FormatError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(damaged("value tree nested too deep"));
    }
    // Each entry takes at least 9 bytes (key length and value tag).
    let count = input.count(9)?;
    let mut object = Map::new();
    for _ in 0..count {
        let key = input.str()?.to_string();
        let value = decode_value(input, depth + 1)?;
        object.insert(key, value);
    }
    Ok(object)
}

fn decode_value(input: &mut Decoder<'_>, depth: usize) -> Result<Value, FormatError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(damaged("value tree nested too deep"));
    }
    Ok(match input.u8()? {
        VALUE_NULL => Value::Null,
        VALUE_FALSE => Value::Bool(false),
        VALUE_TRUE => Value::Bool(true),
        VALUE_I64 => Value::Number(input.i64()?.into()),
        VALUE_U64 => Value::Number(input.u64()?.into()),
        VALUE_F64 => {
            let float = f64::from_bits(input.u64()?);
            Value::Number(Number::from_f64(float).ok_or_else(|| damaged("non-finite float"))?)
        }
        VALUE_STRING => Value::String(input.str()?.to_string()),
        VALUE_ARRAY => {
            let count = input.count(1)?;
            let items = (0..count)
                .map(|_| decode_value(input, depth + 1))
                .collect::<Result<_, _>>()?;
            Value::Array(items)
        }
        VALUE_OBJECT => Value::Object(decode_object(input, depth + 1)?),
        other => return Err(damaged(format!("unknown value tag {other}"))),
    })
}

/// Reads a message object: binary (tag 10) or JSON text (tag 1, earlier versions).
fn message_object(input: &mut Decoder<'_>, binary: bool) -> Result<Map<String, Value>, FormatError> {
    if binary {
        return decode_object(input, 0);
    }
    match serde_json::from_str(input.str()?) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(damaged("message object is not a JSON object")),
    }
}

fn decode_message(input: &mut Decoder<'_>, binary: bool) -> Result<Message, FormatError> {
    let kind = match input.u8()? {
        MESSAGE_IDENTIFY => MessageKind::Identify {
            traits: message_object(input, binary)?,
        },
        MESSAGE_TRACK => MessageKind::Track {
            event: input.str()?.to_string(),
            properties: message_object(input, binary)?,
        },
        MESSAGE_ALIAS => MessageKind::Alias {
            previous_id: input.str()?.to_string(),
        },
        other => return Err(damaged(format!("unknown message kind {other}"))),
    };
    let user_id = input.optional_str()?.map(str::to_string);
    let anonymous_id = input.optional_str()?.map(str::to_string);
    let message_id = input.optional_str()?.map(str::to_string);
    let timestamp_ms = match input.u8()? {
        0 => None,
        1 => Some(input.i64()?),
        other => return Err(damaged(format!("bad timestamp flag {other}"))),
    };
    Ok(Message {
        kind,
        user_id,
        anonymous_id,
        message_id,
        timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    //! Every record kind round-trips; truncations and trailing bytes are errors.
    use super::*;
    use serde_json::json;

    fn rule(value: Value) -> Rule {
        serde_json::from_value(value).unwrap()
    }

    fn samples() -> Vec<WalRecord> {
        let traits = json!({"plan": "pro", "age": 31, "big": u64::MAX, "ok": true, "none": null, "tags": ["a", "b"], "x": {"y": 1.5}});
        let at = |at_ms: i64, mutation: Mutation| WalRecord::Mutation { at_ms, mutation };
        vec![
            at(
                1_700_000_000_000,
                Mutation::Messages(vec![
                    Message {
                        kind: MessageKind::Identify {
                            traits: traits.as_object().unwrap().clone(),
                        },
                        user_id: Some("u1".into()),
                        anonymous_id: None,
                        message_id: Some("m1".into()),
                        timestamp_ms: Some(5),
                    },
                    Message {
                        kind: MessageKind::Track {
                            event: "order_completed".into(),
                            properties: json!({"amount": 10}).as_object().unwrap().clone(),
                        },
                        user_id: None,
                        anonymous_id: Some("anon-é".into()),
                        message_id: None,
                        timestamp_ms: None,
                    },
                    Message {
                        kind: MessageKind::Alias {
                            previous_id: "old".into(),
                        },
                        user_id: Some("new".into()),
                        anonymous_id: None,
                        message_id: None,
                        timestamp_ms: Some(-1),
                    },
                ]),
            ),
            at(
                1,
                Mutation::CreateSegment {
                    name: "vip".into(),
                    description: "d".into(),
                    rule: Some(rule(
                        json!({"kind": "compare", "trait": "ltv", "op": ">", "value": 300}),
                    )),
                    emit_initial: true,
                },
            ),
            at(
                1,
                Mutation::CreateSegment {
                    name: "static".into(),
                    description: String::new(),
                    rule: None,
                    emit_initial: false,
                },
            ),
            at(
                2,
                Mutation::UpdateSegment {
                    id: SegmentId(3),
                    rule: rule(json!({"kind": "has", "trait": "phone"})),
                    description: None,
                },
            ),
            at(3, Mutation::DeleteSegment { id: SegmentId(4) }),
            at(
                4,
                Mutation::EditStatic {
                    id: SegmentId(5),
                    edit: StaticEdit::Replace,
                    profiles: vec!["a".into(), "anon:b".into()],
                },
            ),
            at(
                5,
                Mutation::EraseProfile {
                    external_id: "u1".into(),
                },
            ),
            at(
                6,
                Mutation::DeleteProfile {
                    external_id: "u2".into(),
                },
            ),
            at(7, Mutation::ApplicationState(vec![0, 1, 2, 255])),
            WalRecord::ReserveSequences { until: 1_000_000 },
        ]
    }

    #[test]
    fn records_round_trip() {
        for record in samples() {
            let bytes = record.encode();
            assert_eq!(WalRecord::decode(&bytes).unwrap(), record);
        }
    }

    #[test]
    fn json_text_messages_of_earlier_versions_still_decode() {
        // Tag 1: the same message layout with traits as JSON text.
        let mut out = Encoder::new();
        out.u8(TAG_MESSAGES);
        out.i64(9);
        out.u64(1);
        out.u8(MESSAGE_IDENTIFY);
        out.str(r#"{"plan":"pro","n":{"m":2.5}}"#);
        out.optional_str(Some("u1"));
        out.optional_str(None);
        out.optional_str(None);
        out.u8(0);
        let record = WalRecord::decode(&out.bytes).unwrap();
        let WalRecord::Mutation {
            at_ms: 9,
            mutation: Mutation::Messages(messages),
        } = record
        else {
            panic!("unexpected {record:?}");
        };
        assert_eq!(
            messages[0].kind,
            MessageKind::Identify {
                traits: json!({"plan": "pro", "n": {"m": 2.5}})
                    .as_object()
                    .unwrap()
                    .clone()
            }
        );
    }

    #[test]
    fn truncated_or_extended_records_are_errors() {
        for record in samples() {
            let bytes = record.encode();
            for length in 0..bytes.len() {
                assert!(WalRecord::decode(&bytes[..length]).is_err(), "{record:?}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(WalRecord::decode(&longer).is_err());
        }
    }
}
