//! The global trait schema: trait name → column id and type, shared by all shards so a
//! rule is validated once against one set of types.

use crate::ids::ColumnId;
use crate::store::value::TraitType;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// A process-wide counter handing out generations: every change to a schema or a
/// segment registry (and every new one) takes a fresh value, so a generation names one
/// state for good, even across wholesale replacement (snapshot load). Compiled-plan
/// caches key on it.
pub fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Most distinct trait names the store accepts.
pub const MAX_COLUMNS: usize = 10_000;

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    pub trait_type: TraitType,
}

#[derive(Clone, Debug)]
pub struct Schema {
    /// xxh3 (seeded per schema) instead of SipHash: looked up for every trait of
    /// every identify.
    by_name: HashMap<String, ColumnId, crate::events::NameHasherBuilder>,
    columns: Vec<ColumnInfo>,
    generation: u64,
}

impl Default for Schema {
    fn default() -> Self {
        Schema {
            by_name: HashMap::default(),
            columns: Vec::new(),
            generation: next_generation(),
        }
    }
}

impl Schema {
    /// Changes whenever a column is added or retyped (see [`next_generation`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn lookup(&self, name: &str) -> Option<(ColumnId, TraitType)> {
        self.by_name
            .get(name)
            .map(|id| (*id, self.columns[id.0 as usize].trait_type))
    }

    pub fn info(&self, id: ColumnId) -> &ColumnInfo {
        &self.columns[id.0 as usize]
    }

    pub fn columns(&self) -> impl Iterator<Item = (ColumnId, &ColumnInfo)> {
        self.columns
            .iter()
            .enumerate()
            .map(|(index, info)| (ColumnId(index as u32), info))
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Adds a column; the caller checked the name is new and the limit not reached.
    pub fn add(&mut self, name: &str, trait_type: TraitType) -> ColumnId {
        let id = ColumnId(self.columns.len() as u32);
        self.columns.push(ColumnInfo {
            name: name.to_string(),
            trait_type,
        });
        self.by_name.insert(name.to_string(), id);
        self.generation = next_generation();
        id
    }

    /// Records that an integer column now holds floats.
    pub fn widen_to_float(&mut self, id: ColumnId) {
        self.columns[id.0 as usize].trait_type = TraitType::Float;
        self.generation = next_generation();
    }
}
