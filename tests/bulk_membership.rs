//! The bulk membership check, `POST /v1/membership`, in its compact `text/plain` form
//! (`segment<TAB>profile` lines answered `1`/`0` per line) and its JSON form:
//!
//! - the two forms agree on seeded random pairs (ids and names, known and unknown
//!   profiles, repeated pairs), and both agree with single lookups;
//! - line-end variants (CRLF, no final newline, empty body);
//! - bad input (no tab, empty fields, unknown segment, invalid UTF-8, too many lines, too
//!   large, wrong content type) is a clear 4xx naming the problem and changes nothing;
//! - batches above the inline size (answered on the blocking pool) answer the same.
//!
//! Every response is validated against `/openapi.json` (tests/common/openapi.rs).

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use segd::engine::{Engine, EngineOptions, RuleInput};
use segd::http::auth::Keys;
use segd::http::membership_text::{INLINE_PAIRS, MAX_BULK_PAIRS};
use segd::http::{router, AppState, Limits, ServiceOptions, ServiceState};
use serde_json::{json, Value};
use std::sync::Arc;

const READ: &str = "read-key-bulk";

fn service(limits: Limits) -> (AppState, Router) {
    let engine = Arc::new(Engine::new(EngineOptions {
        shards: 4,
        ..EngineOptions::default()
    }));
    // u0..u39: plan pro for multiples of 2, country DE for multiples of 3.
    for index in 0..40 {
        let traits = json!({
            "plan": if index % 2 == 0 { "pro" } else { "free" },
            "country": if index % 3 == 0 { "DE" } else { "FR" },
        });
        engine
            .identify(
                Some(&format!("u{index}")),
                None,
                traits.as_object().unwrap(),
            )
            .unwrap();
    }
    engine
        .identify(
            None,
            Some("dev-1"),
            json!({"plan": "pro"}).as_object().unwrap(),
        )
        .unwrap();
    for (name, rule) in [
        ("pro", r#"plan = "pro""#),
        ("germany", r#"country = "DE""#),
        ("pro in germany", r#"plan = "pro" and country = "DE""#),
    ] {
        engine
            .create_segment(name, "", Some(RuleInput::Text(rule.into())))
            .unwrap();
    }
    let state = ServiceState::new(
        engine,
        ServiceOptions {
            keys: Keys {
                read: vec![READ.into()],
                admin: vec!["admin-key-bulk".into()],
                ..Keys::default()
            },
            limits,
            ..ServiceOptions::default()
        },
    );
    (state.clone(), router(state))
}

struct Answer {
    status: StatusCode,
    content_type: String,
    text: String,
    json: Value,
}

async fn post(router: &Router, content_type: &str, body: impl Into<Body>) -> Answer {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/membership")
        .header(header::AUTHORIZATION, format!("Bearer {READ}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap();
    get_answer(router, request).await
}

async fn get_answer(router: &Router, request: Request<Body>) -> Answer {
    let (status, headers, bytes) = common::openapi::oneshot_checked(router, request).await;
    let text = String::from_utf8_lossy(&bytes).to_string();
    Answer {
        status,
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

async fn lookup(router: &Router, segment: &str, profile: &str) -> bool {
    let request = Request::builder()
        .uri(format!("/v1/segments/{segment}/members/{profile}").replace(' ', "%20"))
        .header(header::AUTHORIZATION, format!("Bearer {READ}"))
        .body(Body::empty())
        .unwrap();
    let answer = get_answer(router, request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json["member"].as_bool().unwrap()
}

/// Segments as a caller may name them: by name and by id.
const SEGMENTS: [&str; 6] = ["pro", "germany", "pro in germany", "0", "1", "2"];

fn random_profile(rng: &mut ChaCha8Rng) -> String {
    match rng.gen_range(0..10) {
        0 => "ghost".to_string(),
        1 => "anon:dev-1".to_string(),
        _ => format!("u{}", rng.gen_range(0..45)),
    }
}

#[tokio::test]
async fn compact_form_agrees_with_the_json_form_and_single_lookups() {
    let (_, router) = service(Limits::default());
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    for round in 0..5 {
        let pairs: Vec<(String, String)> = (0..rng.gen_range(1..60))
            .map(|_| {
                (
                    SEGMENTS[rng.gen_range(0..SEGMENTS.len())].to_string(),
                    random_profile(&mut rng),
                )
            })
            .collect();
        let body: String = pairs
            .iter()
            .map(|(segment, profile)| format!("{segment}\t{profile}\n"))
            .collect();
        let compact = post(&router, "text/plain", body).await;
        assert_eq!(compact.status, StatusCode::OK, "{}", compact.text);
        assert!(compact.content_type.starts_with("text/plain"));
        let lines: Vec<&str> = compact.text.lines().collect();
        assert_eq!(lines.len(), pairs.len(), "round {round}");

        let profiles: Vec<&str> = pairs.iter().map(|(_, profile)| profile.as_str()).collect();
        let segments: Vec<Value> = SEGMENTS
            .iter()
            .map(|segment| match segment.parse::<u64>() {
                Ok(id) => json!(id),
                Err(_) => json!(segment),
            })
            .collect();
        let answer = post(
            &router,
            "application/json",
            json!({"profiles": profiles, "segments": segments}).to_string(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        for ((segment, profile), line) in pairs.iter().zip(&lines) {
            let from_json = answer.json["results"][profile][segment].as_bool().unwrap();
            assert_eq!(*line == "1", from_json, "{segment} / {profile}");
            assert!(*line == "1" || *line == "0", "{line}");
            assert_eq!(from_json, lookup(&router, segment, profile).await);
        }
    }
}

#[tokio::test]
async fn line_ends_and_empty_bodies() {
    let (_, router) = service(Limits::default());
    let answer = post(
        &router,
        "text/plain; charset=utf-8",
        "pro\tu0\r\ngermany\tu1",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, "1\n0\n");
    // A profile id may itself contain a tab: the first tab separates.
    let answer = post(&router, "text/plain", "pro\tu0\tx\n").await;
    assert_eq!(answer.text, "0\n");
    let answer = post(&router, "text/plain", "").await;
    assert_eq!((answer.status, answer.text.as_str()), (StatusCode::OK, ""));
    let answer = post(&router, "text/plain", "\n").await;
    assert_eq!((answer.status, answer.text.as_str()), (StatusCode::OK, ""));
}

#[tokio::test]
async fn large_batches_answer_the_same_off_the_async_worker() {
    let (_, router) = service(Limits::default());
    let count = INLINE_PAIRS * 3 + 7;
    let body: String = (0..count)
        .map(|index| format!("{}\tu{}\n", SEGMENTS[index % 3], index % 45))
        .collect();
    let answer = post(&router, "text/plain", body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let lines: Vec<&str> = answer.text.lines().collect();
    assert_eq!(lines.len(), count);
    for (index, line) in lines.iter().enumerate().take(90) {
        let expected = lookup(&router, SEGMENTS[index % 3], &format!("u{}", index % 45)).await;
        assert_eq!(*line == "1", expected, "line {}", index + 1);
    }
}

/// Body, content type, expected status, error code, and the line the error names.
type BadCase = (Vec<u8>, &'static str, StatusCode, &'static str, Option<u64>);

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_changes_nothing() {
    let (state, router) = service(Limits {
        max_body_bytes: 64 * 1024,
        ..Limits::default()
    });
    let before = state.engine.segments_of("u0").unwrap();
    let cases: Vec<BadCase> = vec![
        (
            b"pro\tu0\npro u1\n".to_vec(),
            "text/plain",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_line",
            Some(2),
        ),
        (
            b"\tu0\n".to_vec(),
            "text/plain",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_line",
            Some(1),
        ),
        (
            b"pro\t\n".to_vec(),
            "text/plain",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_line",
            Some(1),
        ),
        (
            b"pro\tu0\n\npro\tu1\n".to_vec(),
            "text/plain",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_line",
            Some(2),
        ),
        (
            b"pro\tu0\nnope\tu1\n".to_vec(),
            "text/plain",
            StatusCode::NOT_FOUND,
            "segment_not_found",
            Some(2),
        ),
        (
            b"pro\tu\xff\n".to_vec(),
            "text/plain",
            StatusCode::BAD_REQUEST,
            "invalid_utf8",
            None,
        ),
        (
            "pro\tu0\n".repeat(MAX_BULK_PAIRS / 10).into_bytes(),
            "text/plain",
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            None,
        ),
        (
            b"pro\tu0\n".to_vec(),
            "text/csv",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
    ];
    for (body, content_type, status, code, line) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).to_string();
        let answer = post(&router, content_type, body).await;
        assert_eq!(answer.status, status, "{shown:?}: {}", answer.text);
        assert_eq!(answer.json["error"]["code"], code, "{shown:?}");
        assert!(
            !answer.json["error"]["message"].as_str().unwrap().is_empty(),
            "{shown:?}"
        );
        if let Some(line) = line {
            assert_eq!(answer.json["error"]["line"], line, "{}", answer.text);
        }
    }
    assert_eq!(state.engine.segments_of("u0").unwrap(), before);
    assert!(state.engine.resolve("u1").is_some());
}

#[tokio::test]
async fn more_lines_than_the_limit_are_refused() {
    let (_, router) = service(Limits::default());
    // Short lines so the body stays under the size limit while passing the pair limit.
    let body = "0\tu\n".repeat(MAX_BULK_PAIRS + 1);
    let answer = post(&router, "text/plain", body).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.text
    );
    assert_eq!(answer.json["error"]["code"], "too_many");
    let body = "0\tu\n".repeat(MAX_BULK_PAIRS);
    let answer = post(&router, "text/plain", body).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text.len(), MAX_BULK_PAIRS * 2);
}
