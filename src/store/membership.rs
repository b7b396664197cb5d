//! Each profile's own segment memberships, kept beside the per-segment bitmaps.
//!
//! A shard gives every live segment a small *slot* number (reused after the segment is
//! deleted). A profile's memberships are a bitset over slots: 16 bytes inline for the
//! first 128 slots, a heap bitset beyond. With 100 segments that is 24 bytes per profile
//! whatever the number of memberships, and "segments of P" is a scan of a few words.

use crate::ids::SegmentId;

const INLINE_WORDS: usize = 2;

/// A bitset over segment slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotSet {
    Inline([u64; INLINE_WORDS]),
    Heap(Box<[u64]>),
}

impl Default for SlotSet {
    fn default() -> Self {
        SlotSet::Inline([0; INLINE_WORDS])
    }
}

impl SlotSet {
    fn words(&self) -> &[u64] {
        match self {
            SlotSet::Inline(words) => words,
            SlotSet::Heap(words) => words,
        }
    }

    fn words_mut(&mut self, needed_words: usize) -> &mut [u64] {
        if needed_words > self.words().len() {
            let mut grown = vec![0u64; needed_words.next_power_of_two()];
            grown[..self.words().len()].copy_from_slice(self.words());
            *self = SlotSet::Heap(grown.into_boxed_slice());
        }
        match self {
            SlotSet::Inline(words) => words,
            SlotSet::Heap(words) => words,
        }
    }

    pub fn contains(&self, slot: u16) -> bool {
        let (word, bit) = (slot as usize / 64, slot % 64);
        self.words().get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// Sets or clears a slot; returns whether it changed.
    pub fn set(&mut self, slot: u16, member: bool) -> bool {
        let (word, bit) = (slot as usize / 64, slot % 64);
        if !member && word >= self.words().len() {
            return false;
        }
        let words = self.words_mut(word + 1);
        let before = words[word];
        if member {
            words[word] |= 1 << bit;
        } else {
            words[word] &= !(1 << bit);
        }
        words[word] != before
    }

    pub fn clear(&mut self) {
        *self = SlotSet::default();
    }

    /// Slots set, ascending.
    pub fn slots(&self) -> impl Iterator<Item = u16> + '_ {
        self.words().iter().enumerate().flat_map(|(index, word)| {
            let mut bits = *word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                Some((index * 64) as u16 + bit as u16)
            })
        })
    }

    pub fn heap_bytes(&self) -> usize {
        match self {
            SlotSet::Inline(_) => 0,
            SlotSet::Heap(words) => words.len() * 8,
        }
    }
}

/// Slot assignment of one shard: segment → slot and back.
#[derive(Clone, Debug, Default)]
pub struct Slots {
    pub(crate) by_segment: Vec<u16>,
    pub(crate) segments: Vec<Option<SegmentId>>,
    pub(crate) free: Vec<u16>,
}

pub(crate) const NO_SLOT: u16 = u16::MAX;

impl Slots {
    pub fn slot_of(&self, segment: SegmentId) -> Option<u16> {
        match self.by_segment.get(segment.0 as usize) {
            Some(&slot) if slot != NO_SLOT => Some(slot),
            _ => None,
        }
    }

    /// The slot of `segment`, assigned when it has none.
    pub fn assign(&mut self, segment: SegmentId) -> u16 {
        if let Some(slot) = self.slot_of(segment) {
            return slot;
        }
        let slot = self.free.pop().unwrap_or_else(|| {
            self.segments.push(None);
            (self.segments.len() - 1) as u16
        });
        let index = segment.0 as usize;
        if self.by_segment.len() <= index {
            self.by_segment.resize(index + 1, NO_SLOT);
        }
        self.by_segment[index] = slot;
        self.segments[slot as usize] = Some(segment);
        slot
    }

    /// Frees a segment's slot (the caller cleared it from every profile first).
    pub fn release(&mut self, segment: SegmentId) -> Option<u16> {
        let slot = self.slot_of(segment)?;
        self.by_segment[segment.0 as usize] = NO_SLOT;
        self.segments[slot as usize] = None;
        self.free.push(slot);
        Some(slot)
    }

    pub fn segment_of(&self, slot: u16) -> Option<SegmentId> {
        self.segments.get(slot as usize).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    //! Slot sets against a plain set, across the inline/heap boundary; slot reuse.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn slot_set_matches_a_plain_set(operations in proptest::collection::vec((0u16..400, any::<bool>()), 0..200)) {
            let mut set = SlotSet::default();
            let mut model = BTreeSet::new();
            for (slot, member) in operations {
                let changed = set.set(slot, member);
                let model_changed = if member { model.insert(slot) } else { model.remove(&slot) };
                prop_assert_eq!(changed, model_changed);
            }
            prop_assert_eq!(set.slots().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            for slot in 0..400 {
                prop_assert_eq!(set.contains(slot), model.contains(&slot));
            }
        }
    }

    #[test]
    fn slots_are_reused_after_release() {
        let mut slots = Slots::default();
        let first = slots.assign(SegmentId(10));
        let second = slots.assign(SegmentId(3));
        assert_ne!(first, second);
        assert_eq!(slots.release(SegmentId(10)), Some(first));
        assert_eq!(slots.slot_of(SegmentId(10)), None);
        assert_eq!(slots.assign(SegmentId(99)), first);
        assert_eq!(slots.segment_of(first), Some(SegmentId(99)));
    }
}
