//! Event names and properties at the door: limits, name ids, property values (owned,
//! borrowed, decoded), validation errors, and flattening a message's properties into
//! `(dotted name, value)` pairs with every limit checked.

use super::*;

/// Longest event name accepted.
pub const MAX_EVENT_NAME_BYTES: usize = 256;
/// Most properties (after flattening) one event may carry.
pub const MAX_PROPERTIES_PER_EVENT: usize = 256;
/// Deepest nesting of property objects.
pub const MAX_PROPERTY_NESTING: usize = 8;
/// Most events one profile keeps within retention; beyond it the oldest are dropped
/// (and counted) so one runaway client cannot exhaust memory. Lifetime counts stay
/// exact.
pub const MAX_EVENTS_PER_PROFILE: usize = 50_000;
/// Largest encoded properties of one event; a larger event is rejected.
pub const MAX_EVENT_PROPERTY_BYTES: usize = 1 << 20;
/// Most encoded property bytes one profile keeps; beyond it the oldest events are
/// dropped (and counted) like beyond [`MAX_EVENTS_PER_PROFILE`]. With compaction (at
/// half garbage) a profile's arena stays below twice this plus one event, so its u32
/// offsets cannot overflow.
pub const MAX_EVENT_BYTES_PER_PROFILE: usize = 256 << 20;
/// Most distinct event names and property names per shard (ids are u16/u32; the bound
/// keeps the interners from growing without limit on garbage input).
pub const MAX_EVENT_NAMES: usize = 65_535;
pub const MAX_PROPERTY_NAMES: usize = 65_535;

/// Interned event name (per shard).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventNameId(pub u32);

/// Interned property name (per shard).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PropertyNameId(pub u16);

/// An owned event property value, as prepared from JSON.
#[derive(Clone, Debug, PartialEq)]
pub enum EventProperty {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    List(Vec<String>),
}

impl EventProperty {
    pub fn to_json(&self) -> Value {
        match self {
            EventProperty::String(text) => Value::String(text.clone()),
            EventProperty::Integer(number) => Value::from(*number),
            EventProperty::Float(number) => Value::from(*number),
            EventProperty::Bool(flag) => Value::Bool(*flag),
            EventProperty::List(items) => {
                Value::Array(items.iter().cloned().map(Value::String).collect())
            }
        }
    }
}

/// A property value as prepared from a message, borrowing its strings from the
/// message (no copy until it is encoded into a shard's arena).
#[derive(Clone, Debug, PartialEq)]
pub enum PropertyRef<'a> {
    Str(&'a str),
    Integer(i64),
    Float(f64),
    Bool(bool),
    /// Items that were JSON strings are borrowed; other items are their JSON text.
    List(Vec<Cow<'a, str>>),
}

impl PropertyRef<'_> {
    pub fn to_owned_property(&self) -> EventProperty {
        match self {
            PropertyRef::Str(text) => EventProperty::String(text.to_string()),
            PropertyRef::Integer(number) => EventProperty::Integer(*number),
            PropertyRef::Float(number) => EventProperty::Float(*number),
            PropertyRef::Bool(flag) => EventProperty::Bool(*flag),
            PropertyRef::List(items) => {
                EventProperty::List(items.iter().map(|item| item.to_string()).collect())
            }
        }
    }
}

impl EventProperty {
    /// The same value as a [`PropertyRef`] borrowing from `self`.
    pub fn borrowed(&self) -> PropertyRef<'_> {
        match self {
            EventProperty::String(text) => PropertyRef::Str(text),
            EventProperty::Integer(number) => PropertyRef::Integer(*number),
            EventProperty::Float(number) => PropertyRef::Float(*number),
            EventProperty::Bool(flag) => PropertyRef::Bool(*flag),
            EventProperty::List(items) => PropertyRef::List(
                items
                    .iter()
                    .map(|item| Cow::Borrowed(item.as_str()))
                    .collect(),
            ),
        }
    }
}

/// Flattened properties borrowing from the message: top-level names and string values
/// are borrowed, only dotted names of nested objects are built.
pub type BorrowedProperties<'a> = Vec<(Cow<'a, str>, PropertyRef<'a>)>;

/// A property value read in place from the arena.
#[derive(Clone, Debug, PartialEq)]
pub enum PropertyValue<'a> {
    Str(&'a str),
    Integer(i64),
    Float(f64),
    Bool(bool),
    List(Vec<&'a str>),
}

impl PropertyValue<'_> {
    pub(super) fn to_owned_property(&self) -> EventProperty {
        match self {
            PropertyValue::Str(text) => EventProperty::String(text.to_string()),
            PropertyValue::Integer(number) => EventProperty::Integer(*number),
            PropertyValue::Float(number) => EventProperty::Float(*number),
            PropertyValue::Bool(flag) => EventProperty::Bool(*flag),
            PropertyValue::List(items) => {
                EventProperty::List(items.iter().map(|item| item.to_string()).collect())
            }
        }
    }
}

/// Why an event cannot be stored. The whole message is rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EventError {
    #[error("event name is empty — track calls need an \"event\" name")]
    EmptyName,
    #[error("event name is {length} bytes; at most {MAX_EVENT_NAME_BYTES} are accepted")]
    NameTooLong { length: usize },
    #[error("property name `{name}` is empty or longer than {MAX_TRAIT_NAME_BYTES} bytes")]
    BadPropertyName { name: String },
    #[error("event has {count} properties after flattening; at most {MAX_PROPERTIES_PER_EVENT} are accepted")]
    TooManyProperties { count: usize },
    #[error("property `{name}` nests objects deeper than {MAX_PROPERTY_NESTING} levels")]
    TooDeep { name: String },
    #[error(
        "property `{name}` is a string of {length} bytes; at most {MAX_STRING_BYTES} are accepted"
    )]
    StringTooLong { name: String, length: usize },
    #[error(
        "property `{name}` is a list of {length} items; at most {MAX_LIST_ITEMS} are accepted"
    )]
    ListTooLong { name: String, length: usize },
    #[error("property `{name}` is the number {value}, outside the range segd stores (64-bit integers, finite floats)")]
    NumberOutOfRange { name: String, value: String },
    #[error("event properties take {bytes} bytes stored; at most {MAX_EVENT_PROPERTY_BYTES} are accepted per event")]
    PropertiesTooLarge { bytes: usize },
}

impl EventError {
    pub fn code(&self) -> &'static str {
        match self {
            EventError::EmptyName | EventError::NameTooLong { .. } => "bad_event_name",
            EventError::BadPropertyName { .. } => "bad_property_name",
            EventError::TooManyProperties { .. } => "too_many_properties",
            EventError::TooDeep { .. } => "properties_too_deep",
            EventError::StringTooLong { .. } => "value_too_long",
            EventError::ListTooLong { .. } => "list_too_long",
            EventError::NumberOutOfRange { .. } => "number_out_of_range",
            EventError::PropertiesTooLarge { .. } => "properties_too_large",
        }
    }
}

/// Checks an event name.
pub fn check_event_name(name: &str) -> Result<(), EventError> {
    if name.is_empty() {
        return Err(EventError::EmptyName);
    }
    if name.len() > MAX_EVENT_NAME_BYTES {
        return Err(EventError::NameTooLong { length: name.len() });
    }
    Ok(())
}

/// Flattens JSON properties into dotted names. Nulls are skipped (a null property is
/// absent); arrays become lists of strings (numbers and booleans as their JSON text,
/// nested objects and arrays as their compact JSON text, e.g. Segment's `products`).
pub fn prepare_properties(
    properties: &serde_json::Map<String, Value>,
) -> Result<Vec<(String, EventProperty)>, EventError> {
    Ok(prepare_properties_borrowed(properties)?
        .into_iter()
        .map(|(name, value)| (name.into_owned(), value.to_owned_property()))
        .collect())
}

/// [`prepare_properties`] without copying: names and strings borrow from `properties`.
pub fn prepare_properties_borrowed(
    properties: &serde_json::Map<String, Value>,
) -> Result<BorrowedProperties<'_>, EventError> {
    let mut out = Vec::with_capacity(properties.len());
    flatten_properties("", properties, 1, &mut out)?;
    let bytes = out.iter().map(|(_, value)| encoded_bytes(value)).sum();
    if bytes > MAX_EVENT_PROPERTY_BYTES {
        return Err(EventError::PropertiesTooLarge { bytes });
    }
    Ok(out)
}

/// Bytes `encode_properties` writes for one property (id, tag, value).
fn encoded_bytes(value: &PropertyRef<'_>) -> usize {
    3 + match value {
        PropertyRef::Str(text) => 4 + text.len(),
        PropertyRef::Integer(_) | PropertyRef::Float(_) => 8,
        PropertyRef::Bool(_) => 1,
        PropertyRef::List(items) => 2 + items.iter().map(|item| 4 + item.len()).sum::<usize>(),
    }
}

fn flatten_properties<'a>(
    prefix: &str,
    object: &'a serde_json::Map<String, Value>,
    depth: usize,
    out: &mut BorrowedProperties<'a>,
) -> Result<(), EventError> {
    for (key, value) in object {
        let name: Cow<'a, str> = if prefix.is_empty() {
            Cow::Borrowed(key.as_str())
        } else {
            Cow::Owned(format!("{prefix}.{key}"))
        };
        if name.is_empty() || name.len() > MAX_TRAIT_NAME_BYTES {
            return Err(EventError::BadPropertyName {
                name: name.into_owned(),
            });
        }
        let property = match value {
            Value::Null => continue,
            Value::Object(inner) => {
                if depth >= MAX_PROPERTY_NESTING {
                    return Err(EventError::TooDeep {
                        name: name.into_owned(),
                    });
                }
                flatten_properties(&name, inner, depth + 1, out)?;
                continue;
            }
            Value::Bool(flag) => PropertyRef::Bool(*flag),
            Value::Number(number) => match number.as_i64() {
                Some(integer) => PropertyRef::Integer(integer),
                // Unsigned beyond i64 would lose precision as a float: rejected, as for traits.
                None => match number.as_f64().filter(|_| !number.is_u64()) {
                    Some(float) if float.is_finite() => PropertyRef::Float(float),
                    _ => {
                        return Err(EventError::NumberOutOfRange {
                            name: name.into_owned(),
                            value: number.to_string(),
                        })
                    }
                },
            },
            Value::String(text) => {
                if text.len() > MAX_STRING_BYTES {
                    return Err(EventError::StringTooLong {
                        name: name.into_owned(),
                        length: text.len(),
                    });
                }
                PropertyRef::Str(text)
            }
            Value::Array(items) => {
                if items.len() > MAX_LIST_ITEMS {
                    return Err(EventError::ListTooLong {
                        name: name.into_owned(),
                        length: items.len(),
                    });
                }
                let mut strings = Vec::with_capacity(items.len());
                for item in items {
                    let text = match item {
                        Value::String(text) => Cow::Borrowed(text.as_str()),
                        other => Cow::Owned(other.to_string()),
                    };
                    if text.len() > MAX_STRING_BYTES {
                        return Err(EventError::StringTooLong {
                            name: name.into_owned(),
                            length: text.len(),
                        });
                    }
                    strings.push(text);
                }
                PropertyRef::List(strings)
            }
        };
        out.push((name, property));
        if out.len() > MAX_PROPERTIES_PER_EVENT {
            return Err(EventError::TooManyProperties { count: out.len() });
        }
    }
    Ok(())
}
