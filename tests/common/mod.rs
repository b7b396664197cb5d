//! Helpers shared by integration tests. Each test crate includes this module with
//! `mod common;` and uses what it needs (hence `dead_code` is allowed here).
#![allow(dead_code)]

pub mod persist;
pub mod process;
pub mod sdk;
pub mod strategies;

use std::path::PathBuf;

/// An emptied directory for one test: `segd-<suite>-<test>-<pid>` in the temp directory.
pub fn temp_data_dir(suite: &str, test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("segd-{suite}-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
