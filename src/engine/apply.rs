//! Applying messages: trait and property preparation, identify, track, and the
//! per-profile re-evaluation they trigger.

use super::*;

impl Engine {
    /// Creates columns and applies widenings; returns whether any column was new (so
    /// rules naming it are recompiled).
    pub(super) fn apply_schema(&self, prepared: &PreparedTraits) -> bool {
        // Most messages only assign known traits: no write lock for them (parallel apply
        // lanes would otherwise queue on it).
        let nothing_to_do = prepared.widen.is_empty() && {
            let schema = self.schema.read();
            prepared
                .assignments
                .iter()
                .all(|(name, _, value)| value.is_none() || schema.lookup(name).is_some())
        };
        if nothing_to_do {
            return false;
        }
        let mut schema = self.schema.write();
        let mut added = false;
        for (name, trait_type, value) in &prepared.assignments {
            if value.is_some() && schema.lookup(name).is_none() {
                schema.add(name, *trait_type);
                added = true;
            }
        }
        for name in &prepared.widen {
            if let Some((id, TraitType::Integer)) = schema.lookup(name) {
                schema.widen_to_float(id);
                for shard in &self.shards {
                    if let Some(Some(column)) = shard.write().columns.get_mut(id.0 as usize) {
                        column.widen_to_float();
                    }
                }
            }
        }
        added
    }

    pub(crate) fn recompile_all(&self) {
        let mut registry = self.registry.write();
        let schema = self.schema.read();
        let definitions: Vec<SegmentDefinition> = registry.all().map(|d| (**d).clone()).collect();
        for mut definition in definitions {
            if let SegmentKind::Dynamic { rule, condition } = &mut definition.kind {
                let lookup = |name: &str| registry.id_of(name);
                let context = CompileContext {
                    schema: &schema,
                    segment_lookup: &lookup,
                    segment_name: Some(&definition.name),
                    event_retention_ms: self.options.event_retention_ms,
                };
                if let Ok(fresh) = compile(rule, &context) {
                    if fresh != **condition {
                        **condition = fresh;
                        registry.put(definition);
                    }
                }
            }
        }
    }

    /// Applies a batch of messages in order, all or nothing: the whole batch is
    /// prepared first (see `prepare.rs`), so either every message is applied or the
    /// batch is refused and nothing changed. Duplicated `messageId`s within the
    /// de-duplication window and messages naming erased identifiers are skipped and
    /// counted.
    pub fn apply_batch(&self, messages: &[Message]) -> Result<BatchOutcome, EngineError> {
        self.apply_batch_with(messages, |_| Ok::<(), EngineError>(()))
            .map(|(outcome, ())| outcome)
    }

    /// [`Engine::apply_batch`], calling `inspect` with the prepared batch before it is
    /// applied: the database reserves change-log sequences there (so a refused batch
    /// writes nothing, not even a reservation) and decides what to log. An error from
    /// `inspect` leaves the batch unapplied.
    pub fn apply_batch_with<T, E: From<EngineError>>(
        &self,
        messages: &[Message],
        inspect: impl FnOnce(&PreparedBatch) -> Result<T, E>,
    ) -> Result<(BatchOutcome, T), E> {
        let _batch = self.batch_lock.lock();
        let prepared = self.prepare_batch(messages)?;
        let inspected = inspect(&prepared)?;
        Ok((self.apply_prepared(messages, prepared)?, inspected))
    }

    /// The identity keys a message names, in resolution order: `u:<userId>`,
    /// `a:<anonymousId>`, then configured identity traits it assigns a string
    /// (`t:<trait>:<value>`, e.g. email). A new profile goes to the first key's shard.
    pub(super) fn message_keys(
        &self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        assignments: &[(String, TraitType, Option<TraitValue>)],
    ) -> Vec<String> {
        let mut keys: Vec<String> = user_id
            .map(|id| format!("u:{id}"))
            .into_iter()
            .chain(anonymous_id.map(|id| format!("a:{id}")))
            .collect();
        keys.extend(
            assignments
                .iter()
                .filter(|(name, _, _)| self.options.identity_traits.contains(name))
                .filter_map(|(name, _, value)| match value {
                    Some(TraitValue::String(text)) => Some(format!("t:{name}:{text}")),
                    _ => None,
                }),
        );
        keys
    }

    /// Records a message id; false when it was seen within the window.
    pub(super) fn remember_message(&self, message_id: &str) -> bool {
        let mut seen = self.seen_messages.lock();
        let (set, order) = &mut *seen;
        let key = message_hash(message_id);
        if !set.insert(key) {
            return false;
        }
        order.push_back(key);
        if order.len() > DEDUP_WINDOW_MESSAGES {
            if let Some(oldest) = order.pop_front() {
                set.remove(&oldest);
            }
        }
        true
    }

    /// Sets traits on the profile known by `user_id` / `anonymous_id` (created when
    /// new) and re-evaluates the segments that read them. Returns membership changes.
    pub fn identify(
        &self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        traits: &serde_json::Map<String, Value>,
    ) -> Result<(ProfileRef, Vec<MembershipChange>), EngineError> {
        if user_id.is_none() && anonymous_id.is_none() {
            return Err(EngineError::MissingIdentifier);
        }
        for identifier in user_id.iter().chain(anonymous_id.iter()) {
            Self::check_identifier(identifier)?;
        }
        let prepared = self.prepare_traits(traits, &mut prepare::SchemaOverlay::single())?;
        self.identify_prepared(user_id, anonymous_id, &prepared)
    }

    /// [`Engine::identify`] with the traits already prepared against the schema.
    pub(super) fn identify_prepared(
        &self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        prepared: &PreparedTraits,
    ) -> Result<(ProfileRef, Vec<MembershipChange>), EngineError> {
        if self.apply_schema(prepared) {
            self.recompile_all();
        }
        let keys = self.message_keys(user_id, anonymous_id, &prepared.assignments);
        let registry = self.registry.read();
        // Lock order registry → schema → shard: the schema is read before the profile's
        // shard is locked, since `apply_schema` locks shards under the schema write lock.
        let schema = self.schema.read();
        let Attached {
            profile,
            created,
            mut shard,
            recorded,
        } = self.attach_identifiers(&registry, &keys, user_id, anonymous_id)?;
        // An identity trait that changes value stops identifying the profile by the old one.
        for name in &self.options.identity_traits {
            let changes_value = prepared
                .assignments
                .iter()
                .any(|(assigned, _, _)| assigned == name);
            if !changes_value {
                continue;
            }
            if let Some((column, _)) = schema.lookup(name) {
                if let Some(old) = shard
                    .column(column)
                    .and_then(|c| c.get_str(profile.local.0))
                {
                    let old_key = format!("t:{name}:{old}");
                    if !keys.contains(&old_key) {
                        self.identities
                            .remove_if(&identity_hash(&old_key), |_, owner| *owner == profile);
                    }
                }
            }
        }
        self.register_keys(&keys, profile);
        let mut touched: Vec<&str> = Vec::with_capacity(prepared.assignments.len());
        let mut touched_columns = Vec::with_capacity(prepared.assignments.len());
        for (name, trait_type, value) in &prepared.assignments {
            let Some((column_id, column_type)) = schema.lookup(name) else {
                continue; // removing a trait nobody ever had
            };
            let _ = trait_type;
            // Touch only what changes: a trait set to the value it holds (or removed
            // when absent) writes nothing, and re-evaluates nothing on its account.
            let unchanged = !created
                && !self.reference_mode.load(Ordering::Relaxed)
                && match (value, shard.column(column_id)) {
                    (Some(value), Some(column)) => column.holds(profile.local.0, value),
                    (None, Some(column)) => !column.present.contains(profile.local.0),
                    (None, None) => true,
                    (Some(_), None) => false,
                };
            if unchanged {
                continue;
            }
            touched_columns.push(column_id);
            match value {
                Some(value) => shard
                    .column_mut(column_id, column_type)
                    .set(profile.local.0, value),
                None => {
                    if let Some(Some(column)) = shard.columns.get_mut(column_id.0 as usize) {
                        column.clear(profile.local.0);
                    }
                }
            }
            touched.push(name);
        }
        drop(schema);
        let (affected, changed) = if created {
            (registry.order().to_vec(), Changed::All)
        } else {
            (
                ordered_union(
                    &registry,
                    touched.iter().map(|name| registry.affected_by_trait(name)),
                ),
                Changed::Columns(&touched_columns),
            )
        };
        let changes =
            self.reevaluate_changed(&registry, &mut shard, profile.local, &affected, changed);
        // Recorded under the shard lock so the log keeps each profile's order.
        self.record(&changes, Cause::Event);
        let mut all = recorded;
        all.extend(changes);
        Ok((profile, all))
    }

    /// Re-evaluates `segments` (in dependency order) for one profile.
    pub(super) fn reevaluate(
        &self,
        registry: &Registry,
        shard: &mut Shard,
        local: LocalId,
        segments: &[SegmentId],
    ) -> Vec<MembershipChange> {
        self.reevaluate_changed(registry, shard, local, segments, Changed::All)
    }

    /// [`Engine::reevaluate`] after a message that changed only `changed` on the
    /// profile: behavioral leaves over a tracked event are answered from one pass over
    /// the profile's events of that name ([`EventPass`]), and a segment's timer is
    /// recomputed only when data its time-dependent leaves read changed
    /// ([`due_inputs_changed`]).
    pub(super) fn reevaluate_changed(
        &self,
        registry: &Registry,
        shard: &mut Shard,
        local: LocalId,
        segments: &[SegmentId],
        changed: Changed<'_>,
    ) -> Vec<MembershipChange> {
        let now_ms = self.clock.now_ms();
        let mut changes = Vec::new();
        let pass = match changed {
            Changed::Event(name) => EventPass::build(
                segments
                    .iter()
                    .filter_map(|segment| registry.get(*segment)?.condition()),
                shard,
                local,
                name,
                now_ms,
            ),
            Changed::All | Changed::Columns(_) => EventPass::default(),
        };
        let always_recompute = self.reference_mode.load(Ordering::Relaxed);
        for segment in segments {
            let Some(definition) = registry.get(*segment) else {
                continue;
            };
            let Some(condition) = definition.condition() else {
                continue;
            };
            let member = matches_in(condition, shard, local, now_ms, &pass);
            if registry.is_time_dependent(*segment)
                && (always_recompute || due_inputs_changed(condition, shard, changed))
            {
                let due = next_change_after_in(condition, shard, local, now_ms, &pass);
                shard.timers.schedule(local, *segment, due);
            }
            if shard.set_member(*segment, local, member) {
                changes.push(MembershipChange {
                    segment: *segment,
                    segment_version: definition.version,
                    profile: ProfileRef {
                        shard: shard.id,
                        local,
                    },
                    profile_id: shard.identities[local.0 as usize].external_id().into(),
                    entered: member,
                });
            }
        }
        changes
    }

    /// Records an event performed at `time_ms` (event time; late and out-of-order events
    /// count where their time puts them) by the profile known by `user_id` /
    /// `anonymous_id` (created when new; both given and naming two profiles merges them),
    /// and re-evaluates the segments that read this event. Returns membership changes.
    pub fn track(
        &self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        event: &str,
        time_ms: i64,
        properties: &serde_json::Map<String, Value>,
    ) -> Result<Vec<MembershipChange>, EngineError> {
        let prepared = crate::events::prepare_properties_borrowed(properties)?;
        self.track_prepared(user_id, anonymous_id, event, time_ms, &prepared)
    }

    /// [`Engine::track`] with the properties already flattened.
    pub(super) fn track_prepared(
        &self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        event: &str,
        time_ms: i64,
        prepared: &PreparedProperties<'_>,
    ) -> Result<Vec<MembershipChange>, EngineError> {
        if user_id.is_none() && anonymous_id.is_none() {
            return Err(EngineError::MissingIdentifier);
        }
        for identifier in user_id.iter().chain(anonymous_id.iter()) {
            Self::check_identifier(identifier)?;
        }
        crate::events::check_event_name(event)?;
        let keys = self.message_keys(user_id, anonymous_id, &[]);
        let registry = self.registry.read();
        // Refuse before creating anything when the shard's name tables are full.
        if let Some(profile) = keys
            .iter()
            .find_map(|key| self.identities.get(&identity_hash(key)).map(|e| *e))
        {
            if !self.shards[profile.shard.0 as usize]
                .read()
                .events
                .has_room_for(event, prepared.iter().map(|(name, _)| name.as_ref()))
            {
                return Err(EngineError::TooManyEventNames);
            }
        }
        let Attached {
            profile,
            created,
            mut shard,
            recorded,
        } = self.attach_identifiers(&registry, &keys, user_id, anonymous_id)?;
        self.register_keys(&keys, profile);
        if !shard
            .events
            .has_room_for(event, prepared.iter().map(|(name, _)| name.as_ref()))
        {
            // Only reachable for a profile created just now in a full shard.
            let changes = if created {
                self.remove_created(&registry, &mut shard, profile, &keys)
            } else {
                Vec::new()
            };
            self.record(&changes, Cause::Delete);
            return Err(EngineError::TooManyEventNames);
        }
        let now_ms = self.clock.now_ms();
        let dropped_before = shard.events.stats().dropped_over_limit;
        let (name, _) =
            shard
                .events
                .insert_named(profile.local.0, event, time_ms, prepared, now_ms);
        // Only this name's events changed, unless the per-profile bound dropped old
        // events of any name.
        let changed = if created || shard.events.stats().dropped_over_limit != dropped_before {
            Changed::All
        } else {
            Changed::Event(name)
        };
        let affected: &[SegmentId] = if created {
            registry.order()
        } else {
            match shard.events.event_global_id(name) {
                Some(id) => registry.affected_by_event_id(id),
                None => registry.affected_by_event(event),
            }
        };
        let changes =
            self.reevaluate_changed(&registry, &mut shard, profile.local, affected, changed);
        self.record(&changes, Cause::Event);
        let mut all = recorded;
        all.extend(changes);
        Ok(all)
    }

    /// Undoes the creation of a profile whose first message could not be applied.
    pub(super) fn remove_created(
        &self,
        registry: &Registry,
        shard: &mut Shard,
        profile: ProfileRef,
        keys: &[String],
    ) -> Vec<MembershipChange> {
        for key in keys {
            self.identities
                .remove_if(&identity_hash(key), |_, owner| *owner == profile);
        }
        let identity = shard.identities[profile.local.0 as usize].clone();
        self.remove_for_merge(registry, shard, profile, &identity)
    }
}
