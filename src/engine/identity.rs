//! Identity resolution: finding or creating the profile a message names, merges
//! (alias, shared identifiers), renames, and the identity map.

use super::*;

impl Engine {
    /// Finds or creates the profile named by `keys`, merging any other profiles the keys
    /// name into it (merges recorded), and records `user_id` / `anonymous_id` on it.
    /// Returns the profile, whether it was created, and its shard locked for writing.
    pub(super) fn attach_identifiers(
        &self,
        registry: &Registry,
        keys: &[String],
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
    ) -> Result<Attached<'_>, EngineError> {
        // A concurrent merge or delete can retire the profile between the lookup and
        // taking its shard's lock (and a delete can even hand its local id to a new
        // profile): under the lock, the profile must still be live and still be what one
        // of our keys names, else look it up again.
        let mut attempts = 0;
        let mut recorded = Vec::new();
        let (profile, created, mut shard) = loop {
            let (profile, created) = self.resolve_or_create(keys);
            // Keys naming other profiles (an anonymous history, a shared email): merge
            // them into the profile found first (userId, then anonymousId, then traits).
            let mut merge_changes = Vec::new();
            for key in keys {
                let owner = self.identities.get(&identity_hash(key)).map(|entry| *entry);
                if let Some(other) = owner.filter(|other| *other != profile) {
                    merge_changes.extend(self.merge_profiles(registry, profile, other));
                }
            }
            // merge_profiles recorded them under its locks.
            recorded.extend(merge_changes);
            let shard = self.shards[profile.shard.0 as usize].write();
            if !shard.is_live(profile.local) {
                // A key naming a retired profile is stale: drop it so the next lookup
                // finds the live owner or creates one.
                for key in keys {
                    self.identities
                        .remove_if(&identity_hash(key), |_, owner| *owner == profile);
                }
            } else {
                // Every key must name this profile (claimed now if unclaimed); a key
                // another profile claimed meanwhile is merged on the next round.
                let mut named = true;
                for key in keys {
                    let owner = *self.identities.entry(identity_hash(key)).or_insert(profile);
                    named &= owner == profile;
                }
                if named {
                    break (profile, created, shard);
                }
            }
            attempts += 1;
            if attempts >= MAX_RESOLVE_ATTEMPTS {
                return Err(EngineError::ProfileNotFound(keys[0].clone()));
            }
        };
        // The external id (userId, else the first anonymousId) changes only when the
        // profile gets its first userId or its first identifier at all; checking that
        // first keeps the common path free of string building.
        let identity = &shard.identities[profile.local.0 as usize];
        let may_rename = !created
            && identity.user_id().is_none()
            && (user_id.is_some() || !identity.has_anonymous_ids());
        let old_external_id = if may_rename {
            identity.external_id()
        } else {
            String::new()
        };
        {
            let identity = &mut shard.identities[profile.local.0 as usize];
            if let Some(user_id) = user_id {
                identity.add_user_id(user_id);
            }
            if let Some(anonymous_id) = anonymous_id {
                identity.add_anonymous_id(anonymous_id);
            }
        }
        if may_rename {
            recorded.extend(self.record_rename(registry, &shard, profile.local, &old_external_id));
        }
        Ok(Attached {
            profile,
            created,
            shard,
            recorded,
        })
    }

    /// Points identity keys that name no profile yet at `profile`. Most messages name
    /// known keys, so a shared-lock lookup comes first and the write lock only for new
    /// keys.
    pub(super) fn register_keys(&self, keys: &[String], profile: ProfileRef) {
        for key in keys {
            let hash = identity_hash(key);
            if !self.identities.contains_key(&hash) {
                self.identities.entry(hash).or_insert(profile);
            }
        }
    }

    /// A profile's external id changes when an anonymous profile learns its userId. The
    /// change log names profiles by external id, so consumers would otherwise see exits
    /// for an id that never entered: the profile's memberships are recorded as exits
    /// under the old id and entries under the new one (cause `merge`).
    pub(super) fn record_rename(
        &self,
        registry: &Registry,
        shard: &Shard,
        local: LocalId,
        old_external_id: &str,
    ) -> Vec<MembershipChange> {
        let changes = Self::rename_changes(registry, shard, local, old_external_id);
        self.record(&changes, Cause::Merge);
        changes
    }

    /// The exits under the old id and entries under the new one (not yet recorded).
    pub(super) fn rename_changes(
        registry: &Registry,
        shard: &Shard,
        local: LocalId,
        old_external_id: &str,
    ) -> Vec<MembershipChange> {
        let new_external_id = shard.identities[local.0 as usize].external_id();
        if new_external_id == old_external_id {
            return Vec::new();
        }
        let mut segments = Vec::new();
        shard.segments_of(local, &mut segments);
        let profile = ProfileRef {
            shard: shard.id,
            local,
        };
        let old_id: Arc<str> = old_external_id.into();
        let new_id: Arc<str> = new_external_id.into();
        let mut changes = Vec::with_capacity(segments.len() * 2);
        for (profile_id, entered) in [(old_id, false), (new_id, true)] {
            for segment in &segments {
                changes.push(MembershipChange {
                    segment: *segment,
                    segment_version: registry.get(*segment).map_or(0, |d| d.version),
                    profile,
                    profile_id: profile_id.clone(),
                    entered,
                });
            }
        }
        changes
    }

    /// Merges `absorbed` into `survivor`: traits the survivor lacks are copied (the
    /// survivor's values win conflicts), events and lifetime aggregates move over,
    /// identifiers are re-pointed, static memberships are united; `absorbed` is then
    /// removed (its exits recorded with cause `merge`) and the survivor re-evaluated.
    pub(super) fn merge_profiles(
        &self,
        registry: &Registry,
        survivor: ProfileRef,
        absorbed: ProfileRef,
    ) -> Vec<MembershipChange> {
        let mut changes = Vec::new();
        let (first, second) = if survivor.shard <= absorbed.shard {
            (survivor.shard, absorbed.shard)
        } else {
            (absorbed.shard, survivor.shard)
        };
        let mut first_guard = self.shards[first.0 as usize].write();
        let mut second_guard = (first != second).then(|| self.shards[second.0 as usize].write());
        let (survivor_shard, absorbed_shard): (&mut Shard, &mut Shard) = match second_guard.as_mut()
        {
            None => {
                // Same shard: work through one guard.
                let shard: &mut Shard = &mut first_guard;
                if !shard.is_live(survivor.local) || !shard.is_live(absorbed.local) {
                    return changes;
                }
                let moved = Self::take_mergeable(shard, absorbed.local);
                let keys = self.identity_keys_of(shard, absorbed.local);
                let identity = shard.identities[absorbed.local.0 as usize].clone();
                let static_segments = self.static_memberships(registry, shard, absorbed.local);
                changes.extend(self.remove_for_merge(registry, shard, absorbed, &identity));
                let survivor_old_id = shard.identities[survivor.local.0 as usize].external_id();
                Self::give_mergeable(shard, survivor.local, moved, &identity, self.clock.now_ms());
                changes.extend(Self::rename_changes(
                    registry,
                    shard,
                    survivor.local,
                    &survivor_old_id,
                ));
                for segment in static_segments {
                    changes.extend(self.set_static_member(
                        registry,
                        shard,
                        segment,
                        survivor.local,
                    ));
                }
                self.repoint_identities(&keys, survivor);
                shard.identities[survivor.local.0 as usize].add_trait_keys(keys.iter());
                let order = registry.order().to_vec();
                changes.extend(self.reevaluate(registry, shard, survivor.local, &order));
                // Recorded before the locks go, so the log keeps each profile's order.
                self.record(&changes, Cause::Merge);
                return changes;
            }
            Some(second_guard) => {
                if survivor.shard == first {
                    (&mut first_guard, second_guard)
                } else {
                    (second_guard, &mut first_guard)
                }
            }
        };
        if !survivor_shard.is_live(survivor.local) || !absorbed_shard.is_live(absorbed.local) {
            return changes;
        }
        let moved = Self::take_mergeable(absorbed_shard, absorbed.local);
        let keys = self.identity_keys_of(absorbed_shard, absorbed.local);
        let identity = absorbed_shard.identities[absorbed.local.0 as usize].clone();
        let static_segments = self.static_memberships(registry, absorbed_shard, absorbed.local);
        changes.extend(self.remove_for_merge(registry, absorbed_shard, absorbed, &identity));
        let survivor_old_id = survivor_shard.identities[survivor.local.0 as usize].external_id();
        Self::give_mergeable(
            survivor_shard,
            survivor.local,
            moved,
            &identity,
            self.clock.now_ms(),
        );
        changes.extend(Self::rename_changes(
            registry,
            survivor_shard,
            survivor.local,
            &survivor_old_id,
        ));
        for segment in static_segments {
            changes.extend(self.set_static_member(
                registry,
                survivor_shard,
                segment,
                survivor.local,
            ));
        }
        self.repoint_identities(&keys, survivor);
        survivor_shard.identities[survivor.local.0 as usize].add_trait_keys(keys.iter());
        let order = registry.order().to_vec();
        changes.extend(self.reevaluate(registry, survivor_shard, survivor.local, &order));
        self.record(&changes, Cause::Merge);
        changes
    }

    /// What moves from an absorbed profile: its traits (and events).
    pub(super) fn take_mergeable(shard: &mut Shard, local: LocalId) -> Mergeable {
        Mergeable {
            traits: shard.traits_of(local),
            events: shard.take_events(local),
        }
    }

    pub(super) fn give_mergeable(
        shard: &mut Shard,
        local: LocalId,
        moved: Mergeable,
        identity: &ProfileIdentity,
        now_ms: i64,
    ) {
        for (column, value) in moved.traits {
            let present = shard
                .column(column)
                .is_some_and(|c| c.present.contains(local.0));
            if !present {
                shard
                    .column_mut(column, value.trait_type())
                    .set(local.0, &value);
            }
        }
        shard.give_events(local, moved.events, now_ms);
        let target = &mut shard.identities[local.0 as usize];
        for user_id in identity
            .user_id()
            .into_iter()
            .chain(identity.other_user_ids())
        {
            target.add_user_id(user_id);
        }
        for anonymous in identity.anonymous_ids() {
            target.add_anonymous_id(anonymous);
        }
    }

    pub(super) fn static_memberships(
        &self,
        registry: &Registry,
        shard: &Shard,
        local: LocalId,
    ) -> Vec<SegmentId> {
        let mut segments = Vec::new();
        shard.segments_of(local, &mut segments);
        segments.retain(|id| registry.get(*id).is_some_and(|d| d.is_static()));
        segments
    }

    pub(super) fn set_static_member(
        &self,
        registry: &Registry,
        shard: &mut Shard,
        segment: SegmentId,
        local: LocalId,
    ) -> Vec<MembershipChange> {
        let mut changes = Vec::new();
        if shard.set_member(segment, local, true) {
            changes.push(MembershipChange {
                segment,
                segment_version: registry.get(segment).map_or(0, |d| d.version),
                profile: ProfileRef {
                    shard: shard.id,
                    local,
                },
                profile_id: shard.identities[local.0 as usize].external_id().into(),
                entered: true,
            });
        }
        changes
    }

    pub(super) fn remove_for_merge(
        &self,
        registry: &Registry,
        shard: &mut Shard,
        absorbed: ProfileRef,
        identity: &ProfileIdentity,
    ) -> Vec<MembershipChange> {
        let profile_id: Arc<str> = identity.external_id().into();
        shard
            .remove_profile(absorbed.local)
            .into_iter()
            .map(|segment| MembershipChange {
                segment,
                segment_version: registry.get(segment).map_or(0, |d| d.version),
                profile: absorbed,
                profile_id: profile_id.clone(),
                entered: false,
            })
            .collect()
    }

    /// `alias`: `previous_id` (an earlier userId or anonymousId) and `user_id` become one
    /// profile. When both exist, the `user_id` profile survives and absorbs the other.
    pub fn alias(
        &self,
        user_id: &str,
        previous_id: &str,
    ) -> Result<Vec<MembershipChange>, EngineError> {
        Self::check_identifier(user_id)?;
        Self::check_identifier(previous_id)?;
        let Some(previous_key) = [format!("u:{previous_id}"), format!("a:{previous_id}")]
            .into_iter()
            .find(|key| self.identities.contains_key(&identity_hash(key)))
        else {
            // Nothing known by the previous id: just make sure the user exists.
            return Ok(self
                .identify(Some(user_id), None, &serde_json::Map::new())?
                .1);
        };
        // The userId's profile survives when it exists; else the previous profile
        // learns the userId. Either way one resolution path handles the races.
        let registry = self.registry.read();
        let keys = vec![format!("u:{user_id}"), previous_key];
        let attached = self.attach_identifiers(&registry, &keys, Some(user_id), None)?;
        for key in &keys {
            self.identities
                .entry(identity_hash(key))
                .or_insert(attached.profile);
        }
        Ok(attached.recorded)
    }

    /// Every identity key of a profile: userId, anonymousIds and identity traits.
    pub(super) fn identity_keys_of(&self, shard: &Shard, local: LocalId) -> Vec<String> {
        let identity = &shard.identities[local.0 as usize];
        // Recursive: the caller holds a shard lock (a reader waiting for that shard may hold the schema).
        let schema = self.schema.read_recursive();
        identity
            .keys()
            .into_iter()
            .chain(self.options.identity_traits.iter().filter_map(|name| {
                let (column, _) = schema.lookup(name)?;
                let value = shard.column(column)?.get_str(local.0)?;
                Some(format!("t:{name}:{value}"))
            }))
            .collect()
    }

    /// Points identity keys at the survivor of a merge.
    pub(super) fn repoint_identities(&self, keys: &[String], survivor: ProfileRef) {
        for key in keys {
            self.identities.insert(identity_hash(key), survivor);
        }
    }

    /// The profile any of `keys` names, or a new one (registered under every key).
    /// Creation is serialized so two messages for a new identifier make one profile.
    pub(super) fn resolve_or_create(&self, keys: &[String]) -> (ProfileRef, bool) {
        let find = || {
            keys.iter()
                .find_map(|key| self.identities.get(&identity_hash(key)).map(|entry| *entry))
        };
        if let Some(profile) = find() {
            return (profile, false);
        }
        let _creating = self.creation.lock();
        if let Some(profile) = find() {
            return (profile, false);
        }
        let shard_index = self.shard_for_key(&keys[0]);
        let mut shard = self.shards[shard_index].write();
        let local = shard.allocate(xxhash_rust::xxh3::xxh3_64(keys[0].as_bytes()));
        let profile = ProfileRef {
            shard: ShardId(shard_index as u16),
            local,
        };
        // The identity holds every key from the start: a merge that absorbs this profile
        // before its message is applied re-points exactly these keys, leaving none
        // behind that name a retired profile.
        let identity = &mut shard.identities[local.0 as usize];
        for key in keys {
            if let Some(user_id) = key.strip_prefix("u:") {
                identity.add_user_id(user_id);
            } else if let Some(anonymous_id) = key.strip_prefix("a:") {
                identity.add_anonymous_id(anonymous_id);
            } else {
                identity.add_trait_keys(std::iter::once(key));
            }
        }
        // A key claimed meanwhile by a message that attached it to an existing profile
        // stays with that profile, and the new one is withdrawn: the message goes to
        // the existing profile (its next round merges any other keys).
        let mut claimed_by_other = None;
        for key in keys {
            let owner = *self.identities.entry(identity_hash(key)).or_insert(profile);
            if owner != profile {
                claimed_by_other = Some(owner);
            }
        }
        if let Some(owner) = claimed_by_other {
            for key in keys {
                self.identities
                    .remove_if(&identity_hash(key), |_, named| *named == profile);
            }
            shard.remove_profile(local);
            return (owner, false);
        }
        drop(shard);
        (profile, true)
    }
}
