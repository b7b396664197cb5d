//! Helpers shared by integration tests. Each test crate includes this module with
//! `mod common;` and uses what it needs (hence `dead_code` is allowed here).
#![allow(dead_code)]

pub mod openapi;
pub mod persist;
pub mod process;
pub mod sdk;
pub mod state;
pub mod strategies;

use std::path::PathBuf;

/// An emptied directory for one test: `segd-<suite>-<test>-<pid>` in the temp directory.
pub fn temp_data_dir(suite: &str, test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("segd-{suite}-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A fresh data directory per call (`segd-<suite>-<pid>-<n>`), removed when dropped: for
/// property tests that open a database per case.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(suite: &str) -> ScratchDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "segd-{suite}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
