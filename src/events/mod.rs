//! Per-shard event store: the events of each profile within the retention window, plus
//! lifetime aggregates per event name that outlive retention.
//!
//! Layout (per profile, allocated on its first event):
//! - `events`: fixed 24-byte records (`time_ms` i64, name id u32, offset and length of
//!   the encoded properties u32 each), kept sorted by (name, time, arrival) so "events
//!   named N between t1 and t2" is two binary searches;
//! - `properties`: one byte arena holding every event's encoded properties
//!   (`[property id u16][tag u8][payload]`, little-endian), compacted when expiry has
//!   left more than half of it unused;
//! - `lifetime`: (name, count, first time, last time) per event name ever performed.
//!
//! Names and property names are interned per shard; `with_event[name]` holds the
//! profiles that ever performed the event, so behavioral conditions only look at
//! profiles that can match differently from "no events at all"; `index` (per name:
//! profiles per day of stored events, and per lifetime-count level) narrows them
//! further by window and count (see `events::index`).
//!
//! Retention: events older than `now - retention` are not stored (they still count in
//! the lifetime aggregates) and are removed by `expire`, which sweeps a bounded number
//! of profiles per call, and when a profile receives a new event.

mod encoding;
pub mod index;
mod memory;
pub mod names;
mod properties;

pub use encoding::*;
pub use memory::EventMemory;
pub use properties::*;

use crate::store::value::{MAX_LIST_ITEMS, MAX_STRING_BYTES, MAX_TRAIT_NAME_BYTES};
use index::NameIndex;
use roaring::RoaringBitmap;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;

/// Lifetime aggregate of one event name for one profile (kept beyond retention).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    pub count: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

impl Lifetime {
    fn add(&mut self, other: Lifetime) {
        self.count = self.count.saturating_add(other.count);
        self.first_ms = self.first_ms.min(other.first_ms);
        self.last_ms = self.last_ms.max(other.last_ms);
    }
}

/// A profile's lifetime aggregate of one event name in 24 bytes: the name id (16 bits;
/// a store holds at most [`MAX_EVENT_NAMES`] names) and the count (48 bits, saturating
/// at 2^48 - 1 — 280 trillion events of one name by one profile) share one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LifetimeEntry {
    name_and_count: u64,
    first_ms: i64,
    last_ms: i64,
}

const LIFETIME_COUNT_BITS: u32 = 48;
pub(crate) const MAX_LIFETIME_COUNT: u64 = (1 << LIFETIME_COUNT_BITS) - 1;

impl LifetimeEntry {
    pub(crate) fn new(name: EventNameId, lifetime: Lifetime) -> LifetimeEntry {
        debug_assert!(name.0 <= u32::from(u16::MAX));
        LifetimeEntry {
            name_and_count: (u64::from(name.0) << LIFETIME_COUNT_BITS)
                | lifetime.count.min(MAX_LIFETIME_COUNT),
            first_ms: lifetime.first_ms,
            last_ms: lifetime.last_ms,
        }
    }

    pub(crate) fn name(&self) -> EventNameId {
        EventNameId((self.name_and_count >> LIFETIME_COUNT_BITS) as u32)
    }

    pub(crate) fn lifetime(&self) -> Lifetime {
        Lifetime {
            count: self.name_and_count & MAX_LIFETIME_COUNT,
            first_ms: self.first_ms,
            last_ms: self.last_ms,
        }
    }

    fn add(&mut self, added: Lifetime) {
        let mut lifetime = self.lifetime();
        lifetime.add(added);
        *self = LifetimeEntry::new(self.name(), lifetime);
    }
}

/// Grows a small per-profile vector by a quarter (at least `additional`) instead of
/// doubling: most profiles hold a handful of events, and doubling left a third of
/// their record and property capacity unused (segd-memory).
fn reserve_small<T>(vector: &mut Vec<T>, additional: usize) {
    if vector.capacity() - vector.len() < additional {
        vector.reserve_exact(additional.max(vector.len() / 4));
    }
}

/// One stored event: 24 bytes plus its encoded properties in the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StoredEvent {
    pub(crate) time_ms: i64,
    pub(crate) name: EventNameId,
    pub(crate) properties_start: u32,
    pub(crate) properties_len: u32,
}

#[derive(Debug)]
pub(crate) struct ProfileEvents {
    /// Sorted by (name, time); equal keys keep arrival order.
    pub(crate) events: Vec<StoredEvent>,
    pub(crate) properties: Vec<u8>,
    /// Bytes of `properties` no longer referenced (expired events).
    pub(crate) garbage_bytes: usize,
    pub(crate) lifetime: Vec<LifetimeEntry>,
    /// Time of the oldest stored event (i64::MAX when none): expiry skips profiles
    /// with nothing old enough without scanning their events.
    pub(crate) oldest_ms: i64,
}

impl Default for ProfileEvents {
    fn default() -> Self {
        ProfileEvents {
            events: Vec::new(),
            properties: Vec::new(),
            garbage_bytes: 0,
            lifetime: Vec::new(),
            oldest_ms: i64::MAX,
        }
    }
}

impl ProfileEvents {
    fn name_range(&self, name: EventNameId) -> std::ops::Range<usize> {
        let start = self.events.partition_point(|event| event.name < name);
        let end = self.events.partition_point(|event| event.name <= name);
        start..end
    }

    fn window_range(&self, name: EventNameId, from_ms: i64, to_ms: i64) -> std::ops::Range<usize> {
        let range = self.name_range(name);
        let slice = &self.events[range.clone()];
        let start = slice.partition_point(|event| event.time_ms < from_ms);
        let end = slice.partition_point(|event| event.time_ms <= to_ms);
        (range.start + start)..(range.start + end.max(start))
    }

    fn lifetime(&self, name: EventNameId) -> Option<Lifetime> {
        self.lifetime
            .iter()
            .find(|entry| entry.name() == name)
            .map(LifetimeEntry::lifetime)
    }

    fn add_lifetime(&mut self, name: EventNameId, added: Lifetime) {
        match self.lifetime.iter_mut().find(|entry| entry.name() == name) {
            Some(entry) => entry.add(added),
            None => {
                reserve_small(&mut self.lifetime, 1);
                self.lifetime.push(LifetimeEntry::new(name, added));
            }
        }
    }

    /// (name, aggregate) of every event name this profile performed.
    pub(crate) fn lifetimes(&self) -> impl Iterator<Item = (EventNameId, Lifetime)> + '_ {
        self.lifetime
            .iter()
            .map(|entry| (entry.name(), entry.lifetime()))
    }

    fn properties_of(&self, event: &StoredEvent) -> &[u8] {
        let start = event.properties_start as usize;
        &self.properties[start..start + event.properties_len as usize]
    }

    /// Drops events older than `cutoff_ms`; returns how many were dropped.
    fn drop_older_than(&mut self, cutoff_ms: i64) -> usize {
        if self.oldest_ms >= cutoff_ms {
            return 0;
        }
        let before = self.events.len();
        let mut freed = 0usize;
        self.events.retain(|event| {
            let keep = event.time_ms >= cutoff_ms;
            if !keep {
                freed += event.properties_len as usize;
            }
            keep
        });
        self.garbage_bytes += freed;
        self.compact_if_sparse();
        self.recompute_oldest();
        before - self.events.len()
    }

    fn recompute_oldest(&mut self) {
        self.oldest_ms = self
            .events
            .iter()
            .map(|event| event.time_ms)
            .min()
            .unwrap_or(i64::MAX);
    }

    /// Inserts an event record at its (name, time) position.
    fn insert_record(&mut self, record: StoredEvent) {
        let position = self
            .events
            .partition_point(|other| (other.name, other.time_ms) <= (record.name, record.time_ms));
        reserve_small(&mut self.events, 1);
        self.events.insert(position, record);
        self.oldest_ms = self.oldest_ms.min(record.time_ms);
    }

    /// How many of the newest events fit in `max_bytes` of live properties (at least
    /// one: a single event is bounded by [`MAX_EVENT_PROPERTY_BYTES`]).
    fn events_within_bytes(&self, max_bytes: usize) -> usize {
        let live = self.properties.len() - self.garbage_bytes;
        if live <= max_bytes {
            return self.events.len();
        }
        let mut by_age: Vec<(i64, u32)> = self
            .events
            .iter()
            .map(|event| (event.time_ms, event.properties_len))
            .collect();
        by_age.sort_unstable_by_key(|(time_ms, _)| std::cmp::Reverse(*time_ms));
        let mut kept_bytes = 0usize;
        let mut kept = 0usize;
        for (_, length) in by_age {
            if kept > 0 && kept_bytes + length as usize > max_bytes {
                break;
            }
            kept_bytes += length as usize;
            kept += 1;
        }
        kept
    }

    /// Drops the oldest events beyond the per-profile bound.
    fn drop_oldest_beyond(&mut self, limit: usize) -> usize {
        if self.events.len() <= limit {
            return 0;
        }
        let excess = self.events.len() - limit;
        let mut times: Vec<i64> = self.events.iter().map(|event| event.time_ms).collect();
        let (_, nth, _) = times.select_nth_unstable(excess - 1);
        let cutoff = *nth;
        // Drop everything strictly older than the cutoff, then events at the cutoff in
        // arrival order until the excess is gone.
        let mut remaining = excess;
        let mut freed = 0usize;
        let mut at_cutoff_budget = excess
            - self
                .events
                .iter()
                .filter(|event| event.time_ms < cutoff)
                .count();
        self.events.retain(|event| {
            let drop = if event.time_ms < cutoff {
                true
            } else if event.time_ms == cutoff && at_cutoff_budget > 0 {
                at_cutoff_budget -= 1;
                true
            } else {
                false
            };
            if drop {
                remaining -= 1;
                freed += event.properties_len as usize;
            }
            !drop
        });
        debug_assert_eq!(remaining, 0);
        self.garbage_bytes += freed;
        self.compact_if_sparse();
        self.recompute_oldest();
        excess
    }

    fn compact_if_sparse(&mut self) {
        if self.garbage_bytes * 2 <= self.properties.len() {
            return;
        }
        let mut compacted = Vec::with_capacity(self.properties.len() - self.garbage_bytes);
        for event in &mut self.events {
            let start = event.properties_start as usize;
            let bytes = &self.properties[start..start + event.properties_len as usize];
            event.properties_start = compacted.len() as u32;
            compacted.extend_from_slice(bytes);
        }
        self.properties = compacted;
        self.garbage_bytes = 0;
    }
}

/// One profile's stored events of one name, oldest first (see
/// [`EventStore::named_events`]).
#[derive(Clone, Copy, Debug)]
pub struct NamedEvents<'a> {
    records: &'a [StoredEvent],
    arena: &'a [u8],
}

impl<'a> NamedEvents<'a> {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Index range of the events with `from_ms <= time <= to_ms`.
    pub fn window(&self, from_ms: i64, to_ms: i64) -> std::ops::Range<usize> {
        let start = self
            .records
            .partition_point(|event| event.time_ms < from_ms);
        let end = self.records.partition_point(|event| event.time_ms <= to_ms);
        start..end.max(start)
    }

    /// The event at `index` (0 = oldest).
    pub fn get(&self, index: usize) -> EventView<'a> {
        let event = &self.records[index];
        let start = event.properties_start as usize;
        EventView {
            time_ms: event.time_ms,
            encoded: &self.arena[start..start + event.properties_len as usize],
        }
    }
}

/// Counters for metrics and the bench report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventStats {
    /// Events currently stored (within retention).
    pub stored: u64,
    /// Events that arrived already older than retention (lifetime only).
    pub arrived_expired: u64,
    /// Events removed by expiry.
    pub expired: u64,
    /// Events dropped because a profile exceeded `MAX_EVENTS_PER_PROFILE`.
    pub dropped_over_limit: u64,
}

/// One detached event: name, time, properties.
pub type DetachedEvent = (String, i64, Vec<(String, EventProperty)>);

/// One event as listed on a profile card: name, time, properties.
pub type ListedEvent<'a> = (&'a str, i64, Vec<(&'a str, EventProperty)>);

/// An owned copy of one profile's events, moved between shards by identity merges.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DetachedEvents {
    pub lifetime: Vec<(String, Lifetime)>,
    pub events: Vec<DetachedEvent>,
}

/// The event store of one shard.
#[derive(Debug)]
pub struct EventStore {
    retention_ms: i64,
    // xxh3 instead of SipHash: names are looked up on every evaluation of a
    // behavioral condition. Seeded per store, so crafted names cannot collide at will.
    names: HashMap<Box<str>, EventNameId, NameHasherBuilder>,
    pub(crate) name_list: Vec<Box<str>>,
    property_names: HashMap<Box<str>, PropertyNameId, NameHasherBuilder>,
    pub(crate) property_list: Vec<Box<str>>,
    pub(crate) profiles: Vec<Option<Box<ProfileEvents>>>,
    /// Per event name: profiles that ever performed it (lifetime).
    with_event: Vec<RoaringBitmap>,
    /// Per event name: day and count-level bitmaps (supersets; see `events::index`).
    index: Vec<NameIndex>,
    /// Next local id the expiry sweep looks at.
    sweep_cursor: usize,
    stats: EventStats,
    /// Per-profile bound on live property bytes ([`MAX_EVENT_BYTES_PER_PROFILE`]).
    max_profile_bytes: usize,
    /// Process-wide [`names::NameId`] → this store's event name id ([`names::NO_LOCAL`]
    /// when the name was never interned here), so compiled rules resolve without hashing.
    event_by_global: Vec<u32>,
    /// This store's event name id → its process-wide id.
    event_global: Vec<Option<names::NameId>>,
    /// Process-wide id → this store's property name id.
    property_by_global: Vec<u32>,
    /// Reused buffer for encoding one event's properties (no allocation per event).
    scratch: Vec<u8>,
}

/// Hashes short names with one-shot seeded xxh3 per `write` call. xxhash-rust's own
/// `Xxh3Builder` sets up a streaming state per hash, which cost more than a third of a
/// `track` call's instructions (callgrind) when every behavioral condition looks its
/// event name up.
#[derive(Clone, Copy, Debug)]
pub struct NameHasherBuilder {
    seed: u64,
}

impl NameHasherBuilder {
    /// Seeded per store, so crafted names cannot collide at will.
    pub fn random() -> NameHasherBuilder {
        use std::hash::BuildHasher;
        NameHasherBuilder {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64),
        }
    }
}

impl Default for NameHasherBuilder {
    fn default() -> Self {
        NameHasherBuilder::random()
    }
}

impl std::hash::BuildHasher for NameHasherBuilder {
    type Hasher = NameHasher;
    fn build_hasher(&self) -> NameHasher {
        NameHasher { state: self.seed }
    }
}

pub struct NameHasher {
    state: u64,
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.state = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.state);
    }
    fn write_u8(&mut self, byte: u8) {
        // `str` hashing appends 0xff; fold it in cheaply.
        self.state = (self.state ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.state
    }
}

fn seeded_hasher() -> NameHasherBuilder {
    NameHasherBuilder::random()
}

static EMPTY_BITMAP: std::sync::OnceLock<RoaringBitmap> = std::sync::OnceLock::new();

impl EventStore {
    pub fn new(retention_ms: i64) -> EventStore {
        EventStore {
            retention_ms,
            names: HashMap::with_hasher(seeded_hasher()),
            name_list: Vec::new(),
            property_names: HashMap::with_hasher(seeded_hasher()),
            property_list: Vec::new(),
            profiles: Vec::new(),
            with_event: Vec::new(),
            index: Vec::new(),
            sweep_cursor: 0,
            stats: EventStats::default(),
            max_profile_bytes: MAX_EVENT_BYTES_PER_PROFILE,
            event_by_global: Vec::new(),
            event_global: Vec::new(),
            property_by_global: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// A store with a smaller per-profile byte bound (tests).
    #[cfg(test)]
    fn with_profile_bytes(retention_ms: i64, max_profile_bytes: usize) -> EventStore {
        EventStore {
            max_profile_bytes,
            ..EventStore::new(retention_ms)
        }
    }

    pub fn retention_ms(&self) -> i64 {
        self.retention_ms
    }

    pub fn stats(&self) -> EventStats {
        self.stats
    }

    pub fn event_name_id(&self, name: &str) -> Option<EventNameId> {
        self.names.get(name).copied()
    }

    pub fn event_name(&self, id: EventNameId) -> &str {
        &self.name_list[id.0 as usize]
    }

    pub fn property_name_id(&self, name: &str) -> Option<PropertyNameId> {
        self.property_names.get(name).copied()
    }

    pub fn property_name(&self, id: PropertyNameId) -> &str {
        &self.property_list[id.0 as usize]
    }

    /// This store's id of a compiled event name: one vector read when the rule holds a
    /// process-wide id, a hash lookup of `name` otherwise (process table full).
    #[inline]
    pub fn resolve_event(&self, id: Option<names::NameId>, name: &str) -> Option<EventNameId> {
        match id {
            Some(id) => names::local_of(&self.event_by_global, id).map(EventNameId),
            None => self.event_name_id(name),
        }
    }

    /// This store's id of a compiled property name (see [`EventStore::resolve_event`]).
    #[inline]
    pub fn resolve_property(
        &self,
        id: Option<names::NameId>,
        name: &str,
    ) -> Option<PropertyNameId> {
        match id {
            Some(id) => names::local_of(&self.property_by_global, id)
                .map(|local| PropertyNameId(local as u16)),
            None => self.property_name_id(name),
        }
    }

    /// The process-wide id of one of this store's event names.
    pub fn event_global_id(&self, id: EventNameId) -> Option<names::NameId> {
        self.event_global.get(id.0 as usize).copied().flatten()
    }

    /// Whether an event's new names fit (checked before anything is applied).
    pub fn has_room_for<'n>(
        &self,
        event: &str,
        property_names: impl IntoIterator<Item = &'n str>,
    ) -> bool {
        let new_event = usize::from(!self.names.contains_key(event));
        // Below the limits by more than any one event can add: nothing to count.
        if self.name_list.len() < MAX_EVENT_NAMES
            && self.property_list.len() + MAX_PROPERTIES_PER_EVENT <= MAX_PROPERTY_NAMES
        {
            return true;
        }
        let new_properties = property_names
            .into_iter()
            .filter(|name| !self.property_names.contains_key(*name))
            .count();
        self.name_list.len() + new_event <= MAX_EVENT_NAMES
            && self.property_list.len() + new_properties <= MAX_PROPERTY_NAMES
    }

    /// Whether every name of a batch fits, whichever of them are new here.
    pub fn has_room_for_names(
        &self,
        events: &std::collections::HashSet<&str>,
        properties: &std::collections::HashSet<&str>,
    ) -> bool {
        let new_events = events
            .iter()
            .filter(|name| !self.names.contains_key(**name))
            .count();
        let new_properties = properties
            .iter()
            .filter(|name| !self.property_names.contains_key(**name))
            .count();
        self.name_list.len() + new_events <= MAX_EVENT_NAMES
            && self.property_list.len() + new_properties <= MAX_PROPERTY_NAMES
    }

    fn intern_name(&mut self, name: &str) -> EventNameId {
        if let Some(id) = self.names.get(name) {
            return *id;
        }
        let id = EventNameId(self.name_list.len() as u32);
        self.names.insert(name.into(), id);
        self.name_list.push(name.into());
        let global = names::intern(name);
        if let Some(global) = global {
            names::map_local(&mut self.event_by_global, global, id.0);
        }
        self.event_global.push(global);
        self.with_event.push(RoaringBitmap::new());
        self.index.push(NameIndex::default());
        id
    }

    fn intern_property(&mut self, name: &str) -> PropertyNameId {
        if let Some(id) = self.property_names.get(name) {
            return *id;
        }
        let id = PropertyNameId(self.property_list.len() as u16);
        self.property_names.insert(name.into(), id);
        self.property_list.push(name.into());
        if let Some(global) = names::intern(name) {
            names::map_local(&mut self.property_by_global, global, u32::from(id.0));
        }
        id
    }

    /// Profiles that ever performed `name`.
    pub fn profiles_with(&self, name: EventNameId) -> &RoaringBitmap {
        self.with_event
            .get(name.0 as usize)
            .unwrap_or_else(|| EMPTY_BITMAP.get_or_init(RoaringBitmap::new))
    }

    /// A superset of the profiles with a stored event `name` in `[from_ms, to_ms]`.
    pub fn active_between(&self, name: EventNameId, from_ms: i64, to_ms: i64) -> RoaringBitmap {
        self.index
            .get(name.0 as usize)
            .map_or_else(RoaringBitmap::new, |index| {
                index.active_between(from_ms, to_ms)
            })
    }

    /// A superset of the profiles that did `name` at least `count` times in their
    /// lifetime, when one narrower than [`EventStore::profiles_with`] is kept.
    pub fn at_least(&self, name: EventNameId, count: u64) -> Option<&RoaringBitmap> {
        self.index.get(name.0 as usize)?.at_least(count)
    }

    fn profile(&self, local: u32) -> Option<&ProfileEvents> {
        self.profiles.get(local as usize).and_then(|p| p.as_deref())
    }

    pub fn lifetime(&self, local: u32, name: EventNameId) -> Option<Lifetime> {
        self.profile(local)?.lifetime(name)
    }

    /// Lifetime aggregates of every event name a profile performed.
    pub fn lifetimes(&self, local: u32) -> Vec<(&str, Lifetime)> {
        self.profile(local)
            .map(|profile| {
                profile
                    .lifetimes()
                    .map(|(name, lifetime)| (self.event_name(name), lifetime))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stored events named `name` with `from_ms <= time <= to_ms`, oldest first.
    pub fn events(
        &self,
        local: u32,
        name: EventNameId,
        from_ms: i64,
        to_ms: i64,
    ) -> impl Iterator<Item = EventView<'_>> + '_ {
        let profile = self.profile(local);
        let range = profile.map_or(0..0, |p| p.window_range(name, from_ms, to_ms));
        range.map(move |index| {
            let profile = profile.expect("range is empty without a profile");
            let event = &profile.events[index];
            EventView {
                time_ms: event.time_ms,
                encoded: profile.properties_of(event),
            }
        })
    }

    /// The stored events of one name of one profile, located once (two binary
    /// searches) so several conditions over that name can share one pass over them.
    pub fn named_events(&self, local: u32, name: EventNameId) -> NamedEvents<'_> {
        match self.profile(local) {
            Some(profile) => NamedEvents {
                records: &profile.events[profile.name_range(name)],
                arena: &profile.properties,
            },
            None => NamedEvents {
                records: &[],
                arena: &[],
            },
        }
    }

    /// Number of stored events named `name` in `[from_ms, to_ms]` (two binary searches).
    pub fn count_in_window(&self, local: u32, name: EventNameId, from_ms: i64, to_ms: i64) -> u64 {
        self.profile(local)
            .map_or(0, |p| p.window_range(name, from_ms, to_ms).len() as u64)
    }

    /// One stored event's properties with their names, as owned values.
    fn owned_properties(
        &self,
        profile: &ProfileEvents,
        event: &StoredEvent,
    ) -> Vec<(&str, EventProperty)> {
        let view = EventView {
            time_ms: event.time_ms,
            encoded: profile.properties_of(event),
        };
        view.properties()
            .into_iter()
            .map(|(id, value)| (self.property_name(id), value.to_owned_property()))
            .collect()
    }

    /// The `limit` most recent stored events of a profile, newest first.
    pub fn recent(&self, local: u32, limit: usize) -> Vec<ListedEvent<'_>> {
        let Some(profile) = self.profile(local) else {
            return Vec::new();
        };
        let mut order: Vec<&StoredEvent> = profile.events.iter().collect();
        order.sort_by_key(|event| std::cmp::Reverse(event.time_ms));
        order
            .into_iter()
            .take(limit)
            .map(|event| {
                (
                    self.event_name(event.name),
                    event.time_ms,
                    self.owned_properties(profile, event),
                )
            })
            .collect()
    }

    /// Stores an event (and updates its lifetime aggregate). Returns false when the
    /// event is older than retention and only counted in the lifetime aggregate.
    /// Callers check `has_room_for` first.
    pub fn insert(
        &mut self,
        local: u32,
        event: &str,
        time_ms: i64,
        properties: &[(Cow<'_, str>, PropertyRef<'_>)],
        now_ms: i64,
    ) -> bool {
        self.insert_named(local, event, time_ms, properties, now_ms)
            .1
    }

    /// [`EventStore::insert`], also returning the event name's id in this store.
    pub fn insert_named(
        &mut self,
        local: u32,
        event: &str,
        time_ms: i64,
        properties: &[(Cow<'_, str>, PropertyRef<'_>)],
        now_ms: i64,
    ) -> (EventNameId, bool) {
        let name = self.intern_name(event);
        let cutoff_ms = now_ms.saturating_sub(self.retention_ms);
        let stored = time_ms >= cutoff_ms;
        let mut encoded = std::mem::take(&mut self.scratch);
        encoded.clear();
        if stored {
            for (property, value) in properties {
                self.encode_property(&mut encoded, property, value);
            }
        }
        self.with_event[name.0 as usize].insert(local);
        let profile = self.profile_mut(local);
        let before = profile.lifetime(name).map_or(0, |lifetime| lifetime.count);
        profile.add_lifetime(
            name,
            Lifetime {
                count: 1,
                first_ms: time_ms,
                last_ms: time_ms,
            },
        );
        self.index[name.0 as usize].counted(local, before, before + 1);
        let profile = self.profile_mut(local);
        if !stored {
            self.stats.arrived_expired += 1;
            self.scratch = encoded;
            return (name, false);
        }
        // Expire this profile's old events while we hold it anyway.
        let expired = profile.drop_older_than(cutoff_ms);
        self.stats.expired += expired as u64;
        self.stats.stored -= expired as u64;
        self.push_event(local, name, time_ms, &encoded);
        self.scratch = encoded;
        (name, true)
    }

    fn profile_mut(&mut self, local: u32) -> &mut ProfileEvents {
        let index = local as usize;
        if self.profiles.len() <= index {
            self.profiles.resize_with(index + 1, || None);
        }
        self.profiles[index].get_or_insert_with(Default::default)
    }

    /// Appends an encoded event to a profile (keeping the per-profile bound).
    fn push_event(&mut self, local: u32, name: EventNameId, time_ms: i64, encoded: &[u8]) {
        let max_bytes = self.max_profile_bytes;
        let profile = self.profile_mut(local);
        // The byte bounds keep the arena far below 4 GiB (see MAX_EVENT_BYTES_PER_PROFILE).
        debug_assert!(profile.properties.len() + encoded.len() <= u32::MAX as usize);
        let record = StoredEvent {
            time_ms,
            name,
            properties_start: profile.properties.len() as u32,
            properties_len: encoded.len() as u32,
        };
        reserve_small(&mut profile.properties, encoded.len());
        profile.properties.extend_from_slice(encoded);
        profile.insert_record(record);
        self.index[name.0 as usize].stored(local, time_ms);
        let profile = self.profile_mut(local);
        let limit = MAX_EVENTS_PER_PROFILE.min(profile.events_within_bytes(max_bytes));
        let dropped = profile.drop_oldest_beyond(limit);
        self.stats.dropped_over_limit += dropped as u64;
        self.stats.stored = self.stats.stored + 1 - dropped as u64;
    }

    fn encode_properties(&mut self, properties: &[(String, EventProperty)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in properties {
            self.encode_property(&mut out, name, &value.borrowed());
        }
        out
    }

    /// Appends one encoded property (`[id u16][tag u8][payload]`) to `out`.
    fn encode_property(&mut self, out: &mut Vec<u8>, name: &str, value: &PropertyRef<'_>) {
        let id = self.intern_property(name);
        out.extend_from_slice(&id.0.to_le_bytes());
        let push_str = |out: &mut Vec<u8>, text: &str| {
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        };
        match value {
            PropertyRef::Str(text) => {
                out.push(TAG_STRING);
                push_str(out, text);
            }
            PropertyRef::Integer(number) => {
                out.push(TAG_INTEGER);
                out.extend_from_slice(&number.to_le_bytes());
            }
            PropertyRef::Float(number) => {
                out.push(TAG_FLOAT);
                out.extend_from_slice(&number.to_le_bytes());
            }
            PropertyRef::Bool(flag) => {
                out.push(TAG_BOOL);
                out.push(u8::from(*flag));
            }
            PropertyRef::List(items) => {
                out.push(TAG_LIST);
                out.extend_from_slice(&(items.len() as u16).to_le_bytes());
                for item in items {
                    push_str(out, item);
                }
            }
        }
    }

    /// Removes every event of a profile (deletion or the absorbed side of a merge).
    pub fn remove_profile(&mut self, local: u32) {
        let Some(slot) = self.profiles.get_mut(local as usize) else {
            return;
        };
        if let Some(profile) = slot.take() {
            self.stats.stored -= profile.events.len() as u64;
            for (name, _) in profile.lifetimes() {
                self.with_event[name.0 as usize].remove(local);
                self.index[name.0 as usize].remove(local);
            }
        }
    }

    /// Takes a profile's events out as owned data (for a merge into another shard).
    pub fn detach(&mut self, local: u32) -> DetachedEvents {
        let Some(profile) = self.profile(local) else {
            return DetachedEvents::default();
        };
        let detached = DetachedEvents {
            lifetime: profile
                .lifetimes()
                .map(|(name, lifetime)| (self.event_name(name).to_string(), lifetime))
                .collect(),
            events: profile
                .events
                .iter()
                .map(|event| {
                    let properties = self
                        .owned_properties(profile, event)
                        .into_iter()
                        .map(|(name, value)| (name.to_string(), value))
                        .collect();
                    (
                        self.event_name(event.name).to_string(),
                        event.time_ms,
                        properties,
                    )
                })
                .collect(),
        };
        self.remove_profile(local);
        detached
    }

    /// Adds detached events to a profile: lifetime aggregates add up (counts summed,
    /// earliest first, latest last), stored events are inserted in time order.
    pub fn attach(&mut self, local: u32, detached: DetachedEvents, now_ms: i64) {
        let cutoff_ms = now_ms.saturating_sub(self.retention_ms);
        for (event, time_ms, properties) in &detached.events {
            if *time_ms < cutoff_ms
                || !self.has_room_for(event, properties.iter().map(|(name, _)| name.as_str()))
            {
                continue;
            }
            let name = self.intern_name(event);
            let encoded = self.encode_properties(properties);
            self.push_event(local, name, *time_ms, &encoded);
        }
        for (event, lifetime) in detached.lifetime {
            if !self.names.contains_key(event.as_str()) && self.name_list.len() >= MAX_EVENT_NAMES {
                continue;
            }
            let name = self.intern_name(&event);
            let profile = self.profile_mut(local);
            let before = profile.lifetime(name).map_or(0, |lifetime| lifetime.count);
            profile.add_lifetime(name, lifetime);
            self.index[name.0 as usize].counted(local, before, before + lifetime.count);
            self.with_event[name.0 as usize].insert(local);
        }
    }

    /// Removes expired events from up to `profile_budget` profiles, resuming where the
    /// previous call stopped; returns how many events were removed. Cost is bounded by
    /// the budget, so a tick never rescans the whole shard at once.
    pub fn expire(&mut self, now_ms: i64, profile_budget: usize) -> u64 {
        if self.profiles.is_empty() {
            return 0;
        }
        let cutoff_ms = now_ms.saturating_sub(self.retention_ms);
        for index in &mut self.index {
            index.expire(cutoff_ms);
        }
        let mut removed = 0u64;
        for _ in 0..profile_budget.min(self.profiles.len()) {
            if self.sweep_cursor >= self.profiles.len() {
                self.sweep_cursor = 0;
            }
            if let Some(profile) = self.profiles[self.sweep_cursor].as_deref_mut() {
                removed += profile.drop_older_than(cutoff_ms) as u64;
            }
            self.sweep_cursor += 1;
        }
        self.stats.expired += removed;
        self.stats.stored -= removed;
        removed
    }

    /// Rebuilds a store from snapshot parts, checking every id, range and encoded
    /// property so a damaged snapshot is rejected instead of panicking later.
    pub(crate) fn from_parts(
        retention_ms: i64,
        name_list: Vec<Box<str>>,
        property_list: Vec<Box<str>>,
        mut profiles: Vec<Option<Box<ProfileEvents>>>,
    ) -> Result<EventStore, String> {
        for profile in profiles.iter_mut().flatten() {
            profile.recompute_oldest();
        }
        if name_list.len() > MAX_EVENT_NAMES || property_list.len() > MAX_PROPERTY_NAMES {
            return Err("more event or property names than a shard holds".into());
        }
        let mut store = EventStore::new(retention_ms);
        for name in name_list {
            if store.names.contains_key(&name) {
                return Err(format!("event name `{name}` listed twice"));
            }
            store.intern_name(&name);
        }
        for name in property_list {
            if store.property_names.contains_key(&name) {
                return Err(format!("property name `{name}` listed twice"));
            }
            store.intern_property(&name);
        }
        let name_count = store.name_list.len() as u32;
        let property_count = store.property_list.len();
        for (local, profile) in profiles.iter().enumerate() {
            let Some(profile) = profile else { continue };
            let mut previous: Option<(EventNameId, i64)> = None;
            for event in &profile.events {
                if event.name.0 >= name_count {
                    return Err(format!("profile {local}: event name id out of range"));
                }
                if previous.is_some_and(|key| key > (event.name, event.time_ms)) {
                    return Err(format!("profile {local}: events out of order"));
                }
                previous = Some((event.name, event.time_ms));
                store.index[event.name.0 as usize].stored(local as u32, event.time_ms);
                let start = event.properties_start as usize;
                let end = start
                    .checked_add(event.properties_len as usize)
                    .filter(|end| *end <= profile.properties.len())
                    .ok_or_else(|| format!("profile {local}: properties out of range"))?;
                if !valid_encoding(&profile.properties[start..end], property_count) {
                    return Err(format!("profile {local}: malformed event properties"));
                }
            }
            for (name, lifetime) in profile.lifetimes() {
                if name.0 >= name_count || lifetime.count == 0 {
                    return Err(format!("profile {local}: bad lifetime aggregate"));
                }
                store.with_event[name.0 as usize].insert(local as u32);
                store.index[name.0 as usize].counted(local as u32, 0, lifetime.count);
            }
            store.stats.stored += profile.events.len() as u64;
        }
        store.profiles = profiles;
        Ok(store)
    }
}

#[cfg(test)]
mod tests;
