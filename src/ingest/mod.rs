//! Segment-spec messages: parsing and validation of `identify`, `track`, `page`,
//! `screen`, `group` and `alias` (as sent by the Segment and RudderStack SDKs).
//!
//! Unknown fields (`context`, `integrations`, `_metadata`, `sentAt`, `writeKey`, ...)
//! are accepted and ignored. Mapping to segd's model:
//! - `identify`: traits set on the profile (nested objects flatten to dotted names);
//! - `track`: an event named `event` with `properties`;
//! - `page` / `screen`: an event named `page` / `screen` whose properties are the
//!   message's `properties` (url, path, referrer, title, ...) plus `name` and `category`
//!   when given, plus UTM parameters from `context.campaign` as `utm_source`,
//!   `utm_medium`, `utm_campaign` (from `name`), `utm_term`, `utm_content`;
//! - `group`: traits under `group.` (`group.id` = `groupId`, `group.<trait>` = each
//!   trait), so rules can read `group.plan = "pro"`;
//! - `alias`: `previousId` and `userId` become one profile (merge).
//!
//! Event time is the message's `timestamp` (falling back to `originalTimestamp`, then
//! receive time).

pub mod body;

use crate::store::value::parse_timestamp;
use serde_json::{Map, Value};
use thiserror::Error;

/// Longest `messageId`, event name, or identifier accepted.
pub const MAX_FIELD_BYTES: usize = 512;
/// Most messages in one batch.
pub const MAX_BATCH_MESSAGES: usize = 5_000;

#[derive(Clone, Debug, PartialEq)]
pub enum MessageKind {
    Identify {
        traits: Map<String, Value>,
    },
    Track {
        event: String,
        properties: Map<String, Value>,
    },
    Alias {
        previous_id: String,
    },
}

/// One validated message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub kind: MessageKind,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub message_id: Option<String>,
    /// Event time from the message, if it had one.
    pub timestamp_ms: Option<i64>,
}

/// A message that cannot be accepted; `path` names the offending field
/// (e.g. `batch[3].userId`).
#[derive(Clone, Debug, Error, PartialEq)]
#[error("{path}: {message}")]
pub struct MessageError {
    pub path: String,
    pub message: String,
}

fn error(path: &str, field: &str, message: impl Into<String>) -> MessageError {
    MessageError {
        path: if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        },
        message: message.into(),
    }
}

/// Reads an identifier: strings, or numbers (some SDKs send numeric ids) as text.
fn identifier(
    object: &Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<Option<String>, MessageError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) if text.len() <= MAX_FIELD_BYTES => Ok(Some(text.clone())),
        Some(Value::String(_)) => Err(error(
            path,
            field,
            format!("longer than {MAX_FIELD_BYTES} bytes"),
        )),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(_) => Err(error(path, field, "must be a string")),
    }
}

fn object(
    object: &Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<Map<String, Value>, MessageError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(inner)) => Ok(inner.clone()),
        Some(_) => Err(error(path, field, "must be an object")),
    }
}

fn text_field(
    object: &Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<Option<String>, MessageError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.len() <= MAX_FIELD_BYTES => Ok(Some(text.clone())),
        Some(Value::String(_)) => Err(error(
            path,
            field,
            format!("longer than {MAX_FIELD_BYTES} bytes"),
        )),
        Some(_) => Err(error(path, field, "must be a string")),
    }
}

fn timestamp(object: &Map<String, Value>, path: &str) -> Result<Option<i64>, MessageError> {
    for field in ["timestamp", "originalTimestamp"] {
        match object.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::String(text)) => {
                return parse_timestamp(text).map(Some).ok_or_else(|| {
                    error(
                        path,
                        field,
                        "must be an ISO-8601 time like \"2024-05-01T10:00:00.000Z\"",
                    )
                });
            }
            Some(_) => return Err(error(path, field, "must be an ISO-8601 string")),
        }
    }
    Ok(None)
}

/// Parses one message. `default_type` is used by the typed endpoints
/// (`/v1/identify` ...) when the body has no `type`.
pub fn parse_message(
    value: &Value,
    default_type: Option<&str>,
    path: &str,
) -> Result<Message, MessageError> {
    let Value::Object(body) = value else {
        return Err(MessageError {
            path: if path.is_empty() {
                "body".into()
            } else {
                path.into()
            },
            message: "must be a JSON object".into(),
        });
    };
    let kind_name = match body.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        None | Some(Value::Null) => default_type.ok_or_else(|| {
            error(
                path,
                "type",
                "is required (identify, track, page, screen, group, alias)",
            )
        })?,
        Some(_) => return Err(error(path, "type", "must be a string")),
    };
    if let Some(expected) = default_type {
        if kind_name != expected {
            return Err(error(
                path,
                "type",
                format!("is `{kind_name}` but this endpoint takes `{expected}`"),
            ));
        }
    }
    let user_id = identifier(body, "userId", path)?;
    let anonymous_id = identifier(body, "anonymousId", path)?;
    let message_id = text_field(body, "messageId", path)?;
    let timestamp_ms = timestamp(body, path)?;
    let kind = match kind_name {
        "identify" => MessageKind::Identify {
            traits: object(body, "traits", path)?,
        },
        "track" => {
            let event = text_field(body, "event", path)?
                .ok_or_else(|| error(path, "event", "is required for track"))?;
            if event.is_empty() {
                return Err(error(path, "event", "must not be empty"));
            }
            MessageKind::Track {
                event,
                properties: object(body, "properties", path)?,
            }
        }
        "page" | "screen" => {
            let mut properties = object(body, "properties", path)?;
            for field in ["name", "category"] {
                if let Some(text) = text_field(body, field, path)? {
                    properties
                        .entry(field.to_string())
                        .or_insert(Value::String(text));
                }
            }
            // UTM parameters: Segment SDKs send them as `context.campaign`.
            if let Some(Value::Object(campaign)) = body
                .get("context")
                .and_then(|context| context.get("campaign"))
            {
                for (field, value) in campaign {
                    let name = match field.as_str() {
                        "name" => "utm_campaign".to_string(),
                        other => format!("utm_{other}"),
                    };
                    if value.is_string() {
                        properties.entry(name).or_insert(value.clone());
                    }
                }
            }
            MessageKind::Track {
                event: kind_name.to_string(),
                properties,
            }
        }
        "group" => {
            let group_id = identifier(body, "groupId", path)?
                .ok_or_else(|| error(path, "groupId", "is required for group"))?;
            let mut group = object(body, "traits", path)?;
            group.insert("id".into(), Value::String(group_id));
            let mut traits = Map::new();
            traits.insert("group".into(), Value::Object(group));
            MessageKind::Identify { traits }
        }
        "alias" => {
            let previous_id = identifier(body, "previousId", path)?
                .ok_or_else(|| error(path, "previousId", "is required for alias"))?;
            if user_id.is_none() {
                return Err(error(path, "userId", "is required for alias"));
            }
            MessageKind::Alias { previous_id }
        }
        other => {
            return Err(error(
                path,
                "type",
                format!(
                    "`{other}` is not a message type (identify, track, page, screen, group, alias)"
                ),
            ))
        }
    };
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(error(
            path,
            "userId",
            "a userId or an anonymousId is required",
        ));
    }
    Ok(Message {
        kind,
        user_id,
        anonymous_id,
        message_id,
        timestamp_ms,
    })
}

/// Parses a `{"batch": [...]}` body, validating every message before any is applied.
pub fn parse_batch(value: &Value) -> Result<Vec<Message>, MessageError> {
    let items = match value.get("batch") {
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(MessageError {
                path: "batch".into(),
                message: "must be an array of messages".into(),
            })
        }
        None => {
            return Err(MessageError {
                path: "batch".into(),
                message: "is required".into(),
            })
        }
    };
    if items.len() > MAX_BATCH_MESSAGES {
        return Err(MessageError {
            path: "batch".into(),
            message: format!(
                "has {} messages; the limit is {MAX_BATCH_MESSAGES}",
                items.len()
            ),
        });
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_message(item, None, &format!("batch[{index}]")))
        .collect()
}

#[cfg(test)]
mod tests {
    //! Message shapes as the SDKs send them, and the errors with field paths.
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_each_type_and_ignores_unknown_fields() {
        let identify = parse_message(
            &json!({"type": "identify", "userId": "u1", "traits": {"a": 1}, "context": {"ip": "1.2.3.4"}, "integrations": {}, "_metadata": {}, "writeKey": "k", "sentAt": "2024-01-01T00:00:00Z", "timestamp": "2024-01-01T00:00:00.000Z"}),
            None,
            "",
        )
        .unwrap();
        assert_eq!(identify.timestamp_ms, Some(1_704_067_200_000));
        assert!(matches!(identify.kind, MessageKind::Identify { .. }));
        let page = parse_message(&json!({"type": "page", "anonymousId": "a1", "name": "Home", "properties": {"url": "https://x"}, "context": {"campaign": {"name": "spring", "source": "newsletter"}}}), None, "").unwrap();
        match page.kind {
            MessageKind::Track { event, properties } => {
                assert_eq!(event, "page");
                assert_eq!(properties["name"], "Home");
                assert_eq!(properties["utm_campaign"], "spring");
                assert_eq!(properties["utm_source"], "newsletter");
            }
            other => panic!("unexpected {other:?}"),
        }
        let group = parse_message(
            &json!({"type": "group", "userId": 7, "groupId": "g", "traits": {"plan": "pro"}}),
            None,
            "",
        )
        .unwrap();
        assert_eq!(group.user_id.as_deref(), Some("7"));
        assert_eq!(
            group.kind,
            MessageKind::Identify {
                traits: json!({"group": {"plan": "pro", "id": "g"}})
                    .as_object()
                    .unwrap()
                    .clone()
            }
        );
    }

    #[test]
    fn errors_name_the_field() {
        let error = parse_batch(&json!({"batch": [{"type": "track", "userId": "u", "event": "e"}, {"type": "track", "userId": "u"}]})).unwrap_err();
        assert_eq!(error.path, "batch[1].event");
        let error =
            parse_message(&json!({"type": "identify", "traits": {}}), None, "").unwrap_err();
        assert_eq!(error.path, "userId");
        let error = parse_message(&json!({"userId": "u", "event": "x"}), Some("track"), "").is_ok();
        assert!(error);
        assert!(parse_message(
            &json!({"type": "identify", "userId": "u"}),
            Some("track"),
            ""
        )
        .is_err());
        assert!(parse_message(
            &json!({"type": "identify", "userId": "u", "timestamp": "yesterday"}),
            None,
            ""
        )
        .is_err());
        assert!(parse_message(&json!({"type": "identify", "userId": {"x": 1}}), None, "").is_err());
    }
}
