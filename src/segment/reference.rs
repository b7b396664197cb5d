//! A naive reference evaluator, used only by tests to check the bitmap plan and the
//! per-profile evaluator. It reads the AST directly against plain values, with no
//! indexes, buckets or dictionaries, following the semantics in `compile`'s module doc.

use crate::events::EventProperty;
use crate::segment::ast::{
    AggregateFunction, CompareOp, CountOp, Literal, Performed, Rule, TextOp, Window,
};
use crate::segment::evaluate::{random_bucket, recency_range};
use crate::store::column::{compare_numbers, Number};
use crate::store::value::{parse_timestamp, TraitValue};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A profile as plain values.
#[derive(Clone, Debug, Default)]
pub struct ReferenceProfile {
    pub traits: BTreeMap<String, TraitValue>,
    pub bucket_hash: u64,
    /// Every event ever performed, in arrival order (no retention: tests keep windows
    /// inside retention, where stored and all events agree).
    pub events: Vec<ReferenceEvent>,
}

/// One event as plain values.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceEvent {
    pub name: String,
    pub time_ms: i64,
    pub properties: BTreeMap<String, EventProperty>,
}

/// Named segments the reference can follow for `in segment`.
pub trait SegmentOracle {
    fn is_member(&self, segment: &str, profile: &ReferenceProfile) -> bool;
    fn salt_name(&self) -> Option<&str>;
}

fn satisfies(ordering: Ordering, op: CompareOp) -> bool {
    match op {
        CompareOp::Eq => ordering.is_eq(),
        CompareOp::NotEq => !ordering.is_eq(),
        CompareOp::Less => ordering.is_lt(),
        CompareOp::LessOrEqual => ordering.is_le(),
        CompareOp::Greater => ordering.is_gt(),
        CompareOp::GreaterOrEqual => ordering.is_ge(),
    }
}

fn literal_ordering(value: &TraitValue, literal: &Literal) -> Option<Ordering> {
    match (value, literal) {
        (TraitValue::String(text), Literal::String(other)) => {
            Some(text.as_str().cmp(other.as_str()))
        }
        (TraitValue::Integer(number), Literal::Integer(other)) => Some(number.cmp(other)),
        (TraitValue::Integer(number), Literal::Float(other)) => Some(compare_numbers(
            Number::Integer(*number),
            Number::Float(*other),
        )),
        (TraitValue::Float(number), Literal::Integer(other)) => Some(compare_numbers(
            Number::Float(*number),
            Number::Integer(*other),
        )),
        (TraitValue::Float(number), Literal::Float(other)) => number.partial_cmp(other),
        (TraitValue::Timestamp(millis), Literal::String(text)) => {
            parse_timestamp(text).map(|other| millis.cmp(&other))
        }
        (TraitValue::Timestamp(millis), Literal::Integer(other)) => Some(millis.cmp(other)),
        (TraitValue::Boolean(flag), Literal::Bool(other)) => Some(flag.cmp(other)),
        _ => None,
    }
}

/// Whether `profile` matches `rule` at `now_ms`.
pub fn evaluate(
    rule: &Rule,
    profile: &ReferenceProfile,
    segments: &dyn SegmentOracle,
    now_ms: i64,
) -> bool {
    let get = |name: &str| profile.traits.get(name);
    match rule {
        Rule::And { rules } => rules.iter().all(|r| evaluate(r, profile, segments, now_ms)),
        Rule::Or { rules } => rules.iter().any(|r| evaluate(r, profile, segments, now_ms)),
        Rule::Not { rule } => !evaluate(rule, profile, segments, now_ms),
        Rule::Has { trait_name } => get(trait_name).is_some(),
        Rule::Compare {
            trait_name,
            op,
            value,
        } => match get(trait_name) {
            Some(stored) => {
                literal_ordering(stored, value).is_some_and(|ordering| satisfies(ordering, *op))
            }
            None => false,
        },
        Rule::Between {
            trait_name,
            low,
            high,
        } => match get(trait_name) {
            Some(stored) => {
                literal_ordering(stored, low).is_some_and(|o| o.is_ge())
                    && literal_ordering(stored, high).is_some_and(|o| o.is_le())
            }
            None => false,
        },
        Rule::In {
            trait_name,
            values,
            negated,
        } => match get(trait_name) {
            Some(TraitValue::List(items)) => {
                let any = values
                    .iter()
                    .any(|value| matches!(value, Literal::String(text) if items.contains(text)));
                any != *negated
            }
            Some(stored) => {
                let any = values
                    .iter()
                    .any(|value| literal_ordering(stored, value) == Some(Ordering::Equal));
                any != *negated
            }
            None => false,
        },
        Rule::Text {
            trait_name,
            op,
            value,
        } => match get(trait_name) {
            Some(TraitValue::String(text)) => match op {
                TextOp::Contains => text.contains(value.as_str()),
                TextOp::StartsWith => text.starts_with(value.as_str()),
                TextOp::EndsWith => text.ends_with(value.as_str()),
            },
            Some(TraitValue::List(items)) => *op == TextOp::Contains && items.contains(value),
            _ => false,
        },
        Rule::Recent {
            trait_name,
            recency,
            span,
        } => match get(trait_name) {
            Some(TraitValue::Timestamp(millis)) => {
                let (low, high) = recency_range(*recency, span.millis(), now_ms);
                low <= *millis && *millis <= high
            }
            _ => false,
        },
        Rule::InSegment { segment } => segments.is_member(segment, profile),
        Rule::RandomBucket { percent, salt } => {
            let salt_text = salt.as_deref().or(segments.salt_name()).unwrap_or("");
            let threshold = (percent * 100.0).round() as u32;
            random_bucket(
                profile.bucket_hash,
                xxhash_rust::xxh3::xxh3_64(salt_text.as_bytes()),
            ) < threshold
        }
        Rule::EventCount {
            event,
            filter,
            count_op,
            count,
            window,
        } => {
            let found = selected(profile, event, filter.as_deref(), window, now_ms).count() as u64;
            let wanted = u64::from(*count);
            match count_op {
                CountOp::AtLeast => found >= wanted,
                CountOp::AtMost => found <= wanted,
                CountOp::Exactly => found == wanted,
            }
        }
        Rule::Performed {
            event,
            which,
            recency,
            span,
        } => {
            let times = profile
                .events
                .iter()
                .filter(|e| &e.name == event)
                .map(|e| e.time_ms);
            let time = match which {
                Performed::First => times.min(),
                Performed::Last => times.max(),
            };
            time.is_some_and(|time| {
                let (low, high) = recency_range(*recency, span.millis(), now_ms);
                low <= time && time <= high
            })
        }
        Rule::Aggregate {
            function,
            event,
            property,
            filter,
            window,
            op,
            value,
        } => {
            let mut events: Vec<&ReferenceEvent> =
                selected(profile, event, filter.as_deref(), window, now_ms).collect();
            // The engine reads events oldest first; summing in the same order keeps
            // float sums identical.
            events.sort_by_key(|e| e.time_ms);
            let values: Vec<&EventProperty> = events
                .iter()
                .filter_map(|e| e.properties.get(property))
                .collect();
            let numbers: Vec<f64> = values
                .iter()
                .filter_map(|v| match v {
                    EventProperty::Integer(n) => Some(*n as f64),
                    EventProperty::Float(n) => Some(*n),
                    _ => None,
                })
                .collect();
            let result = match function {
                AggregateFunction::Sum => Some(numbers.iter().fold(0.0, |a, b| a + b)),
                AggregateFunction::Avg => (!numbers.is_empty())
                    .then(|| numbers.iter().fold(0.0, |a, b| a + b) / numbers.len() as f64),
                AggregateFunction::Min => numbers.iter().copied().reduce(f64::min),
                AggregateFunction::Max => numbers.iter().copied().reduce(f64::max),
                AggregateFunction::CountDistinct => {
                    let mut distinct: Vec<String> =
                        values.iter().map(|v| distinct_key(v)).collect();
                    distinct.sort();
                    distinct.dedup();
                    Some(distinct.len() as f64)
                }
            };
            result
                .is_some_and(|result| result.partial_cmp(value).is_some_and(|o| satisfies(o, *op)))
        }
    }
}

fn distinct_key(value: &EventProperty) -> String {
    match value {
        EventProperty::String(text) => format!("s:{text}"),
        EventProperty::Integer(number) => format!("n:{}", *number as f64),
        EventProperty::Float(number) => format!("n:{number}"),
        EventProperty::Bool(flag) => format!("b:{flag}"),
        EventProperty::List(items) => format!("l:{items:?}"),
    }
}

/// Events named `event` inside `window` that pass `filter`.
fn selected<'a>(
    profile: &'a ReferenceProfile,
    event: &'a str,
    filter: Option<&'a Rule>,
    window: &'a Window,
    now_ms: i64,
) -> impl Iterator<Item = &'a ReferenceEvent> + 'a {
    let (from, to) = match window {
        Window::Lifetime => (i64::MIN, i64::MAX),
        Window::Last { span } => (now_ms.saturating_sub(span.millis()), now_ms),
        Window::Between { from, to } => (
            parse_timestamp(from).unwrap_or(i64::MAX),
            parse_timestamp(to).unwrap_or(i64::MIN),
        ),
    };
    profile.events.iter().filter(move |e| {
        e.name == event
            && from <= e.time_ms
            && e.time_ms <= to
            && filter.is_none_or(|f| property_filter(f, &e.properties))
    })
}

fn property_ordering(value: &EventProperty, literal: &Literal) -> Option<Ordering> {
    match (value, literal) {
        (EventProperty::String(text), Literal::String(other)) => Some(text.as_str().cmp(other)),
        (EventProperty::Integer(n), Literal::Integer(other)) => Some(n.cmp(other)),
        (EventProperty::Integer(n), Literal::Float(other)) => {
            Some(compare_numbers(Number::Integer(*n), Number::Float(*other)))
        }
        (EventProperty::Float(n), Literal::Integer(other)) => {
            Some(compare_numbers(Number::Float(*n), Number::Integer(*other)))
        }
        (EventProperty::Float(n), Literal::Float(other)) => n.partial_cmp(other),
        (EventProperty::Bool(flag), Literal::Bool(other)) => Some(flag.cmp(other)),
        _ => None,
    }
}

/// A property filter (the rule AST with property names in place of traits).
fn property_filter(rule: &Rule, properties: &BTreeMap<String, EventProperty>) -> bool {
    match rule {
        Rule::And { rules } => rules.iter().all(|r| property_filter(r, properties)),
        Rule::Or { rules } => rules.iter().any(|r| property_filter(r, properties)),
        Rule::Not { rule } => !property_filter(rule, properties),
        Rule::Has { trait_name } => properties.contains_key(trait_name),
        Rule::Compare {
            trait_name,
            op,
            value,
        } => properties
            .get(trait_name)
            .and_then(|stored| property_ordering(stored, value))
            .is_some_and(|o| satisfies(o, *op)),
        Rule::Between {
            trait_name,
            low,
            high,
        } => properties.get(trait_name).is_some_and(|stored| {
            property_ordering(stored, low).is_some_and(|o| o.is_ge())
                && property_ordering(stored, high).is_some_and(|o| o.is_le())
        }),
        Rule::In {
            trait_name,
            values,
            negated,
        } => match properties.get(trait_name) {
            Some(EventProperty::List(items)) => {
                let any = values
                    .iter()
                    .any(|value| matches!(value, Literal::String(text) if items.contains(text)));
                any != *negated
            }
            Some(stored) => {
                let any = values
                    .iter()
                    .any(|value| property_ordering(stored, value) == Some(Ordering::Equal));
                any != *negated
            }
            None => false,
        },
        Rule::Text {
            trait_name,
            op,
            value,
        } => match properties.get(trait_name) {
            Some(EventProperty::String(text)) => match op {
                TextOp::Contains => text.contains(value.as_str()),
                TextOp::StartsWith => text.starts_with(value.as_str()),
                TextOp::EndsWith => text.ends_with(value.as_str()),
            },
            Some(EventProperty::List(items)) => *op == TextOp::Contains && items.contains(value),
            _ => false,
        },
        // Rejected by validation inside filters.
        _ => false,
    }
}
