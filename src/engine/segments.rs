//! Segment definitions: create, update, delete, static edits, recomputation.

use super::*;

impl Engine {
    pub(super) fn compile_for(
        &self,
        registry: &Registry,
        name: Option<&str>,
        rule: &Rule,
    ) -> Result<crate::segment::compile::Condition, EngineError> {
        let schema = self.schema.read();
        let lookup = |segment: &str| registry.id_of(segment);
        let context = CompileContext {
            schema: &schema,
            segment_lookup: &lookup,
            segment_name: name,
            event_retention_ms: self.options.event_retention_ms,
        };
        Ok(compile(rule, &context)?)
    }

    pub(super) fn check_segment_name(name: &str) -> Result<(), EngineError> {
        if name.trim().is_empty()
            || name.len() > MAX_SEGMENT_NAME_BYTES
            || name.chars().any(char::is_control)
        {
            return Err(EngineError::BadSegmentName);
        }
        Ok(())
    }

    /// Creates a dynamic segment (`rule: Some`) or a static one, computes its members and
    /// returns its summary. Creating records no membership changes.
    pub fn create_segment(
        &self,
        name: &str,
        description: &str,
        rule: Option<RuleInput>,
    ) -> Result<SegmentSummary, EngineError> {
        self.create_segment_with(name, description, rule, false)
    }

    /// Like [`Engine::create_segment`]; with `emit_initial` every initial member is
    /// recorded in the change log as entered (cause `initial`).
    pub fn create_segment_with(
        &self,
        name: &str,
        description: &str,
        rule: Option<RuleInput>,
        emit_initial: bool,
    ) -> Result<SegmentSummary, EngineError> {
        Self::check_segment_name(name)?;
        let rule = rule.map(RuleInput::into_rule).transpose()?;
        let id = {
            let mut registry = self.registry.write();
            if registry.id_of(name).is_some() {
                return Err(EngineError::DuplicateSegmentName(name.to_string()));
            }
            if registry.len() >= self.options.max_segments.min(MAX_SEGMENTS) {
                return Err(EngineError::TooManySegments(
                    self.options.max_segments.min(MAX_SEGMENTS),
                ));
            }
            let kind = match rule {
                Some(rule) => {
                    let condition = self.compile_for(&registry, Some(name), &rule)?;
                    SegmentKind::Dynamic {
                        rule: Box::new(rule),
                        condition: Box::new(condition),
                    }
                }
                None => SegmentKind::Static,
            };
            let id = registry.next_id();
            let now_ms = self.clock.now_ms();
            registry.put(SegmentDefinition {
                id,
                name: name.to_string(),
                description: description.to_string(),
                version: 1,
                kind,
                created_ms: now_ms,
                updated_ms: now_ms,
            });
            id
        };
        self.recompute_recording(id, emit_initial.then_some(Cause::Initial));
        self.segment_summary(id)
    }

    /// Replaces a dynamic segment's rule (new version), recomputes it and everything
    /// that references it; returns the diff of this segment.
    pub fn update_segment(
        &self,
        id: SegmentId,
        rule: RuleInput,
        description: Option<&str>,
    ) -> Result<(SegmentSummary, Vec<MembershipChange>), EngineError> {
        let rule = rule.into_rule()?;
        {
            let mut registry = self.registry.write();
            let current = registry
                .get(id)
                .ok_or_else(|| EngineError::SegmentNotFound(id.to_string()))?
                .clone();
            if current.is_static() {
                return Err(EngineError::WrongSegmentKind(
                    current.name.clone(),
                    "static",
                    "dynamic",
                ));
            }
            let condition = self.compile_for(&registry, Some(&current.name), &rule)?;
            let reads = crate::segment::registry::dependencies(&rule, &condition).segments;
            if registry.would_cycle(id, &reads) {
                return Err(EngineError::Cycle(current.name.clone()));
            }
            let mut updated = (*current).clone();
            updated.kind = SegmentKind::Dynamic {
                rule: Box::new(rule),
                condition: Box::new(condition),
            };
            updated.version += 1;
            updated.updated_ms = self.clock.now_ms();
            if let Some(description) = description {
                updated.description = description.to_string();
            }
            registry.put(updated);
        }
        let mut changes = self.recompute_recording(id, Some(Cause::RuleEdit));
        let dependents = self.registry.read().dependents_of(id).to_vec();
        for dependent in dependents {
            changes.extend(self.recompute_recording(dependent, Some(Cause::RuleEdit)));
        }
        Ok((self.segment_summary(id)?, changes))
    }

    /// Deletes a segment; refused while another segment references it.
    pub fn delete_segment(&self, id: SegmentId) -> Result<(), EngineError> {
        let mut registry = self.registry.write();
        let definition = registry
            .get(id)
            .ok_or_else(|| EngineError::SegmentNotFound(id.to_string()))?
            .clone();
        if let Some(user) = registry.referenced_by(id).first() {
            let used_by = registry
                .get(*user)
                .map(|d| d.name.clone())
                .unwrap_or_default();
            return Err(EngineError::SegmentInUse {
                segment: definition.name.clone(),
                used_by,
            });
        }
        registry.remove(id);
        for shard in &self.shards {
            shard.write().drop_segment(id);
        }
        Ok(())
    }

    /// Recomputes one dynamic segment over every shard; returns the changes.
    /// Recomputes a segment over every shard; the changes of each shard are recorded
    /// (with `cause`, when given) while that shard is still locked, so a concurrent
    /// event for one of its profiles is logged after them, never before.
    pub(crate) fn recompute(&self, id: SegmentId) -> Vec<MembershipChange> {
        self.recompute_recording(id, None)
    }

    pub(crate) fn recompute_recording(
        &self,
        id: SegmentId,
        cause: Option<Cause>,
    ) -> Vec<MembershipChange> {
        let registry = self.registry.read();
        let Some(definition) = registry.get(id).cloned() else {
            return Vec::new();
        };
        let Some(condition) = definition.condition() else {
            return Vec::new();
        };
        let now_ms = self.clock.now_ms();
        let mut changes = Vec::new();
        for shard_lock in &self.shards {
            let shard = shard_lock.upgradable_read();
            let members = matching(condition, &shard, &shard.live, now_ms);
            let mut shard = RwLockUpgradableReadGuard::upgrade(shard);
            let (entered, exited) = shard.replace_members(id, members);
            shard.timers.clear_segment(id);
            if condition.is_time_dependent() {
                let candidates = timer_candidates(condition, &shard) & &shard.live;
                for local in candidates {
                    let due = next_change_after(condition, &shard, LocalId(local), now_ms);
                    shard.timers.schedule(LocalId(local), id, due);
                }
            }
            let shard_id = shard.id;
            let before = changes.len();
            for (ids, entered) in [(&entered, true), (&exited, false)] {
                changes.extend(ids.iter().map(|local| MembershipChange {
                    segment: id,
                    segment_version: definition.version,
                    profile: ProfileRef {
                        shard: shard_id,
                        local: LocalId(local),
                    },
                    profile_id: shard.identities[local as usize].external_id().into(),
                    entered,
                }));
            }
            if let Some(cause) = cause {
                self.record(&changes[before..], cause);
            }
        }
        changes
    }

    pub fn segment_id(&self, name_or_id: &str) -> Option<SegmentId> {
        let registry = self.registry.read();
        if let Ok(number) = name_or_id.parse::<u32>() {
            if registry.get(SegmentId(number)).is_some() {
                return Some(SegmentId(number));
            }
        }
        registry.id_of(name_or_id)
    }

    pub fn segment(&self, id: SegmentId) -> Option<Arc<SegmentDefinition>> {
        self.registry.read().get(id).cloned()
    }

    pub fn segment_summary(&self, id: SegmentId) -> Result<SegmentSummary, EngineError> {
        let definition = self
            .segment(id)
            .ok_or_else(|| EngineError::SegmentNotFound(id.to_string()))?;
        Ok(SegmentSummary {
            id,
            name: definition.name.clone(),
            description: definition.description.clone(),
            version: definition.version,
            is_static: definition.is_static(),
            rule: definition.rule().map(crate::segment::printer::print_rule),
            rule_ast: definition.rule().cloned(),
            count: self.count(id),
        })
    }

    pub fn list_segments(&self) -> Vec<SegmentSummary> {
        let ids: Vec<SegmentId> = self.registry.read().all().map(|d| d.id).collect();
        ids.into_iter()
            .filter_map(|id| self.segment_summary(id).ok())
            .collect()
    }

    /// Adds, removes or replaces members of a static segment (by external ids; unknown
    /// ids are returned, not created) and cascades to segments that reference it.
    pub fn edit_static(
        &self,
        id: SegmentId,
        edit: StaticEdit,
        profiles: &[String],
    ) -> Result<(Vec<MembershipChange>, Vec<String>), EngineError> {
        if profiles.len() > MAX_STATIC_EDIT {
            return Err(EngineError::TooMany {
                what: "static edit",
                count: profiles.len(),
                limit: MAX_STATIC_EDIT,
            });
        }
        let definition = self
            .segment(id)
            .ok_or_else(|| EngineError::SegmentNotFound(id.to_string()))?;
        if !definition.is_static() {
            return Err(EngineError::WrongSegmentKind(
                definition.name.clone(),
                "dynamic",
                "static",
            ));
        }
        let mut unknown = Vec::new();
        let mut wanted: Vec<RoaringBitmap> = vec![RoaringBitmap::new(); self.shards.len()];
        for external in profiles {
            match self.resolve(external) {
                Some(profile) => {
                    wanted[profile.shard.0 as usize].insert(profile.local.0);
                }
                None => unknown.push(external.clone()),
            }
        }
        let registry = self.registry.read();
        let dependents = registry.dependents_of(id).to_vec();
        let mut changes = Vec::new();
        let mut recorded = 0;
        for (index, shard_lock) in self.shards.iter().enumerate() {
            let mut shard = shard_lock.write();
            let current = shard.members_of(id).cloned().unwrap_or_default();
            let target = match edit {
                StaticEdit::Add => &current | &wanted[index],
                StaticEdit::Remove => &current - &wanted[index],
                StaticEdit::Replace => std::mem::take(&mut wanted[index]),
            };
            let (entered, exited) = shard.replace_members(id, target);
            let touched = &entered | &exited;
            for local in &touched {
                changes.push(MembershipChange {
                    segment: id,
                    segment_version: definition.version,
                    profile: ProfileRef {
                        shard: shard.id,
                        local: LocalId(local),
                    },
                    profile_id: shard.identities[local as usize].external_id().into(),
                    entered: entered.contains(local),
                });
                changes.extend(self.reevaluate(&registry, &mut shard, LocalId(local), &dependents));
            }
            // Recorded under this shard's lock (see `recompute_recording`).
            self.record(&changes[recorded..], Cause::StaticEdit);
            recorded = changes.len();
        }
        Ok((changes, unknown))
    }
}
