//! Behavioral conditions over a shard's event store: event counts in a window with
//! property filters, first/last performed, windowed aggregates.
//!
//! Semantics:
//! - `did "e" ... in last N days` counts events with `now - N <= time <= now`
//!   (event time from the message, so late events count where they belong);
//! - a profile with no matching events has count 0: `did not "e"` (exactly 0),
//!   `at most N times` and `exactly 0 times` match it;
//! - `sum` and `count distinct` of no events are 0; `avg`, `min`, `max` of no events
//!   (or of events without a numeric property) have no value and match nothing;
//! - `first`/`last "e" ...` read lifetime first/last times (kept beyond retention) and
//!   never match a profile that never did `e`;
//! - property filters compare a property with a literal of the same kind (string with
//!   string, number with number exactly, boolean with boolean); a missing property or
//!   one of another kind makes the comparison false, as for traits.

use crate::events::names::NameId;
use crate::events::{EventNameId, EventStore, EventView, Lifetime, PropertyValue};
use crate::ids::LocalId;
use crate::segment::ast::{AggregateFunction, CountOp, Literal, Performed, TextOp};
use crate::segment::compile::{EventCondition, EventWindow, PropertyFilter};
use crate::segment::evaluate::{recency_edges, recency_range};
use crate::store::column::{compare_numbers, ordering_satisfies, text_matches, Number};
use crate::store::Shard;
use roaring::RoaringBitmap;
use std::cmp::Ordering;
use std::collections::HashSet;

fn count_satisfies(count: u64, op: CountOp, wanted: u32) -> bool {
    let wanted = u64::from(wanted);
    match op {
        CountOp::AtLeast => count >= wanted,
        CountOp::AtMost => count <= wanted,
        CountOp::Exactly => count == wanted,
    }
}

/// Whether a profile with no occurrence of the event matches.
fn matches_without_events(condition: &EventCondition) -> bool {
    match condition {
        EventCondition::Count {
            count_op, count, ..
        } => count_satisfies(0, *count_op, *count),
        EventCondition::Performed { .. } => false,
        EventCondition::Aggregate {
            function,
            op,
            value,
            ..
        } => match function {
            AggregateFunction::Sum | AggregateFunction::CountDistinct => ordering_satisfies(
                compare_numbers(Number::Float(0.0), Number::Float(*value)),
                *op,
            ),
            _ => false,
        },
    }
}

/// The compiled event of a condition: its process-wide id and its name.
pub(crate) fn event_ref(condition: &EventCondition) -> (Option<NameId>, &str) {
    match condition {
        EventCondition::Count {
            event, event_id, ..
        }
        | EventCondition::Performed {
            event, event_id, ..
        }
        | EventCondition::Aggregate {
            event, event_id, ..
        } => (*event_id, event),
    }
}

/// This shard's id of the event a condition reads (a vector read; see
/// `events::names`).
#[inline]
pub(crate) fn resolve(condition: &EventCondition, events: &EventStore) -> Option<EventNameId> {
    let (id, name) = event_ref(condition);
    events.resolve_event(id, name)
}

/// Profiles of `universe` matching a behavioral condition. Only candidates (see
/// [`candidates`]) are examined one by one; everyone else gets the answer of a profile
/// without events, decided at once.
pub fn matching(
    condition: &EventCondition,
    shard: &Shard,
    universe: &RoaringBitmap,
    now_ms: i64,
) -> RoaringBitmap {
    let events = &shard.events;
    let Some(name) = resolve(condition, events) else {
        return if matches_without_events(condition) {
            universe.clone()
        } else {
            RoaringBitmap::new()
        };
    };
    let candidates = candidates(condition, events, name, universe, now_ms);
    let mut result = if matches_without_events(condition) {
        universe - &candidates
    } else {
        RoaringBitmap::new()
    };
    let matched: Vec<u32> = candidates
        .iter()
        .filter(|id| evaluate(condition, events, name, LocalId(*id), now_ms))
        .collect();
    result |= RoaringBitmap::from_sorted_iter(matched).unwrap_or_default();
    result
}

/// The profiles of `universe` whose answer can differ from that of a profile without
/// events: they did the event at all; for windowed counts and aggregates, they had a
/// stored event of it on a day the window touches (no event in the window gives the
/// same count, 0, and the same aggregate as no events at all); for `at least N` and
/// `exactly N` (N ≥ 1), their lifetime count reached N (a window never holds more).
/// The indexes behind these are supersets, so this is one too.
pub fn candidates(
    condition: &EventCondition,
    events: &EventStore,
    name: EventNameId,
    universe: &RoaringBitmap,
    now_ms: i64,
) -> RoaringBitmap {
    let mut candidates = universe & events.profiles_with(name);
    if let EventCondition::Count {
        count_op: CountOp::AtLeast | CountOp::Exactly,
        count,
        ..
    } = condition
    {
        if let Some(level) = events.at_least(name, u64::from(*count)) {
            candidates &= level;
        }
    }
    if let EventCondition::Count { window, .. } | EventCondition::Aggregate { window, .. } =
        condition
    {
        if *window != EventWindow::Lifetime && !candidates.is_empty() {
            let (from, to) = window.range(now_ms);
            candidates &= events.active_between(name, from, to);
        }
    }
    candidates
}

/// Whether one profile matches a behavioral condition.
pub fn matches(condition: &EventCondition, shard: &Shard, local: LocalId, now_ms: i64) -> bool {
    let events = &shard.events;
    match resolve(condition, events) {
        Some(name) if events.profiles_with(name).contains(local.0) => {
            evaluate(condition, events, name, local, now_ms)
        }
        _ => matches_without_events(condition),
    }
}

fn evaluate(
    condition: &EventCondition,
    events: &EventStore,
    name: EventNameId,
    local: LocalId,
    now_ms: i64,
) -> bool {
    match condition {
        EventCondition::Count {
            filter,
            count_op,
            count,
            window,
            ..
        } => {
            let found = match (window, filter) {
                (EventWindow::Lifetime, _) => events
                    .lifetime(local.0, name)
                    .map_or(0, |lifetime| lifetime.count),
                (window, None) => {
                    let (from, to) = window.range(now_ms);
                    events.count_in_window(local.0, name, from, to)
                }
                (window, Some(filter)) => {
                    let (from, to) = window.range(now_ms);
                    events
                        .events(local.0, name, from, to)
                        .filter(|event| filter_matches(filter, events, event))
                        .count() as u64
                }
            };
            count_satisfies(found, *count_op, *count)
        }
        EventCondition::Performed {
            which,
            recency,
            span_ms,
            ..
        } => match events.lifetime(local.0, name) {
            Some(lifetime) => {
                let time = performed_at(lifetime, *which);
                let (low, high) = recency_range(*recency, *span_ms, now_ms);
                low <= time && time <= high
            }
            None => false,
        },
        EventCondition::Aggregate {
            function,
            property,
            property_id,
            filter,
            window,
            op,
            value,
            ..
        } => {
            let (from, to) = window.range(now_ms);
            let property = events.resolve_property(*property_id, property);
            let selected = events.events(local.0, name, from, to).filter(|event| {
                filter
                    .as_ref()
                    .is_none_or(|filter| filter_matches(filter, events, event))
            });
            let aggregate = aggregate(*function, property.map(|p| (p, selected)));
            match aggregate {
                Some(result) => ordering_satisfies(
                    compare_numbers(Number::Float(result), Number::Float(*value)),
                    *op,
                ),
                None => false,
            }
        }
    }
}

/// Profiles for which [`next_change_after`] can return an instant. Sliding-window
/// counts and aggregates change only by a stored event leaving the window or a
/// future-dated one entering it, so profiles without a stored event from the window's
/// start on are left out; fixed windows and lifetime counts never change by time alone.
pub fn timer_candidates(condition: &EventCondition, shard: &Shard, now_ms: i64) -> RoaringBitmap {
    let events = &shard.events;
    let Some(name) = resolve(condition, events) else {
        return RoaringBitmap::new();
    };
    match condition {
        EventCondition::Count {
            window: EventWindow::Last { span_ms },
            ..
        }
        | EventCondition::Aggregate {
            window: EventWindow::Last { span_ms },
            ..
        } => {
            events.profiles_with(name)
                & events.active_between(name, now_ms.saturating_sub(*span_ms), i64::MAX)
        }
        EventCondition::Performed { .. } => events.profiles_with(name).clone(),
        EventCondition::Count { .. } | EventCondition::Aggregate { .. } => RoaringBitmap::new(),
    }
}

fn aggregate<'a>(
    function: AggregateFunction,
    selected: Option<(
        crate::events::PropertyNameId,
        impl Iterator<Item = EventView<'a>>,
    )>,
) -> Option<f64> {
    let Some((property, selected)) = selected else {
        // The property was never seen: no values.
        return match function {
            AggregateFunction::Sum | AggregateFunction::CountDistinct => Some(0.0),
            _ => None,
        };
    };
    match function {
        AggregateFunction::CountDistinct => {
            let mut distinct: HashSet<String> = HashSet::new();
            for event in selected {
                if let Some(value) = event.property(property) {
                    distinct.insert(property_key(&value));
                }
            }
            Some(distinct.len() as f64)
        }
        _ => {
            let mut sum = 0.0;
            let mut count = 0u64;
            let mut min = f64::INFINITY;
            let mut max = f64::NEG_INFINITY;
            for event in selected {
                let number = match event.property(property) {
                    Some(PropertyValue::Integer(value)) => value as f64,
                    Some(PropertyValue::Float(value)) => value,
                    _ => continue,
                };
                sum += number;
                count += 1;
                min = min.min(number);
                max = max.max(number);
            }
            match function {
                AggregateFunction::Sum => Some(sum),
                AggregateFunction::Avg => (count > 0).then(|| sum / count as f64),
                AggregateFunction::Min => (count > 0).then_some(min),
                AggregateFunction::Max => (count > 0).then_some(max),
                AggregateFunction::CountDistinct => None,
            }
        }
    }
}

fn property_key(value: &PropertyValue<'_>) -> String {
    match value {
        PropertyValue::Str(text) => format!("s:{text}"),
        PropertyValue::Integer(number) => format!("n:{}", *number as f64),
        PropertyValue::Float(number) => format!("n:{number}"),
        PropertyValue::Bool(flag) => format!("b:{flag}"),
        PropertyValue::List(items) => format!("l:{items:?}"),
    }
}

fn literal_ordering(value: &PropertyValue<'_>, literal: &Literal) -> Option<Ordering> {
    match (value, literal) {
        (PropertyValue::Str(text), Literal::String(other)) => Some((*text).cmp(other.as_str())),
        (PropertyValue::Integer(number), Literal::Integer(other)) => Some(number.cmp(other)),
        (PropertyValue::Integer(number), Literal::Float(other)) => Some(compare_numbers(
            Number::Integer(*number),
            Number::Float(*other),
        )),
        (PropertyValue::Float(number), Literal::Integer(other)) => Some(compare_numbers(
            Number::Float(*number),
            Number::Integer(*other),
        )),
        (PropertyValue::Float(number), Literal::Float(other)) => number.partial_cmp(other),
        (PropertyValue::Bool(flag), Literal::Bool(other)) => Some(flag.cmp(other)),
        _ => None,
    }
}

/// Evaluates a property filter on one event.
pub fn filter_matches(filter: &PropertyFilter, events: &EventStore, event: &EventView<'_>) -> bool {
    let read = |property: &str, id: &Option<NameId>| {
        events
            .resolve_property(*id, property)
            .and_then(|id| event.property(id))
    };
    match filter {
        PropertyFilter::And(children) => children
            .iter()
            .all(|child| filter_matches(child, events, event)),
        PropertyFilter::Or(children) => children
            .iter()
            .any(|child| filter_matches(child, events, event)),
        PropertyFilter::Not(child) => !filter_matches(child, events, event),
        PropertyFilter::Has {
            property,
            property_id,
        } => read(property, property_id).is_some(),
        PropertyFilter::Compare {
            property,
            property_id,
            op,
            value,
        } => read(property, property_id)
            .and_then(|stored| literal_ordering(&stored, value))
            .is_some_and(|ordering| ordering_satisfies(ordering, *op)),
        PropertyFilter::Between {
            property,
            property_id,
            low,
            high,
        } => read(property, property_id).is_some_and(|stored| {
            literal_ordering(&stored, low).is_some_and(|o| o != Ordering::Less)
                && literal_ordering(&stored, high).is_some_and(|o| o != Ordering::Greater)
        }),
        PropertyFilter::In {
            property,
            property_id,
            values,
            negated,
        } => match read(property, property_id) {
            Some(PropertyValue::List(items)) => {
                let any = values
                    .iter()
                    .any(|value| matches!(value, Literal::String(text) if items.contains(&text.as_str())));
                any != *negated
            }
            Some(stored) => {
                let any = values
                    .iter()
                    .any(|value| literal_ordering(&stored, value) == Some(Ordering::Equal));
                any != *negated
            }
            None => false,
        },
        PropertyFilter::Text {
            property,
            property_id,
            op,
            pattern,
        } => match read(property, property_id) {
            Some(PropertyValue::Str(text)) => text_matches(*op, text, pattern),
            Some(PropertyValue::List(items)) => {
                *op == TextOp::Contains && items.contains(&pattern.as_str())
            }
            _ => false,
        },
    }
}

/// The next instant after `now_ms` at which a behavioral condition can change for this
/// profile without new data: an event leaving (or a future-dated one entering) a
/// sliding window, or a first/last time crossing a recency edge.
pub fn next_change_after(
    condition: &EventCondition,
    shard: &Shard,
    local: LocalId,
    now_ms: i64,
) -> Option<i64> {
    let events = &shard.events;
    let name = resolve(condition, events)?;
    match condition {
        EventCondition::Count {
            window: EventWindow::Last { span_ms },
            ..
        }
        | EventCondition::Aggregate {
            window: EventWindow::Last { span_ms },
            ..
        } => {
            // The oldest event inside the window leaves first; a future-dated event
            // enters when its time comes.
            let leaving = events
                .events(local.0, name, now_ms.saturating_sub(*span_ms), now_ms)
                .next()
                .map(|event| event.time_ms.saturating_add(*span_ms).saturating_add(1));
            let entering = events
                .events(local.0, name, now_ms.saturating_add(1), i64::MAX)
                .next()
                .map(|event| event.time_ms);
            leaving
                .into_iter()
                .chain(entering)
                .filter(|edge| *edge > now_ms)
                .min()
        }
        EventCondition::Performed {
            which,
            recency,
            span_ms,
            ..
        } => {
            let lifetime = events.lifetime(local.0, name)?;
            let time = performed_at(lifetime, *which);
            recency_edges(*recency, *span_ms, time)
                .into_iter()
                .flatten()
                .filter(|edge| *edge > now_ms)
                .min()
        }
        _ => None,
    }
}

/// The answers (membership and next due instant) of every behavioral leaf over one
/// event name, for one profile, computed in **one pass** over that profile's stored
/// events of the name (issue 9 item 5): after a `track`, every affected segment's
/// leaves over the tracked event are answered from here instead of each locating,
/// windowing and filtering the same events again. Holds no borrow of the shard, so the
/// shard can be updated while the answers are read.
#[derive(Debug, Default)]
pub struct EventPass {
    /// (leaf address, member, next change) per leaf over the name.
    leaves: Vec<(usize, bool, Option<i64>)>,
}

/// Per-leaf state while passing over the events.
struct LeafScan<'c> {
    leaf: &'c EventCondition,
    /// Inclusive window at `now_ms`; `None` for leaves that read lifetime aggregates.
    window: Option<(i64, i64)>,
    /// Sliding-window span (for the timer edges).
    span_ms: Option<i64>,
    count: u64,
    /// Indices (into the name's events) of the selected events of an aggregate.
    selected: Vec<usize>,
    leaving: Option<i64>,
    entering: Option<i64>,
}

impl EventPass {
    /// Answers every leaf over `name` (this shard's id) found in `conditions`.
    pub fn build<'c>(
        conditions: impl Iterator<Item = &'c crate::segment::compile::Condition>,
        shard: &Shard,
        local: LocalId,
        name: EventNameId,
        now_ms: i64,
    ) -> EventPass {
        let events = &shard.events;
        // Sized for the usual handful of leaves per event name: no regrowth.
        let mut leaves: Vec<&EventCondition> = Vec::with_capacity(32);
        for condition in conditions {
            collect_leaves(condition, events, name, &mut leaves);
        }
        if leaves.is_empty() {
            return EventPass::default();
        }
        let performed = events.profiles_with(name).contains(local.0);
        let lifetime = events.lifetime(local.0, name);
        let named = events.named_events(local.0, name);
        let mut scans: Vec<LeafScan<'_>> = leaves
            .iter()
            .map(|leaf| {
                let (window, span_ms) = match leaf {
                    EventCondition::Count {
                        window: EventWindow::Lifetime,
                        ..
                    }
                    | EventCondition::Performed { .. } => (None, None),
                    EventCondition::Count { window, .. }
                    | EventCondition::Aggregate { window, .. } => (
                        Some(window.range(now_ms)),
                        match window {
                            EventWindow::Last { span_ms } => Some(*span_ms),
                            _ => None,
                        },
                    ),
                };
                LeafScan {
                    leaf,
                    window,
                    span_ms,
                    count: 0,
                    selected: Vec::new(),
                    leaving: None,
                    entering: None,
                }
            })
            .collect();
        if performed {
            // The pass: each stored event of the name once, oldest first.
            for index in 0..named.len() {
                let event = named.get(index);
                let time = event.time_ms;
                for scan in &mut scans {
                    if let Some((from, to)) = scan.window {
                        if from <= time && time <= to {
                            let filter = match scan.leaf {
                                EventCondition::Count { filter, .. }
                                | EventCondition::Aggregate { filter, .. } => filter.as_deref(),
                                EventCondition::Performed { .. } => None,
                            };
                            if filter.is_none_or(|filter| filter_matches(filter, events, &event)) {
                                scan.count += 1;
                                if matches!(scan.leaf, EventCondition::Aggregate { .. }) {
                                    scan.selected.push(index);
                                }
                            }
                        }
                    }
                    if let Some(span_ms) = scan.span_ms {
                        if scan.leaving.is_none()
                            && now_ms.saturating_sub(span_ms) <= time
                            && time <= now_ms
                        {
                            scan.leaving = Some(time.saturating_add(span_ms).saturating_add(1));
                        }
                        if scan.entering.is_none() && time > now_ms {
                            scan.entering = Some(time);
                        }
                    }
                }
            }
        }
        let leaves = scans
            .into_iter()
            .map(|scan| {
                let member = if !performed {
                    matches_without_events(scan.leaf)
                } else {
                    match scan.leaf {
                        EventCondition::Count {
                            window: EventWindow::Lifetime,
                            count_op,
                            count,
                            ..
                        } => count_satisfies(
                            lifetime.map_or(0, |lifetime| lifetime.count),
                            *count_op,
                            *count,
                        ),
                        EventCondition::Count {
                            count_op, count, ..
                        } => count_satisfies(scan.count, *count_op, *count),
                        EventCondition::Performed {
                            which,
                            recency,
                            span_ms,
                            ..
                        } => lifetime.is_some_and(|lifetime| {
                            let time = performed_at(lifetime, *which);
                            let (low, high) = recency_range(*recency, *span_ms, now_ms);
                            low <= time && time <= high
                        }),
                        EventCondition::Aggregate {
                            function,
                            property,
                            property_id,
                            op,
                            value,
                            ..
                        } => {
                            let property = events.resolve_property(*property_id, property);
                            let selected = scan.selected.iter().map(|index| named.get(*index));
                            match aggregate(*function, property.map(|p| (p, selected))) {
                                Some(result) => ordering_satisfies(
                                    compare_numbers(Number::Float(result), Number::Float(*value)),
                                    *op,
                                ),
                                None => false,
                            }
                        }
                    }
                };
                let next_change = match scan.leaf {
                    EventCondition::Performed {
                        which,
                        recency,
                        span_ms,
                        ..
                    } => lifetime.and_then(|lifetime| {
                        let time = performed_at(lifetime, *which);
                        recency_edges(*recency, *span_ms, time)
                            .into_iter()
                            .flatten()
                            .filter(|edge| *edge > now_ms)
                            .min()
                    }),
                    _ => scan
                        .leaving
                        .into_iter()
                        .chain(scan.entering)
                        .filter(|edge| *edge > now_ms)
                        .min(),
                };
                (
                    scan.leaf as *const EventCondition as usize,
                    member,
                    next_change,
                )
            })
            .collect();
        EventPass { leaves }
    }

    /// The pass's answer for a leaf (membership, next change), when it covered it.
    #[inline]
    pub fn get(&self, leaf: &EventCondition) -> Option<(bool, Option<i64>)> {
        let address = leaf as *const EventCondition as usize;
        self.leaves
            .iter()
            .find(|(at, _, _)| *at == address)
            .map(|(_, member, next)| (*member, *next))
    }
}

fn collect_leaves<'c>(
    condition: &'c crate::segment::compile::Condition,
    events: &EventStore,
    name: EventNameId,
    out: &mut Vec<&'c EventCondition>,
) {
    use crate::segment::compile::Condition;
    match condition {
        Condition::And(children) | Condition::Or(children) => {
            for child in children {
                collect_leaves(child, events, name, out);
            }
        }
        Condition::Not(child) => collect_leaves(child, events, name, out),
        Condition::Event(leaf) if resolve(leaf, events) == Some(name) => out.push(leaf),
        _ => {}
    }
}

/// Whether a leaf's timer inputs include the event `name` (this shard's id).
pub(crate) fn reads_event(
    condition: &EventCondition,
    events: &EventStore,
    name: EventNameId,
) -> bool {
    resolve(condition, events) == Some(name)
}

/// When a profile first or last performed an event, from its lifetime aggregate.
fn performed_at(lifetime: Lifetime, which: Performed) -> i64 {
    match which {
        Performed::First => lifetime.first_ms,
        Performed::Last => lifetime.last_ms,
    }
}
