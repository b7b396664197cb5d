//! Compiled plans of ad-hoc rules (previews, counts): a marketer typing a rule sends
//! the same text again and again, so parsing and compiling are done once per rule text
//! and per state of what compilation reads — the schema (trait types) and the segment
//! registry (`in segment` names) — named by their generations.
//!
//! Bounded: at most [`PLAN_CACHE_CAPACITY`] plans; when full, the least recently used
//! one goes. Only successful compilations are kept (errors are cheap to redo and must
//! follow the current schema anyway).

use crate::segment::compile::Condition;
use std::collections::HashMap;
use std::sync::Arc;

/// Most plans kept.
pub const PLAN_CACHE_CAPACITY: usize = 256;
/// Longest rule text cached (longer rules compile every time; they are rare and the
/// cache must stay small in bytes too).
pub const MAX_CACHED_RULE_BYTES: usize = 4_096;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlanKey {
    /// Rule text as sent, or `"\0ast:"` + the canonical text of a JSON AST.
    pub rule: String,
    pub schema_generation: u64,
    pub registry_generation: u64,
}

#[derive(Debug, Default)]
pub struct PlanCache {
    entries: HashMap<PlanKey, (Arc<Condition>, u64)>,
    clock: u64,
    hits: u64,
    misses: u64,
}

impl PlanCache {
    pub fn get(&mut self, key: &PlanKey) -> Option<Arc<Condition>> {
        self.clock += 1;
        match self.entries.get_mut(key) {
            Some((plan, used)) => {
                *used = self.clock;
                self.hits += 1;
                Some(plan.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    pub fn insert(&mut self, key: PlanKey, plan: Arc<Condition>) {
        if key.rule.len() > MAX_CACHED_RULE_BYTES {
            return;
        }
        if self.entries.len() >= PLAN_CACHE_CAPACITY && !self.entries.contains_key(&key) {
            // Entries of older generations are never hit again: they go first.
            let newest = self
                .entries
                .keys()
                .map(|key| (key.schema_generation, key.registry_generation))
                .max()
                .unwrap_or_default();
            let victim = self
                .entries
                .iter()
                .min_by_key(|(key, (_, used))| {
                    let current = (key.schema_generation, key.registry_generation) == newest;
                    (current, *used)
                })
                .map(|(key, _)| key.clone());
            if let Some(victim) = victim {
                self.entries.remove(&victim);
            }
        }
        self.clock += 1;
        self.entries.insert(key, (plan, self.clock));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (hits, misses) since start.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rule: &str, schema: u64) -> PlanKey {
        PlanKey {
            rule: rule.into(),
            schema_generation: schema,
            registry_generation: 1,
        }
    }

    #[test]
    fn bounded_and_least_recently_used_goes_first() {
        let mut cache = PlanCache::default();
        for index in 0..PLAN_CACHE_CAPACITY {
            cache.insert(
                key(&format!("r{index}"), 1),
                Arc::new(Condition::Constant(true)),
            );
        }
        // r0 is used, so r1 is the least recently used one.
        assert!(cache.get(&key("r0", 1)).is_some());
        cache.insert(key("new", 1), Arc::new(Condition::Constant(false)));
        assert_eq!(cache.len(), PLAN_CACHE_CAPACITY);
        assert!(cache.get(&key("r0", 1)).is_some());
        assert!(cache.get(&key("r1", 1)).is_none());
        assert!(cache.get(&key("new", 1)).is_some());
    }

    #[test]
    fn stale_generations_are_evicted_before_current_ones() {
        let mut cache = PlanCache::default();
        cache.insert(key("old", 1), Arc::new(Condition::Constant(true)));
        for index in 1..PLAN_CACHE_CAPACITY {
            cache.insert(
                key(&format!("r{index}"), 2),
                Arc::new(Condition::Constant(true)),
            );
        }
        assert!(cache.get(&key("old", 1)).is_some()); // most recently used, but stale
        cache.insert(key("new", 2), Arc::new(Condition::Constant(true)));
        assert!(cache.get(&key("old", 1)).is_none());
        assert!(cache.get(&key("r1", 2)).is_some());
    }

    #[test]
    fn long_rules_are_not_kept() {
        let mut cache = PlanCache::default();
        let long = "x".repeat(MAX_CACHED_RULE_BYTES + 1);
        cache.insert(key(&long, 1), Arc::new(Condition::Constant(true)));
        assert!(cache.is_empty());
    }
}
