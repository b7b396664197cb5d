//! The engine: shards, schema, identity map and segment registry, and every operation
//! on them (the library API the HTTP layer and the tools call).
//!
//! Lock order, always: registry → schema → one shard at a time. Whole-population work
//! (segment create/edit, previews, counts) holds a shard's *upgradable read* lock while
//! it computes, so lookups on that shard continue, and takes the write lock only to
//! apply the result; other shards are untouched.

use crate::changes::{Cause, ChangeKind, ChangeLog, ChangeLogOptions, PendingChange};
use crate::clock::{Clock, SystemClock};
use crate::ids::{LocalId, ProfileRef, SegmentId, ShardId};
use crate::ingest::{Message, MessageKind};
use crate::segment::ast::Rule;
use crate::segment::compile::{compile, CompileContext, RuleError};
use crate::segment::evaluate::{matches, matching, next_change_after, timer_candidates};
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

/// Recently seen message ids: a set for lookups and a queue for eviction order.
type SeenMessages = (
    std::collections::HashSet<Box<str>>,
    std::collections::VecDeque<Box<str>>,
);

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct EngineCounters {
    pub messages_applied: std::sync::atomic::AtomicU64,
    pub messages_duplicate: std::sync::atomic::AtomicU64,
    pub messages_suppressed: std::sync::atomic::AtomicU64,
    pub membership_changes: std::sync::atomic::AtomicU64,
}

#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub shards: usize,
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
#[derive(Clone, Debug, Serialize)]
pub struct SegmentSummary {
    pub id: SegmentId,
    pub name: String,
    pub description: String,
    pub version: u32,
    #[serde(rename = "static")]
    pub is_static: bool,
    pub rule: Option<String>,
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
#[derive(Clone, Debug, Serialize)]
pub struct MembersPage {
    pub members: Vec<String>,
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
    /// Recently seen `messageId`s, oldest first, bounded by [`DEDUP_WINDOW_MESSAGES`].
    pub(crate) seen_messages: parking_lot::Mutex<SeenMessages>,
    /// Identity keys of erased profiles, as [`identity_hash`]es (so persisting the set
    /// stores no identifier): later messages naming them are dropped.
    pub(crate) suppressed: dashmap::DashSet<u128>,
    pub counters: EngineCounters,
    /// Serializes profile creation (see `resolve_or_create`).
    pub(crate) creation: parking_lot::Mutex<()>,
    pub(crate) clock: Arc<dyn Clock>,
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

/// Validated trait updates for one message, ready to apply.
struct PreparedTraits {
    /// (trait name, column type to create/use, value or removal)
    assignments: Vec<(String, TraitType, Option<TraitValue>)>,
    widen: Vec<String>,
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
            seen_messages: parking_lot::Mutex::new(Default::default()),
            suppressed: dashmap::DashSet::new(),
            counters: EngineCounters::default(),
            clock,
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
        self.changes
            .append(changes.iter().map(|change| PendingChange {
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
            }));
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

    // ------------------------------------------------------------------ profiles

    fn check_identifier(identifier: &str) -> Result<(), EngineError> {
        if identifier.is_empty() || identifier.len() > MAX_IDENTIFIER_BYTES {
            return Err(EngineError::BadIdentifier);
        }
        Ok(())
    }

    /// Validates traits against the schema without changing anything.
    fn prepare_traits(
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
    fn apply_schema(&self, prepared: &PreparedTraits) -> bool {
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

    /// Finds the profile for an identity key.
    pub fn resolve(&self, external_id: &str) -> Option<ProfileRef> {
        self.identities
            .get(&identity_hash(&identity_key_for_external(external_id)))
            .map(|entry| *entry)
    }

    fn shard_for_key(&self, key: &str) -> usize {
        (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % self.shards.len() as u64) as usize
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
    fn validate_message(
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

    fn apply_message(
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
    fn remember_message(&self, message_id: &str) -> bool {
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

    /// Deletes a profile and suppresses its identifiers: later messages naming them are
    /// dropped (and counted) instead of re-creating the profile.
    pub fn erase_profile(&self, external_id: &str) -> Result<Vec<MembershipChange>, EngineError> {
        let profile = self
            .resolve(external_id)
            .ok_or_else(|| EngineError::ProfileNotFound(external_id.to_string()))?;
        let identity = self.shards[profile.shard.0 as usize].read().identities
            [profile.local.0 as usize]
            .clone();
        let changes = self.delete_profile(external_id)?;
        for key in identity.keys() {
            self.suppressed.insert(identity_hash(&key));
        }
        Ok(changes)
    }

    /// Hashes of the identity keys currently suppressed (for persistence).
    pub fn suppressed_keys(&self) -> Vec<u128> {
        self.suppressed.iter().map(|key| *key).collect()
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

    /// Finds or creates the profile named by `keys`, merging any other profiles the keys
    /// name into it (merges recorded), and records `user_id` / `anonymous_id` on it.
    /// Returns the profile, whether it was created, and its shard locked for writing.
    fn attach_identifiers(
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
            && identity.user_id.is_none()
            && (user_id.is_some() || identity.anonymous_ids.is_empty());
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
                if !identity
                    .anonymous_ids
                    .iter()
                    .any(|id| &**id == anonymous_id)
                {
                    identity.anonymous_ids.push(anonymous_id.into());
                }
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
    fn register_keys(&self, keys: &[String], profile: ProfileRef) {
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
    fn record_rename(
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
    fn rename_changes(
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
    fn merge_profiles(
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
    fn take_mergeable(shard: &mut Shard, local: LocalId) -> Mergeable {
        Mergeable {
            traits: shard.traits_of(local),
            events: shard.take_events(local),
        }
    }

    fn give_mergeable(
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
            .user_id
            .iter()
            .chain(identity.other_user_ids.iter())
        {
            target.add_user_id(user_id);
        }
        for anonymous in &identity.anonymous_ids {
            if !target.anonymous_ids.contains(anonymous) {
                target.anonymous_ids.push(anonymous.clone());
            }
        }
    }

    fn static_memberships(
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

    fn set_static_member(
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

    fn remove_for_merge(
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
    fn identity_keys_of(&self, shard: &Shard, local: LocalId) -> Vec<String> {
        let identity = &shard.identities[local.0 as usize];
        let schema = self.schema.read();
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
    fn repoint_identities(&self, keys: &[String], survivor: ProfileRef) {
        for key in keys {
            self.identities.insert(identity_hash(key), survivor);
        }
    }

    /// The profile any of `keys` names, or a new one (registered under every key).
    /// Creation is serialized so two messages for a new identifier make one profile.
    fn resolve_or_create(&self, keys: &[String]) -> (ProfileRef, bool) {
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
                if !identity
                    .anonymous_ids
                    .iter()
                    .any(|id| &**id == anonymous_id)
                {
                    identity.anonymous_ids.push(anonymous_id.into());
                }
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

    /// Re-evaluates `segments` (in dependency order) for one profile.
    fn reevaluate(
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

    /// Deletes a profile everywhere; returns the segments it left.
    pub fn delete_profile(&self, external_id: &str) -> Result<Vec<MembershipChange>, EngineError> {
        let profile = self
            .resolve(external_id)
            .ok_or_else(|| EngineError::ProfileNotFound(external_id.to_string()))?;
        let mut shard = self.shards[profile.shard.0 as usize].write();
        let identity = shard.identities[profile.local.0 as usize].clone();
        let identity_values: Vec<String> = self
            .options
            .identity_traits
            .iter()
            .filter_map(|name| {
                let (column, _) = self.schema.read().lookup(name)?;
                shard
                    .column(column)?
                    .get_str(profile.local.0)
                    .map(|v| format!("t:{name}:{v}"))
            })
            .collect();
        let profile_id: Arc<str> = identity.external_id().into();
        let left = shard.remove_profile(profile.local);
        for key in identity.keys().into_iter().chain(identity_values) {
            self.identities
                .remove_if(&identity_hash(&key), |_, value| *value == profile);
        }
        // Segments that referenced the ones it left need no work: the profile is gone.
        let changes: Vec<MembershipChange> = left
            .into_iter()
            .map(|segment| MembershipChange {
                segment,
                segment_version: self.segment(segment).map_or(0, |d| d.version),
                profile,
                profile_id: profile_id.clone(),
                entered: false,
            })
            .collect();
        // Recorded under the shard lock so the log keeps each profile's order.
        self.record(&changes, Cause::Delete);
        drop(shard);
        Ok(changes)
    }

    /// External id of a profile.
    pub fn external_id(&self, profile: ProfileRef) -> Option<String> {
        let shard = self.shards.get(profile.shard.0 as usize)?.read();
        shard
            .is_live(profile.local)
            .then(|| shard.identities[profile.local.0 as usize].external_id())
    }

    /// A profile's traits as JSON (dotted names).
    pub fn traits_of(
        &self,
        external_id: &str,
    ) -> Result<serde_json::Map<String, Value>, EngineError> {
        let profile = self
            .resolve(external_id)
            .ok_or_else(|| EngineError::ProfileNotFound(external_id.to_string()))?;
        let schema = self.schema.read();
        let shard = self.shards[profile.shard.0 as usize].read();
        Ok(shard
            .traits_of(profile.local)
            .into_iter()
            .map(|(column, value)| (schema.info(column).name.clone(), value.to_json()))
            .collect())
    }

    // ------------------------------------------------------------------ segments

    fn compile_for(
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

    fn check_segment_name(name: &str) -> Result<(), EngineError> {
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

    fn check_expression(&self, expression: &SetExpression) -> Result<(), EngineError> {
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

    /// Approximate heap bytes by component: one entry per trait column (summed over
    /// shards) plus identities, memberships, per-profile segment lists and the identity
    /// map. For the memory tool and BENCHMARKS.md.
    pub fn memory_report(&self) -> Vec<(String, usize)> {
        let schema = self.schema.read();
        let mut columns = vec![0usize; schema.len()];
        let mut identities = 0;
        let mut members = 0;
        let mut lists = 0;
        let mut other = 0;
        for shard_lock in &self.shards {
            let shard = shard_lock.read();
            for (index, column) in shard.columns.iter().enumerate() {
                if let Some(column) = column {
                    columns[index] += column.memory_bytes();
                }
            }
            identities += shard
                .identities
                .iter()
                .map(|identity| {
                    40 + identity.user_id.as_ref().map_or(0, |id| id.len())
                        + identity
                            .anonymous_ids
                            .iter()
                            .map(|id| id.len() + 16)
                            .sum::<usize>()
                })
                .sum::<usize>();
            members += shard
                .members
                .values()
                .map(RoaringBitmap::serialized_size)
                .sum::<usize>();
            lists += shard
                .profile_segments
                .iter()
                .map(|set| 24 + set.heap_bytes())
                .sum::<usize>();
            other += shard.bucket_hashes.capacity() * 8 + shard.live.serialized_size();
        }
        let mut report: Vec<(String, usize)> = schema
            .columns()
            .map(|(id, info)| {
                (
                    format!("trait {} ({})", info.name, info.trait_type),
                    columns[id.0 as usize],
                )
            })
            .collect();
        report.push(("profile identifiers".into(), identities));
        report.push(("segment member bitmaps".into(), members));
        report.push(("per-profile segment lists".into(), lists));
        report.push(("live ids and bucket hashes".into(), other));
        report.push((
            "identity map".into(),
            // 16-byte key, 8-byte value, control byte and load-factor slack.
            self.identities.len() * 32,
        ));
        report
    }

    /// Approximate heap bytes of the store (columns, indexes, memberships, identities).
    /// Events stored within retention and the bytes the event stores use (records,
    /// property arenas, lifetime aggregates, per-name bitmaps, name tables).
    pub fn event_memory(&self) -> (u64, usize) {
        self.map_shards(|shard| (shard.events.stats().stored, shard.events.memory_bytes()))
            .into_iter()
            .fold((0, 0), |(events, bytes), (more_events, more_bytes)| {
                (events + more_events, bytes + more_bytes)
            })
    }

    pub fn memory_bytes(&self) -> usize {
        let shards: usize = self
            .shards
            .iter()
            .map(|shard| shard.read().memory_bytes())
            .sum();
        shards + self.identities.len() * 32
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
    all.sort_unstable();
    all.dedup();
    registry
        .order()
        .iter()
        .copied()
        .filter(|id| all.binary_search(id).is_ok())
        .collect()
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

/// Event properties flattened by validation, applied without flattening again.
type PreparedProperties = Vec<(String, crate::events::EventProperty)>;

/// Traits and events moving from an absorbed profile to the survivor of a merge.
struct Mergeable {
    traits: Vec<(crate::ids::ColumnId, TraitValue)>,
    events: crate::events::DetachedEvents,
}

/// The profile card: everything segd holds about a profile, for people and exports.
#[derive(Clone, Debug, Serialize)]
pub struct ProfileCard {
    pub id: String,
    pub user_id: Option<String>,
    pub anonymous_ids: Vec<String>,
    pub traits: serde_json::Map<String, Value>,
    pub segments: Vec<SegmentRef>,
    pub events: Vec<EventSummary>,
    pub recent_events: Vec<RecentEvent>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SegmentRef {
    pub id: SegmentId,
    pub name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct EventSummary {
    pub event: String,
    pub count: u64,
    pub first: String,
    pub last: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecentEvent {
    pub event: String,
    pub timestamp: String,
    pub properties: serde_json::Map<String, Value>,
}

impl Engine {
    /// The profile card (`recent` bounds the number of recent events listed).
    pub fn profile_card(
        &self,
        external_id: &str,
        recent: usize,
    ) -> Result<ProfileCard, EngineError> {
        let profile = self
            .resolve(external_id)
            .ok_or_else(|| EngineError::ProfileNotFound(external_id.to_string()))?;
        let traits = self.traits_of(external_id)?;
        let registry = self.registry.read();
        let shard = self.shards[profile.shard.0 as usize].read();
        let identity = &shard.identities[profile.local.0 as usize];
        let mut segment_ids = Vec::new();
        shard.segments_of(profile.local, &mut segment_ids);
        segment_ids.sort_unstable();
        let segments = segment_ids
            .iter()
            .filter_map(|id| {
                registry.get(*id).map(|d| SegmentRef {
                    id: *id,
                    name: d.name.clone(),
                })
            })
            .collect();
        let (events, recent_events) = self.event_card(&shard, profile.local, recent);
        Ok(ProfileCard {
            id: identity.external_id(),
            user_id: identity.user_id.as_ref().map(|id| id.to_string()),
            anonymous_ids: identity
                .anonymous_ids
                .iter()
                .map(|id| id.to_string())
                .collect(),
            traits,
            segments,
            events,
            recent_events,
        })
    }
}

// Behavioral ingest: events into the shard's event store, then re-evaluation of the
// segments that read the event.
impl Engine {
    fn event_card(
        &self,
        shard: &Shard,
        local: LocalId,
        recent: usize,
    ) -> (Vec<EventSummary>, Vec<RecentEvent>) {
        let mut summary: Vec<EventSummary> = shard
            .events
            .lifetimes(local.0)
            .into_iter()
            .map(|(event, lifetime)| EventSummary {
                event: event.to_string(),
                count: lifetime.count,
                first: format_timestamp(lifetime.first_ms),
                last: format_timestamp(lifetime.last_ms),
            })
            .collect();
        summary.sort_by(|a, b| a.event.cmp(&b.event));
        let recent_events = shard
            .events
            .recent(local.0, recent)
            .into_iter()
            .map(|(event, time_ms, properties)| RecentEvent {
                event: event.to_string(),
                timestamp: format_timestamp(time_ms),
                properties: properties
                    .into_iter()
                    .map(|(name, value)| (name.to_string(), value.to_json()))
                    .collect(),
            })
            .collect();
        (summary, recent_events)
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
    fn track_prepared(
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
    fn remove_created(
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
