//! Read-only queries: counts, previews, set expressions, members, lookups.

use super::*;

impl Engine {
    /// Members of a segment: O(shards).
    pub fn count(&self, id: SegmentId) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.read().members_of(id).map_or(0, RoaringBitmap::len))
            .sum()
    }

    /// Count of a set expression over stored segments.
    pub fn count_expression(&self, expression: &SetExpression) -> Result<u64, EngineError> {
        self.check_expression(expression)?;
        Ok(self
            .map_shards(|shard| match expression {
                // Two-way intersections are counted without building the result.
                SetExpression::And(parts) if parts.len() == 2 => match (&parts[0], &parts[1]) {
                    (SetExpression::Segment(a), SetExpression::Segment(b)) => {
                        match (shard.members_of(*a), shard.members_of(*b)) {
                            (Some(a), Some(b)) => a.intersection_len(b),
                            _ => 0,
                        }
                    }
                    _ => evaluate_expression(expression, shard).len(),
                },
                _ => evaluate_expression(expression, shard).len(),
            })
            .into_iter()
            .sum())
    }

    pub(super) fn check_expression(&self, expression: &SetExpression) -> Result<(), EngineError> {
        let registry = self.registry.read();
        let mut stack = vec![expression];
        let mut nodes = 0;
        while let Some(node) = stack.pop() {
            nodes += 1;
            if nodes > 1_000 {
                return Err(EngineError::TooMany {
                    what: "set expression",
                    count: nodes,
                    limit: 1_000,
                });
            }
            match node {
                SetExpression::Segment(id) => {
                    if registry.get(*id).is_none() {
                        return Err(EngineError::SegmentNotFound(id.to_string()));
                    }
                }
                SetExpression::And(parts) | SetExpression::Or(parts) => stack.extend(parts),
                SetExpression::AndNot(left, right) => {
                    stack.push(left);
                    stack.push(right);
                }
            }
        }
        Ok(())
    }

    /// Evaluates a rule without saving it: count, a sample of members, time taken.
    pub fn preview(&self, rule: RuleInput, sample_size: usize) -> Result<Preview, EngineError> {
        let started = Instant::now();
        let rule = rule.into_rule()?;
        let condition = {
            let registry = self.registry.read();
            self.compile_for(&registry, None, &rule)?
        };
        let now_ms = self.clock.now_ms();
        let sample_size = sample_size.min(MAX_PAGE_SIZE);
        let per_shard = self.map_shards(|shard| {
            let members = matching(&condition, shard, &shard.live, now_ms);
            let sample: Vec<String> = members
                .iter()
                .take(sample_size)
                .map(|local| shard.identities[local as usize].external_id())
                .collect();
            (members.len(), sample)
        });
        let count = per_shard.iter().map(|(count, _)| count).sum();
        let sample = per_shard
            .into_iter()
            .flat_map(|(_, sample)| sample)
            .take(sample_size)
            .collect();
        Ok(Preview {
            count,
            sample,
            took_us: started.elapsed().as_micros() as u64,
        })
    }

    /// Compiles a rule against the current schema and segments (for repeated
    /// per-profile evaluation, e.g. in benches).
    pub fn compile_rule(
        &self,
        rule: &Rule,
    ) -> Result<crate::segment::compile::Condition, EngineError> {
        let registry = self.registry.read();
        self.compile_for(&registry, None, rule)
    }

    /// Per-profile evaluation of a compiled condition.
    pub fn evaluate_profile(
        &self,
        condition: &crate::segment::compile::Condition,
        profile: ProfileRef,
    ) -> bool {
        let shard = self.shards[profile.shard.0 as usize].read();
        shard.is_live(profile.local)
            && matches(condition, &shard, profile.local, self.clock.now_ms())
    }

    /// Count only, for benches and the demo command.
    pub fn count_rule(&self, rule: &Rule) -> Result<u64, EngineError> {
        let condition = {
            let registry = self.registry.read();
            self.compile_for(&registry, None, rule)?
        };
        let now_ms = self.clock.now_ms();
        Ok(self
            .map_shards(|shard| matching(&condition, shard, &shard.live, now_ms).len())
            .into_iter()
            .sum())
    }

    /// Every profile matching a rule (external ids, stable order); used by exports and
    /// tests. Bounded by the population, so callers page large results themselves.
    pub fn matching_profiles(&self, rule: &Rule) -> Result<Vec<String>, EngineError> {
        let condition = {
            let registry = self.registry.read();
            self.compile_for(&registry, None, rule)?
        };
        let now_ms = self.clock.now_ms();
        Ok(self
            .map_shards(|shard| {
                matching(&condition, shard, &shard.live, now_ms)
                    .iter()
                    .map(|local| shard.identities[local as usize].external_id())
                    .collect::<Vec<_>>()
            })
            .into_iter()
            .flatten()
            .collect())
    }

    /// Whether one profile matches a rule, by the per-profile evaluator.
    pub fn profile_matches(&self, rule: &Rule, external_id: &str) -> Result<bool, EngineError> {
        let condition = {
            let registry = self.registry.read();
            self.compile_for(&registry, None, rule)?
        };
        let profile = self
            .resolve(external_id)
            .ok_or_else(|| EngineError::ProfileNotFound(external_id.to_string()))?;
        let shard = self.shards[profile.shard.0 as usize].read();
        Ok(matches(
            &condition,
            &shard,
            profile.local,
            self.clock.now_ms(),
        ))
    }

    /// All members of a stored segment (external ids).
    pub fn all_members(&self, id: SegmentId) -> Vec<String> {
        self.shards
            .iter()
            .flat_map(|shard_lock| {
                let shard = shard_lock.read();
                shard
                    .members_of(id)
                    .map(|bitmap| {
                        bitmap
                            .iter()
                            .map(|local| shard.identities[local as usize].external_id())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    /// One page of members in stable (shard, local id) order. The cursor is opaque.
    pub fn members(
        &self,
        id: SegmentId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<MembersPage, EngineError> {
        if self.segment(id).is_none() {
            return Err(EngineError::SegmentNotFound(id.to_string()));
        }
        let start = match cursor {
            None | Some("") => 0,
            Some(text) => u64::from_str_radix(text, 16)
                .map_err(|_| EngineError::BadCursor(text.to_string()))?,
        };
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let start_ref = ProfileRef::from_u64(start);
        let mut members = Vec::with_capacity(limit);
        let mut next_cursor = None;
        for shard_lock in self.shards.iter().skip(start_ref.shard.0 as usize) {
            let shard = shard_lock.read();
            let Some(bitmap) = shard.members_of(id) else {
                continue;
            };
            let from = if shard.id == start_ref.shard {
                start_ref.local.0
            } else {
                0
            };
            for local in bitmap.iter().skip_while(|local| *local < from) {
                if members.len() == limit {
                    next_cursor = Some(format!(
                        "{:x}",
                        ProfileRef {
                            shard: shard.id,
                            local: LocalId(local)
                        }
                        .to_u64()
                    ));
                    break;
                }
                members.push(shard.identities[local as usize].external_id());
            }
            if next_cursor.is_some() {
                break;
            }
        }
        Ok(MembersPage {
            members,
            next_cursor,
        })
    }

    /// Segments a profile is in, by id, read from its own membership set.
    pub fn segments_of(&self, external_id: &str) -> Result<Vec<SegmentId>, EngineError> {
        let profile = self
            .resolve(external_id)
            .ok_or_else(|| EngineError::ProfileNotFound(external_id.to_string()))?;
        let mut segments = Vec::new();
        self.segments_of_profile(profile, &mut segments);
        segments.sort_unstable();
        Ok(segments)
    }

    /// Segments of an already-resolved profile (hot path for lookups; unordered).
    pub fn segments_of_profile(&self, profile: ProfileRef, into: &mut Vec<SegmentId>) {
        into.clear();
        self.shards[profile.shard.0 as usize]
            .read()
            .segments_of(profile.local, into);
    }

    pub fn is_member(&self, id: SegmentId, external_id: &str) -> Result<bool, EngineError> {
        if self.segment(id).is_none() {
            return Err(EngineError::SegmentNotFound(id.to_string()));
        }
        Ok(match self.resolve(external_id) {
            Some(profile) => self.shards[profile.shard.0 as usize]
                .read()
                .is_member(id, profile.local),
            None => false,
        })
    }
}
