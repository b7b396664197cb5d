//! Validation and compilation: AST → [`Condition`], checked against the schema.
//!
//! Rules about types (each violation is a [`RuleError`] naming the trait and the fix):
//! - string traits: `= != < <= > >= between in` with string literals, and
//!   `contains starts_with ends_with`;
//! - integer/float traits: comparisons, `between`, `in` with numbers (integers and
//!   floats compare exactly by value);
//! - timestamp traits: comparisons and `between` with RFC 3339 strings or epoch-ms
//!   integers, and relative time (`within last 30 days`, `more than 60 days ago`);
//! - boolean traits: `= true|false`, `!= true|false`;
//! - list traits: `contains "item"`, `in (...)` (holds any of), `not in (...)`;
//! - every type: `has`.
//!
//! Unknown traits are allowed (the trait may arrive later): a condition on one matches
//! nobody (and `not` of it matches everybody) until a profile sets the trait, at which
//! point dependent segments are recompiled against the new column's type.
//!
//! Missing values: every comparison, including `!=` and `not in`, is false for a profile
//! without the trait. `city != "Berlin"` therefore means "has a city, and it is not
//! Berlin", while `not city = "Berlin"` also includes profiles with no city.

use crate::events::names::{self, NameId};
use crate::ids::{ColumnId, SegmentId};
use crate::segment::ast::{
    AggregateFunction, CompareOp, CountOp, Literal, Performed, Recency, Rule, TextOp, Window,
};
use crate::segment::limits;
use crate::store::column::Number;
use crate::store::schema::Schema;
use crate::store::value::{parse_timestamp, TraitType};
use thiserror::Error;

/// A rule that failed validation. Messages say what to change.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RuleError {
    #[error("trait `{trait_name}` is {trait_type}; `{operator}` needs {expected}")]
    TypeMismatch {
        trait_name: String,
        trait_type: TraitType,
        operator: String,
        expected: &'static str,
    },
    #[error("trait `{trait_name}` is {trait_type}, which does not support `{operator}`{hint}")]
    UnsupportedOperator {
        trait_name: String,
        trait_type: TraitType,
        operator: String,
        hint: &'static str,
    },
    #[error("unknown segment `{0}` — create it first, or check the name")]
    UnknownSegment(String),
    #[error("a segment cannot refer to itself (`{0}`)")]
    SelfReference(String),
    #[error("`{0}` needs at least one condition")]
    EmptyGroup(&'static str),
    #[error("rule nests {depth} levels; the limit is {}", limits::MAX_RULE_DEPTH)]
    TooDeep { depth: usize },
    #[error(
        "`in` list has {length} values; the limit is {}",
        limits::MAX_LIST_LENGTH
    )]
    ListTooLong { length: usize },
    #[error(
        "rule has {count} conditions; the limit is {}",
        limits::MAX_RULE_CONDITIONS
    )]
    TooManyConditions { count: usize },
    #[error("`{0}` is not a valid time — write RFC 3339 like \"2024-05-01T00:00:00Z\" or a date like \"2024-05-01\"")]
    BadTimestamp(String),
    #[error("random bucket must be between 0 and 100 percent with at most two decimals; got {0}")]
    BadPercent(f64),
    #[error("window of {window_days} days exceeds the event retention of {retention_days} days — shorten the window or raise --event-retention-days")]
    WindowExceedsRetention {
        window_days: f64,
        retention_days: f64,
    },
    #[error("{0} needs a window (`in last N days` or `between \"t1\" and \"t2\"`): events older than the retention are not kept, only lifetime counts")]
    NeedsWindow(&'static str),
    #[error("in a `where` filter: {0}")]
    BadFilter(String),
    #[error("number {0} is not finite")]
    NotFinite(f64),
    #[error("window starts after it ends ({from} > {to})")]
    EmptyWindow { from: String, to: String },
}

impl RuleError {
    /// Stable machine-readable code for HTTP errors.
    pub fn code(&self) -> &'static str {
        match self {
            RuleError::TypeMismatch { .. } => "rule_type_mismatch",
            RuleError::UnsupportedOperator { .. } => "rule_unsupported_operator",
            RuleError::UnknownSegment(_) => "rule_unknown_segment",
            RuleError::SelfReference(_) => "rule_segment_cycle",
            RuleError::EmptyGroup(_) => "rule_empty_group",
            RuleError::TooDeep { .. } => "rule_too_deep",
            RuleError::ListTooLong { .. } => "rule_list_too_long",
            RuleError::TooManyConditions { .. } => "rule_too_many_conditions",
            RuleError::BadTimestamp(_) => "rule_bad_timestamp",
            RuleError::BadPercent(_) => "rule_bad_percent",
            RuleError::WindowExceedsRetention { .. } => "rule_window_exceeds_retention",
            RuleError::NeedsWindow(_) => "rule_needs_window",
            RuleError::BadFilter(_) => "rule_bad_filter",
            RuleError::NotFinite(_) => "rule_not_finite",
            RuleError::EmptyWindow { .. } => "rule_empty_window",
        }
    }
}

/// A test on one trait column.
#[derive(Clone, Debug, PartialEq)]
pub enum Predicate {
    Has,
    /// `=`/`in` (or `!=`/`not in` when negated; false when missing either way).
    StringEqualAny {
        values: Vec<String>,
        negated: bool,
    },
    StringCompare {
        op: CompareOp,
        value: String,
    },
    StringBetween {
        low: String,
        high: String,
    },
    Text {
        op: TextOp,
        pattern: String,
    },
    NumberCompare {
        op: CompareOp,
        value: Number,
    },
    NumberBetween {
        low: Number,
        high: Number,
    },
    NumberIn {
        values: Vec<Number>,
        negated: bool,
    },
    TimestampCompare {
        op: CompareOp,
        millis: i64,
    },
    TimestampBetween {
        low_ms: i64,
        high_ms: i64,
    },
    /// Relative to evaluation time.
    TimestampRecent {
        recency: Recency,
        span_ms: i64,
    },
    BooleanEqual {
        value: bool,
    },
    /// `contains` / `in` (or `not in` when negated) on list traits.
    ListAny {
        items: Vec<String>,
        negated: bool,
    },
}

/// The time range a behavioral condition reads, resolved at evaluation time.
#[derive(Clone, Debug, PartialEq)]
pub enum EventWindow {
    Lifetime,
    Last { span_ms: i64 },
    Between { from_ms: i64, to_ms: i64 },
}

impl EventWindow {
    /// Inclusive [from, to] at `now_ms`.
    pub fn range(&self, now_ms: i64) -> (i64, i64) {
        match self {
            EventWindow::Lifetime => (i64::MIN, i64::MAX),
            EventWindow::Last { span_ms } => (now_ms.saturating_sub(*span_ms), now_ms),
            EventWindow::Between { from_ms, to_ms } => (*from_ms, *to_ms),
        }
    }
}

/// A compiled behavioral condition. Event and property names are resolved to
/// process-wide ids when the rule is compiled (`event_id`, `property_id`; see
/// `events::names`), so evaluation maps them to a shard's ids with a vector read; the
/// names stay for display and for the fallback when the id table is full (`None`).
#[derive(Clone, Debug, PartialEq)]
pub enum EventCondition {
    Count {
        event: String,
        event_id: Option<NameId>,
        filter: Option<Box<PropertyFilter>>,
        count_op: CountOp,
        count: u32,
        window: EventWindow,
    },
    Performed {
        event: String,
        event_id: Option<NameId>,
        which: Performed,
        recency: Recency,
        span_ms: i64,
    },
    Aggregate {
        function: AggregateFunction,
        event: String,
        event_id: Option<NameId>,
        property: String,
        property_id: Option<NameId>,
        filter: Option<Box<PropertyFilter>>,
        window: EventWindow,
        op: CompareOp,
        value: f64,
    },
}

/// A filter over event properties (same AST, property names instead of traits;
/// properties are untyped, so literals are compared by their own type).
#[derive(Clone, Debug, PartialEq)]
pub enum PropertyFilter {
    And(Vec<PropertyFilter>),
    Or(Vec<PropertyFilter>),
    Not(Box<PropertyFilter>),
    Compare {
        property: String,
        property_id: Option<NameId>,
        op: CompareOp,
        value: Literal,
    },
    Between {
        property: String,
        property_id: Option<NameId>,
        low: Literal,
        high: Literal,
    },
    In {
        property: String,
        property_id: Option<NameId>,
        values: Vec<Literal>,
        negated: bool,
    },
    Text {
        property: String,
        property_id: Option<NameId>,
        op: TextOp,
        pattern: String,
    },
    Has {
        property: String,
        property_id: Option<NameId>,
    },
}

/// A compiled rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Constant(bool),
    Trait {
        column: ColumnId,
        predicate: Predicate,
    },
    InSegment(SegmentId),
    /// Member when the profile's salted bucket in 0..10_000 is below `threshold`.
    RandomBucket {
        threshold: u32,
        salt: u64,
    },
    Event(EventCondition),
}

impl Condition {
    pub fn is_time_dependent(&self) -> bool {
        match self {
            Condition::And(children) | Condition::Or(children) => {
                children.iter().any(Condition::is_time_dependent)
            }
            Condition::Not(child) => child.is_time_dependent(),
            Condition::Trait {
                predicate: Predicate::TimestampRecent { .. },
                ..
            } => true,
            Condition::Event(EventCondition::Count {
                window: EventWindow::Lifetime,
                ..
            }) => false,
            Condition::Event(_) => true,
            _ => false,
        }
    }
}

/// What compilation needs to know besides the AST.
pub struct CompileContext<'a> {
    pub schema: &'a Schema,
    /// Resolves a segment name to its id.
    pub segment_lookup: &'a dyn Fn(&str) -> Option<SegmentId>,
    /// Name of the segment being compiled (for self-reference checks and the default
    /// random-bucket salt); `None` for previews.
    pub segment_name: Option<&'a str>,
    pub event_retention_ms: i64,
}

/// Checks limits and compiles a rule.
pub fn compile(rule: &Rule, context: &CompileContext<'_>) -> Result<Condition, RuleError> {
    let depth = rule.depth();
    if depth > limits::MAX_RULE_DEPTH {
        return Err(RuleError::TooDeep { depth });
    }
    let mut count = 0;
    rule.walk(&mut |_| count += 1);
    if count > limits::MAX_RULE_CONDITIONS {
        return Err(RuleError::TooManyConditions { count });
    }
    compile_node(rule, context)
}

fn compile_node(rule: &Rule, context: &CompileContext<'_>) -> Result<Condition, RuleError> {
    Ok(match rule {
        Rule::And { rules } => {
            if rules.is_empty() {
                return Err(RuleError::EmptyGroup("and"));
            }
            Condition::And(
                rules
                    .iter()
                    .map(|r| compile_node(r, context))
                    .collect::<Result<_, _>>()?,
            )
        }
        Rule::Or { rules } => {
            if rules.is_empty() {
                return Err(RuleError::EmptyGroup("or"));
            }
            Condition::Or(
                rules
                    .iter()
                    .map(|r| compile_node(r, context))
                    .collect::<Result<_, _>>()?,
            )
        }
        Rule::Not { rule } => Condition::Not(Box::new(compile_node(rule, context)?)),
        Rule::InSegment { segment } => {
            if Some(segment.as_str()) == context.segment_name {
                return Err(RuleError::SelfReference(segment.clone()));
            }
            match (context.segment_lookup)(segment) {
                Some(id) => Condition::InSegment(id),
                None => return Err(RuleError::UnknownSegment(segment.clone())),
            }
        }
        Rule::RandomBucket { percent, salt } => {
            let hundredths = percent * 100.0;
            if !percent.is_finite()
                || !(0.0..=100.0).contains(percent)
                || (hundredths - hundredths.round()).abs() > 1e-6
            {
                return Err(RuleError::BadPercent(*percent));
            }
            let salt_text = salt.as_deref().or(context.segment_name).unwrap_or("");
            Condition::RandomBucket {
                threshold: hundredths.round() as u32,
                salt: xxhash_rust::xxh3::xxh3_64(salt_text.as_bytes()),
            }
        }
        Rule::EventCount {
            event,
            filter,
            count_op,
            count,
            window,
        } => {
            let window = compile_window(window, context)?;
            if filter.is_some() && window == EventWindow::Lifetime {
                return Err(RuleError::NeedsWindow("a `where` filter"));
            }
            Condition::Event(EventCondition::Count {
                event: event.clone(),
                event_id: names::intern(event),
                filter: filter
                    .as_deref()
                    .map(compile_filter)
                    .transpose()?
                    .map(Box::new),
                count_op: *count_op,
                count: *count,
                window,
            })
        }
        Rule::Performed {
            event,
            which,
            recency,
            span,
        } => Condition::Event(EventCondition::Performed {
            event: event.clone(),
            event_id: names::intern(event),
            which: *which,
            recency: *recency,
            span_ms: span.millis(),
        }),
        Rule::Aggregate {
            function,
            event,
            property,
            filter,
            window,
            op,
            value,
        } => {
            if !value.is_finite() {
                return Err(RuleError::NotFinite(*value));
            }
            let window = compile_window(window, context)?;
            if window == EventWindow::Lifetime {
                return Err(RuleError::NeedsWindow("an aggregate"));
            }
            Condition::Event(EventCondition::Aggregate {
                function: *function,
                event: event.clone(),
                event_id: names::intern(event),
                property: property.clone(),
                property_id: names::intern(property),
                filter: filter
                    .as_deref()
                    .map(compile_filter)
                    .transpose()?
                    .map(Box::new),
                window,
                op: *op,
                value: *value,
            })
        }
        trait_rule => compile_trait(trait_rule, context)?,
    })
}

fn compile_window(window: &Window, context: &CompileContext<'_>) -> Result<EventWindow, RuleError> {
    let day = 86_400_000.0;
    match window {
        Window::Lifetime => Ok(EventWindow::Lifetime),
        Window::Last { span } => {
            if span.millis() > context.event_retention_ms {
                return Err(RuleError::WindowExceedsRetention {
                    window_days: span.millis() as f64 / day,
                    retention_days: context.event_retention_ms as f64 / day,
                });
            }
            Ok(EventWindow::Last {
                span_ms: span.millis(),
            })
        }
        Window::Between { from, to } => {
            let from_ms =
                parse_timestamp(from).ok_or_else(|| RuleError::BadTimestamp(from.clone()))?;
            let to_ms = parse_timestamp(to).ok_or_else(|| RuleError::BadTimestamp(to.clone()))?;
            if from_ms > to_ms {
                return Err(RuleError::EmptyWindow {
                    from: from.clone(),
                    to: to.clone(),
                });
            }
            Ok(EventWindow::Between { from_ms, to_ms })
        }
    }
}

fn compile_filter(rule: &Rule) -> Result<PropertyFilter, RuleError> {
    let bad =
        |what: &str| RuleError::BadFilter(format!("{what} cannot be used on event properties"));
    Ok(match rule {
        Rule::And { rules } if !rules.is_empty() => {
            PropertyFilter::And(rules.iter().map(compile_filter).collect::<Result<_, _>>()?)
        }
        Rule::Or { rules } if !rules.is_empty() => {
            PropertyFilter::Or(rules.iter().map(compile_filter).collect::<Result<_, _>>()?)
        }
        Rule::And { .. } | Rule::Or { .. } => return Err(RuleError::EmptyGroup("and/or")),
        Rule::Not { rule } => PropertyFilter::Not(Box::new(compile_filter(rule)?)),
        Rule::Compare {
            trait_name,
            op,
            value,
        } => {
            check_literal_finite(value)?;
            PropertyFilter::Compare {
                property: trait_name.clone(),
                property_id: names::intern(trait_name),
                op: *op,
                value: value.clone(),
            }
        }
        Rule::Between {
            trait_name,
            low,
            high,
        } => {
            check_literal_finite(low)?;
            check_literal_finite(high)?;
            PropertyFilter::Between {
                property: trait_name.clone(),
                property_id: names::intern(trait_name),
                low: low.clone(),
                high: high.clone(),
            }
        }
        Rule::In {
            trait_name,
            values,
            negated,
        } => {
            if values.len() > limits::MAX_LIST_LENGTH {
                return Err(RuleError::ListTooLong {
                    length: values.len(),
                });
            }
            for value in values {
                check_literal_finite(value)?;
            }
            PropertyFilter::In {
                property: trait_name.clone(),
                property_id: names::intern(trait_name),
                values: values.clone(),
                negated: *negated,
            }
        }
        Rule::Text {
            trait_name,
            op,
            value,
        } => PropertyFilter::Text {
            property: trait_name.clone(),
            property_id: names::intern(trait_name),
            op: *op,
            pattern: value.clone(),
        },
        Rule::Has { trait_name } => PropertyFilter::Has {
            property: trait_name.clone(),
            property_id: names::intern(trait_name),
        },
        Rule::Recent { .. } => return Err(bad("relative time")),
        Rule::InSegment { .. } => return Err(bad("`in segment`")),
        Rule::RandomBucket { .. } => return Err(bad("`random bucket`")),
        Rule::EventCount { .. } | Rule::Performed { .. } | Rule::Aggregate { .. } => {
            return Err(bad("a behavioral condition"))
        }
    })
}

fn check_literal_finite(literal: &Literal) -> Result<(), RuleError> {
    match literal {
        Literal::Float(value) if !value.is_finite() => Err(RuleError::NotFinite(*value)),
        _ => Ok(()),
    }
}

fn literal_number(literal: &Literal) -> Option<Number> {
    match literal {
        Literal::Integer(value) => Some(Number::Integer(*value)),
        Literal::Float(value) if value.is_finite() => Some(Number::Float(*value)),
        _ => None,
    }
}

fn literal_timestamp(literal: &Literal) -> Result<Option<i64>, RuleError> {
    match literal {
        Literal::Integer(millis) => Ok(Some(*millis)),
        Literal::String(text) => parse_timestamp(text)
            .map(Some)
            .ok_or_else(|| RuleError::BadTimestamp(text.clone())),
        _ => Ok(None),
    }
}

fn operator_name(rule: &Rule) -> String {
    match rule {
        Rule::Compare { op, .. } => match op {
            CompareOp::Eq => "=",
            CompareOp::NotEq => "!=",
            CompareOp::Less => "<",
            CompareOp::LessOrEqual => "<=",
            CompareOp::Greater => ">",
            CompareOp::GreaterOrEqual => ">=",
        }
        .to_string(),
        Rule::Between { .. } => "between".into(),
        Rule::In { negated: false, .. } => "in".into(),
        Rule::In { negated: true, .. } => "not in".into(),
        Rule::Text { op, .. } => match op {
            TextOp::Contains => "contains",
            TextOp::StartsWith => "starts_with",
            TextOp::EndsWith => "ends_with",
        }
        .into(),
        Rule::Recent { .. } => "relative time".into(),
        _ => "?".into(),
    }
}

fn compile_trait(rule: &Rule, context: &CompileContext<'_>) -> Result<Condition, RuleError> {
    let trait_name = match rule {
        Rule::Compare { trait_name, .. }
        | Rule::Between { trait_name, .. }
        | Rule::In { trait_name, .. }
        | Rule::Text { trait_name, .. }
        | Rule::Has { trait_name }
        | Rule::Recent { trait_name, .. } => trait_name,
        _ => unreachable!("compile_node handles every non-trait rule"),
    };
    // Shape checks that do not depend on the schema come first, so a rule is rejected
    // the same way whether or not its trait exists yet.
    match rule {
        Rule::In { values, .. } if values.len() > limits::MAX_LIST_LENGTH => {
            return Err(RuleError::ListTooLong {
                length: values.len(),
            });
        }
        Rule::Compare { value, .. } => check_literal_finite(value)?,
        Rule::Between { low, high, .. } => {
            check_literal_finite(low)?;
            check_literal_finite(high)?;
        }
        Rule::In { values, .. } => {
            for value in values {
                check_literal_finite(value)?;
            }
        }
        _ => {}
    }
    let Some((column, trait_type)) = context.schema.lookup(trait_name) else {
        // Unknown trait: matches nobody for now (see module doc).
        return Ok(Condition::Constant(false));
    };
    let mismatch = |expected: &'static str| RuleError::TypeMismatch {
        trait_name: trait_name.clone(),
        trait_type,
        operator: operator_name(rule),
        expected,
    };
    let unsupported = |hint: &'static str| RuleError::UnsupportedOperator {
        trait_name: trait_name.clone(),
        trait_type,
        operator: operator_name(rule),
        hint,
    };
    let predicate = match (trait_type, rule) {
        (_, Rule::Has { .. }) => Predicate::Has,
        (_, Rule::Recent { recency, span, .. }) => {
            if trait_type != TraitType::Timestamp {
                return Err(unsupported(" (relative time needs a timestamp trait)"));
            }
            Predicate::TimestampRecent {
                recency: *recency,
                span_ms: span.millis(),
            }
        }
        (TraitType::String, Rule::Compare { op, value, .. }) => {
            let Literal::String(text) = value else {
                return Err(mismatch("a \"string\""));
            };
            match op {
                CompareOp::Eq => Predicate::StringEqualAny {
                    values: vec![text.clone()],
                    negated: false,
                },
                CompareOp::NotEq => Predicate::StringEqualAny {
                    values: vec![text.clone()],
                    negated: true,
                },
                other => Predicate::StringCompare {
                    op: *other,
                    value: text.clone(),
                },
            }
        }
        (TraitType::String, Rule::Between { low, high, .. }) => match (low, high) {
            (Literal::String(low), Literal::String(high)) => Predicate::StringBetween {
                low: low.clone(),
                high: high.clone(),
            },
            _ => return Err(mismatch("\"string\" bounds")),
        },
        (
            TraitType::String,
            Rule::In {
                values, negated, ..
            },
        )
        | (
            TraitType::List,
            Rule::In {
                values, negated, ..
            },
        ) => {
            let strings = values
                .iter()
                .map(|value| match value {
                    Literal::String(text) => Ok(text.clone()),
                    _ => Err(mismatch("\"string\" values")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if trait_type == TraitType::List {
                Predicate::ListAny {
                    items: strings,
                    negated: *negated,
                }
            } else {
                Predicate::StringEqualAny {
                    values: strings,
                    negated: *negated,
                }
            }
        }
        (TraitType::String, Rule::Text { op, value, .. }) => Predicate::Text {
            op: *op,
            pattern: value.clone(),
        },
        (
            TraitType::List,
            Rule::Text {
                op: TextOp::Contains,
                value,
                ..
            },
        ) => Predicate::ListAny {
            items: vec![value.clone()],
            negated: false,
        },
        (TraitType::List, _) => {
            return Err(unsupported(
                " — use `contains \"item\"`, `in (...)` or `has`",
            ))
        }
        (TraitType::Integer | TraitType::Float, Rule::Compare { op, value, .. }) => {
            Predicate::NumberCompare {
                op: *op,
                value: literal_number(value).ok_or_else(|| mismatch("a number"))?,
            }
        }
        (TraitType::Integer | TraitType::Float, Rule::Between { low, high, .. }) => {
            Predicate::NumberBetween {
                low: literal_number(low).ok_or_else(|| mismatch("number bounds"))?,
                high: literal_number(high).ok_or_else(|| mismatch("number bounds"))?,
            }
        }
        (
            TraitType::Integer | TraitType::Float,
            Rule::In {
                values, negated, ..
            },
        ) => Predicate::NumberIn {
            values: values
                .iter()
                .map(|value| literal_number(value).ok_or_else(|| mismatch("number values")))
                .collect::<Result<_, _>>()?,
            negated: *negated,
        },
        (TraitType::Timestamp, Rule::Compare { op, value, .. }) => Predicate::TimestampCompare {
            op: *op,
            millis: literal_timestamp(value)?.ok_or_else(|| {
                mismatch("a time (\"2024-05-01T00:00:00Z\") or epoch milliseconds")
            })?,
        },
        (TraitType::Timestamp, Rule::Between { low, high, .. }) => Predicate::TimestampBetween {
            low_ms: literal_timestamp(low)?.ok_or_else(|| mismatch("time bounds"))?,
            high_ms: literal_timestamp(high)?.ok_or_else(|| mismatch("time bounds"))?,
        },
        (TraitType::Boolean, Rule::Compare { op, value, .. }) => {
            let Literal::Bool(flag) = value else {
                return Err(mismatch("true or false"));
            };
            match op {
                CompareOp::Eq => Predicate::BooleanEqual { value: *flag },
                CompareOp::NotEq => Predicate::BooleanEqual { value: !*flag },
                _ => return Err(unsupported(" — use `= true` or `= false`")),
            }
        }
        (_, Rule::Text { .. }) => {
            return Err(unsupported(
                " — text operators need a string (or `contains` a list) trait",
            ))
        }
        (_, _) => return Err(unsupported("")),
    };
    Ok(Condition::Trait { column, predicate })
}
