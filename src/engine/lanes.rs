//! Apply lanes: a prepared batch's messages applied in parallel, one lane per group of
//! shards, with exactly the result of applying them one by one.
//!
//! **Routing.** A message runs in a lane when everything it changes lives in one shard:
//! its identity keys name one profile (or none yet: it creates one in the shard its first
//! key hashes to, as `resolve_or_create` does), it adds or widens no trait, and it moves
//! no identity-trait key. Keys a routed message will claim are remembered for the rest of
//! the run, so a later message naming them follows it into the same lane. Everything
//! else (alias, a message naming two profiles, schema changes, identity-trait changes,
//! a profile retired meanwhile) is a *barrier*: the lanes finish, the message applies
//! alone on the calling thread, and routing starts afresh from the live identity map.
//!
//! **Why the result equals serial application.** Each shard belongs to exactly one lane
//! (`lane = shard % lanes`) and a lane applies its messages in batch order, so every
//! profile, and every shard's allocations, event name tables and timers, sees the same
//! sequence of writes as serial application. What is global is made order-independent:
//! - membership changes are held back per message on the lane's thread
//!   ([`Engine::record`] calls [`defer`]) and appended to the change log in batch order
//!   after the lanes finish, so change sequences are those of serial application and of
//!   replay;
//! - the de-duplication window is updated in batch order after the lanes;
//! - identity keys: routing gives every key one lane for the run;
//! - the time pinned on the calling thread (a WAL record's time) is pinned on the lane
//!   threads too, so live application and replay see the same clock.
//!
//! Replay applies the same WAL records through the same code, so it is parallel too.
//!
//! The lane boundary (shard → lane) is also the partition boundary a partitioned log
//! (cluster mode) maps onto: a lane's messages depend on no other lane's.

use super::*;
use crate::changes::PendingChange;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// Fewest lane-routed messages worth handing to the lane threads: below this, waking
/// them costs more than it saves.
const MIN_PARALLEL_RUN: usize = 16;

thread_local! {
    /// Set while this thread applies one lane message: its membership changes.
    static DEFERRED: RefCell<Option<Vec<PendingChange>>> = const { RefCell::new(None) };
}

/// Whether this thread is applying a lane message (its changes must be deferred).
pub(super) fn on_lane() -> bool {
    DEFERRED.with(|deferred| deferred.borrow().is_some())
}

/// Holds back membership changes of the lane message this thread applies.
pub(super) fn defer(changes: impl Iterator<Item = PendingChange>) {
    DEFERRED.with(|deferred| {
        if let Some(buffer) = deferred.borrow_mut().as_mut() {
            buffer.extend(changes);
        }
    });
}

/// Runs `apply` with this thread's membership changes held back, and returns them.
/// Nests (restores what was there before), so a lane task stolen by a waiting lane
/// thread keeps its changes apart.
fn deferring<R>(apply: impl FnOnce() -> R) -> (R, Vec<PendingChange>) {
    let outer = DEFERRED.with(|deferred| deferred.replace(Some(Vec::new())));
    let result = apply();
    let mine = DEFERRED.with(|deferred| deferred.replace(outer));
    (result, mine.unwrap_or_default())
}

/// Whom a message's identity keys name, as routing sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Target {
    Existing(ProfileRef),
    /// The profile that message `index` of this run creates, in `shard`.
    New {
        index: usize,
        shard: usize,
    },
}

impl Target {
    fn shard(self) -> usize {
        match self {
            Target::Existing(profile) => profile.shard.0 as usize,
            Target::New { shard, .. } => shard,
        }
    }
}

/// Lane-routed messages waiting to be applied, and what routing has promised them.
#[derive(Default)]
struct Run {
    /// (message index, shard) in batch order.
    messages: Vec<(usize, usize)>,
    /// Identity keys (as hashes) claimed by messages of this run.
    claims: HashMap<u128, Target>,
    /// Profiles an earlier message of this run assigns identity traits to.
    identity_assigned: HashSet<Target>,
}

impl Engine {
    /// The number of lanes batches are split into (1: applied on the calling thread).
    pub fn apply_lanes(&self) -> usize {
        *self.lanes.get_or_init(|| {
            match self.options.apply_lanes {
                // Half the cores: on two cores, a second lane took CPU from HTTP parsing
                // and the load generator and cost throughput (BENCHMARKS.md).
                0 => std::thread::available_parallelism().map_or(1, |cores| cores.get() / 2),
                configured => configured,
            }
            .clamp(1, MAX_APPLY_LANES)
            .min(self.shards.len())
        })
    }

    /// Applies a batch prepared by [`Engine::prepare_batch`] with no mutation in
    /// between: lane-routed runs in parallel, barriers alone (see the module doc).
    /// Errors here are internal (a prepared batch has no input left to fail).
    pub(super) fn apply_prepared(
        &self,
        messages: &[Message],
        prepared: PreparedBatch,
    ) -> Result<BatchOutcome, EngineError> {
        let steps = prepared.steps;
        let mut outcome = BatchOutcome::default();
        let mut run = Run::default();
        // One lane, or too few messages to split: no routing work at all.
        let routed = self.apply_lanes() > 1 && steps.len() >= MIN_PARALLEL_RUN;
        for (index, (message, step)) in messages.iter().zip(&steps).enumerate() {
            match step {
                Step::Suppressed => outcome.suppressed += 1,
                Step::Duplicate => outcome.duplicates += 1,
                _ if !routed => {
                    let changes = self.apply_step(message, step)?;
                    self.finish_message(message, changes, &mut outcome);
                }
                _ => match self.route(index, message, step, &mut run) {
                    Some(shard) => run.messages.push((index, shard)),
                    None => {
                        self.apply_run(messages, &steps, std::mem::take(&mut run), &mut outcome)?;
                        let changes = self.apply_step(message, step)?;
                        self.finish_message(message, changes, &mut outcome);
                    }
                },
            }
        }
        self.apply_run(messages, &steps, run, &mut outcome)?;
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

    /// Counts an applied message and remembers its id.
    fn finish_message(&self, message: &Message, changes: usize, outcome: &mut BatchOutcome) {
        if let Some(message_id) = &message.message_id {
            self.remember_message(message_id);
        }
        outcome.changes += changes;
        outcome.applied += 1;
    }

    /// Applies one prepared message; returns how many membership changes it caused.
    fn apply_step(&self, message: &Message, step: &Step) -> Result<usize, EngineError> {
        let user_id = message.user_id.as_deref();
        let anonymous_id = message.anonymous_id.as_deref();
        match step {
            Step::Identify(traits) => Ok(self
                .identify_prepared(user_id, anonymous_id, traits)?
                .1
                .len()),
            Step::Track(properties) => {
                let MessageKind::Track { event, .. } = &message.kind else {
                    return Err(EngineError::Internal("track step for another message"));
                };
                let time_ms = message.timestamp_ms.unwrap_or_else(|| self.clock.now_ms());
                Ok(self
                    .track_prepared(user_id, anonymous_id, event, time_ms, properties)?
                    .len())
            }
            Step::Alias => {
                let MessageKind::Alias { previous_id } = &message.kind else {
                    return Err(EngineError::Internal("alias step for another message"));
                };
                Ok(self.alias(user_id.unwrap_or_default(), previous_id)?.len())
            }
            Step::Suppressed | Step::Duplicate => {
                Err(EngineError::Internal("skipped step applied"))
            }
        }
    }

    /// The shard whose lane can apply this message given what the run already holds,
    /// or `None` when it must apply alone (a barrier).
    fn route(&self, index: usize, message: &Message, step: &Step, run: &mut Run) -> Option<usize> {
        let assignments = match step {
            Step::Identify(traits) => {
                if !traits.widen.is_empty() {
                    return None;
                }
                let schema = self.schema.read();
                let changes_schema = traits.assignments.iter().any(|(name, trait_type, value)| {
                    value.is_some()
                        && schema.lookup(name).map(|(_, column_type)| column_type)
                            != Some(*trait_type)
                });
                if changes_schema {
                    return None;
                }
                Some(&traits.assignments)
            }
            Step::Track(_) => None,
            Step::Alias | Step::Suppressed | Step::Duplicate => return None,
        };
        let keys = self.message_keys(
            message.user_id.as_deref(),
            message.anonymous_id.as_deref(),
            assignments.map_or(&[][..], Vec::as_slice),
        );
        let hashes: Vec<u128> = keys.iter().map(|key| identity_hash(key)).collect();
        let mut named = None;
        for hash in &hashes {
            let owner = run.claims.get(hash).copied().or_else(|| {
                self.identities
                    .get(hash)
                    .map(|entry| Target::Existing(*entry))
            });
            match (named, owner) {
                (_, None) => {}
                (None, Some(owner)) => named = Some(owner),
                (Some(first), Some(owner)) if first == owner => {}
                // Two profiles: a merge.
                (Some(_), Some(_)) => return None,
            }
        }
        let target = named.unwrap_or_else(|| Target::New {
            index,
            shard: self.shard_for_key(&keys[0]),
        });
        let assigns_identity = assignments.is_some_and(|assignments| {
            assignments
                .iter()
                .any(|(name, _, _)| self.options.identity_traits.contains(name))
        });
        if let Target::Existing(profile) = target {
            // Schema before shard (the lock order); only identity traits need it.
            let schema = assigns_identity.then(|| self.schema.read());
            let shard = self.shards[profile.shard.0 as usize].read();
            if !shard.is_live(profile.local) {
                return None;
            }
            // An identity trait changing value drops the old key: another message of
            // the run may be counting on it.
            if let Some(schema) = schema.filter(|_| !run.identity_assigned.contains(&target)) {
                let moves_key = self.options.identity_traits.iter().any(|name| {
                    schema
                        .lookup(name)
                        .and_then(|(column, _)| shard.column(column))
                        .and_then(|column| column.get_str(profile.local.0))
                        .is_some_and(|old| !keys.contains(&format!("t:{name}:{old}")))
                });
                if moves_key {
                    return None;
                }
            }
        }
        if assigns_identity {
            // A second identity-trait assignment to one profile within a run could move
            // a key the first one added: leave it to a barrier.
            if !run.identity_assigned.insert(target) {
                return None;
            }
        }
        for hash in hashes {
            run.claims.entry(hash).or_insert(target);
        }
        Some(target.shard())
    }

    /// Applies the run's messages: in parallel over the lanes when it is worth it,
    /// else in order here. Changes reach the change log in batch order either way.
    fn apply_run(
        &self,
        messages: &[Message],
        steps: &[Step],
        run: Run,
        outcome: &mut BatchOutcome,
    ) -> Result<(), EngineError> {
        let lane_count = self.apply_lanes();
        let mut lanes = vec![Vec::new(); lane_count];
        for &(index, shard) in &run.messages {
            lanes[shard % lane_count].push(index);
        }
        if run.messages.len() < MIN_PARALLEL_RUN
            || lanes.iter().filter(|lane| !lane.is_empty()).count() <= 1
        {
            return self.apply_in_order(messages, steps, &run.messages, outcome);
        }
        self.counters.parallel_runs.fetch_add(1, Ordering::Relaxed);
        let pinned_ms = crate::clock::pinned_ms();
        let apply_lane = |lane: &[usize]| {
            let _pin = pinned_ms.map(crate::clock::pin_thread);
            let mut results = Vec::with_capacity(lane.len());
            for &index in lane {
                let (result, changes) =
                    deferring(|| self.apply_step(&messages[index], &steps[index]));
                let failed = result.is_err();
                results.push(LaneResult {
                    index,
                    result,
                    changes,
                });
                // A lane stops at an (internal) error, like serial application.
                if failed {
                    break;
                }
            }
            results
        };
        // Scoped threads, not a work-stealing pool: the caller may itself be a pool
        // worker holding `batch_lock` (the NDJSON import), and a stealing wait could run
        // another of its jobs that takes `batch_lock` again. The last lane runs here.
        let mut busy: Vec<&Vec<usize>> = lanes.iter().filter(|lane| !lane.is_empty()).collect();
        let last = busy.pop().expect("at least two busy lanes");
        let lane_results: Vec<Vec<LaneResult>> = std::thread::scope(|scope| {
            let spawned: Vec<_> = busy
                .iter()
                .enumerate()
                .map(|(number, lane)| {
                    let thread = std::thread::Builder::new()
                        .name(format!("segd-lane-{number}"))
                        .spawn_scoped(scope, || apply_lane(lane));
                    (lane, thread)
                })
                .collect();
            let mut all = vec![apply_lane(last)];
            for (lane, thread) in spawned {
                match thread.map(|handle| handle.join()) {
                    Ok(Ok(results)) => all.push(results),
                    Ok(Err(panic)) => std::panic::resume_unwind(panic),
                    // No thread to be had: lanes are independent, so apply it here.
                    Err(_) => all.push(apply_lane(lane)),
                }
            }
            all
        });
        let mut results: Vec<LaneResult> = lane_results.into_iter().flatten().collect();
        results.sort_unstable_by_key(|result| result.index);
        // Whatever was applied is recorded, in batch order, even if a lane failed.
        self.changes.append(
            results
                .iter_mut()
                .filter(|result| result.result.is_ok())
                .flat_map(|result| std::mem::take(&mut result.changes)),
        );
        let mut first_error = None;
        for result in results {
            match result.result {
                Ok(changes) => self.finish_message(&messages[result.index], changes, outcome),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Applies `run` (message index, shard) in batch order on this thread.
    fn apply_in_order(
        &self,
        messages: &[Message],
        steps: &[Step],
        run: &[(usize, usize)],
        outcome: &mut BatchOutcome,
    ) -> Result<(), EngineError> {
        for &(index, _) in run {
            let changes = self.apply_step(&messages[index], &steps[index])?;
            self.finish_message(&messages[index], changes, outcome);
        }
        Ok(())
    }
}

/// What a lane did with one message.
struct LaneResult {
    index: usize,
    result: Result<usize, EngineError>,
    changes: Vec<PendingChange>,
}
