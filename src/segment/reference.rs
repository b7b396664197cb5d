//! A naive reference evaluator, used only by tests to check the bitmap plan and the
//! per-profile evaluator. It reads the AST directly against plain values, with no
//! indexes, buckets or dictionaries, following the semantics in `compile`'s module doc.

use crate::segment::ast::{CompareOp, Literal, Rule, TextOp};
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

/// Whether `profile` matches `rule` at `now_ms` (trait conditions, segment references
/// and random buckets; behavioral conditions are checked by the event model tests).
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
        Rule::EventCount { .. } | Rule::Performed { .. } | Rule::Aggregate { .. } => false,
    }
}
