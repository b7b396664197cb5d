//! The sharded profile store: columnar traits, identity map, membership storage.
//!
//! Profiles spread over N shards by a hash of the identifier they were first seen with.
//! Each shard holds its profiles' traits column by column (`column`), their identifiers,
//! their segment memberships (a bitmap per segment, plus a sorted list of segment ids per
//! profile so "segments of P" is one read) and their events. A shard is guarded by one
//! `parking_lot::RwLock`; whole-population work takes read locks shard by shard, so
//! ingest into other shards never waits on it.

pub mod column;
pub mod identity_record;
pub mod membership;
pub mod schema;
pub mod shard;
pub mod timers;
pub mod value;

pub use shard::Shard;
