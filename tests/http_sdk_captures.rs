//! Replays real SDK request captures (`tests/fixtures/sdk/captured/`, made with
//! `tools/sdk_capture.py`; see the README there) byte for byte — method, path, every
//! header as sent, body bytes unmodified (gzip stays gzip) — against the router, and
//! checks the answer the SDKs expect and that each SDK's profile, traits and events
//! arrived. Also replays the analytics.js batch without `Authorization`, as
//! `navigator.sendBeacon` sends it, authenticated by the `writeKey` in the body.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use common::sdk::{fixture_files, replay};
use segd::clock::ManualClock;
use segd::engine::{Engine, EngineOptions};
use serde_json::Value;
use std::sync::Arc;

/// The write key the captures were made with.
const WRITE_KEY: &str = "wk_fixture";
const ADMIN_KEY: &str = "ak_fixture";
/// 2026-12-03T10:15:00Z, minutes after the captures: their timestamps are recent.
const NOW_MS: i64 = 1_796_292_900_000;

struct Capture {
    name: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn captures() -> Vec<Capture> {
    fixture_files("captured")
        .into_iter()
        .map(|path| {
            let record: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            Capture {
                name: path.file_name().unwrap().to_string_lossy().to_string(),
                method: record["method"].as_str().unwrap().to_string(),
                path: record["path"].as_str().unwrap().to_string(),
                headers: record["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|pair| {
                        (
                            pair[0].as_str().unwrap().to_string(),
                            pair[1].as_str().unwrap().to_string(),
                        )
                    })
                    .collect(),
                body: base64::engine::general_purpose::STANDARD
                    .decode(record["body_base64"].as_str().unwrap())
                    .unwrap(),
            }
        })
        .collect()
}

fn service() -> axum::Router {
    let engine = Arc::new(Engine::with_clock(
        EngineOptions {
            shards: 2,
            ..EngineOptions::default()
        },
        ManualClock::new(NOW_MS),
    ));
    common::sdk::service(engine, WRITE_KEY, ADMIN_KEY)
}

async fn send(
    app: &axum::Router,
    capture: &Capture,
    skip_header: Option<&str>,
) -> (StatusCode, Value) {
    let headers = capture
        .headers
        .iter()
        .filter(|(name, _)| !skip_header.is_some_and(|skip| skip.eq_ignore_ascii_case(name)))
        .map(|(name, value)| (name.as_str(), value.as_str()));
    let (status, bytes) = replay(
        app,
        &capture.method,
        &capture.path,
        headers,
        capture.body.clone(),
    )
    .await;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

async fn card(app: &axum::Router, profile: &str) -> Value {
    let request = Request::get(format!("/v1/profiles/{profile}"))
        .header("Authorization", format!("Bearer {ADMIN_KEY}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, bytes) = common::openapi::oneshot_checked(app, request).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "profile {profile}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap()
}

fn event_count(card: &Value, event: &str) -> u64 {
    card["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|summary| summary["event"] == event)
        .map_or(0, |summary| summary["count"].as_u64().unwrap())
}

#[tokio::test]
async fn real_sdk_captures_replay_byte_for_byte() {
    let app = service();
    let captures = captures();
    assert_eq!(captures.len(), 6, "captures missing");
    for capture in &captures {
        let (status, body) = send(&app, capture, None).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", capture.name);
        assert_eq!(
            body,
            serde_json::json!({"success": true}),
            "{}",
            capture.name
        );
    }
    // (profile, trait, value, events expected once each)
    let expected: [(&str, &str, Value, &[&str]); 4] = [
        (
            "node-user-1",
            "plan",
            "pro".into(),
            &["Order Completed", "page"],
        ),
        ("python-user-1", "plan", "free".into(), &["Signed Up"]),
        ("rudder-user-1", "ltv", 80.into(), &["Order Completed"]),
        (
            "browser-user-1",
            "ltv",
            300.into(),
            &["Product Viewed", "page"],
        ),
    ];
    for (profile, name, value, events) in expected {
        let card = card(&app, profile).await;
        let held = &card["traits"][name];
        // Numbers are held as floats: 80 comes back as 80.0.
        let same = match (held.as_f64(), value.as_f64()) {
            (Some(held), Some(value)) => held == value,
            _ => *held == value,
        };
        assert!(same, "{profile}.{name} = {held}, expected {value}: {card}");
        for event in events {
            let count = event_count(&card, event);
            // The Python capture exists twice (plain and gzip) with distinct messageIds.
            let want = if profile == "python-user-1" { 2 } else { 1 };
            assert_eq!(count, want, "{profile}: {event} in {card}");
        }
    }
}

#[tokio::test]
async fn analytics_js_batch_without_authorization_uses_the_body_write_key() {
    let captures = captures();
    let browser = captures
        .iter()
        .find(|capture| capture.name.starts_with("analytics-next"))
        .unwrap();
    let app = service();
    let (status, body) = send(&app, browser, Some("authorization")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let card = card(&app, "browser-user-1").await;
    assert_eq!(event_count(&card, "Product Viewed"), 1, "{card}");

    // The same body with a wrong writeKey is refused and changes nothing.
    let app = service();
    let text = String::from_utf8(browser.body.clone()).unwrap();
    let forged = Capture {
        name: "forged".into(),
        body: text.replace(WRITE_KEY, "wk_wrong").into_bytes(),
        method: browser.method.clone(),
        path: browser.path.clone(),
        headers: browser
            .headers
            .iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
            .cloned()
            .collect(),
    };
    let (status, body) = send(&app, &forged, Some("authorization")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let request = Request::get("/v1/profiles/browser-user-1")
        .header("Authorization", format!("Bearer {ADMIN_KEY}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = common::openapi::oneshot_checked(&app, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
