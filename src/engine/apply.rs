//! Applying messages: trait and property preparation, identify, track, and the
//! per-profile re-evaluation they trigger.

use super::*;

impl Engine {
    /// Validates traits against the schema without changing anything.
    pub(super) fn prepare_traits(
        &self,
        traits: &serde_json::Map<String, Value>,
    ) -> Result<PreparedTraits, EngineError> {
        let flattened = flatten_traits(traits)?;
        let schema = self.schema.read();
        let mut assignments = Vec::with_capacity(flattened.len());
        let mut widen = Vec::new();
        let mut new_names = 0;
        for (name, value) in flattened {
            let Some(value) = value else {
                let trait_type = schema.lookup(&name).map_or(TraitType::String, |(_, t)| t);
                assignments.push((name, trait_type, None));
                continue;
            };
            match schema.lookup(&name) {
                None => {
                    new_names += 1;
                    let trait_type = value.trait_type();
                    assignments.push((name, trait_type, Some(value)));
                }
                Some((_, TraitType::Integer)) if matches!(value, TraitValue::Float(f) if f.fract() != 0.0) =>
                {
                    widen.push(name.clone());
                    assignments.push((name, TraitType::Float, Some(value)));
                }
                Some((_, column_type)) => {
                    let original = lookup_original(traits, &name);
                    let coerced = match original {
                        Some(original) => coerce_json(&name, original, value, column_type)?,
                        None => crate::store::value::coerce(&name, value, column_type)?,
                    };
                    assignments.push((name, column_type, Some(coerced)));
                }
            }
        }
        if schema.len() + new_names > MAX_COLUMNS {
            let name = assignments.first().map(|a| a.0.clone()).unwrap_or_default();
            return Err(EngineError::TooManyTraits(name));
        }
        drop(schema);
        // A widening must keep every stored integer exact.
        for name in &widen {
            let id = self.schema.read().lookup(name).map(|(id, _)| id);
            if let Some(id) = id {
                let largest = self
                    .shards
                    .iter()
                    .filter_map(|shard| shard.read().column(id).map(|c| c.max_integer_magnitude()))
                    .max()
                    .unwrap_or(0);
                if largest > 1 << 53 {
                    return Err(ValueError::NumberOutOfRange {
                        name: name.clone(),
                        value: largest.to_string(),
                    }
                    .into());
                }
            }
        }
        Ok(PreparedTraits { assignments, widen })
    }

    /// Creates columns and applies widenings; returns whether any column was new (so
    /// rules naming it are recompiled).
    pub(super) fn apply_schema(&self, prepared: &PreparedTraits) -> bool {
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

    /// Applies a batch of validated messages in order. Every message is checked first
    /// (traits and properties against the schema, limits), so either the whole batch is
    /// applied or nothing is. Duplicated `messageId`s within the de-duplication window
    /// and messages naming erased identifiers are skipped and counted.
    pub fn apply_batch(&self, messages: &[Message]) -> Result<BatchOutcome, EngineError> {
        // Event properties flattened while validating are kept and applied as they are
        // (they depend on no schema); traits are prepared again when applied, because an
        // earlier message of the batch may change a trait's column type.
        let prepared = messages
            .iter()
            .map(|message| self.validate_message(message))
            .collect::<Result<Vec<_>, _>>()?;
        let mut outcome = BatchOutcome::default();
        for (message, properties) in messages.iter().zip(prepared) {
            if self.is_suppressed(message) {
                outcome.suppressed += 1;
                continue;
            }
            if let Some(message_id) = &message.message_id {
                if !self.remember_message(message_id) {
                    outcome.duplicates += 1;
                    continue;
                }
            }
            outcome.changes += self.apply_message(message, properties)?;
            outcome.applied += 1;
        }
        self.counters
            .messages_applied
            .fetch_add(outcome.applied as u64, Ordering::Relaxed);
        self.counters
            .messages_duplicate
            .fetch_add(outcome.duplicates as u64, Ordering::Relaxed);
        self.counters
            .messages_suppressed
            .fetch_add(outcome.suppressed as u64, Ordering::Relaxed);
        self.counters
            .membership_changes
            .fetch_add(outcome.changes as u64, Ordering::Relaxed);
        Ok(outcome)
    }

    /// Checks a message without applying it; a track message's flattened properties
    /// are returned for applying.
    pub(super) fn validate_message(
        &self,
        message: &Message,
    ) -> Result<Option<PreparedProperties>, EngineError> {
        for identifier in message.user_id.iter().chain(message.anonymous_id.iter()) {
            Self::check_identifier(identifier)?;
        }
        match &message.kind {
            MessageKind::Identify { traits } => self.prepare_traits(traits).map(|_| None),
            MessageKind::Track { event, properties } => {
                crate::events::check_event_name(event)?;
                Ok(Some(crate::events::prepare_properties(properties)?))
            }
            MessageKind::Alias { previous_id } => Self::check_identifier(previous_id).map(|_| None),
        }
    }

    pub(super) fn apply_message(
        &self,
        message: &Message,
        properties: Option<PreparedProperties>,
    ) -> Result<usize, EngineError> {
        let user_id = message.user_id.as_deref();
        let anonymous_id = message.anonymous_id.as_deref();
        match &message.kind {
            MessageKind::Identify { traits } => {
                Ok(self.identify(user_id, anonymous_id, traits)?.1.len())
            }
            MessageKind::Track {
                event,
                properties: raw,
            } => {
                let time_ms = message.timestamp_ms.unwrap_or_else(|| self.clock.now_ms());
                let prepared = match properties {
                    Some(prepared) => prepared,
                    None => crate::events::prepare_properties(raw)?,
                };
                Ok(self
                    .track_prepared(user_id, anonymous_id, event, time_ms, &prepared)?
                    .len())
            }
            MessageKind::Alias { previous_id } => {
                Ok(self.alias(user_id.unwrap_or_default(), previous_id)?.len())
            }
        }
    }

    /// Whether a message names an erased identifier.
    pub(crate) fn is_suppressed(&self, message: &Message) -> bool {
        if self.suppressed.is_empty() {
            return false;
        }
        let user = message.user_id.as_ref().map(|id| format!("u:{id}"));
        let anonymous = message.anonymous_id.as_ref().map(|id| format!("a:{id}"));
        user.iter()
            .chain(anonymous.iter())
            .any(|key| self.suppressed.contains(&identity_hash(key)))
    }

    /// Records a message id; false when it was seen within the window.
    pub(super) fn remember_message(&self, message_id: &str) -> bool {
        let mut seen = self.seen_messages.lock();
        let (set, order) = &mut *seen;
        if set.contains(message_id) {
            return false;
        }
        let key: Box<str> = message_id.into();
        set.insert(key.clone());
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
        let prepared = self.prepare_traits(traits)?;
        if self.apply_schema(&prepared) {
            self.recompile_all();
        }
        let mut keys: Vec<String> = user_id
            .map(|id| format!("u:{id}"))
            .into_iter()
            .chain(anonymous_id.map(|id| format!("a:{id}")))
            .collect();
        // Configured identity traits (e.g. email) identify the profile too.
        let identity_keys: Vec<String> = prepared
            .assignments
            .iter()
            .filter(|(name, _, _)| self.options.identity_traits.iter().any(|t| t == name))
            .filter_map(|(name, _, value)| match value {
                Some(TraitValue::String(text)) => Some(format!("t:{name}:{text}")),
                _ => None,
            })
            .collect();
        keys.extend(identity_keys.iter().cloned());
        let registry = self.registry.read();
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
            if let Some((column, _)) = self.schema.read().lookup(name) {
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
        let schema = self.schema.read();
        let mut touched: Vec<&str> = Vec::with_capacity(prepared.assignments.len());
        for (name, trait_type, value) in &prepared.assignments {
            let Some((column_id, column_type)) = schema.lookup(name) else {
                continue; // removing a trait nobody ever had
            };
            let _ = trait_type;
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
        let affected: Vec<SegmentId> = if created {
            registry.order().to_vec()
        } else {
            ordered_union(
                &registry,
                touched.iter().map(|name| registry.affected_by_trait(name)),
            )
        };
        let changes = self.reevaluate(&registry, &mut shard, profile.local, &affected);
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
        let now_ms = self.clock.now_ms();
        let mut changes = Vec::new();
        for segment in segments {
            let Some(definition) = registry.get(*segment) else {
                continue;
            };
            let Some(condition) = definition.condition() else {
                continue;
            };
            let member = matches(condition, shard, local, now_ms);
            if condition.is_time_dependent() {
                let due = next_change_after(condition, shard, local, now_ms);
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
        let prepared = crate::events::prepare_properties(properties)?;
        self.track_prepared(user_id, anonymous_id, event, time_ms, &prepared)
    }

    /// [`Engine::track`] with the properties already flattened.
    pub(super) fn track_prepared(
        &self,
        user_id: Option<&str>,
        anonymous_id: Option<&str>,
        event: &str,
        time_ms: i64,
        prepared: &PreparedProperties,
    ) -> Result<Vec<MembershipChange>, EngineError> {
        if user_id.is_none() && anonymous_id.is_none() {
            return Err(EngineError::MissingIdentifier);
        }
        for identifier in user_id.iter().chain(anonymous_id.iter()) {
            Self::check_identifier(identifier)?;
        }
        crate::events::check_event_name(event)?;
        let keys: Vec<String> = user_id
            .map(|id| format!("u:{id}"))
            .into_iter()
            .chain(anonymous_id.map(|id| format!("a:{id}")))
            .collect();
        let registry = self.registry.read();
        // Refuse before creating anything when the shard's name tables are full.
        if let Some(profile) = keys
            .iter()
            .find_map(|key| self.identities.get(&identity_hash(key)).map(|e| *e))
        {
            if !self.shards[profile.shard.0 as usize]
                .read()
                .events
                .has_room_for(event, prepared)
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
        if !shard.events.has_room_for(event, prepared) {
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
        shard
            .events
            .insert(profile.local.0, event, time_ms, prepared, now_ms);
        let affected: Vec<SegmentId> = if created {
            registry.order().to_vec()
        } else {
            registry.affected_by_event(event).to_vec()
        };
        let changes = self.reevaluate(&registry, &mut shard, profile.local, &affected);
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
