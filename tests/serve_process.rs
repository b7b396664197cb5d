//! `segd serve` as a real process on 127.0.0.1 with a data directory: writes through
//! HTTP are durable across a graceful restart (SIGTERM → final snapshot → start again),
//! the server's ticker applies time-driven changes on its own within about a second of
//! their due time, `--demo` loads only into an empty data directory, and `segd inspect`
//! verifies the directory afterwards. Bounded: every wait has a deadline.

mod common;

use common::process::{http_json, ServeProcess};
use common::temp_data_dir;
use serde_json::{json, Value};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-secret";
const WRITE: &str = "write-secret";

struct Server {
    process: ServeProcess,
}

impl std::ops::Deref for Server {
    type Target = ServeProcess;

    fn deref(&self) -> &ServeProcess {
        &self.process
    }
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let args = [
            "--admin-key",
            ADMIN,
            "--read-key",
            "read-secret",
            "--write-key",
            WRITE,
            "--shards",
            "2",
            "--wal-fsync",
            "always",
        ];
        let process = ServeProcess::spawn(dir, &args, |command| {
            command
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        });
        let server = Server { process };
        server.wait_ready(|_| matches!(server.request("GET", "/readyz", None, None), Ok((200, _))));
        server
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        authorization: Option<String>,
        body: Option<&Value>,
    ) -> std::io::Result<(u16, Value)> {
        http_json(
            self.address,
            method,
            path,
            authorization.as_deref(),
            body,
            Duration::from_secs(10),
        )
    }

    fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.request(method, path, Some(format!("Bearer {ADMIN}")), body)
            .unwrap()
    }

    fn ingest(&self, path: &str, body: &Value) -> (u16, Value) {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{WRITE}:"));
        self.request("POST", path, Some(format!("Basic {basic}")), Some(body))
            .unwrap()
    }

    /// SIGTERM, then wait for a clean exit (graceful shutdown writes the final snapshot).
    fn stop(mut self) {
        match self.process.terminate() {
            Some(status) => assert!(status.success(), "segd exited with {status}"),
            None => {
                let _ = self.process.child.kill();
                panic!("segd did not stop within 30 s of SIGTERM");
            }
        }
    }
}

fn iso(offset_ms: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    segd::store::value::format_timestamp(now + offset_ms)
}

#[test]
fn writes_survive_restart_and_ticker_applies_time_driven_changes() {
    let dir = temp_data_dir("serve", "restart");
    let server = Server::start(&dir, &[]);
    let (status, _) = server.admin(
        "POST",
        "/v1/segments",
        Some(&json!({"name": "buyers", "rule": "did \"order_completed\" where amount > 10 at least 2 times in last 30 days"})),
    );
    assert_eq!(status, 201);
    // Member while the trial end is less than a minute ahead; leaves when it passes.
    let (status, _) = server.admin(
        "POST",
        "/v1/segments",
        Some(&json!({"name": "trial_ending", "rule": "trial_ends_at within next 1 minutes"})),
    );
    assert_eq!(status, 201);
    let batch = json!({"batch": [
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro", "trial_ends_at": iso(2_500)}},
        {"type": "track", "userId": "u1", "event": "order_completed", "properties": {"amount": 25}},
        {"type": "track", "userId": "u1", "event": "order_completed", "properties": {"amount": 40}, "messageId": "m-2"},
        {"type": "page", "anonymousId": "a1", "name": "Home", "properties": {"url": "https://example.com"}},
    ]});
    let (status, answer) = server.ingest("/v1/batch", &batch);
    assert_eq!((status, answer), (200, json!({"success": true})));
    let (_, segments) = server.admin("GET", "/v1/profiles/u1/segments", None);
    let names = segments.to_string();
    assert!(
        names.contains("buyers") && names.contains("trial_ending"),
        "{segments}"
    );

    // The ticker (not a request) moves u1 out of trial_ending after the due time.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, segments) = server.admin("GET", "/v1/profiles/u1/segments", None);
        if !segments.to_string().contains("trial_ending") {
            break;
        }
        assert!(Instant::now() < deadline, "time-driven exit never applied");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, changes) = server.admin("GET", "/v1/changes?after=0&limit=100", None);
    assert!(changes.to_string().contains("\"time\""), "{changes}");

    server.stop();
    let server = Server::start(&dir, &["--demo", "--demo-profiles", "500"]);
    let (status, card) = server.admin("GET", "/v1/profiles/u1", None);
    assert_eq!(status, 200);
    let text = card.to_string();
    assert!(
        text.contains("order_completed") && text.contains("pro"),
        "{card}"
    );
    let (_, segments) = server.admin("GET", "/v1/profiles/u1/segments", None);
    assert!(segments.to_string().contains("buyers"), "{segments}");
    // --demo did not load into a directory that already held data.
    let (_, listed) = server.admin("GET", "/v1/segments", None);
    assert!(!listed.to_string().contains("\"vip\""), "{listed}");
    // The duplicate message id is still remembered after the restart.
    let (status, _) = server.ingest(
        "/v1/track",
        &json!({"userId": "u1", "event": "order_completed", "properties": {"amount": 40}, "messageId": "m-2"}),
    );
    assert_eq!(status, 200);
    let (_, card) = server.admin("GET", "/v1/profiles/u1", None);
    assert!(card.to_string().contains("\"count\":2"), "{card}");
    let (status, report) = server.admin("POST", "/v1/admin/snapshot", None);
    assert_eq!(status, 200, "{report}");
    server.stop();

    let inspect = Command::new(env!("CARGO_BIN_EXE_segd"))
        .args(["inspect", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(inspect.status.success());
    assert!(String::from_utf8_lossy(&inspect.stdout).contains("all checksums verified"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_loads_into_an_empty_data_directory() {
    let dir = temp_data_dir("serve", "demo");
    let server = Server::start(&dir, &["--demo", "--demo-profiles", "300"]);
    let (status, listed) = server.admin("GET", "/v1/segments", None);
    assert_eq!(status, 200);
    assert!(listed.to_string().contains("\"vip\""), "{listed}");
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `segd import` loads a CSV into a data directory that `segd inspect` verifies and
/// `segd serve` then serves.
#[test]
fn imported_csv_is_served_after_restart() {
    let dir = temp_data_dir("serve", "import");
    let csv = dir.with_extension("csv");
    let generated = Command::new(env!("CARGO_BIN_EXE_segd-gen"))
        .args(["profiles", "--count", "2000", "--format", "csv", "--out"])
        .arg(&csv)
        .status()
        .unwrap();
    assert!(generated.success());
    let imported = Command::new(env!("CARGO_BIN_EXE_segd"))
        .args(["import"])
        .arg(&csv)
        .args(["--data-dir", dir.to_str().unwrap(), "--shards", "2"])
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    let summary: Value = serde_json::from_slice(&imported.stdout).unwrap();
    assert_eq!(
        summary["summary"]["profiles_created"],
        json!(2000),
        "{summary}"
    );
    let inspect = Command::new(env!("CARGO_BIN_EXE_segd"))
        .args(["inspect", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(inspect.status.success());
    let server = Server::start(&dir, &[]);
    let (status, card) = server.admin("GET", "/v1/profiles/user-0", None);
    assert_eq!(status, 200, "{card}");
    assert!(card.to_string().contains("\"country\""), "{card}");
    let (status, preview) = server.admin(
        "POST",
        "/v1/segments/preview",
        Some(&json!({"rule": "has email"})),
    );
    assert_eq!(status, 200);
    assert_eq!(preview["count"], json!(2000), "{preview}");
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&csv);
}

/// Webhook registrations survive a crash (SIGKILL: rebuilt from WAL records) and a
/// graceful restart (from the snapshot), and deletions too.
#[test]
fn webhook_registrations_survive_crash_and_restart() {
    let dir = temp_data_dir("serve", "webhooks");
    let server = Server::start(&dir, &["--webhook-allow-private"]);
    for port in [9, 10] {
        let (status, body) = server.admin(
            "POST",
            "/v1/webhooks",
            Some(&json!({"url": format!("http://127.0.0.1:{port}/hook"), "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})),
        );
        assert_eq!(status, 201, "{body}");
    }
    let (status, _) = server.admin("DELETE", "/v1/webhooks/1", None);
    assert_eq!(status, 200);
    // Crash: no final snapshot, the WAL is all there is.
    let mut crashed = server;
    crashed.process.child.kill().unwrap();
    crashed.process.child.wait().unwrap();
    drop(crashed);
    let server = Server::start(&dir, &["--webhook-allow-private"]);
    let (_, listed) = server.admin("GET", "/v1/webhooks", None);
    let text = listed.to_string();
    assert!(
        text.contains("127.0.0.1:10/hook") && !text.contains("127.0.0.1:9/hook"),
        "{listed}"
    );
    // A new registration gets a fresh id, not a reused one.
    let (_, created) = server.admin(
        "POST",
        "/v1/webhooks",
        Some(&json!({"url": "http://127.0.0.1:11/hook"})),
    );
    assert_eq!(created["id"], json!(3), "{created}");
    server.stop();
    let server = Server::start(&dir, &["--webhook-allow-private"]);
    let (_, listed) = server.admin("GET", "/v1/webhooks", None);
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 2, "{listed}");
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
