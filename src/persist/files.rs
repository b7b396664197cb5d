//! Owner-only files and the data directory's lock.
//!
//! Every directory segd creates is 0700 and every file 0600 (on Unix), whatever the
//! process umask: the data directory holds every profile. An existing data directory
//! readable by others is narrowed to 0700 when opened.
//!
//! [`DataDirLock`]: one process per data directory. A second `segd serve` or `segd
//! import` would truncate the live WAL segment and delete snapshots, so the first takes
//! an exclusive lock on `<data dir>/segd.lock` (an OS file lock, released when the
//! process ends, even by a crash) and writes its pid there; the second exits naming it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "segd.lock";

/// Creates a directory (and missing parents) readable only by its owner.
pub fn create_private_dir_all(path: &Path) -> std::io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Options that create a file readable and writable only by its owner.
pub fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Creates (or truncates) a file readable only by its owner, for writing.
pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    private_file_options()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
}

/// Creates the data directory owner-only, or narrows an existing one to 0700 (its
/// older files then cannot be reached by others either). Returns whether it narrowed.
pub fn secure_data_dir(path: &Path) -> std::io::Result<bool> {
    create_private_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{dir} is in use by another segd process (pid {pid}); stop it first, or use another --data-dir", dir = .dir.display(), pid = .holder.as_deref().unwrap_or("unknown"))]
    Held {
        dir: PathBuf,
        /// The pid written by the holder, when readable.
        holder: Option<String>,
    },
    #[error("cannot lock {path}: {error}", path = .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// An exclusive lock on a data directory, held until dropped (or the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Creates the data directory owner-only if needed and locks it, or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |error| LockError::Io {
            path: path.clone(),
            error,
        };
        if secure_data_dir(data_dir).map_err(io)? {
            tracing::warn!(dir = %data_dir.display(), "data directory was readable by others; narrowed to 0700");
        }
        let mut file = private_file_options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim().to_string();
                return Err(LockError::Held {
                    dir: data_dir.to_path_buf(),
                    holder: (!holder.is_empty()).then_some(holder),
                });
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(io(error)),
        }
        // Ours now: record the pid for the next process's message.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(DataDirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("segd-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn second_lock_is_refused_with_the_holders_pid() {
        let dir = scratch("lock");
        let first = DataDirLock::acquire(&dir).unwrap();
        let error = DataDirLock::acquire(&dir).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(first);
        let again = DataDirLock::acquire(&dir).unwrap();
        assert!(again.path().ends_with(LOCK_FILE));
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn directories_and_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("modes");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(
            secure_data_dir(&dir).unwrap(),
            "a 0755 directory is narrowed"
        );
        let nested = dir.join("a/b");
        create_private_dir_all(&nested).unwrap();
        create_private_file(&nested.join("f")).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&nested.join("f")), 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
