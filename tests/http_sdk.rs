//! Replays requests shaped exactly like those the official Segment (Node, Python) and
//! RudderStack (Node, JavaScript) SDKs send, from `tests/fixtures/sdk/`, and checks the
//! answer the SDKs expect and the profile that results.

mod common;

use axum::http::StatusCode;
use base64::Engine as _;
use common::sdk::{fixture_files, replay, service};
use segd::engine::{Engine, EngineOptions};
use serde_json::Value;
use std::io::Write;
use std::sync::Arc;

const WRITE_KEY: &str = "sdk-fixture-write-key";

#[tokio::test]
async fn sdk_payloads_are_accepted_as_the_sdks_expect() {
    let engine = Arc::new(Engine::new(EngineOptions {
        shards: 2,
        ..EngineOptions::default()
    }));
    let app = service(engine.clone(), WRITE_KEY, "admin");
    let mut replayed = 0;
    // `captured/` holds real SDK captures, replayed by `http_sdk_captures.rs`.
    let paths = fixture_files("");
    for path in paths {
        let fixture: Value = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .unwrap()
                .replace("{{WRITE_KEY}}", WRITE_KEY)
                .replace(
                    "{{BASIC_WRITE_KEY}}",
                    &base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:")),
                ),
        )
        .unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let mut headers: Vec<(&str, &str)> = fixture["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(header, value)| (header.as_str(), value.as_str().unwrap()))
            .collect();
        let mut body = fixture["body"].to_string().into_bytes();
        if fixture["gzip"] == true {
            headers.push(("Content-Encoding", "gzip"));
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&body).unwrap();
            body = encoder.finish().unwrap();
        }
        let (status, bytes) = replay(
            &app,
            fixture["method"].as_str().unwrap(),
            fixture["path"].as_str().unwrap(),
            headers,
            body,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{name}: {}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            serde_json::json!({"success": true}),
            "{name}"
        );
        if let Some(expected) = fixture["expect"].as_object() {
            for (profile, traits) in expected {
                let held = engine
                    .traits_of(profile)
                    .unwrap_or_else(|error| panic!("{name}: {error}"));
                for (trait_name, value) in traits.as_object().unwrap() {
                    assert_eq!(&held[trait_name], value, "{name}: {profile}.{trait_name}");
                }
            }
        }
        replayed += 1;
    }
    assert!(replayed >= 5, "fixtures missing: {replayed}");
    // Every message of every fixture was applied (2 + 3 + 2 + 2 + 1).
    let applied = engine
        .counters
        .messages_applied
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(applied, 10);
}
