//! Replays requests shaped exactly like those the official Segment (Node, Python) and
//! RudderStack (Node, JavaScript) SDKs send, from `tests/fixtures/sdk/`, and checks the
//! answer the SDKs expect and the profile that results.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use segd::engine::{Engine, EngineOptions};
use segd::http::auth::Keys;
use segd::http::{router, ServiceOptions, ServiceState};
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
    let state = ServiceState::new(
        engine.clone(),
        ServiceOptions {
            keys: Keys {
                write: vec![WRITE_KEY.into()],
                admin: vec!["admin".into()],
                ..Keys::default()
            },
            ..ServiceOptions::default()
        },
    );
    let app = router(state);
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sdk");
    let mut replayed = 0;
    let mut paths: Vec<_> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        // `captured/` holds real SDK captures, replayed by `http_sdk_captures.rs`.
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    paths.sort();
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
        let mut builder = Request::builder()
            .method(fixture["method"].as_str().unwrap())
            .uri(fixture["path"].as_str().unwrap());
        for (header, value) in fixture["headers"].as_object().unwrap() {
            builder = builder.header(header, value.as_str().unwrap());
        }
        let mut body = fixture["body"].to_string().into_bytes();
        if fixture["gzip"] == true {
            builder = builder.header("Content-Encoding", "gzip");
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&body).unwrap();
            body = encoder.finish().unwrap();
        }
        let request = builder.body(Body::from(body)).unwrap();
        let (status, _, bytes) = common::openapi::oneshot_checked(&app, request).await;
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
