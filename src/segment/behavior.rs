// TEMPORARY STUB (not committed)
use crate::ids::LocalId;
use crate::segment::compile::EventCondition;
use crate::store::Shard;
use roaring::RoaringBitmap;
pub fn matching(_c: &EventCondition, _s: &Shard, _u: &RoaringBitmap, _n: i64) -> RoaringBitmap {
    RoaringBitmap::new()
}
pub fn matches(_c: &EventCondition, _s: &Shard, _l: LocalId, _n: i64) -> bool {
    false
}
pub fn next_change_after(_c: &EventCondition, _s: &Shard, _l: LocalId, _n: i64) -> Option<i64> {
    None
}
