//! Newtype identifiers used across the engine.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Index of a shard in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShardId(pub u16);

/// Dense per-shard profile number. Freed numbers are reused after every trace of the old
/// profile is cleared, so bitmaps stay compact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LocalId(pub u32);

/// Where a profile lives: its shard and its dense id inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProfileRef {
    pub shard: ShardId,
    pub local: LocalId,
}

impl ProfileRef {
    /// A single sortable number (shard in the high bits), used for cursors and stable
    /// member order.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.shard.0) << 32) | u64::from(self.local.0)
    }

    pub fn from_u64(value: u64) -> Self {
        ProfileRef {
            shard: ShardId((value >> 32) as u16),
            local: LocalId(value as u32),
        }
    }
}

/// A segment's stable id.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub struct SegmentId(pub u32);

impl fmt::Display for SegmentId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// A trait column's id in the global schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ColumnId(pub u32);
