//! WAL records: one accepted mutation each, in a hand-written little-endian format
//! (tag byte, then fields; trait and property objects as JSON text, since they are
//! arbitrary JSON already).

use crate::engine::StaticEdit;
use crate::ids::SegmentId;
use crate::ingest::{Message, MessageKind};
use crate::persist::format::{damaged, Decoder, Encoder, FormatError};
use crate::segment::ast::Rule;
use serde_json::{Map, Value};

/// One accepted mutation. Every variant carries the time the engine saw when it was
/// applied (`at_ms`), so replay pins the clock to it and repeats the same work.
#[derive(Clone, Debug, PartialEq)]
pub enum WalRecord {
    Messages {
        at_ms: i64,
        messages: Vec<Message>,
    },
    CreateSegment {
        at_ms: i64,
        name: String,
        description: String,
        rule: Option<Rule>,
        emit_initial: bool,
    },
    UpdateSegment {
        at_ms: i64,
        id: SegmentId,
        rule: Rule,
        description: Option<String>,
    },
    DeleteSegment {
        at_ms: i64,
        id: SegmentId,
    },
    EditStatic {
        at_ms: i64,
        id: SegmentId,
        edit: StaticEdit,
        profiles: Vec<String>,
    },
    EraseProfile {
        at_ms: i64,
        external_id: String,
    },
    DeleteProfile {
        at_ms: i64,
        external_id: String,
    },
    /// Application state owned by another layer (webhook registrations), opaque here.
    Opaque {
        at_ms: i64,
        bytes: Vec<u8>,
    },
    /// Change-log sequences up to `until` may be handed out; recovery starts above.
    ReserveSequences {
        until: u64,
    },
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

const MESSAGE_IDENTIFY: u8 = 0;
const MESSAGE_TRACK: u8 = 1;
const MESSAGE_ALIAS: u8 = 2;

impl WalRecord {
    /// The engine time the record was applied at (`None` for bookkeeping records).
    pub fn at_ms(&self) -> Option<i64> {
        match self {
            WalRecord::Messages { at_ms, .. }
            | WalRecord::CreateSegment { at_ms, .. }
            | WalRecord::UpdateSegment { at_ms, .. }
            | WalRecord::DeleteSegment { at_ms, .. }
            | WalRecord::EditStatic { at_ms, .. }
            | WalRecord::EraseProfile { at_ms, .. }
            | WalRecord::DeleteProfile { at_ms, .. }
            | WalRecord::Opaque { at_ms, .. } => Some(*at_ms),
            WalRecord::ReserveSequences { .. } => None,
        }
    }

    /// Short name for reports.
    pub fn kind_name(&self) -> &'static str {
        match self {
            WalRecord::Messages { .. } => "messages",
            WalRecord::CreateSegment { .. } => "create_segment",
            WalRecord::UpdateSegment { .. } => "update_segment",
            WalRecord::DeleteSegment { .. } => "delete_segment",
            WalRecord::EditStatic { .. } => "edit_static",
            WalRecord::EraseProfile { .. } => "erase_profile",
            WalRecord::DeleteProfile { .. } => "delete_profile",
            WalRecord::Opaque { .. } => "opaque",
            WalRecord::ReserveSequences { .. } => "reserve_sequences",
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Encoder::new();
        match self {
            WalRecord::Messages { at_ms, messages } => {
                out.u8(TAG_MESSAGES);
                out.i64(*at_ms);
                out.u64(messages.len() as u64);
                for message in messages {
                    encode_message(&mut out, message);
                }
            }
            WalRecord::CreateSegment {
                at_ms,
                name,
                description,
                rule,
                emit_initial,
            } => {
                out.u8(TAG_CREATE_SEGMENT);
                out.i64(*at_ms);
                out.str(name);
                out.str(description);
                let rule_json = rule.as_ref().map(rule_to_json);
                out.optional_str(rule_json.as_deref());
                out.u8(u8::from(*emit_initial));
            }
            WalRecord::UpdateSegment {
                at_ms,
                id,
                rule,
                description,
            } => {
                out.u8(TAG_UPDATE_SEGMENT);
                out.i64(*at_ms);
                out.u32(id.0);
                out.str(&rule_to_json(rule));
                out.optional_str(description.as_deref());
            }
            WalRecord::DeleteSegment { at_ms, id } => {
                out.u8(TAG_DELETE_SEGMENT);
                out.i64(*at_ms);
                out.u32(id.0);
            }
            WalRecord::EditStatic {
                at_ms,
                id,
                edit,
                profiles,
            } => {
                out.u8(TAG_EDIT_STATIC);
                out.i64(*at_ms);
                out.u32(id.0);
                out.u8(match edit {
                    StaticEdit::Add => 0,
                    StaticEdit::Remove => 1,
                    StaticEdit::Replace => 2,
                });
                out.strings(profiles.iter().map(String::as_str));
            }
            WalRecord::EraseProfile { at_ms, external_id } => {
                out.u8(TAG_ERASE_PROFILE);
                out.i64(*at_ms);
                out.str(external_id);
            }
            WalRecord::DeleteProfile { at_ms, external_id } => {
                out.u8(TAG_DELETE_PROFILE);
                out.i64(*at_ms);
                out.str(external_id);
            }
            WalRecord::Opaque { at_ms, bytes } => {
                out.u8(TAG_OPAQUE);
                out.i64(*at_ms);
                out.bytes(bytes);
            }
            WalRecord::ReserveSequences { until } => {
                out.u8(TAG_RESERVE);
                out.u64(*until);
            }
        }
        out.bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<WalRecord, FormatError> {
        let mut input = Decoder::new(bytes);
        let tag = input.u8()?;
        let record = match tag {
            TAG_MESSAGES => {
                let at_ms = input.i64()?;
                // Each message takes at least 5 bytes (kind and four flags).
                let count = input.count(5)?;
                let messages = (0..count)
                    .map(|_| decode_message(&mut input))
                    .collect::<Result<_, _>>()?;
                WalRecord::Messages { at_ms, messages }
            }
            TAG_CREATE_SEGMENT => WalRecord::CreateSegment {
                at_ms: input.i64()?,
                name: input.str()?.to_string(),
                description: input.str()?.to_string(),
                rule: input.optional_str()?.map(rule_from_json).transpose()?,
                emit_initial: input.u8()? != 0,
            },
            TAG_UPDATE_SEGMENT => WalRecord::UpdateSegment {
                at_ms: input.i64()?,
                id: SegmentId(input.u32()?),
                rule: rule_from_json(input.str()?)?,
                description: input.optional_str()?.map(str::to_string),
            },
            TAG_DELETE_SEGMENT => WalRecord::DeleteSegment {
                at_ms: input.i64()?,
                id: SegmentId(input.u32()?),
            },
            TAG_EDIT_STATIC => WalRecord::EditStatic {
                at_ms: input.i64()?,
                id: SegmentId(input.u32()?),
                edit: match input.u8()? {
                    0 => StaticEdit::Add,
                    1 => StaticEdit::Remove,
                    2 => StaticEdit::Replace,
                    other => return Err(damaged(format!("bad static edit {other}"))),
                },
                profiles: input.strings()?.into_iter().map(str::to_string).collect(),
            },
            TAG_ERASE_PROFILE => WalRecord::EraseProfile {
                at_ms: input.i64()?,
                external_id: input.str()?.to_string(),
            },
            TAG_DELETE_PROFILE => WalRecord::DeleteProfile {
                at_ms: input.i64()?,
                external_id: input.str()?.to_string(),
            },
            TAG_OPAQUE => WalRecord::Opaque {
                at_ms: input.i64()?,
                bytes: input.bytes()?.to_vec(),
            },
            TAG_RESERVE => WalRecord::ReserveSequences {
                until: input.u64()?,
            },
            other => return Err(damaged(format!("unknown record tag {other}"))),
        };
        if !input.is_empty() {
            return Err(damaged(format!(
                "{} trailing bytes after a {} record",
                input.remaining(),
                record.kind_name()
            )));
        }
        Ok(record)
    }
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
            out.str(&json_text(traits));
        }
        MessageKind::Track { event, properties } => {
            out.u8(MESSAGE_TRACK);
            out.str(event);
            out.str(&json_text(properties));
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

fn json_text(object: &Map<String, Value>) -> String {
    // A JSON map always serializes.
    serde_json::to_string(object).unwrap_or_default()
}

fn json_object(text: &str) -> Result<Map<String, Value>, FormatError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(damaged("message object is not a JSON object")),
    }
}

fn decode_message(input: &mut Decoder<'_>) -> Result<Message, FormatError> {
    let kind = match input.u8()? {
        MESSAGE_IDENTIFY => MessageKind::Identify {
            traits: json_object(input.str()?)?,
        },
        MESSAGE_TRACK => MessageKind::Track {
            event: input.str()?.to_string(),
            properties: json_object(input.str()?)?,
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
        let traits = json!({"plan": "pro", "age": 31, "tags": ["a", "b"], "x": {"y": 1.5}});
        vec![
            WalRecord::Messages {
                at_ms: 1_700_000_000_000,
                messages: vec![
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
                ],
            },
            WalRecord::CreateSegment {
                at_ms: 1,
                name: "vip".into(),
                description: "d".into(),
                rule: Some(rule(
                    json!({"kind": "compare", "trait": "ltv", "op": ">", "value": 300}),
                )),
                emit_initial: true,
            },
            WalRecord::CreateSegment {
                at_ms: 1,
                name: "static".into(),
                description: String::new(),
                rule: None,
                emit_initial: false,
            },
            WalRecord::UpdateSegment {
                at_ms: 2,
                id: SegmentId(3),
                rule: rule(json!({"kind": "has", "trait": "phone"})),
                description: None,
            },
            WalRecord::DeleteSegment {
                at_ms: 3,
                id: SegmentId(4),
            },
            WalRecord::EditStatic {
                at_ms: 4,
                id: SegmentId(5),
                edit: StaticEdit::Replace,
                profiles: vec!["a".into(), "anon:b".into()],
            },
            WalRecord::EraseProfile {
                at_ms: 5,
                external_id: "u1".into(),
            },
            WalRecord::DeleteProfile {
                at_ms: 6,
                external_id: "u2".into(),
            },
            WalRecord::Opaque {
                at_ms: 7,
                bytes: vec![0, 1, 2, 255],
            },
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
