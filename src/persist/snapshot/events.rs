//! A shard's event store as one section of bulk arrays.

use crate::events::EventStore;
use crate::persist::format::{damaged, Decoder, Encoder, FormatError};

/// The event store as bulk arrays: names, per-profile counts, then every profile's
/// events, property arenas and lifetime aggregates concatenated in profile order.
pub(super) fn encode_events(store: &EventStore) -> Vec<u8> {
    let mut out = Encoder::new();
    for names in [&store.name_list, &store.property_list] {
        out.u32s(
            &names
                .iter()
                .map(|name| name.len() as u32)
                .collect::<Vec<_>>(),
        );
        out.bytes(
            &names
                .iter()
                .flat_map(|name| name.bytes())
                .collect::<Vec<_>>(),
        );
    }
    let mut event_counts = Vec::with_capacity(store.profiles.len());
    let mut lifetime_counts = Vec::with_capacity(store.profiles.len());
    let mut arena_lengths = Vec::with_capacity(store.profiles.len());
    let (mut times, mut names, mut starts, mut lengths) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut arenas = Vec::new();
    let (mut lifetime_names, mut counts, mut firsts, mut lasts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for profile in &store.profiles {
        let Some(profile) = profile else {
            event_counts.push(u32::MAX);
            lifetime_counts.push(0);
            arena_lengths.push(0);
            continue;
        };
        event_counts.push(profile.events.len() as u32);
        lifetime_counts.push(profile.lifetime.len() as u32);
        arena_lengths.push(profile.properties.len() as u32);
        for event in &profile.events {
            times.push(event.time_ms);
            names.push(event.name.0);
            starts.push(event.properties_start);
            lengths.push(event.properties_len);
        }
        arenas.extend_from_slice(&profile.properties);
        for (name, lifetime) in profile.lifetimes() {
            lifetime_names.push(name.0);
            counts.push(lifetime.count);
            firsts.push(lifetime.first_ms);
            lasts.push(lifetime.last_ms);
        }
    }
    out.u32s(&event_counts);
    out.u32s(&lifetime_counts);
    out.u32s(&arena_lengths);
    out.i64s(&times);
    out.u32s(&names);
    out.u32s(&starts);
    out.u32s(&lengths);
    out.bytes(&arenas);
    out.u32s(&lifetime_names);
    out.u64s(&counts);
    out.i64s(&firsts);
    out.i64s(&lasts);
    out.bytes
}

pub(super) fn decode_events(
    bytes: &[u8],
    retention_ms: i64,
    profiles: usize,
) -> Result<EventStore, FormatError> {
    let mut input = Decoder::new(bytes);
    let mut name_tables = Vec::with_capacity(2);
    for _ in 0..2 {
        let lengths = input.u32s()?;
        let mut text = Decoder::new(input.bytes()?);
        let mut names = Vec::with_capacity(lengths.len());
        for length in lengths {
            let raw = text.take(length as usize)?;
            let name = std::str::from_utf8(raw).map_err(|_| damaged("event name is not UTF-8"))?;
            names.push(Box::<str>::from(name));
        }
        name_tables.push(names);
    }
    let event_counts = input.u32s()?;
    let lifetime_counts = input.u32s()?;
    let arena_lengths = input.u32s()?;
    let times = input.i64s()?;
    let names = input.u32s()?;
    let starts = input.u32s()?;
    let lengths = input.u32s()?;
    let mut arenas = Decoder::new(input.bytes()?);
    let lifetime_names = input.u32s()?;
    let counts = input.u64s()?;
    let firsts = input.i64s()?;
    let lasts = input.i64s()?;
    // The per-profile tables must cover at most the shard's profiles, and the flat
    // arrays must be exactly as long as the counts say, before anything is indexed.
    if event_counts.len() > profiles
        || lifetime_counts.len() != event_counts.len()
        || arena_lengths.len() != event_counts.len()
    {
        return Err(damaged("event tables do not match the profile count"));
    }
    let total_events: u64 = event_counts
        .iter()
        .filter(|c| **c != u32::MAX)
        .map(|c| u64::from(*c))
        .sum();
    let total_lifetimes: u64 = lifetime_counts.iter().map(|c| u64::from(*c)).sum();
    if [times.len(), names.len(), starts.len(), lengths.len()]
        .iter()
        .any(|l| *l as u64 != total_events)
        || [
            lifetime_names.len(),
            counts.len(),
            firsts.len(),
            lasts.len(),
        ]
        .iter()
        .any(|l| *l as u64 != total_lifetimes)
    {
        return Err(damaged("event arrays do not match their counts"));
    }
    let mut profile_table = Vec::with_capacity(event_counts.len());
    let (mut next_event, mut next_lifetime) = (0usize, 0usize);
    for ((event_count, lifetime_count), arena_length) in event_counts
        .iter()
        .zip(&lifetime_counts)
        .zip(&arena_lengths)
    {
        if *event_count == u32::MAX {
            profile_table.push(None);
            continue;
        }
        let mut profile = crate::events::ProfileEvents::default();
        // Exact capacities: a loaded store carries no growth slack.
        profile.events.reserve_exact(*event_count as usize);
        profile.lifetime.reserve_exact(*lifetime_count as usize);
        for index in next_event..next_event + *event_count as usize {
            profile.events.push(crate::events::StoredEvent {
                time_ms: times[index],
                name: crate::events::EventNameId(names[index]),
                properties_start: starts[index],
                properties_len: lengths[index],
            });
        }
        next_event += *event_count as usize;
        profile.properties = arenas.take(*arena_length as usize)?.to_vec();
        // The arena is stored with the bytes of expired events; count them as garbage
        // again, or the per-profile byte bound would treat them as live after a restart
        // and drop events the running engine kept.
        let referenced: u64 = profile
            .events
            .iter()
            .map(|event| u64::from(event.properties_len))
            .sum();
        profile.garbage_bytes = (*arena_length as usize).saturating_sub(referenced as usize);
        for index in next_lifetime..next_lifetime + *lifetime_count as usize {
            // Packed entries hold 16-bit names and 48-bit counts; the name table
            // itself is checked by `EventStore::from_parts` below.
            if lifetime_names[index] > u32::from(u16::MAX)
                || counts[index] > crate::events::MAX_LIFETIME_COUNT
            {
                return Err(damaged("lifetime aggregate out of range"));
            }
            profile.lifetime.push(crate::events::LifetimeEntry::new(
                crate::events::EventNameId(lifetime_names[index]),
                crate::events::Lifetime {
                    count: counts[index],
                    first_ms: firsts[index],
                    last_ms: lasts[index],
                },
            ));
        }
        next_lifetime += *lifetime_count as usize;
        profile_table.push(Some(Box::new(profile)));
    }
    let mut name_tables = name_tables.into_iter();
    let event_names = name_tables.next().unwrap_or_default();
    let property_names = name_tables.next().unwrap_or_default();
    EventStore::from_parts(retention_ms, event_names, property_names, profile_table)
        .map_err(damaged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::PropertyRef;
    use std::borrow::Cow;

    const DAY: i64 = 86_400_000;

    /// Expired events leave garbage bytes in a profile's arena; the arena is stored
    /// whole, so a loaded store must count them as garbage again (the per-profile byte
    /// bound reads live bytes as `arena - garbage`).
    #[test]
    fn garbage_bytes_survive_a_round_trip() {
        let mut store = EventStore::new(10 * DAY);
        let now = 1_000 * DAY;
        let text = "x".repeat(100);
        let properties = [(Cow::Borrowed("blob"), PropertyRef::Str(&text))];
        for days_ago in [9, 8, 1] {
            store.insert(0, "viewed", now - days_ago * DAY, &properties, now);
        }
        let later = now + DAY + DAY / 2;
        store.insert(0, "viewed", later, &properties, later);
        let garbage = |store: &EventStore| {
            store.profiles[0]
                .as_ref()
                .map(|profile| profile.garbage_bytes)
        };
        assert!(
            garbage(&store).unwrap() > 0,
            "an expired event's bytes stay"
        );
        let loaded = decode_events(&encode_events(&store), 10 * DAY, 1).unwrap();
        assert_eq!(garbage(&loaded), garbage(&store));
    }
}
