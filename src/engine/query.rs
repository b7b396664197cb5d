//! Read-only queries: counts, previews, set expressions, members, lookups.

use super::*;
use crate::segment::compile::Condition;
use crate::segment::evaluate::count_sample;
use crate::segment::plan_cache::PlanKey;
use crate::segment::printer::print_rule;
use std::sync::atomic::AtomicUsize;

/// Estimated live profiles below which a query runs on the calling thread alone.
const FAN_OUT_MIN_PROFILES: u64 = 200_000;

/// Whether a plan reads events (per-candidate work, the only kind worth a fan-out).
fn reads_events(condition: &Condition) -> bool {
    match condition {
        Condition::And(children) | Condition::Or(children) => children.iter().any(reads_events),
        Condition::Not(child) => reads_events(child),
        Condition::Event(_) => true,
        _ => false,
    }
}

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
        // Stored-bitmap work of microseconds: never worth waking another core.
        Ok(self
            .shards
            .iter()
            .map(|lock| (expression, lock.read()))
            .map(|(expression, guard)| match expression {
                // Two-way intersections are counted without building the result.
                SetExpression::And(parts) if parts.len() == 2 => match (&parts[0], &parts[1]) {
                    (SetExpression::Segment(a), SetExpression::Segment(b)) => {
                        match (guard.members_of(*a), guard.members_of(*b)) {
                            (Some(a), Some(b)) => a.intersection_len(b),
                            _ => 0,
                        }
                    }
                    _ => evaluate_expression(expression, &guard).len(),
                },
                _ => evaluate_expression(expression, &guard).len(),
            })
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
        let condition = self.ad_hoc_condition(rule)?;
        let now_ms = self.clock.now_ms();
        let sample_size = sample_size.min(MAX_PAGE_SIZE);
        let per_shard = self.query_shards(reads_events(&condition), |shard| {
            let (count, sample) = count_sample(&condition, shard, &shard.live, now_ms, sample_size);
            let sample: Vec<String> = sample
                .into_iter()
                .map(|local| shard.identities[local as usize].external_id())
                .collect();
            (count, sample)
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

    /// The compiled plan of an ad-hoc rule, from the plan cache when the same rule was
    /// compiled against the current schema and segments before.
    pub(crate) fn ad_hoc_condition(&self, input: RuleInput) -> Result<Arc<Condition>, EngineError> {
        let registry = self.registry.read();
        // Read before compiling: if the schema changes in between, the plan is stored
        // under a generation that never comes back, so it is never served.
        let schema_generation = self.schema.read().generation();
        let (key_text, parsed) = match input {
            RuleInput::Text(text) => (text, None),
            RuleInput::Ast(rule) => {
                let rule = normalize(rule);
                // Printing is injective (text parses back to the same AST).
                (format!("\0ast:{}", print_rule(&rule)), Some(rule))
            }
        };
        let key = PlanKey {
            rule: key_text,
            schema_generation,
            registry_generation: registry.generation(),
        };
        if let Some(plan) = self.plan_cache.lock().get(&key) {
            return Ok(plan);
        }
        let rule = match parsed {
            Some(rule) => rule,
            None => RuleInput::Text(key.rule.clone()).into_rule()?,
        };
        let plan = Arc::new(self.compile_for(&registry, None, &rule)?);
        self.plan_cache.lock().insert(key, plan.clone());
        Ok(plan)
    }

    /// (hits, misses) of the compiled-plan cache since start.
    pub fn plan_cache_stats(&self) -> (u64, u64) {
        self.plan_cache.lock().stats()
    }

    /// Runs read-only per-shard query work. Index-only work (bitmaps, ranges) and small
    /// stores run on this thread: waking a second core costs tens of µs on an idle
    /// machine and milliseconds on a busy one (measured, BENCHMARKS.md), more than
    /// such work takes, and it is what made one count's time swing. Work that reads
    /// events on a large store (`heavy`) uses one helper task per extra core (not one
    /// task per shard); every participant, this thread included, takes the next
    /// unclaimed shard, so a helper that wakes late finds its share already done.
    pub(crate) fn query_shards<T: Send>(
        &self,
        heavy: bool,
        work: impl Fn(&Shard) -> T + Sync,
    ) -> Vec<T> {
        if !heavy {
            return self
                .shards
                .iter()
                .map(|shard| work(&shard.read()))
                .collect();
        }
        self.fan_out(|index| work(&self.shards[index].read()))
    }

    /// `work(shard index)` for every shard, results in shard order, fanned out as
    /// described on [`Engine::query_shards`]. `work` takes its own shard lock.
    pub(crate) fn fan_out<T: Send>(&self, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
        let shard_count = self.shards.len();
        let threads = rayon::current_num_threads().min(shard_count);
        let estimated_profiles = self.shards[0].read().live.len() * shard_count as u64;
        if threads <= 1 || estimated_profiles < FAN_OUT_MIN_PROFILES {
            return (0..shard_count).map(&work).collect();
        }
        let next = AtomicUsize::new(0);
        let slots: Vec<parking_lot::Mutex<Option<T>>> =
            (0..shard_count).map(|_| Default::default()).collect();
        let run = || loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= shard_count {
                break;
            }
            let value = work(index);
            *slots[index].lock() = Some(value);
        };
        let run = &run;
        rayon::in_place_scope(|scope| {
            for _ in 1..threads {
                scope.spawn(move |_| run());
            }
            run();
        });
        slots
            .into_iter()
            .map(|slot| slot.into_inner().expect("every shard was claimed and run"))
            .collect()
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

    /// Count only, for benches and the demo command (plan cache, no sample).
    pub fn count_rule(&self, rule: &Rule) -> Result<u64, EngineError> {
        let condition = self.ad_hoc_condition(RuleInput::Ast(rule.clone()))?;
        let now_ms = self.clock.now_ms();
        Ok(self
            .query_shards(reads_events(&condition), |shard| {
                count_sample(&condition, shard, &shard.live, now_ms, 0).0
            })
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
