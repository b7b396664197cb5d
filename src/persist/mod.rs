//! Durability: write-ahead log, snapshots, recovery and inspection.

pub mod format;
pub mod record;
pub mod wal;
