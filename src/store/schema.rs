//! The global trait schema: trait name → column id and type, shared by all shards so a
//! rule is validated once against one set of types.

use crate::ids::ColumnId;
use crate::store::value::TraitType;
use std::collections::HashMap;

/// Most distinct trait names the store accepts.
pub const MAX_COLUMNS: usize = 10_000;

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    pub trait_type: TraitType,
}

#[derive(Clone, Debug, Default)]
pub struct Schema {
    by_name: HashMap<String, ColumnId>,
    columns: Vec<ColumnInfo>,
}

impl Schema {
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
        id
    }

    /// Records that an integer column now holds floats.
    pub fn widen_to_float(&mut self, id: ColumnId) {
        self.columns[id.0 as usize].trait_type = TraitType::Float;
    }
}
