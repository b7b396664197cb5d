//! Read-only memory maps of snapshot files: the only module allowed `unsafe`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::path::Path;

/// A read-only mapping of a whole file (empty files are not mapped).
#[derive(Debug)]
pub struct MappedFile {
    map: Option<memmap2::Mmap>,
}

impl MappedFile {
    pub fn open(path: &Path) -> io::Result<MappedFile> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(MappedFile { map: None });
        }
        // SAFETY: mapping a file is unsound only if the file is changed or truncated
        // while mapped. segd writes snapshot files once under a temporary name, renames
        // them into place and never modifies them afterwards (they are only deleted,
        // which keeps the mapped pages valid), and a map lives only while one snapshot
        // is loaded or inspected. Other processes writing into the data directory are
        // outside what segd supports (documented in snapshots/README.md).
        // `populate` pre-faults the whole file in one call (MAP_POPULATE): a snapshot is
        // read completely, and one fault per 4 KiB page cost ~15% of a 1M-profile load.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
        Ok(MappedFile { map: Some(map) })
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
