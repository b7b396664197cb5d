//! Segment definitions and the dependency index.
//!
//! The registry maps every trait name, event name and segment to the segments that read
//! it, transitively and in dependency order, so an update to a profile re-evaluates only
//! what it can affect, referenced segments before the segments that reference them.
//! Segment references form a DAG: a definition that would close a cycle is rejected.

use crate::events::NameHasherBuilder;
use crate::ids::SegmentId;
use crate::segment::ast::Rule;
use crate::segment::compile::Condition;
use crate::store::schema::next_generation;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Most segments one engine holds.
pub const MAX_SEGMENTS: usize = 10_000;
/// Longest segment name, in bytes.
pub const MAX_SEGMENT_NAME_BYTES: usize = 200;

#[derive(Clone, Debug)]
pub enum SegmentKind {
    Dynamic {
        rule: Box<Rule>,
        condition: Box<Condition>,
    },
    Static,
}

#[derive(Clone, Debug)]
pub struct SegmentDefinition {
    pub id: SegmentId,
    pub name: String,
    pub description: String,
    pub version: u32,
    pub kind: SegmentKind,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl SegmentDefinition {
    pub fn condition(&self) -> Option<&Condition> {
        match &self.kind {
            SegmentKind::Dynamic { condition, .. } => Some(condition),
            SegmentKind::Static => None,
        }
    }

    pub fn rule(&self) -> Option<&Rule> {
        match &self.kind {
            SegmentKind::Dynamic { rule, .. } => Some(rule),
            SegmentKind::Static => None,
        }
    }

    pub fn is_static(&self) -> bool {
        matches!(self.kind, SegmentKind::Static)
    }
}

/// What a condition reads.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Dependencies {
    pub traits: HashSet<String>,
    pub events: HashSet<String>,
    pub segments: HashSet<SegmentId>,
}

/// Collects the trait names (from the AST, so unknown traits count too), event names
/// and segments a rule reads.
pub fn dependencies(rule: &Rule, condition: &Condition) -> Dependencies {
    let mut found = Dependencies::default();
    rule.walk(&mut |node| match node {
        Rule::Compare { trait_name, .. }
        | Rule::Between { trait_name, .. }
        | Rule::In { trait_name, .. }
        | Rule::Text { trait_name, .. }
        | Rule::Has { trait_name }
        | Rule::Recent { trait_name, .. } => {
            found.traits.insert(trait_name.clone());
        }
        Rule::EventCount { event, .. }
        | Rule::Performed { event, .. }
        | Rule::Aggregate { event, .. } => {
            found.events.insert(event.clone());
        }
        _ => {}
    });
    collect_segments(condition, &mut found.segments);
    found
}

fn collect_segments(condition: &Condition, into: &mut HashSet<SegmentId>) {
    match condition {
        Condition::And(children) | Condition::Or(children) => {
            children.iter().for_each(|c| collect_segments(c, into))
        }
        Condition::Not(child) => collect_segments(child, into),
        Condition::InSegment(id) => {
            into.insert(*id);
        }
        _ => {}
    }
}

#[derive(Debug)]
pub struct Registry {
    /// Changes with every put/remove (see `store::schema::next_generation`).
    generation: u64,
    segments: BTreeMap<SegmentId, Arc<SegmentDefinition>>,
    by_name: HashMap<String, SegmentId>,
    pub(crate) next_id: u32,
    dependencies: HashMap<SegmentId, Dependencies>,
    /// Dynamic segments in dependency order (referenced before referencing).
    order: Vec<SegmentId>,
    /// Affected dynamic segments per trait / event / segment, each list in `order`.
    by_trait: HashMap<String, Vec<SegmentId>, NameHasherBuilder>,
    by_event: HashMap<String, Vec<SegmentId>, NameHasherBuilder>,
    /// `by_event` indexed by the event's process-wide id (`events::names`), so a track
    /// finds its segments without hashing the name.
    by_event_id: Vec<Vec<SegmentId>>,
    by_segment: HashMap<SegmentId, Vec<SegmentId>>,
    time_dependent: Vec<SegmentId>,
    /// `time_dependent` as a flag per segment id (checked for every re-evaluation).
    time_dependent_flags: Vec<bool>,
    /// Position in `order` per segment id (`u32::MAX`: not live), to merge affected
    /// lists without scanning the whole order.
    order_positions: Vec<u32>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            generation: next_generation(),
            segments: BTreeMap::new(),
            by_name: HashMap::new(),
            next_id: 0,
            dependencies: HashMap::new(),
            order: Vec::new(),
            by_trait: HashMap::default(),
            by_event: HashMap::default(),
            by_event_id: Vec::new(),
            by_segment: HashMap::new(),
            time_dependent: Vec::new(),
            time_dependent_flags: Vec::new(),
            order_positions: Vec::new(),
        }
    }
}

impl Registry {
    /// Changes whenever a definition is added, replaced or removed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn get(&self, id: SegmentId) -> Option<&Arc<SegmentDefinition>> {
        self.segments.get(&id)
    }

    pub fn id_of(&self, name: &str) -> Option<SegmentId> {
        self.by_name.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<SegmentDefinition>> {
        self.segments.values()
    }

    /// Dynamic segments in dependency order.
    pub fn order(&self) -> &[SegmentId] {
        &self.order
    }

    /// A segment's position in [`Registry::order`] (`None` when not live).
    pub fn order_position(&self, id: SegmentId) -> Option<u32> {
        self.order_positions
            .get(id.0 as usize)
            .copied()
            .filter(|position| *position != u32::MAX)
    }

    pub fn next_id(&self) -> SegmentId {
        SegmentId(self.next_id)
    }

    /// Segments that read `trait_name`, and their dependents, in dependency order.
    pub fn affected_by_trait(&self, trait_name: &str) -> &[SegmentId] {
        self.by_trait.get(trait_name).map_or(&[], Vec::as_slice)
    }

    pub fn affected_by_event(&self, event: &str) -> &[SegmentId] {
        self.by_event.get(event).map_or(&[], Vec::as_slice)
    }

    /// [`Registry::affected_by_event`] by the event's process-wide id.
    pub fn affected_by_event_id(&self, event: crate::events::names::NameId) -> &[SegmentId] {
        self.by_event_id
            .get(event.0 as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// Segments that (transitively) reference `segment`, in dependency order.
    pub fn dependents_of(&self, segment: SegmentId) -> &[SegmentId] {
        self.by_segment.get(&segment).map_or(&[], Vec::as_slice)
    }

    pub fn time_dependent(&self) -> &[SegmentId] {
        &self.time_dependent
    }

    /// Whether a segment's rule is time-dependent (precomputed; see
    /// [`Condition::is_time_dependent`]).
    pub fn is_time_dependent(&self, segment: SegmentId) -> bool {
        self.time_dependent_flags
            .get(segment.0 as usize)
            .copied()
            .unwrap_or(false)
    }

    pub fn dependencies_of(&self, segment: SegmentId) -> Option<&Dependencies> {
        self.dependencies.get(&segment)
    }

    /// Whether defining `segment` to read `reads` would close a cycle.
    pub fn would_cycle(&self, segment: SegmentId, reads: &HashSet<SegmentId>) -> bool {
        // A cycle exists if some segment we read (transitively) reads us.
        let mut stack: Vec<SegmentId> = reads.iter().copied().collect();
        let mut seen = HashSet::new();
        while let Some(next) = stack.pop() {
            if next == segment {
                return true;
            }
            if seen.insert(next) {
                if let Some(dependencies) = self.dependencies.get(&next) {
                    stack.extend(dependencies.segments.iter().copied());
                }
            }
        }
        false
    }

    /// Inserts or replaces a definition and rebuilds the indexes.
    pub fn put(&mut self, definition: SegmentDefinition) {
        let id = definition.id;
        self.next_id = self.next_id.max(id.0 + 1);
        if let Some(old) = self.segments.get(&id) {
            self.by_name.remove(&old.name);
        }
        self.by_name.insert(definition.name.clone(), id);
        match &definition.kind {
            SegmentKind::Dynamic { rule, condition } => {
                self.dependencies.insert(id, dependencies(rule, condition));
            }
            SegmentKind::Static => {
                self.dependencies.insert(id, Dependencies::default());
            }
        }
        self.segments.insert(id, Arc::new(definition));
        self.generation = next_generation();
        self.rebuild();
    }

    pub fn remove(&mut self, id: SegmentId) -> Option<Arc<SegmentDefinition>> {
        let removed = self.segments.remove(&id)?;
        self.by_name.remove(&removed.name);
        self.dependencies.remove(&id);
        self.generation = next_generation();
        self.rebuild();
        Some(removed)
    }

    /// Segments that reference `id` directly.
    pub fn referenced_by(&self, id: SegmentId) -> Vec<SegmentId> {
        self.dependencies
            .iter()
            .filter(|(_, dependencies)| dependencies.segments.contains(&id))
            .map(|(segment, _)| *segment)
            .collect()
    }

    fn rebuild(&mut self) {
        // Topological order by depth-first search from each segment over what it reads.
        let mut order = Vec::with_capacity(self.segments.len());
        let mut visited = HashSet::new();
        for id in self.segments.keys() {
            self.visit(*id, &mut visited, &mut order);
        }
        let position: HashMap<SegmentId, usize> = order
            .iter()
            .enumerate()
            .map(|(index, id)| (*id, index))
            .collect();
        self.order_positions = Vec::new();
        for (index, id) in order.iter().enumerate() {
            let slot = id.0 as usize;
            if self.order_positions.len() <= slot {
                self.order_positions.resize(slot + 1, u32::MAX);
            }
            self.order_positions[slot] = index as u32;
        }
        // Direct dependents per segment, then transitive closure in order.
        let mut direct: HashMap<SegmentId, Vec<SegmentId>> = HashMap::new();
        for (segment, dependencies) in &self.dependencies {
            for read in &dependencies.segments {
                direct.entry(*read).or_default().push(*segment);
            }
        }
        let closure = |start: &[SegmentId]| -> Vec<SegmentId> {
            let mut seen: HashSet<SegmentId> = HashSet::new();
            let mut stack: Vec<SegmentId> = start.to_vec();
            while let Some(next) = stack.pop() {
                if seen.insert(next) {
                    if let Some(more) = direct.get(&next) {
                        stack.extend(more.iter().copied());
                    }
                }
            }
            let mut list: Vec<SegmentId> = seen.into_iter().collect();
            list.sort_by_key(|id| position.get(id).copied().unwrap_or(usize::MAX));
            list
        };
        let mut by_trait: HashMap<String, Vec<SegmentId>> = HashMap::new();
        let mut by_event: HashMap<String, Vec<SegmentId>> = HashMap::new();
        let mut time_dependent = Vec::new();
        for (segment, dependencies) in &self.dependencies {
            for name in &dependencies.traits {
                by_trait.entry(name.clone()).or_default().push(*segment);
            }
            for name in &dependencies.events {
                by_event.entry(name.clone()).or_default().push(*segment);
            }
            if self.segments[segment]
                .condition()
                .is_some_and(Condition::is_time_dependent)
            {
                time_dependent.push(*segment);
            }
        }
        self.by_trait = by_trait
            .into_iter()
            .map(|(name, start)| (name, closure(&start)))
            .collect();
        self.by_event = by_event
            .into_iter()
            .map(|(name, start)| (name, closure(&start)))
            .collect();
        self.by_event_id = Vec::new();
        for (name, segments) in &self.by_event {
            // A name the full process table cannot hold is found by name instead.
            if let Some(id) = crate::events::names::intern(name) {
                let index = id.0 as usize;
                if self.by_event_id.len() <= index {
                    self.by_event_id.resize_with(index + 1, Vec::new);
                }
                self.by_event_id[index] = segments.clone();
            }
        }
        self.by_segment = self
            .segments
            .keys()
            .map(|id| {
                let start = direct.get(id).cloned().unwrap_or_default();
                (*id, closure(&start))
            })
            .collect();
        time_dependent.sort_by_key(|id| position.get(id).copied().unwrap_or(usize::MAX));
        self.time_dependent_flags = Vec::new();
        for segment in &time_dependent {
            let index = segment.0 as usize;
            if self.time_dependent_flags.len() <= index {
                self.time_dependent_flags.resize(index + 1, false);
            }
            self.time_dependent_flags[index] = true;
        }
        self.time_dependent = time_dependent;
        self.order = order
            .into_iter()
            .filter(|id| !self.segments[id].is_static())
            .collect();
    }

    fn visit(&self, id: SegmentId, visited: &mut HashSet<SegmentId>, order: &mut Vec<SegmentId>) {
        if !visited.insert(id) {
            return;
        }
        if let Some(dependencies) = self.dependencies.get(&id) {
            let mut reads: Vec<SegmentId> = dependencies.segments.iter().copied().collect();
            reads.sort();
            for read in reads {
                if self.segments.contains_key(&read) {
                    self.visit(read, visited, order);
                }
            }
        }
        order.push(id);
    }
}
