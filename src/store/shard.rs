//! One shard: dense local ids, trait columns, identifiers and memberships.

use crate::events::{DetachedEvents, EventStore};
use crate::ids::{ColumnId, LocalId, SegmentId, ShardId};
use crate::store::column::{grow, Column};
pub use crate::store::identity_record::ProfileIdentity;
use crate::store::membership::{SlotSet, Slots};
use crate::store::timers::TimerQueue;
use crate::store::value::{TraitType, TraitValue};
use roaring::RoaringBitmap;
use std::collections::HashMap;

#[derive(Debug)]
pub struct Shard {
    pub id: ShardId,
    /// Allocated local ids.
    pub live: RoaringBitmap,
    pub(crate) free_ids: Vec<u32>,
    pub(crate) next_local: u32,
    /// Trait columns by global column id; `None` until a profile here sets the trait.
    pub columns: Vec<Option<Column>>,
    pub identities: Vec<ProfileIdentity>,
    /// Stable per-profile hash for random buckets (of the first identifier seen).
    pub bucket_hashes: Vec<u64>,
    /// Members per segment.
    pub members: HashMap<SegmentId, RoaringBitmap>,
    /// Each profile's segments as a bitset over slots: "segments of P" is one read.
    pub profile_segments: Vec<SlotSet>,
    pub slots: Slots,
    /// Next time-driven re-evaluation per (profile, segment).
    pub timers: TimerQueue,
    /// Events within retention and lifetime aggregates.
    pub events: EventStore,
}

impl Shard {
    pub fn new(id: ShardId, event_retention_ms: i64) -> Shard {
        Shard {
            id,
            live: RoaringBitmap::new(),
            free_ids: Vec::new(),
            next_local: 0,
            columns: Vec::new(),
            identities: Vec::new(),
            bucket_hashes: Vec::new(),
            members: HashMap::new(),
            profile_segments: Vec::new(),
            slots: Slots::default(),
            timers: TimerQueue::default(),
            events: EventStore::new(event_retention_ms),
        }
    }

    /// Allocates a local id, reusing a freed one (which `remove_profile` wiped).
    pub fn allocate(&mut self, bucket_hash: u64) -> LocalId {
        let id = self.free_ids.pop().unwrap_or_else(|| {
            let id = self.next_local;
            self.next_local += 1;
            id
        });
        let index = id as usize;
        if self.identities.len() <= index {
            grow(&mut self.identities, id, ProfileIdentity::default());
            grow(&mut self.bucket_hashes, id, 0);
            grow(&mut self.profile_segments, id, SlotSet::default());
        }
        self.identities[index] = ProfileIdentity::default();
        self.bucket_hashes[index] = bucket_hash;
        self.profile_segments[index].clear();
        self.live.insert(id);
        LocalId(id)
    }

    /// Removes every trace of a profile (columns, indexes, memberships) and frees its id.
    /// Returns the segments it was in.
    pub fn remove_profile(&mut self, local: LocalId) -> Vec<SegmentId> {
        let id = local.0;
        if !self.live.remove(id) {
            return Vec::new();
        }
        for column in self.columns.iter_mut().flatten() {
            column.clear(id);
        }
        let set = std::mem::take(&mut self.profile_segments[id as usize]);
        let segments: Vec<SegmentId> = set
            .slots()
            .filter_map(|slot| self.slots.segment_of(slot))
            .collect();
        for segment in &segments {
            if let Some(bitmap) = self.members.get_mut(segment) {
                bitmap.remove(id);
            }
        }
        self.identities[id as usize] = ProfileIdentity::default();
        self.bucket_hashes[id as usize] = 0;
        self.timers.clear_profile(local);
        self.events.remove_profile(id);
        self.free_ids.push(id);
        segments
    }

    pub fn column(&self, column: ColumnId) -> Option<&Column> {
        self.columns.get(column.0 as usize).and_then(Option::as_ref)
    }

    /// The column for writing, created with `trait_type` if the shard has none yet.
    pub fn column_mut(&mut self, column: ColumnId, trait_type: TraitType) -> &mut Column {
        let index = column.0 as usize;
        if self.columns.len() <= index {
            self.columns.resize_with(index + 1, || None);
        }
        self.columns[index].get_or_insert_with(|| Column::new(trait_type))
    }

    /// All traits of a profile as (column id, value).
    pub fn traits_of(&self, local: LocalId) -> Vec<(ColumnId, TraitValue)> {
        self.columns
            .iter()
            .enumerate()
            .filter_map(|(index, column)| {
                column
                    .as_ref()
                    .and_then(|column| column.get(local.0))
                    .map(|value| (ColumnId(index as u32), value))
            })
            .collect()
    }

    pub fn is_live(&self, local: LocalId) -> bool {
        self.live.contains(local.0)
    }

    /// Appends the segments of a profile to `into` (in slot order, not id order).
    pub fn segments_of(&self, local: LocalId, into: &mut Vec<SegmentId>) {
        if let Some(set) = self.profile_segments.get(local.0 as usize) {
            into.extend(set.slots().filter_map(|slot| self.slots.segment_of(slot)));
        }
    }

    pub fn is_member(&self, segment: SegmentId, local: LocalId) -> bool {
        match (
            self.slots.slot_of(segment),
            self.profile_segments.get(local.0 as usize),
        ) {
            (Some(slot), Some(set)) => set.contains(slot),
            _ => false,
        }
    }

    /// Sets one profile's membership in one segment; returns whether it changed.
    pub fn set_member(&mut self, segment: SegmentId, local: LocalId, member: bool) -> bool {
        let slot = match (self.slots.slot_of(segment), member) {
            (Some(slot), _) => slot,
            (None, false) => return false,
            (None, true) => self.slots.assign(segment),
        };
        if !self.profile_segments[local.0 as usize].set(slot, member) {
            return false;
        }
        let bitmap = self.members.entry(segment).or_default();
        if member {
            bitmap.insert(local.0);
        } else {
            bitmap.remove(local.0);
        }
        true
    }

    /// Replaces a segment's members in this shard by `new_members`; returns
    /// (entered, exited).
    pub fn replace_members(
        &mut self,
        segment: SegmentId,
        new_members: RoaringBitmap,
    ) -> (RoaringBitmap, RoaringBitmap) {
        let old = self.members.remove(&segment).unwrap_or_default();
        let entered = &new_members - &old;
        let exited = &old - &new_members;
        let slot = self.slots.assign(segment);
        for id in &entered {
            self.profile_segments[id as usize].set(slot, true);
        }
        for id in &exited {
            self.profile_segments[id as usize].set(slot, false);
        }
        self.members.insert(segment, new_members);
        (entered, exited)
    }

    /// Drops a deleted segment everywhere in this shard.
    pub fn drop_segment(&mut self, segment: SegmentId) {
        self.timers.clear_segment(segment);
        if let Some(old) = self.members.remove(&segment) {
            if let Some(slot) = self.slots.slot_of(segment) {
                for id in &old {
                    self.profile_segments[id as usize].set(slot, false);
                }
            }
        }
        self.slots.release(segment);
    }

    pub fn members_of(&self, segment: SegmentId) -> Option<&RoaringBitmap> {
        self.members.get(&segment)
    }

    /// Removes and returns a profile's events (for a merge).
    pub fn take_events(&mut self, local: LocalId) -> DetachedEvents {
        self.events.detach(local.0)
    }

    /// Adds events taken from another profile.
    pub fn give_events(&mut self, local: LocalId, events: DetachedEvents, now_ms: i64) {
        self.events.attach(local.0, events, now_ms);
    }

    pub fn memory_bytes(&self) -> usize {
        let columns: usize = self
            .columns
            .iter()
            .flatten()
            .map(Column::memory_bytes)
            .sum();
        let members: usize = self
            .members
            .values()
            .map(RoaringBitmap::serialized_size)
            .sum();
        let lists: usize = self
            .profile_segments
            .iter()
            .map(|set| 24 + set.heap_bytes())
            .sum();
        let identities: usize = self
            .identities
            .iter()
            .map(|identity| 16 + identity.allocated_bytes())
            .sum();
        columns
            + self.events.memory_bytes()
            + self.timers.memory_bytes()
            + members
            + lists
            + identities
            + self.bucket_hashes.capacity() * 8
            + self.live.serialized_size()
    }
}
