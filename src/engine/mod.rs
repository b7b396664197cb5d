//! The engine: shards, schema, identity map and segment registry, and every operation
//! on them (the library API the HTTP layer and the tools call).
//!
//! Lock order, always: registry → schema → one shard at a time. Whole-population work
//! (segment create/edit, previews, counts) holds a shard's *upgradable read* lock while
//! it computes, so lookups on that shard continue, and takes the write lock only to
//! apply the result; other shards are untouched.

mod apply;
mod identity;
mod lanes;
pub(crate) mod lookup;
mod mutation;
mod prepare;
mod profiles;
mod query;
mod range_indexes;
mod segments;
mod time;

pub use mutation::{Applied, Mutation};
pub use prepare::PreparedBatch;
pub(crate) use prepare::{PreparedProperties, PreparedTraits, Step};
pub use profiles::{EventSummary, ProfileCard, RecentEvent, SegmentRef};

use crate::changes::{Cause, ChangeKind, ChangeLog, ChangeLogOptions, PendingChange};
use crate::clock::{Clock, SystemClock};
use crate::ids::{LocalId, ProfileRef, SegmentId, ShardId};
use crate::ingest::{Message, MessageKind};
use crate::segment::ast::Rule;
use crate::segment::compile::{compile, CompileContext, RuleError};
use crate::segment::evaluate::{
    due_inputs_changed, matches, matches_in, matching, next_change_after, next_change_after_in,
    timer_candidates, Changed, EventPass,
};
use crate::segment::parser::{normalize, parse_rule, ParseError};
use crate::segment::registry::{
    Registry, SegmentDefinition, SegmentKind, MAX_SEGMENTS, MAX_SEGMENT_NAME_BYTES,
};
use crate::store::schema::{Schema, MAX_COLUMNS};
use crate::store::shard::{ProfileIdentity, Shard};
use crate::store::value::{
    coerce_json, flatten_traits, format_timestamp, TraitType, TraitValue, ValueError,
};
use dashmap::DashMap;
use parking_lot::{RwLock, RwLockUpgradableReadGuard};
use roaring::{MultiOps, RoaringBitmap};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;

/// Longest identifier (userId, anonymousId), in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 512;
/// Most profiles returned by one members page.
pub const MAX_PAGE_SIZE: usize = 10_000;
/// Most profiles in one static add/remove/replace request.
pub const MAX_STATIC_EDIT: usize = 100_000;
/// How many recent `messageId`s are remembered for de-duplication.
pub const DEDUP_WINDOW_MESSAGES: usize = 1_000_000;

/// What applying a batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchOutcome {
    pub applied: usize,
    /// Messages skipped because their `messageId` was seen recently.
    pub duplicates: usize,
    /// Messages dropped because they name an erased (suppressed) identifier.
    pub suppressed: usize,
    /// Membership changes caused.
    pub changes: usize,
}

/// Recently seen message ids as [`message_hash`]es (16 bytes each, whatever the id's
/// length): a set for lookups and a queue for eviction order.
type SeenMessages = (
    std::collections::HashSet<u128>,
    std::collections::VecDeque<u128>,
);

/// The de-duplication window's key of a `messageId`: xxh3-128, so the window and the
/// snapshot hold fixed-size entries (a collision between two live ids within the
/// window is ~2^-88 at a million ids).
pub fn message_hash(message_id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(message_id.as_bytes())
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct EngineCounters {
    pub messages_applied: std::sync::atomic::AtomicU64,
    pub messages_duplicate: std::sync::atomic::AtomicU64,
    pub messages_suppressed: std::sync::atomic::AtomicU64,
    pub membership_changes: std::sync::atomic::AtomicU64,
    /// Runs of a batch applied over several lanes at once (see `lanes.rs`).
    pub parallel_runs: std::sync::atomic::AtomicU64,
}

/// Most apply lanes (threads applying one batch in parallel).
pub const MAX_APPLY_LANES: usize = 64;

#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub shards: usize,
    /// Threads applying a batch's messages in parallel (see `lanes.rs`); 0 = one per two
    /// cores (the other half parses requests and serves readers), never more than the
    /// shards. 1 applies on the calling thread only.
    pub apply_lanes: usize,
    /// Traits whose values identify a profile (e.g. `email`).
    pub identity_traits: Vec<String>,
    pub event_retention_ms: i64,
    pub change_log: ChangeLogOptions,
    /// Most segments (default and upper bound [`MAX_SEGMENTS`]).
    pub max_segments: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            shards: 16,
            apply_lanes: 0,
            identity_traits: Vec::new(),
            event_retention_ms: 90 * 86_400_000,
            change_log: ChangeLogOptions::default(),
            max_segments: MAX_SEGMENTS,
        }
    }
}

/// Every way an engine call can fail. All are the caller's fault except `Internal`.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Event(#[from] crate::events::EventError),
    #[error("a shard holds the maximum of {} distinct event names and {} property names; this event would add more", crate::events::MAX_EVENT_NAMES, crate::events::MAX_PROPERTY_NAMES)]
    TooManyEventNames,
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("no segment with id {0}")]
    SegmentNotFound(String),
    #[error("no profile `{0}`")]
    ProfileNotFound(String),
    #[error("a segment named `{0}` exists already — pick another name or update that one")]
    DuplicateSegmentName(String),
    #[error("segment name must be 1 to {MAX_SEGMENT_NAME_BYTES} bytes of printable text")]
    BadSegmentName,
    #[error("the engine holds its maximum of {0} segments — delete unused ones first")]
    TooManySegments(usize),
    #[error(
        "the store holds the maximum of {MAX_COLUMNS} distinct traits; `{0}` would add another"
    )]
    TooManyTraits(String),
    #[error("segment `{0}` is {1}; this operation needs a {2} segment")]
    WrongSegmentKind(String, &'static str, &'static str),
    #[error("segment `{segment}` is used by `{used_by}` — change or delete that segment first")]
    SegmentInUse { segment: String, used_by: String },
    #[error("defining this rule would make a cycle of segment references through `{0}`")]
    Cycle(String),
    #[error("a message needs a userId or an anonymousId")]
    MissingIdentifier,
    #[error("identifier is longer than {MAX_IDENTIFIER_BYTES} bytes or empty")]
    BadIdentifier,
    #[error("{what} has {count} entries; the limit is {limit}")]
    TooMany {
        what: &'static str,
        count: usize,
        limit: usize,
    },
    #[error("bad cursor `{0}` — pass back the `next_cursor` of the previous page")]
    BadCursor(String),
    /// One message of a batch was refused (so the whole batch was).
    #[error("batch[{index}]: {source}")]
    InBatch {
        index: usize,
        source: Box<EngineError>,
    },
    /// A bug: an invariant of the engine did not hold.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl EngineError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Value(_) => "invalid_trait",
            EngineError::Rule(error) => error.code(),
            EngineError::Event(error) => error.code(),
            EngineError::TooManyEventNames => "too_many_event_names",
            EngineError::Parse(error) => error.code(),
            EngineError::SegmentNotFound(_) => "segment_not_found",
            EngineError::ProfileNotFound(_) => "profile_not_found",
            EngineError::DuplicateSegmentName(_) => "duplicate_segment_name",
            EngineError::BadSegmentName => "bad_segment_name",
            EngineError::TooManySegments(_) => "too_many_segments",
            EngineError::TooManyTraits(_) => "too_many_traits",
            EngineError::WrongSegmentKind(..) => "wrong_segment_kind",
            EngineError::SegmentInUse { .. } => "segment_in_use",
            EngineError::Cycle(_) => "rule_segment_cycle",
            EngineError::MissingIdentifier => "missing_identifier",
            EngineError::BadIdentifier => "bad_identifier",
            EngineError::TooMany { .. } => "too_many",
            EngineError::BadCursor(_) => "bad_cursor",
            EngineError::InBatch { source, .. } => source.code(),
            EngineError::Internal(_) => "internal",
        }
    }
}

/// A rule as sent by a client: text or the JSON AST.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum RuleInput {
    Text(String),
    Ast(Rule),
}

impl RuleInput {
    pub fn into_rule(self) -> Result<Rule, EngineError> {
        match self {
            RuleInput::Text(text) => Ok(normalize(parse_rule(&text)?)),
            RuleInput::Ast(rule) => Ok(normalize(rule)),
        }
    }
}

/// The identity map's key for an identity key string.
pub fn identity_hash(key: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(key.as_bytes())
}

/// How a profile is addressed from outside: `userId`, or `anon:<anonymousId>`.
pub fn identity_key_for_external(external: &str) -> String {
    match external.strip_prefix("anon:") {
        Some(anonymous) => format!("a:{anonymous}"),
        None => format!("u:{external}"),
    }
}

/// Summary of a segment for listings.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentSummary {
    pub id: SegmentId,
    pub name: String,
    pub description: String,
    pub version: u32,
    #[serde(rename = "static")]
    pub is_static: bool,
    /// The rule as text (null for static segments).
    pub rule: Option<String>,
    /// The rule as its JSON AST (null for static segments).
    #[schema(value_type = Option<Object>)]
    pub rule_ast: Option<Rule>,
    pub count: u64,
}

/// A membership diff of one segment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MembershipDiff {
    pub entered: Vec<String>,
    pub exited: Vec<String>,
}

/// Result of a preview.
#[derive(Clone, Debug, Serialize)]
pub struct Preview {
    pub count: u64,
    pub sample: Vec<String>,
    pub took_us: u64,
}

/// A set-algebra expression over segments.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SetExpression {
    Segment(SegmentId),
    And(Vec<SetExpression>),
    Or(Vec<SetExpression>),
    AndNot(Box<SetExpression>, Box<SetExpression>),
}

/// A members page.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MembersPage {
    pub members: Vec<String>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// How a static segment is edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StaticEdit {
    Add,
    Remove,
    Replace,
}

/// One profile's membership change produced by an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipChange {
    pub segment: SegmentId,
    pub segment_version: u32,
    pub profile: ProfileRef,
    /// External id at the time of the change (the profile may be gone since).
    pub profile_id: Arc<str>,
    pub entered: bool,
}

pub struct Engine {
    pub(crate) options: EngineOptions,
    pub(crate) shards: Vec<RwLock<Shard>>,
    pub(crate) schema: RwLock<Schema>,
    /// Identity key (`u:<userId>`, `a:<anonymousId>`, `t:<trait>:<value>`) → profile, keyed
    /// by the key's 128-bit xxh3 hash: 16 bytes instead of the string, and a collision
    /// among 10^10 keys has probability ~10^-19.
    pub(crate) identities: DashMap<u128, ProfileRef>,
    pub(crate) registry: RwLock<Registry>,
    pub(crate) changes: ChangeLog,
    /// Hashes of recently seen `messageId`s, oldest first, bounded by [`DEDUP_WINDOW_MESSAGES`].
    pub(crate) seen_messages: parking_lot::Mutex<SeenMessages>,
    /// Identity keys of erased profiles, as [`identity_hash`]es (so persisting the set
    /// stores no identifier): later messages naming them are dropped.
    pub(crate) suppressed: dashmap::DashSet<u128>,
    pub counters: EngineCounters,
    /// Held from preparing a batch to applying it, so nothing changes in between (see
    /// `prepare.rs`); uncontended on the server, where one thread applies.
    pub(crate) batch_lock: parking_lot::Mutex<()>,
    /// Serializes profile creation (see `resolve_or_create`).
    pub(crate) creation: parking_lot::Mutex<()>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Compiled plans of ad-hoc rules (previews, counts); see `segment::plan_cache`.
    pub(crate) plan_cache: parking_lot::Mutex<crate::segment::plan_cache::PlanCache>,
    /// How many apply lanes a batch is split into (from the options and the cores,
    /// worked out on first use).
    pub(crate) lanes: std::sync::OnceLock<usize>,
    /// Tests only: do the per-message work the skips avoid — recompute every
    /// time-dependent segment's timer on every re-evaluation (no `due_inputs_changed`
    /// skip) and rewrite every assigned trait, re-evaluating its segments, even when
    /// its value is unchanged — so tests can compare the skips with the full work.
    pub(crate) reference_mode: std::sync::atomic::AtomicBool,
    /// Held by the one `maintain_range_indexes` running (others skip, never wait).
    pub(crate) range_builds: parking_lot::Mutex<()>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Engine")
            .field("shards", &self.shards.len())
            .field("profiles", &self.identities.len())
            .finish()
    }
}

/// How often a message re-resolves its profile when concurrent merges keep retiring the
/// one it found (each retry follows identifiers re-pointed by the merge).
const MAX_RESOLVE_ATTEMPTS: usize = 16;

/// Profiles per shard whose expired events one `tick` removes (bounded work per tick).
const EXPIRY_PROFILES_PER_TICK: usize = 4_096;

impl Engine {
    pub fn new(options: EngineOptions) -> Engine {
        Engine::with_clock(options, Arc::new(SystemClock))
    }

    pub fn with_clock(options: EngineOptions, clock: Arc<dyn Clock>) -> Engine {
        let shard_count = options.shards.clamp(1, 1024);
        let change_log = options.change_log;
        Engine {
            shards: (0..shard_count)
                .map(|index| {
                    RwLock::new(Shard::new(
                        ShardId(index as u16),
                        options.event_retention_ms,
                    ))
                })
                .collect(),
            options,
            schema: RwLock::new(Schema::default()),
            identities: DashMap::new(),
            registry: RwLock::new(Registry::default()),
            changes: ChangeLog::new(change_log, 1),
            creation: parking_lot::Mutex::new(()),
            batch_lock: parking_lot::Mutex::new(()),
            seen_messages: parking_lot::Mutex::new(Default::default()),
            suppressed: dashmap::DashSet::new(),
            counters: EngineCounters::default(),
            reference_mode: std::sync::atomic::AtomicBool::new(false),
            range_builds: parking_lot::Mutex::new(()),
            clock,
            plan_cache: Default::default(),
            lanes: std::sync::OnceLock::new(),
        }
    }

    /// The membership change log.
    pub fn changes(&self) -> &ChangeLog {
        &self.changes
    }

    /// Appends membership changes to the change log.
    pub(crate) fn record(&self, changes: &[MembershipChange], cause: Cause) {
        if changes.is_empty() {
            return;
        }
        let time_ms = self.clock.now_ms();
        let pending = changes.iter().map(|change| PendingChange {
            time_ms,
            segment_id: change.segment.0,
            segment_version: change.segment_version,
            profile: change.profile_id.clone(),
            kind: if change.entered {
                ChangeKind::Entered
            } else {
                ChangeKind::Exited
            },
            cause,
        });
        // On an apply lane the changes wait and are appended in batch order (lanes.rs).
        if lanes::on_lane() {
            lanes::defer(pending);
        } else {
            self.changes.append(pending);
        }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub fn profile_count(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.read().live.len())
            .sum()
    }

    pub fn schema(&self) -> Schema {
        self.schema.read().clone()
    }

    /// Runs `work` on every shard (read-locked), spread over the machine's cores by
    /// rayon's pool (no thread start-up per call; small stores stay on this thread).
    pub fn map_shards<T: Send>(&self, work: impl Fn(&Shard) -> T + Sync) -> Vec<T> {
        use rayon::prelude::*;
        if self.shards.len() == 1 {
            return vec![work(&self.shards[0].read())];
        }
        self.shards
            .par_iter()
            .map(|shard| work(&shard.read()))
            .collect()
    }

    fn check_identifier(identifier: &str) -> Result<(), EngineError> {
        if identifier.is_empty() || identifier.len() > MAX_IDENTIFIER_BYTES {
            return Err(EngineError::BadIdentifier);
        }
        Ok(())
    }

    /// Finds the profile for an identity key.
    pub fn resolve(&self, external_id: &str) -> Option<ProfileRef> {
        // Hashed from a stack buffer: lookups resolve a profile on every request.
        self.identities
            .get(&lookup::external_identity_hash(external_id))
            .map(|entry| *entry)
    }

    fn shard_for_key(&self, key: &str) -> usize {
        (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % self.shards.len() as u64) as usize
    }
}

/// Evaluates a set expression in one shard.
fn evaluate_expression(expression: &SetExpression, shard: &Shard) -> RoaringBitmap {
    match expression {
        SetExpression::Segment(id) => shard.members_of(*id).cloned().unwrap_or_default(),
        SetExpression::And(parts) => {
            let mut iter = parts.iter();
            let Some(first) = iter.next() else {
                return RoaringBitmap::new();
            };
            let mut result = evaluate_expression(first, shard);
            for part in iter {
                if result.is_empty() {
                    break;
                }
                result &= evaluate_expression(part, shard);
            }
            result
        }
        SetExpression::Or(parts) => parts
            .iter()
            .map(|part| evaluate_expression(part, shard))
            .union(),
        SetExpression::AndNot(left, right) => {
            evaluate_expression(left, shard) - evaluate_expression(right, shard)
        }
    }
}

/// The union of several dependency-ordered lists, still in dependency order.
fn ordered_union<'a>(
    registry: &Registry,
    lists: impl Iterator<Item = &'a [SegmentId]>,
) -> Vec<SegmentId> {
    let mut all: Vec<SegmentId> = Vec::new();
    let mut lists_seen = 0;
    for list in lists {
        if !list.is_empty() {
            lists_seen += 1;
            all.extend_from_slice(list);
        }
    }
    if lists_seen <= 1 {
        return all;
    }
    // Registry order by each id's precomputed position (ids not live are dropped).
    all.retain(|id| registry.order_position(*id).is_some());
    all.sort_unstable_by_key(|id| registry.order_position(*id));
    all.dedup();
    all
}

fn lookup_original<'a>(
    traits: &'a serde_json::Map<String, Value>,
    dotted: &str,
) -> Option<&'a Value> {
    let mut parts = dotted.split('.');
    let mut current = traits.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// A profile found (or created) for a message, with its shard locked for writing and
/// the merge/rename changes already recorded on the way.
struct Attached<'a> {
    profile: ProfileRef,
    created: bool,
    shard: parking_lot::RwLockWriteGuard<'a, Shard>,
    recorded: Vec<MembershipChange>,
}

/// Traits and events moving from an absorbed profile to the survivor of a merge.
struct Mergeable {
    traits: Vec<(crate::ids::ColumnId, TraitValue)>,
    events: crate::events::DetachedEvents,
}
