//! `segd --log-format json serve --demo` as a real process with stderr piped: every line it
//! writes up to "ready" (the open-keys warning, recovery, demo load, the ready banner) is
//! one JSON object with a timestamp, level and message, and no progress bar is drawn
//! because stderr is not a terminal. Bounded: every wait has a deadline.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn json_logs_cover_start_up_and_no_bars_without_a_terminal() {
    let address = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("segd-cli-logging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_segd"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--demo",
            "--demo-profiles",
            "500",
        ])
        .args(["--listen", &address.to_string(), "--shards", "2"])
        .arg("--data-dir")
        .arg(&dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    let mut ready = false;
    while !ready {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = received.recv_timeout(left) else {
            break;
        };
        ready = line.contains("is ready on");
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ready, "no ready banner within the deadline: {seen:#?}");

    let mut messages = Vec::new();
    for line in &seen {
        assert!(!line.contains('\u{1b}'), "terminal escape codes: {line}");
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"));
        assert!(value["timestamp"].is_string(), "{line}");
        assert!(value["level"].is_string(), "{line}");
        messages.push(
            value["fields"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    let has = |needle: &str| messages.iter().any(|message| message.contains(needle));
    assert!(
        has("running OPEN"),
        "open-keys warning missing: {messages:#?}"
    );
    assert!(has("recovered"), "recovery report missing: {messages:#?}");
    assert!(has("demo profiles loaded"), "{messages:#?}");
    assert!(has("is ready on"), "{messages:#?}");
}
