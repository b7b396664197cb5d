//! Durable "erased since the last snapshot" state: a marker file written (and synced)
//! before an erasure is logged and removed only after a snapshot's clean-up deleted
//! every older file. After a crash its presence tells the next snapshot to keep only
//! itself and delete older snapshots, WAL segments and `*.damaged` files.

use crate::persist::wal::sync_directory;
use std::path::Path;

/// The marker's file name in the data directory.
pub const ERASURE_MARKER: &str = "erasure-pending";

/// Whether an erasure is still waiting for a clean-up.
pub fn pending(data_dir: &Path) -> bool {
    data_dir.join(ERASURE_MARKER).exists()
}

/// Makes the marker durable (no-op when it already exists).
pub fn mark(data_dir: &Path) -> std::io::Result<()> {
    let path = data_dir.join(ERASURE_MARKER);
    if path.exists() {
        return Ok(());
    }
    let file = crate::persist::files::create_private_file(&path)?;
    file.sync_all()?;
    sync_directory(data_dir)
}

/// Removes the marker once older files are gone.
pub fn clear(data_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(data_dir.join(ERASURE_MARKER)) {
        Ok(()) => sync_directory(data_dir),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}
