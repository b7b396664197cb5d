//! Preparing a batch of messages: the pure step before applying.
//!
//! `prepare_batch` checks a whole batch against the state it will be applied to and
//! resolves everything that can fail (identifiers, trait types and coercions, limits,
//! event and property names, room in the name tables) **before anything changes**.
//! Traits are checked against the schema *as it will stand after the earlier messages
//! of the batch* (a [`SchemaOverlay`] carries the traits the batch creates or widens),
//! so a batch that introduces a trait with two types is refused whole instead of
//! failing half-way. Applying a prepared batch then cannot fail on input: a batch is
//! all-or-nothing in memory, in the change log and in the WAL.
//!
//! Prepare reads the engine without locking out readers; it is exact only while no
//! other mutation runs between prepare and apply, which the write path guarantees
//! (one applier; see `crate::write`).

use super::*;
use std::collections::{HashMap, HashSet};

/// Validated trait updates for one message, ready to apply.
#[derive(Debug)]
pub(crate) struct PreparedTraits {
    /// (trait name, column type to create/use, value or removal)
    pub(super) assignments: Vec<(String, TraitType, Option<TraitValue>)>,
    /// Integer traits this message widens to float.
    pub(super) widen: Vec<String>,
}

/// Event properties flattened once, applied without flattening again; names and
/// strings borrow from the message (no copy before the shard's arena).
pub(crate) type PreparedProperties<'a> = crate::events::BorrowedProperties<'a>;

/// What applying one message of a prepared batch does.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    Identify(PreparedTraits),
    Track(PreparedProperties<'a>),
    Alias,
    /// Names an erased identifier: dropped and counted.
    Suppressed,
    /// Its `messageId` was seen within the de-duplication window (or earlier in the batch).
    Duplicate,
}

/// A batch checked against the engine: one step per message.
#[derive(Debug)]
pub struct PreparedBatch<'a> {
    pub(super) steps: Vec<Step<'a>>,
}

impl PreparedBatch<'_> {
    /// Messages that will be applied (neither suppressed nor duplicates).
    pub fn applied_len(&self) -> usize {
        self.steps
            .iter()
            .filter(|step| !matches!(step, Step::Suppressed | Step::Duplicate))
            .count()
    }

    /// Whether any message of the batch names an erased identifier.
    pub fn has_suppressed(&self) -> bool {
        self.steps
            .iter()
            .any(|step| matches!(step, Step::Suppressed))
    }

    /// Which messages will be applied (for logging only those).
    pub fn kept(&self) -> impl Iterator<Item = bool> + '_ {
        self.steps
            .iter()
            .map(|step| !matches!(step, Step::Suppressed))
    }
}

/// The schema as the batch will leave it: traits created or widened by earlier
/// messages of the batch.
#[derive(Clone, Debug, Default)]
pub(super) struct SchemaOverlay {
    types: HashMap<String, TraitType, crate::events::NameHasherBuilder>,
    new_names: usize,
    /// Largest integer magnitude the batch writes per trait (a later widening to float
    /// must keep these exact too).
    largest_integer: HashMap<String, u64, crate::events::NameHasherBuilder>,
    /// For one message alone (no later message reads the overlay): `absorb` records
    /// nothing, so a lone identify allocates no overlay entries.
    single: bool,
}

impl SchemaOverlay {
    /// An overlay for a single message (see `single`).
    pub(super) fn single() -> SchemaOverlay {
        SchemaOverlay {
            single: true,
            ..SchemaOverlay::default()
        }
    }

    fn lookup(&self, schema: &Schema, name: &str) -> Option<TraitType> {
        self.types
            .get(name)
            .copied()
            .or_else(|| schema.lookup(name).map(|(_, trait_type)| trait_type))
    }

    /// Records what a prepared message does to the schema.
    fn absorb(&mut self, schema: &Schema, prepared: &PreparedTraits) {
        if self.single {
            return;
        }
        for (name, trait_type, value) in &prepared.assignments {
            let Some(value) = value else { continue };
            if self.lookup(schema, name).is_none() {
                self.types.insert(name.clone(), *trait_type);
                self.new_names += 1;
            }
            if let TraitValue::Integer(integer) = value {
                // No key allocation when the trait is already there.
                match self.largest_integer.get_mut(name.as_str()) {
                    Some(largest) => *largest = (*largest).max(integer.unsigned_abs()),
                    None => {
                        self.largest_integer
                            .insert(name.clone(), integer.unsigned_abs());
                    }
                }
            }
        }
        for name in &prepared.widen {
            self.types.insert(name.clone(), TraitType::Float);
        }
    }
}

/// Wraps an error with the message's position when the batch has more than one.
fn at(index: usize, batch_len: usize) -> impl Fn(EngineError) -> EngineError {
    move |error| {
        if batch_len > 1 {
            EngineError::InBatch {
                index,
                source: Box::new(error),
            }
        } else {
            error
        }
    }
}

impl Engine {
    /// Checks a whole batch against the engine as it stands and as the batch's earlier
    /// messages will leave it; changes nothing. See the module documentation.
    pub fn prepare_batch<'a>(
        &self,
        messages: &'a [Message],
    ) -> Result<PreparedBatch<'a>, EngineError> {
        let mut overlay = SchemaOverlay::default();
        let mut batch_ids: HashSet<&str> = HashSet::new();
        let mut event_names: HashSet<&str> = HashSet::new();
        let mut property_names: HashSet<&str> = HashSet::new();
        let mut steps = Vec::with_capacity(messages.len());
        let seen = self.seen_messages.lock();
        for (index, message) in messages.iter().enumerate() {
            let wrap = at(index, messages.len());
            let skipped = if self.is_suppressed(message) {
                Some(Step::Suppressed)
            } else {
                message.message_id.as_deref().and_then(|id| {
                    (seen.0.contains(&message_hash(id)) || !batch_ids.insert(id))
                        .then_some(Step::Duplicate)
                })
            };
            // A skipped message is still validated, but against a scratch copy: the
            // schema changes it would make are not made, so later messages must not
            // count on them (e.g. a widening only a duplicate would have caused).
            let step = match skipped {
                Some(skipped) => {
                    self.prepare_message(message, &mut overlay.clone())
                        .map_err(&wrap)?;
                    skipped
                }
                None => self.prepare_message(message, &mut overlay).map_err(&wrap)?,
            };
            if let (Step::Track(_), MessageKind::Track { event, .. }) = (&step, &message.kind) {
                event_names.insert(event);
            }
            steps.push(step);
        }
        drop(seen);
        for step in &steps {
            if let Step::Track(properties) = step {
                property_names.extend(properties.iter().map(|(name, _)| name.as_ref()));
            }
        }
        // Name tables are per shard and a message's shard is known only when applied
        // (merges move profiles): the batch must fit every shard's table.
        if !event_names.is_empty() {
            let fits = self.shards.iter().all(|shard| {
                shard
                    .read()
                    .events
                    .has_room_for_names(&event_names, &property_names)
            });
            if !fits {
                return Err(EngineError::TooManyEventNames);
            }
        }
        Ok(PreparedBatch { steps })
    }

    /// Checks one message (against the overlay) and returns what applying it does.
    fn prepare_message<'a>(
        &self,
        message: &'a Message,
        overlay: &mut SchemaOverlay,
    ) -> Result<Step<'a>, EngineError> {
        if message.user_id.is_none() && message.anonymous_id.is_none() {
            return Err(EngineError::MissingIdentifier);
        }
        for identifier in message.user_id.iter().chain(message.anonymous_id.iter()) {
            Self::check_identifier(identifier)?;
        }
        match &message.kind {
            MessageKind::Identify { traits } => {
                let prepared = self.prepare_traits(traits, overlay)?;
                Ok(Step::Identify(prepared))
            }
            MessageKind::Track { event, properties } => {
                crate::events::check_event_name(event)?;
                Ok(Step::Track(crate::events::prepare_properties_borrowed(
                    properties,
                )?))
            }
            MessageKind::Alias { previous_id } => {
                if message.user_id.is_none() {
                    return Err(EngineError::MissingIdentifier);
                }
                Self::check_identifier(previous_id)?;
                Ok(Step::Alias)
            }
        }
    }

    /// Validates traits against the schema as the overlay extends it, without changing
    /// anything; on success the overlay takes in what the message will do.
    pub(super) fn prepare_traits(
        &self,
        traits: &serde_json::Map<String, Value>,
        overlay: &mut SchemaOverlay,
    ) -> Result<PreparedTraits, EngineError> {
        let flattened = flatten_traits(traits)?;
        let schema = self.schema.read();
        let mut assignments = Vec::with_capacity(flattened.len());
        let mut widen = Vec::new();
        let mut new_names = 0;
        for (name, value) in flattened {
            let known = overlay.lookup(&schema, &name);
            let Some(value) = value else {
                assignments.push((name, known.unwrap_or(TraitType::String), None));
                continue;
            };
            match known {
                None => {
                    new_names += 1;
                    let trait_type = value.trait_type();
                    assignments.push((name, trait_type, Some(value)));
                }
                Some(TraitType::Integer) if matches!(value, TraitValue::Float(f) if f.fract() != 0.0) =>
                {
                    widen.push(name.clone());
                    assignments.push((name, TraitType::Float, Some(value)));
                }
                Some(column_type) => {
                    let original = lookup_original(traits, &name);
                    let coerced = match original {
                        Some(original) => coerce_json(&name, original, value, column_type)?,
                        None => crate::store::value::coerce(&name, value, column_type)?,
                    };
                    assignments.push((name, column_type, Some(coerced)));
                }
            }
        }
        if schema.len() + overlay.new_names + new_names > MAX_COLUMNS {
            let name = assignments.first().map(|a| a.0.clone()).unwrap_or_default();
            return Err(EngineError::TooManyTraits(name));
        }
        // A widening must keep every stored integer exact, and every integer the batch
        // wrote before it.
        for name in &widen {
            let stored = schema.lookup(name).map_or(0, |(id, _)| {
                self.shards
                    .iter()
                    .filter_map(|shard| shard.read().column(id).map(|c| c.max_integer_magnitude()))
                    .max()
                    .unwrap_or(0)
            });
            let largest = stored.max(overlay.largest_integer.get(name).copied().unwrap_or(0));
            if largest > 1 << 53 {
                return Err(ValueError::NumberOutOfRange {
                    name: name.clone(),
                    value: largest.to_string(),
                }
                .into());
            }
        }
        let prepared = PreparedTraits { assignments, widen };
        overlay.absorb(&schema, &prepared);
        Ok(prepared)
    }

    /// Whether a message names an erased identifier (its userId, anonymousId, or an
    /// alias's previousId).
    pub(crate) fn is_suppressed(&self, message: &Message) -> bool {
        if self.suppressed.is_empty() {
            return false;
        }
        let suppressed = |key: String| self.suppressed.contains(&identity_hash(&key));
        message
            .user_id
            .iter()
            .any(|id| suppressed(format!("u:{id}")))
            || message
                .anonymous_id
                .iter()
                .any(|id| suppressed(format!("a:{id}")))
            || match &message.kind {
                MessageKind::Alias { previous_id } => {
                    suppressed(format!("u:{previous_id}")) || suppressed(format!("a:{previous_id}"))
                }
                _ => false,
            }
    }
}
