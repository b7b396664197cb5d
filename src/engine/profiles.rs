//! Profiles: deletion, erasure with suppression, traits, the profile card, memory.

use super::*;

/// The profile card: everything segd holds about a profile, for people and exports.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ProfileCard {
    pub id: String,
    pub user_id: Option<String>,
    pub anonymous_ids: Vec<String>,
    #[schema(value_type = Object)]
    pub traits: serde_json::Map<String, Value>,
    pub segments: Vec<SegmentRef>,
    pub events: Vec<EventSummary>,
    pub recent_events: Vec<RecentEvent>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentRef {
    pub id: SegmentId,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EventSummary {
    pub event: String,
    pub count: u64,
    pub first: String,
    pub last: String,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RecentEvent {
    pub event: String,
    pub timestamp: String,
    #[schema(value_type = Object)]
    pub properties: serde_json::Map<String, Value>,
}

impl Engine {
    /// Deletes a profile and suppresses its identifiers: later messages naming them are
    /// dropped (and counted) instead of re-creating the profile.
    pub fn erase_profile(&self, external_id: &str) -> Result<Vec<MembershipChange>, EngineError> {
        let profile = self
            .resolve(external_id)
            .ok_or_else(|| EngineError::ProfileNotFound(external_id.to_string()))?;
        let identity = self.shards[profile.shard.0 as usize].read().identities
            [profile.local.0 as usize]
            .clone();
        let changes = self.delete_profile(external_id)?;
        for key in identity.keys() {
            self.suppressed.insert(identity_hash(&key));
        }
        Ok(changes)
    }

    /// Hashes of the identity keys currently suppressed (for persistence).
    pub fn suppressed_keys(&self) -> Vec<u128> {
        self.suppressed.iter().map(|key| *key).collect()
    }

    /// Deletes a profile everywhere; returns the segments it left.
    pub fn delete_profile(&self, external_id: &str) -> Result<Vec<MembershipChange>, EngineError> {
        let profile = self
            .resolve(external_id)
            .ok_or_else(|| EngineError::ProfileNotFound(external_id.to_string()))?;
        // Lock order schema → shard (see `apply_schema`).
        let schema = self.schema.read();
        let mut shard = self.shards[profile.shard.0 as usize].write();
        let identity = shard.identities[profile.local.0 as usize].clone();
        let identity_values: Vec<String> = self
            .options
            .identity_traits
            .iter()
            .filter_map(|name| {
                let (column, _) = schema.lookup(name)?;
                shard
                    .column(column)?
                    .get_str(profile.local.0)
                    .map(|v| format!("t:{name}:{v}"))
            })
            .collect();
        drop(schema);
        let profile_id: Arc<str> = identity.external_id().into();
        let left = shard.remove_profile(profile.local);
        for key in identity.keys().into_iter().chain(identity_values) {
            self.identities
                .remove_if(&identity_hash(&key), |_, value| *value == profile);
        }
        // Segments that referenced the ones it left need no work: the profile is gone.
        let changes: Vec<MembershipChange> = left
            .into_iter()
            .map(|segment| MembershipChange {
                segment,
                segment_version: self.segment(segment).map_or(0, |d| d.version),
                profile,
                profile_id: profile_id.clone(),
                entered: false,
            })
            .collect();
        // Recorded under the shard lock so the log keeps each profile's order.
        self.record(&changes, Cause::Delete);
        drop(shard);
        Ok(changes)
    }

    /// External id of a profile.
    pub fn external_id(&self, profile: ProfileRef) -> Option<String> {
        let shard = self.shards.get(profile.shard.0 as usize)?.read();
        shard
            .is_live(profile.local)
            .then(|| shard.identities[profile.local.0 as usize].external_id())
    }

    /// A profile's traits as JSON (dotted names).
    pub fn traits_of(
        &self,
        external_id: &str,
    ) -> Result<serde_json::Map<String, Value>, EngineError> {
        let profile = self
            .resolve(external_id)
            .ok_or_else(|| EngineError::ProfileNotFound(external_id.to_string()))?;
        let schema = self.schema.read();
        let shard = self.shards[profile.shard.0 as usize].read();
        Ok(shard
            .traits_of(profile.local)
            .into_iter()
            .map(|(column, value)| (schema.info(column).name.clone(), value.to_json()))
            .collect())
    }

    /// Approximate heap bytes by component: one entry per trait column (summed over
    /// shards) plus identities, memberships, per-profile segment lists and the identity
    /// map. For the memory tool and BENCHMARKS.md.
    pub fn memory_report(&self) -> Vec<(String, usize)> {
        let schema = self.schema.read();
        let mut columns = vec![0usize; schema.len()];
        let mut identities = 0;
        let mut members = 0;
        let mut lists = 0;
        let mut other = 0;
        for shard_lock in &self.shards {
            let shard = shard_lock.read();
            for (index, column) in shard.columns.iter().enumerate() {
                if let Some(column) = column {
                    columns[index] += column.memory_bytes();
                }
            }
            identities += shard
                .identities
                .iter()
                .map(|identity| 16 + identity.allocated_bytes())
                .sum::<usize>();
            members += shard
                .members
                .values()
                .map(RoaringBitmap::serialized_size)
                .sum::<usize>();
            lists += shard
                .profile_segments
                .iter()
                .map(|set| 24 + set.heap_bytes())
                .sum::<usize>();
            other += shard.bucket_hashes.capacity() * 8 + shard.live.serialized_size();
        }
        let mut report: Vec<(String, usize)> = schema
            .columns()
            .map(|(id, info)| {
                (
                    format!("trait {} ({})", info.name, info.trait_type),
                    columns[id.0 as usize],
                )
            })
            .collect();
        report.push(("profile identifiers".into(), identities));
        report.push(("segment member bitmaps".into(), members));
        report.push(("per-profile segment lists".into(), lists));
        report.push(("live ids and bucket hashes".into(), other));
        report.push((
            "identity map".into(),
            // 16-byte key, 8-byte value, control byte and load-factor slack.
            self.identities.len() * 32,
        ));
        report
    }

    /// Event-store bytes by structure, summed over shards.
    pub fn event_memory_breakdown(&self) -> crate::events::EventMemory {
        self.map_shards(|shard| shard.events.memory_breakdown())
            .iter()
            .fold(crate::events::EventMemory::default(), |mut total, shard| {
                total.add(shard);
                total
            })
    }

    /// Events stored within retention and the bytes the event stores use (records,
    /// property arenas, lifetime aggregates, per-name bitmaps, name tables).
    pub fn event_memory(&self) -> (u64, usize) {
        self.map_shards(|shard| (shard.events.stats().stored, shard.events.memory_bytes()))
            .into_iter()
            .fold((0, 0), |(events, bytes), (more_events, more_bytes)| {
                (events + more_events, bytes + more_bytes)
            })
    }

    /// Approximate heap bytes of the store (columns, indexes, memberships, identities).
    pub fn memory_bytes(&self) -> usize {
        let shards: usize = self
            .shards
            .iter()
            .map(|shard| shard.read().memory_bytes())
            .sum();
        shards + self.identities.len() * 32
    }

    /// The profile card (`recent` bounds the number of recent events listed).
    pub fn profile_card(
        &self,
        external_id: &str,
        recent: usize,
    ) -> Result<ProfileCard, EngineError> {
        let profile = self
            .resolve(external_id)
            .ok_or_else(|| EngineError::ProfileNotFound(external_id.to_string()))?;
        let traits = self.traits_of(external_id)?;
        let registry = self.registry.read();
        let shard = self.shards[profile.shard.0 as usize].read();
        let identity = &shard.identities[profile.local.0 as usize];
        let mut segment_ids = Vec::new();
        shard.segments_of(profile.local, &mut segment_ids);
        segment_ids.sort_unstable();
        let segments = segment_ids
            .iter()
            .filter_map(|id| {
                registry.get(*id).map(|d| SegmentRef {
                    id: *id,
                    name: d.name.clone(),
                })
            })
            .collect();
        let (events, recent_events) = self.event_card(&shard, profile.local, recent);
        Ok(ProfileCard {
            id: identity.external_id(),
            user_id: identity.user_id().map(str::to_string),
            anonymous_ids: identity.anonymous_ids().map(str::to_string).collect(),
            traits,
            segments,
            events,
            recent_events,
        })
    }

    pub(super) fn event_card(
        &self,
        shard: &Shard,
        local: LocalId,
        recent: usize,
    ) -> (Vec<EventSummary>, Vec<RecentEvent>) {
        let mut summary: Vec<EventSummary> = shard
            .events
            .lifetimes(local.0)
            .into_iter()
            .map(|(event, lifetime)| EventSummary {
                event: event.to_string(),
                count: lifetime.count,
                first: format_timestamp(lifetime.first_ms),
                last: format_timestamp(lifetime.last_ms),
            })
            .collect();
        summary.sort_by(|a, b| a.event.cmp(&b.event));
        let recent_events = shard
            .events
            .recent(local.0, recent)
            .into_iter()
            .map(|(event, time_ms, properties)| RecentEvent {
                event: event.to_string(),
                timestamp: format_timestamp(time_ms),
                properties: properties
                    .into_iter()
                    .map(|(name, value)| (name.to_string(), value.to_json()))
                    .collect(),
            })
            .collect();
        (summary, recent_events)
    }
}
