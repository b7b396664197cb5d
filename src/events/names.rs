//! Process-wide ids for event and property names, so compiled rules carry ids instead
//! of strings (issue 9 item 5).
//!
//! Each shard's [`super::EventStore`] interns names into its own dense per-shard ids
//! (they are what its records and snapshots hold). A rule, though, is compiled once for
//! every shard, so it cannot hold a per-shard id: it holds a [`NameId`] from this
//! table instead, and each store keeps a `NameId → local id` vector, filled when the
//! store interns a name. Resolving a compiled name in a shard is then one vector read,
//! with no string hashing per evaluation.
//!
//! Compiling a rule interns its names here even when no shard has seen them yet: the
//! id exists from then on, and the first event that brings the name into a shard
//! records the mapping, so the compiled rule starts matching without a recompile.
//!
//! The table only grows (ids are never reused, so a stale id can never name another
//! string) and is bounded by [`MAX_NAMES`]; past the bound a name gets no id and the
//! code falls back to looking it up by string per shard (the pre-ids path), which
//! stays correct.

use super::NameHasherBuilder;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Most names the process-wide table holds (16 shards × the per-shard limits of event
/// and property names would be ~2M; rules add a few).
pub const MAX_NAMES: usize = 1 << 22;

/// A process-wide name id (event and property names share one table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameId(pub u32);

#[derive(Default)]
struct Table {
    ids: HashMap<Box<str>, NameId, NameHasherBuilder>,
}

fn table() -> &'static RwLock<Table> {
    static TABLE: OnceLock<RwLock<Table>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// The id of `name`, created when new; `None` only when the table is full and the name
/// is not in it.
pub fn intern(name: &str) -> Option<NameId> {
    if let Some(id) = table().read().ids.get(name) {
        return Some(*id);
    }
    let mut table = table().write();
    if let Some(id) = table.ids.get(name) {
        return Some(*id);
    }
    if table.ids.len() >= MAX_NAMES {
        return None;
    }
    let id = NameId(table.ids.len() as u32);
    table.ids.insert(name.into(), id);
    Some(id)
}

/// The id of `name` if it has one (never creates).
pub fn lookup(name: &str) -> Option<NameId> {
    table().read().ids.get(name).copied()
}

/// Sentinel in the stores' `NameId → local id` vectors.
pub(crate) const NO_LOCAL: u32 = u32::MAX;

/// Sets `map[global] = local`, growing the vector with [`NO_LOCAL`].
pub(crate) fn map_local(map: &mut Vec<u32>, global: NameId, local: u32) {
    let index = global.0 as usize;
    if map.len() <= index {
        map.resize(index + 1, NO_LOCAL);
    }
    map[index] = local;
}

/// `map[global]` unless absent.
pub(crate) fn local_of(map: &[u32], global: NameId) -> Option<u32> {
    map.get(global.0 as usize)
        .copied()
        .filter(|local| *local != NO_LOCAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_shared() {
        let a = intern("names_test_event_a").unwrap();
        let b = intern("names_test_event_b").unwrap();
        assert_ne!(a, b);
        assert_eq!(intern("names_test_event_a"), Some(a));
        assert_eq!(lookup("names_test_event_b"), Some(b));
        assert_eq!(lookup("names_test_never_interned"), None);
    }

    #[test]
    fn local_maps() {
        let mut map = Vec::new();
        map_local(&mut map, NameId(3), 7);
        assert_eq!(local_of(&map, NameId(3)), Some(7));
        assert_eq!(local_of(&map, NameId(2)), None);
        assert_eq!(local_of(&map, NameId(99)), None);
    }
}
