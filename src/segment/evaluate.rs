//! The two evaluators of a compiled [`Condition`] over one shard:
//!
//! - [`matching`]: the **bitmap plan** for whole-population work (create, edit, preview,
//!   counts). Every call takes a *universe* and returns a subset of it: `and` evaluates
//!   its cheapest-looking children first, passes each result on as the next child's
//!   universe and stops as soon as it is empty; `or` only evaluates a child on what is
//!   not matched yet; `not` is universe minus child.
//! - [`matches`]: the **per-profile evaluator** for incremental re-evaluation after an
//!   event, reading one profile's values straight from the columns.
//!
//! Both must agree with each other and with `reference` on every input; the property
//! tests in `tests/evaluation_agreement.rs` check that on random data and rules.

use crate::events::EventNameId;
use crate::ids::{ColumnId, LocalId};
use crate::segment::ast::{CompareOp, Recency};
use crate::segment::behavior;
pub use crate::segment::behavior::EventPass;
use crate::segment::compile::{Condition, Predicate};
use crate::store::column::{
    compare_numbers, ordering_satisfies, text_matches, Column, ColumnData, Interval, Number,
};
use crate::store::value::TraitType;
use crate::store::Shard;
use roaring::RoaringBitmap;

/// Buckets used by `random bucket`: percent with two decimals.
pub const BUCKETS: u32 = 10_000;

/// The bucket of a profile for a salt, in `0..BUCKETS`.
pub fn random_bucket(profile_hash: u64, salt: u64) -> u32 {
    // splitmix64 finalizer: mixes the salt in so buckets are independent per segment.
    let mut mixed = profile_hash ^ salt;
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^= mixed >> 31;
    (mixed % u64::from(BUCKETS)) as u32
}

/// Resolves a relative-time test into an inclusive millisecond range at `now_ms`.
pub fn recency_range(recency: Recency, span_ms: i64, now_ms: i64) -> (i64, i64) {
    match recency {
        Recency::WithinLast => (now_ms.saturating_sub(span_ms), now_ms),
        Recency::MoreThanAgo => (i64::MIN, now_ms.saturating_sub(span_ms).saturating_sub(1)),
        Recency::LessThanAgo => (now_ms.saturating_sub(span_ms).saturating_add(1), i64::MAX),
        Recency::WithinNext => (now_ms, now_ms.saturating_add(span_ms)),
    }
}

/// Profiles of `universe` (a subset of the shard's live profiles) matching `condition`.
pub fn matching(
    condition: &Condition,
    shard: &Shard,
    universe: &RoaringBitmap,
    now_ms: i64,
) -> RoaringBitmap {
    if universe.is_empty() {
        return RoaringBitmap::new();
    }
    match condition {
        Condition::And(children) => {
            let mut current = universe.clone();
            for child in and_order(children, shard, universe) {
                current = matching(child, shard, &current, now_ms);
                if current.is_empty() {
                    break;
                }
            }
            current
        }
        Condition::Or(children) => {
            let mut matched = RoaringBitmap::new();
            for child in children {
                let remaining = universe - &matched;
                if remaining.is_empty() {
                    break;
                }
                matched |= matching(child, shard, &remaining, now_ms);
            }
            matched
        }
        Condition::Not(child) => universe - matching(child, shard, universe, now_ms),
        Condition::Constant(true) => universe.clone(),
        Condition::Constant(false) => RoaringBitmap::new(),
        Condition::InSegment(segment) => match shard.members_of(*segment) {
            Some(members) => universe & members,
            None => RoaringBitmap::new(),
        },
        Condition::RandomBucket { threshold, salt } => universe
            .iter()
            .filter(|id| random_bucket(shard.bucket_hashes[*id as usize], *salt) < *threshold)
            .collect(),
        Condition::Trait { column, predicate } => match shard.column(*column) {
            Some(column) => predicate_matching(predicate, column, universe, now_ms),
            None => RoaringBitmap::new(),
        },
        Condition::Event(event) => behavior::matching(event, shard, universe, now_ms),
    }
}

/// The order `and` evaluates its children in: cheap classes first, then most selective.
fn and_order<'a>(
    children: &'a [Condition],
    shard: &Shard,
    universe: &RoaringBitmap,
) -> Vec<&'a Condition> {
    let mut order: Vec<((u8, u64), &Condition)> = children
        .iter()
        .map(|child| ((cost_class(child), estimate(child, shard, universe)), child))
        .collect();
    order.sort_by_key(|(key, _)| *key);
    order.into_iter().map(|(_, child)| child).collect()
}

/// Profiles of `universe` matching `condition`: how many, and the first `sample` of
/// them in id order. Same answer as [`matching`], but the last step of an `and` (or a
/// lone leaf) that is one stored bitmap — a segment, a string value, a boolean,
/// presence — is counted with `intersection_len` instead of being materialized.
pub fn count_sample(
    condition: &Condition,
    shard: &Shard,
    universe: &RoaringBitmap,
    now_ms: i64,
    sample: usize,
) -> (u64, Vec<u32>) {
    if universe.is_empty() {
        return (0, Vec::new());
    }
    if let Condition::And(children) = condition {
        let order = and_order(children, shard, universe);
        if let Some((last, rest)) = order.split_last() {
            if plain_bitmap(last, shard).is_some() || indexed_range(last, shard, now_ms).is_some() {
                let mut current = universe.clone();
                for child in rest {
                    current = matching(child, shard, &current, now_ms);
                    if current.is_empty() {
                        return (0, Vec::new());
                    }
                }
                return count_sample(last, shard, &current, now_ms, sample);
            }
        }
    }
    if let Some(bitmap) = plain_bitmap(condition, shard) {
        let count = universe.intersection_len(bitmap);
        return (
            count,
            sample_of_intersection(universe, bitmap, count, sample),
        );
    }
    if let Some((column, interval)) = indexed_range(condition, shard, now_ms) {
        if !column.few_candidates(universe) {
            if let Some(answer) = column.interval_count_sample(&interval, universe, sample) {
                return answer;
            }
        }
    }
    let members = matching(condition, shard, universe, now_ms);
    (members.len(), members.iter().take(sample).collect())
}

/// The column and value interval of a numeric or timestamp range leaf whose column has a
/// usable sorted range index (so it can be counted without building its answer).
fn indexed_range<'a>(
    condition: &Condition,
    shard: &'a Shard,
    now_ms: i64,
) -> Option<(&'a Column, Interval)> {
    let Condition::Trait { column, predicate } = condition else {
        return None;
    };
    let column = shard.column(*column)?;
    if !column.range_index_usable() {
        return None;
    }
    let numeric = matches!(column.trait_type(), TraitType::Integer | TraitType::Float);
    let timestamp = column.trait_type() == TraitType::Timestamp;
    let interval = match predicate {
        Predicate::NumberCompare { op, value } if numeric => Interval::compare(*op, *value)?,
        Predicate::NumberBetween { low, high } if numeric => Interval::between(*low, *high),
        Predicate::TimestampCompare { op, millis } if timestamp => {
            Interval::compare(*op, Number::Integer(*millis))?
        }
        Predicate::TimestampBetween { low_ms, high_ms } if timestamp => {
            Interval::between(Number::Integer(*low_ms), Number::Integer(*high_ms))
        }
        Predicate::TimestampRecent { recency, span_ms } if timestamp => {
            let (low, high) = recency_range(*recency, *span_ms, now_ms);
            Interval::between(Number::Integer(low), Number::Integer(high))
        }
        _ => return None,
    };
    Some((column, interval))
}

/// The first `sample` ids of `left ∩ right` (which holds `count` ids) without building
/// the intersection when it is dense enough to find them quickly.
fn sample_of_intersection(
    left: &RoaringBitmap,
    right: &RoaringBitmap,
    count: u64,
    sample: usize,
) -> Vec<u32> {
    if sample == 0 || count == 0 {
        return Vec::new();
    }
    let (small, large) = if left.len() <= right.len() {
        (left, right)
    } else {
        (right, left)
    };
    // Sparse intersections would walk most of `small`: build them instead.
    if count.saturating_mul(64) < small.len() {
        return (left & right).iter().take(sample).collect();
    }
    small
        .iter()
        .filter(|id| large.contains(*id))
        .take(sample)
        .collect()
}

/// The stored bitmap that *is* the answer of a leaf on the whole shard, when there is
/// one (so `universe ∩ bitmap` is its answer on any universe).
fn plain_bitmap<'a>(condition: &Condition, shard: &'a Shard) -> Option<&'a RoaringBitmap> {
    match condition {
        Condition::InSegment(segment) => shard.members_of(*segment),
        Condition::Trait { column, predicate } => {
            let column = shard.column(*column)?;
            match predicate {
                Predicate::Has => Some(&column.present),
                Predicate::BooleanEqual { value: true } => match &column.data {
                    ColumnData::Boolean { trues } => Some(trues),
                    _ => None,
                },
                Predicate::StringEqualAny {
                    values,
                    negated: false,
                } if values.len() == 1 => column.string_bitmap(&values[0]),
                Predicate::ListAny {
                    items,
                    negated: false,
                } if items.len() == 1 => column.list_bitmap(&items[0]),
                _ => None,
            }
        }
        _ => None,
    }
}

/// How expensive a condition is per candidate, coarsely: 0 = one bitmap operation
/// (value lookups, booleans, segments, presence), 1 = ranges and text (index walks or
/// scans), 2 = per-profile work (events, random buckets). `and` runs cheap classes
/// first so the expensive ones see the narrowest universe.
fn cost_class(condition: &Condition) -> u8 {
    match condition {
        Condition::Constant(_) | Condition::InSegment(_) => 0,
        Condition::Trait { predicate, .. } => match predicate {
            Predicate::Has
            | Predicate::StringEqualAny { .. }
            | Predicate::BooleanEqual { .. }
            | Predicate::ListAny { .. } => 0,
            _ => 1,
        },
        Condition::And(children) => children.iter().map(cost_class).min().unwrap_or(0),
        Condition::Or(children) => children.iter().map(cost_class).max().unwrap_or(0),
        Condition::Not(child) => cost_class(child),
        Condition::Event(_) | Condition::RandomBucket { .. } => 2,
    }
}

/// A cheap upper bound of how many profiles of `universe` a condition can match, used
/// to order `and` children (most selective first).
fn estimate(condition: &Condition, shard: &Shard, universe: &RoaringBitmap) -> u64 {
    let all = universe.len();
    match condition {
        Condition::Constant(false) => 0,
        Condition::InSegment(segment) => shard.members_of(*segment).map_or(0, RoaringBitmap::len),
        Condition::Trait { column, predicate } => match shard.column(*column) {
            None => 0,
            Some(column) => match predicate {
                Predicate::StringEqualAny {
                    values,
                    negated: false,
                } => values
                    .iter()
                    .map(|value| column.string_frequency(value))
                    .sum(),
                Predicate::BooleanEqual { value } => column.boolean_frequency(*value),
                _ => column.present.len(),
            },
        },
        Condition::And(children) => children
            .iter()
            .map(|c| estimate(c, shard, universe))
            .min()
            .unwrap_or(all),
        // Event conditions and random buckets iterate their candidates: run them last.
        Condition::Event(_) | Condition::RandomBucket { .. } => all.saturating_mul(2),
        _ => all,
    }
}

fn predicate_matching(
    predicate: &Predicate,
    column: &Column,
    universe: &RoaringBitmap,
    now_ms: i64,
) -> RoaringBitmap {
    match predicate {
        Predicate::Has => column.present_in(universe),
        Predicate::StringEqualAny { values, negated } => {
            let wanted: Vec<&str> = values.iter().map(String::as_str).collect();
            let equal = column.strings_equal_any(&wanted, universe);
            if *negated {
                column.present_in(universe) - equal
            } else {
                equal
            }
        }
        Predicate::StringCompare { op, value } => column.strings_matching(universe, |text| {
            ordering_satisfies(text.cmp(value.as_str()), *op)
        }),
        Predicate::StringBetween { low, high } => column.strings_matching(universe, |text| {
            low.as_str() <= text && text <= high.as_str()
        }),
        Predicate::Text { op, pattern } => {
            column.strings_matching(universe, |text| text_matches(*op, text, pattern))
        }
        Predicate::NumberCompare { op, value } => column.compare_number(*op, *value, universe),
        Predicate::NumberBetween { low, high } => column.between_numbers(*low, *high, universe),
        Predicate::NumberIn { values, negated } => {
            let mut equal = RoaringBitmap::new();
            for value in values {
                equal |= column.compare_number(CompareOp::Eq, *value, universe);
            }
            if *negated {
                column.present_in(universe) - equal
            } else {
                equal
            }
        }
        Predicate::TimestampCompare { op, millis } => {
            column.compare_timestamp(*op, *millis, universe)
        }
        Predicate::TimestampBetween { low_ms, high_ms } => {
            timestamp_range(column, *low_ms, *high_ms, universe)
        }
        Predicate::TimestampRecent { recency, span_ms } => {
            let (low, high) = recency_range(*recency, *span_ms, now_ms);
            timestamp_range(column, low, high, universe)
        }
        Predicate::BooleanEqual { value } => column.booleans_equal(*value, universe),
        Predicate::ListAny { items, negated } => {
            let wanted: Vec<&str> = items.iter().map(String::as_str).collect();
            let any = column.list_contains_any(&wanted, universe);
            if *negated {
                column.present_in(universe) - any
            } else {
                any
            }
        }
    }
}

fn timestamp_range(
    column: &Column,
    low_ms: i64,
    high_ms: i64,
    universe: &RoaringBitmap,
) -> RoaringBitmap {
    column.between_timestamps(low_ms, high_ms, universe)
}

/// Whether one profile matches `condition`.
pub fn matches(condition: &Condition, shard: &Shard, local: LocalId, now_ms: i64) -> bool {
    matches_in(condition, shard, local, now_ms, &EventPass::default())
}

/// [`matches`], answering behavioral leaves covered by `pass` from it (see
/// [`EventPass`]).
pub fn matches_in(
    condition: &Condition,
    shard: &Shard,
    local: LocalId,
    now_ms: i64,
    pass: &EventPass,
) -> bool {
    match condition {
        Condition::And(children) => children
            .iter()
            .all(|child| matches_in(child, shard, local, now_ms, pass)),
        Condition::Or(children) => children
            .iter()
            .any(|child| matches_in(child, shard, local, now_ms, pass)),
        Condition::Not(child) => !matches_in(child, shard, local, now_ms, pass),
        Condition::Constant(value) => *value,
        Condition::InSegment(segment) => shard.is_member(*segment, local),
        Condition::RandomBucket { threshold, salt } => {
            random_bucket(shard.bucket_hashes[local.0 as usize], *salt) < *threshold
        }
        Condition::Trait { column, predicate } => match shard.column(*column) {
            Some(column) => predicate_matches(predicate, column, local.0, now_ms),
            None => false,
        },
        Condition::Event(event) => match pass.get(event) {
            Some((member, _)) => member,
            None => behavior::matches(event, shard, local, now_ms),
        },
    }
}

fn predicate_matches(predicate: &Predicate, column: &Column, id: u32, now_ms: i64) -> bool {
    if !column.present.contains(id) {
        return false;
    }
    match predicate {
        Predicate::Has => true,
        Predicate::StringEqualAny { values, negated } => column
            .get_str(id)
            .is_some_and(|text| values.iter().any(|value| value == text) != *negated),
        Predicate::StringCompare { op, value } => column
            .get_str(id)
            .is_some_and(|text| ordering_satisfies(text.cmp(value.as_str()), *op)),
        Predicate::StringBetween { low, high } => column
            .get_str(id)
            .is_some_and(|text| low.as_str() <= text && text <= high.as_str()),
        Predicate::Text { op, pattern } => column
            .get_str(id)
            .is_some_and(|text| text_matches(*op, text, pattern)),
        Predicate::NumberCompare { op, value } => column
            .get_number(id)
            .is_some_and(|number| ordering_satisfies(compare_numbers(number, *value), *op)),
        Predicate::NumberBetween { low, high } => column.get_number(id).is_some_and(|number| {
            ordering_satisfies(compare_numbers(number, *low), CompareOp::GreaterOrEqual)
                && ordering_satisfies(compare_numbers(number, *high), CompareOp::LessOrEqual)
        }),
        Predicate::NumberIn { values, negated } => {
            column.get_number(id).is_some_and(|number: Number| {
                values
                    .iter()
                    .any(|value| compare_numbers(number, *value).is_eq())
                    != *negated
            })
        }
        Predicate::TimestampCompare { op, millis } => column
            .get_timestamp(id)
            .is_some_and(|time| ordering_satisfies(time.cmp(millis), *op)),
        Predicate::TimestampBetween { low_ms, high_ms } => column
            .get_timestamp(id)
            .is_some_and(|time| *low_ms <= time && time <= *high_ms),
        Predicate::TimestampRecent { recency, span_ms } => {
            let (low, high) = recency_range(*recency, *span_ms, now_ms);
            column
                .get_timestamp(id)
                .is_some_and(|time| low <= time && time <= high)
        }
        Predicate::BooleanEqual { value } => column.get_bool(id) == Some(*value),
        Predicate::ListAny { items, negated } => {
            items.iter().any(|item| column.list_contains(id, item)) != *negated
        }
    }
}

/// The earliest instant after `now_ms` at which some time-dependent condition inside
/// `condition` can change its value for this profile (a window edge), or `None` when
/// only new data can change it. Conservative: a leaf flipping need not flip the whole
/// rule, so the caller re-evaluates and asks again.
pub fn next_change_after(
    condition: &Condition,
    shard: &Shard,
    local: LocalId,
    now_ms: i64,
) -> Option<i64> {
    next_change_after_in(condition, shard, local, now_ms, &EventPass::default())
}

/// [`next_change_after`], answering behavioral leaves covered by `pass` from it.
pub fn next_change_after_in(
    condition: &Condition,
    shard: &Shard,
    local: LocalId,
    now_ms: i64,
    pass: &EventPass,
) -> Option<i64> {
    match condition {
        Condition::And(children) | Condition::Or(children) => children
            .iter()
            .filter_map(|child| next_change_after_in(child, shard, local, now_ms, pass))
            .min(),
        Condition::Not(child) => next_change_after_in(child, shard, local, now_ms, pass),
        Condition::Trait {
            column,
            predicate: Predicate::TimestampRecent { recency, span_ms },
        } => {
            let time = shard.column(*column)?.get_timestamp(local.0)?;
            recency_edges(*recency, *span_ms, time)
                .into_iter()
                .flatten()
                .filter(|edge| *edge > now_ms)
                .min()
        }
        Condition::Event(event) => match pass.get(event) {
            Some((_, next)) => next,
            None => behavior::next_change_after(event, shard, local, now_ms),
        },
        _ => None,
    }
}

/// What one message changed on one profile, for deciding which timers can move.
#[derive(Clone, Copy, Debug)]
pub enum Changed<'a> {
    /// Anything (a new or merged profile, a tick, a segment edit).
    All,
    /// One event was added, of this name (this shard's id).
    Event(EventNameId),
    /// These trait columns changed value.
    Columns(&'a [ColumnId]),
}

/// Whether [`next_change_after`] can return something else than it did the last time
/// it was computed for this profile, given that only `changed` changed since: only a
/// time-dependent leaf reading changed data can move its edges. (Time passing alone
/// only removes edges at or before "now", and an edge at or before "now" is a timer
/// already due, which the tick re-evaluates and reschedules.) Conservative: true when
/// in doubt.
pub fn due_inputs_changed(condition: &Condition, shard: &Shard, changed: Changed<'_>) -> bool {
    match changed {
        Changed::All => return true,
        Changed::Event(_) | Changed::Columns(_) => {}
    }
    match condition {
        Condition::And(children) | Condition::Or(children) => children
            .iter()
            .any(|child| due_inputs_changed(child, shard, changed)),
        Condition::Not(child) => due_inputs_changed(child, shard, changed),
        Condition::Trait {
            column,
            predicate: Predicate::TimestampRecent { .. },
        } => matches!(changed, Changed::Columns(columns) if columns.contains(column)),
        Condition::Event(event) => match changed {
            Changed::Event(name) => behavior::reads_event(event, &shard.events, name),
            _ => false,
        },
        _ => false,
    }
}

/// The profiles for which [`next_change_after`] can return an instant: those holding a
/// timestamp that a relative-time leaf reads, or that performed an event a behavioral
/// leaf reads. For everyone else only new data can change the result, so recomputing a
/// segment schedules timers for these alone.
pub fn timer_candidates(condition: &Condition, shard: &Shard, now_ms: i64) -> RoaringBitmap {
    match condition {
        Condition::And(children) | Condition::Or(children) => {
            let mut union = RoaringBitmap::new();
            for child in children {
                union |= timer_candidates(child, shard, now_ms);
            }
            union
        }
        Condition::Not(child) => timer_candidates(child, shard, now_ms),
        Condition::Trait {
            column,
            predicate: Predicate::TimestampRecent { .. },
        } => shard
            .column(*column)
            .map(|column| column.present.clone())
            .unwrap_or_default(),
        Condition::Event(event) => behavior::timer_candidates(event, shard, now_ms),
        _ => RoaringBitmap::new(),
    }
}

/// The instants (values of "now") at which a relative-time test on time `t` flips;
/// derived from [`recency_range`].
pub fn recency_edges(recency: Recency, span_ms: i64, time: i64) -> [Option<i64>; 2] {
    match recency {
        // now-span <= t <= now  ⟺  t <= now <= t+span
        Recency::WithinLast => [
            Some(time),
            Some(time.saturating_add(span_ms).saturating_add(1)),
        ],
        // t < now-span  ⟺  now >= t+span+1
        Recency::MoreThanAgo => [Some(time.saturating_add(span_ms).saturating_add(1)), None],
        // t > now-span  ⟺  now <= t+span-1
        Recency::LessThanAgo => [Some(time.saturating_add(span_ms)), None],
        // now <= t <= now+span  ⟺  t-span <= now <= t
        Recency::WithinNext => [
            Some(time.saturating_sub(span_ms)),
            Some(time.saturating_add(1)),
        ],
    }
}
