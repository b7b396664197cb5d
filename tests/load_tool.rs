//! `segd-load` against a tiny axum server on 127.0.0.1: request counts, bodies,
//! authorization, error counting, open-loop pacing and the loopback-only rule. Every run
//! is bounded (a few hundred requests, at most a few seconds).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Default)]
struct Seen {
    lookups: AtomicU64,
    batches: AtomicU64,
    last_profile: Mutex<String>,
    bodies: Mutex<Vec<Value>>,
    authorizations: Mutex<Vec<String>>,
}

/// Starts the server on an ephemeral loopback port; returns its base URL.
fn start_server() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let router = Router::new()
                .route(
                    "/v1/segments/{segment}/members/{profile}",
                    get(
                        |State(seen): State<Arc<Seen>>,
                         Path((segment, profile)): Path<(String, String)>| async move {
                            // Segment "huge" answers 17 MiB, above segd-load's 16 MiB limit.
                            if segment == "huge" {
                                return vec![b'x'; 17 << 20].into_response();
                            }
                            seen.lookups.fetch_add(1, Ordering::Relaxed);
                            *seen.last_profile.lock().unwrap() = profile;
                            Json(json!({"member": true})).into_response()
                        },
                    ),
                )
                .route(
                    "/v1/batch",
                    post(
                        |State(seen): State<Arc<Seen>>,
                         headers: HeaderMap,
                         Json(body): Json<Value>| async move {
                            seen.batches.fetch_add(1, Ordering::Relaxed);
                            seen.bodies.lock().unwrap().push(body);
                            if let Some(value) = headers.get("authorization") {
                                seen.authorizations
                                    .lock()
                                    .unwrap()
                                    .push(value.to_str().unwrap().to_string());
                            }
                            Json(json!({"success": true}))
                        },
                    ),
                )
                .route(
                    "/v1/segments/preview",
                    post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "busy") }),
                )
                .with_state(state);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sender.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    let address = receiver.recv().unwrap();
    (format!("http://{address}"), seen)
}

fn load(arguments: &[&str]) -> (i32, Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_segd-load"))
        .args(arguments)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let summary = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or(Value::Null);
    (
        output.status.code().unwrap_or(-1),
        summary,
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn closed_loop_lookups_send_exactly_the_requested_count() {
    let (url, seen) = start_server();
    let (code, summary, stderr) = load(&[
        "--target",
        &url,
        "--scenario",
        "lookup",
        "--segment",
        "7",
        "--connections",
        "4",
        "--requests",
        "500",
        "--profiles",
        "10",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["requests"], 500);
    assert_eq!(summary["ok"], 500);
    assert_eq!(summary["errors"], 0);
    assert_eq!(summary["statuses"]["200"], 500);
    assert_eq!(seen.lookups.load(Ordering::Relaxed), 500);
    assert!(seen.last_profile.lock().unwrap().starts_with("user-"));
    let p50 = summary["p50_us"].as_u64().unwrap();
    let p99 = summary["p99_us"].as_u64().unwrap();
    assert!(p50 >= 1 && p50 <= p99, "{summary}");
    assert!(summary["requests_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn ingest_cycles_batch_bodies_with_the_write_key() {
    let (url, seen) = start_server();
    let bodies = std::env::temp_dir().join(format!("segd-load-bodies-{}", std::process::id()));
    std::fs::write(
        &bodies,
        "{\"batch\": [{\"type\": \"identify\", \"userId\": \"a\"}]}\n{\"batch\": [{\"type\": \"identify\", \"userId\": \"b\"}]}\n",
    )
    .unwrap();
    let (code, summary, stderr) = load(&[
        "--target",
        &url,
        "--scenario",
        "ingest",
        "--bodies",
        bodies.to_str().unwrap(),
        "--connections",
        "2",
        "--requests",
        "40",
        "--write-key",
        "key",
    ]);
    let _ = std::fs::remove_file(&bodies);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["ok"], 40);
    assert_eq!(seen.batches.load(Ordering::Relaxed), 40);
    let received = seen.bodies.lock().unwrap();
    let users: std::collections::HashSet<&str> = received
        .iter()
        .map(|body| body["batch"][0]["userId"].as_str().unwrap())
        .collect();
    assert_eq!(users.len(), 2, "both bodies are sent");
    let authorizations = seen.authorizations.lock().unwrap();
    assert_eq!(authorizations.len(), 40);
    assert!(authorizations.iter().all(|value| value == "Basic a2V5Og=="));
}

#[test]
fn error_statuses_are_counted_not_hidden() {
    let (url, _) = start_server();
    let (code, summary, stderr) = load(&[
        "--target",
        &url,
        "--scenario",
        "preview",
        "--rule",
        "country = \"DE\"",
        "--connections",
        "2",
        "--requests",
        "30",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["requests"], 30);
    assert_eq!(summary["errors"], 30);
    assert_eq!(summary["statuses"]["503"], 30);
}

#[test]
fn open_loop_paces_requests_and_stops_at_the_duration() {
    let (url, seen) = start_server();
    let started = Instant::now();
    let (code, summary, stderr) = load(&[
        "--target",
        &url,
        "--scenario",
        "lookup",
        "--segment",
        "1",
        "--rate",
        "200",
        "--duration-s",
        "1",
        "--requests",
        "100000",
        "--connections",
        "4",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let requests = summary["requests"].as_u64().unwrap();
    assert!((150..=210).contains(&requests), "{summary}");
    assert_eq!(seen.lookups.load(Ordering::Relaxed), requests);
    assert_eq!(summary["mode"], "open");
    assert!(started.elapsed().as_secs_f64() < 5.0);
}

#[test]
fn non_loopback_targets_and_missing_arguments_are_refused() {
    for (arguments, fragment) in [
        (
            vec![
                "--target",
                "http://10.1.2.3:7700",
                "--scenario",
                "lookup",
                "--segment",
                "1",
            ],
            "loopback",
        ),
        (
            vec!["--target", "http://127.0.0.1:9", "--scenario", "lookup"],
            "--segment",
        ),
        (
            vec!["--target", "http://127.0.0.1:9", "--scenario", "ingest"],
            "--bodies",
        ),
        (
            vec![
                "--target",
                "http://127.0.0.1:9",
                "--scenario",
                "lookup",
                "--segment",
                "1",
                "--requests",
                "0",
            ],
            "--requests",
        ),
    ] {
        let (code, _, stderr) = load(&arguments);
        assert_eq!(code, 2, "{arguments:?}: {stderr}");
        assert!(stderr.contains(fragment), "{arguments:?}: {stderr}");
    }
}

#[test]
fn a_dead_server_counts_connection_errors_and_ends() {
    // Bind then drop a listener: nothing listens on that port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, summary, stderr) = load(&[
        "--target",
        &format!("http://127.0.0.1:{port}"),
        "--scenario",
        "lookup",
        "--segment",
        "1",
        "--requests",
        "20",
        "--connections",
        "2",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["errors"], 20);
    assert_eq!(summary["statuses"]["connection_error"], 20);
}

#[test]
fn argument_limits_are_enforced() {
    for (arguments, fragment) in [
        (vec!["--connections", "0"], "--connections"),
        (vec!["--connections", "4097"], "--connections"),
        (vec!["--requests", "100000001"], "--requests"),
        (vec!["--duration-s", "3601"], "--duration-s"),
        (vec!["--duration-s", "0"], "--duration-s"),
        (vec!["--rate", "0"], "--rate"),
        (vec!["--profiles", "0"], "--profiles"),
    ] {
        let mut all = vec![
            "--target",
            "http://127.0.0.1:9",
            "--scenario",
            "lookup",
            "--segment",
            "1",
        ];
        all.extend(arguments.iter());
        let (code, _, stderr) = load(&all);
        assert_eq!(code, 2, "{arguments:?}: {stderr}");
        assert!(stderr.contains(fragment), "{arguments:?}: {stderr}");
    }
}

#[test]
fn oversized_responses_count_as_errors() {
    let (url, _) = start_server();
    let (code, summary, stderr) = load(&[
        "--target",
        &url,
        "--scenario",
        "lookup",
        "--segment",
        "huge",
        "--requests",
        "3",
        "--connections",
        "1",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["errors"], 3, "{summary}");
}

#[test]
fn at_most_a_million_bodies_are_read() {
    let (url, _) = start_server();
    let bodies = std::env::temp_dir().join(format!("segd-load-many-{}", std::process::id()));
    std::fs::write(&bodies, "{\"batch\": []}\n".repeat(1_000_005)).unwrap();
    let (code, summary, stderr) = load(&[
        "--target",
        &url,
        "--scenario",
        "ingest",
        "--bodies",
        bodies.to_str().unwrap(),
        "--requests",
        "2",
        "--connections",
        "1",
    ]);
    let _ = std::fs::remove_file(&bodies);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["bodies"], 1_000_000);
    assert_eq!(summary["ok"], 2);
}
