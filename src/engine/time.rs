//! Time-driven changes: due timers and event expiry.

use super::*;

impl Engine {
    /// Applies time-driven membership changes that are due: pops only the due timers of
    /// each shard, re-evaluates those (profile, segment) pairs and everything that
    /// references the segment, and records the changes with cause `time`.
    pub fn tick(&self) -> usize {
        let registry = self.registry.read();
        let now_ms = self.clock.now_ms();
        let mut total = 0;
        for shard_lock in &self.shards {
            let mut shard = shard_lock.write();
            // Memory reclamation only: windows never reach past retention, so expiring
            // events changes no membership.
            shard.events.expire(now_ms, EXPIRY_PROFILES_PER_TICK);
            let due = shard.timers.pop_due(now_ms);
            if due.is_empty() {
                continue;
            }
            let mut changes = Vec::new();
            for (local, segment) in due {
                if !shard.is_live(local) {
                    continue;
                }
                let mut segments = vec![segment];
                segments.extend_from_slice(registry.dependents_of(segment));
                changes.extend(self.reevaluate(&registry, &mut shard, local, &segments));
            }
            total += changes.len();
            self.record(&changes, Cause::Time);
        }
        total
    }

    /// The earliest pending time-driven re-evaluation.
    pub fn next_timer_ms(&self) -> Option<i64> {
        self.shards
            .iter()
            .filter_map(|shard| shard.read().timers.next_due())
            .min()
    }
}

impl Engine {
    /// Tests only: with `true`, the engine does the per-message work its skips avoid
    /// (every timer recomputed on every re-evaluation, every assigned trait rewritten
    /// and its segments re-evaluated even when unchanged), so tests can compare.
    #[doc(hidden)]
    pub fn set_reference_mode(&self, on: bool) {
        self.reference_mode
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Tests only: every pending timer as (profile id, segment name, due ms), sorted.
    #[doc(hidden)]
    pub fn pending_timers(&self) -> Vec<(String, String, i64)> {
        let registry = self.registry.read();
        let mut out = Vec::new();
        for shard_lock in &self.shards {
            let shard = shard_lock.read();
            for (local, segment, due) in shard.timers.entries() {
                let name = registry
                    .get(SegmentId(segment))
                    .map(|definition| definition.name.clone())
                    .unwrap_or_default();
                let profile = shard.identities[local as usize].external_id();
                out.push((profile, name, due));
            }
        }
        out.sort();
        out
    }
}
