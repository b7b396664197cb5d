//! Keeping the numeric columns' sorted range indexes fresh (see `store::column::range`).
//!
//! Who rebuilds: the server's ticker calls [`Engine::maintain_range_indexes`] after each
//! tick (outside the ingest lock), recovery calls it once the snapshot and WAL are
//! loaded, and bulk loads call it when done. Not the query that finds an index stale:
//! a sort of a shard's column is milliseconds, which would land on one unlucky
//! preview's latency and, on a 2-core machine, on everyone else's; a stale index is
//! still exact (its dirty ids are checked one by one) or, past the usable bound, the
//! bit-sliced index answers.

use super::*;
use crate::store::column::{BuiltRange, RangeBuild};

impl Engine {
    /// Rebuilds every numeric column index that is missing or has more than
    /// 1/[`REBUILD_DIRTY_RATIO`] of its values changed since its build. Per shard: the
    /// values are copied under the read lock, sorted with no lock held, and swapped in
    /// under the write lock (microseconds), so neither queries nor ingest wait for a
    /// sort. Returns how many column indexes were installed; 0 at once when another
    /// call is already rebuilding.
    ///
    /// [`REBUILD_DIRTY_RATIO`]: crate::store::column::REBUILD_DIRTY_RATIO
    pub fn maintain_range_indexes(&self) -> usize {
        // Two builds of one column at once could each keep the other's changes clean.
        let Some(_one_at_a_time) = self.range_builds.try_lock() else {
            return 0;
        };
        let mut installed = 0;
        for shard_lock in &self.shards {
            let inputs: Vec<(usize, RangeBuild)> = {
                let shard = shard_lock.read();
                shard
                    .columns
                    .iter()
                    .enumerate()
                    .filter_map(|(index, column)| {
                        let column = column.as_ref()?;
                        if !column.range_needs_build() {
                            return None;
                        }
                        Some((index, column.range_build_input()?))
                    })
                    .collect()
            };
            if inputs.is_empty() {
                continue;
            }
            let built: Vec<(usize, BuiltRange)> = inputs
                .into_iter()
                .map(|(index, input)| (index, input.build()))
                .collect();
            let mut shard = shard_lock.write();
            for (index, built) in built {
                if let Some(Some(column)) = shard.columns.get_mut(index) {
                    installed += usize::from(column.install_range(built));
                }
            }
        }
        installed
    }

    /// Tests and tools: per numeric column of every shard (built, dirty ids), summed as
    /// (columns with an index, columns without, dirty ids in all).
    #[doc(hidden)]
    pub fn range_index_status(&self) -> (usize, usize, u64) {
        let mut status = (0, 0, 0);
        for shard_lock in &self.shards {
            let shard = shard_lock.read();
            for column in shard.columns.iter().flatten() {
                if !matches!(
                    column.trait_type(),
                    TraitType::Integer | TraitType::Float | TraitType::Timestamp
                ) {
                    continue;
                }
                let (built, dirty) = column.range_status();
                if built {
                    status.0 += 1;
                } else {
                    status.1 += 1;
                }
                status.2 += dirty;
            }
        }
        status
    }
}
