//! The consumer libraries' own suites (`clients/python`, `clients/typescript`), run as
//! part of `cargo test` against this build's `segd` binary.
//!
//! `typescript_generated_client` generates a client from this build's OpenAPI document
//! (`segd openapi` → openapi-typescript) and makes typed calls with it (openapi-fetch)
//! against a real server (`clients/typescript/openapi/`).
//!
//! Each suite starts real `segd serve` processes on 127.0.0.1 (see their harnesses) and
//! checks change-feed consumption, membership, retries and webhook signatures. Their
//! dependencies come from the registries: `.ci/run` creates `clients/python/.venv` (pytest)
//! and `clients/typescript/node_modules` (`npm ci`). Without them a suite is skipped with
//! a note, except under CI (`CI` set), where a missing dependency is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// Skips (outside CI) or fails (under CI) when a suite's dependencies are missing.
fn missing(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is required under CI (.ci/run installs it)"
    );
    eprintln!("SKIPPED: {what} is not installed (run .ci/run once to install it)");
}

fn run(mut command: Command, suite: &str) {
    command.env("SEGD_BIN", env!("CARGO_BIN_EXE_segd"));
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{suite}: cannot start: {error}"));
    assert!(
        output.status.success(),
        "{suite} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn python_client_suite() {
    let dir = clients_dir().join("python");
    let python = dir.join(".venv/bin/python");
    let has_pytest = python.exists()
        && Command::new(&python)
            .args(["-c", "import pytest"])
            .output()
            .is_ok_and(|output| output.status.success());
    if !has_pytest {
        return missing("clients/python/.venv with pytest");
    }
    let mut command = Command::new(python);
    command.args(["-m", "pytest", "-q"]).current_dir(&dir);
    run(command, "clients/python (pytest)");
}

#[test]
fn typescript_client_suite() {
    let dir = clients_dir().join("typescript");
    let has_npm = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_npm || !dir.join("node_modules/typescript").exists() {
        return missing("Node.js with clients/typescript/node_modules (npm ci)");
    }
    let mut command = Command::new("npm");
    command.args(["test", "--silent"]).current_dir(&dir);
    run(command, "clients/typescript (npm test)");
}

#[test]
fn typescript_generated_client() {
    let dir = clients_dir().join("typescript");
    let has_npm = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    let installed = ["typescript", "openapi-typescript", "openapi-fetch"]
        .iter()
        .all(|package| dir.join("node_modules").join(package).exists());
    if !has_npm || !installed {
        return missing(
            "Node.js with clients/typescript/node_modules incl. openapi-typescript (npm ci)",
        );
    }
    let mut command = Command::new("npm");
    command
        .args(["run", "test:openapi", "--silent"])
        .current_dir(&dir);
    run(command, "clients/typescript (npm run test:openapi)");
}
