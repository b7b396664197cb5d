//! Where the event store's bytes go, by structure (for `segd-memory` and the engine's
//! memory estimate).

use super::*;

/// Event-store bytes by structure ([`EventStore::memory_breakdown`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct EventMemory {
    /// The per-profile slot table (one pointer per local id).
    pub profile_slots: usize,
    /// Per-profile containers (one boxed struct per profile with events).
    pub containers: usize,
    /// Event records in use.
    pub records: usize,
    /// Record capacity not in use (vector growth).
    pub record_slack: usize,
    /// Encoded property bytes of stored events.
    pub property_bytes: usize,
    /// Property capacity not in use: growth slack and bytes of expired events.
    pub property_slack: usize,
    /// Lifetime aggregates (per profile and event name), capacity included.
    pub lifetime: usize,
    /// Per-name bitmaps: who ever did it, day and count-level indexes.
    pub name_bitmaps: usize,
    /// Event and property name tables.
    pub names: usize,
}

impl EventMemory {
    pub fn add(&mut self, other: &EventMemory) {
        self.profile_slots += other.profile_slots;
        self.containers += other.containers;
        self.records += other.records;
        self.record_slack += other.record_slack;
        self.property_bytes += other.property_bytes;
        self.property_slack += other.property_slack;
        self.lifetime += other.lifetime;
        self.name_bitmaps += other.name_bitmaps;
        self.names += other.names;
    }

    /// (label, bytes) rows in a fixed order.
    pub fn rows(&self) -> [(&'static str, usize); 9] {
        [
            ("encoded properties", self.property_bytes),
            ("property slack and expired bytes", self.property_slack),
            ("event records (24 B each)", self.records),
            ("record slack", self.record_slack),
            ("per-profile containers", self.containers),
            ("lifetime aggregates", self.lifetime),
            ("per-name bitmaps and indexes", self.name_bitmaps),
            ("per-profile slot table", self.profile_slots),
            ("name tables", self.names),
        ]
    }
}

impl EventStore {
    /// Bytes by structure, for `segd-memory`: where an event's bytes go.
    pub fn memory_breakdown(&self) -> EventMemory {
        let mut memory = EventMemory {
            profile_slots: self.profiles.capacity()
                * std::mem::size_of::<Option<Box<ProfileEvents>>>(),
            ..EventMemory::default()
        };
        for profile in self.profiles.iter().flatten() {
            memory.containers += std::mem::size_of::<ProfileEvents>();
            let record = std::mem::size_of::<StoredEvent>();
            memory.records += profile.events.len() * record;
            memory.record_slack += (profile.events.capacity() - profile.events.len()) * record;
            memory.property_bytes += profile.properties.len() - profile.garbage_bytes;
            memory.property_slack +=
                profile.properties.capacity() - profile.properties.len() + profile.garbage_bytes;
            memory.lifetime += profile.lifetime.capacity() * std::mem::size_of::<LifetimeEntry>();
        }
        memory.name_bitmaps = self
            .with_event
            .iter()
            .map(|bitmap| bitmap.serialized_size())
            .sum::<usize>()
            + self
                .index
                .iter()
                .map(NameIndex::memory_bytes)
                .sum::<usize>();
        memory.names = self
            .name_list
            .iter()
            .chain(self.property_list.iter())
            .map(|name| name.len() * 2 + 48)
            .sum::<usize>();
        memory
    }

    /// Approximate heap bytes: the sum of [`EventStore::memory_breakdown`].
    pub fn memory_bytes(&self) -> usize {
        self.memory_breakdown()
            .rows()
            .iter()
            .map(|(_, bytes)| bytes)
            .sum()
    }
}
