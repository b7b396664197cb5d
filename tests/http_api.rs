//! Router tests through `oneshot`: every endpoint with good and bad input.

mod common;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use segd::changes::ChangeLogOptions;
use segd::engine::{Engine, EngineOptions};
use segd::http::auth::Keys;
use segd::http::{router, AppState, Limits, ServiceOptions, ServiceState, SnapshotHook};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const WRITE: &str = "write-key-1";
const READ: &str = "read-key-1";
const ADMIN: &str = "admin-key-1";

fn keys() -> Keys {
    Keys {
        write: vec![WRITE.into()],
        read: vec![READ.into()],
        admin: vec![ADMIN.into()],
    }
}

fn engine_options() -> EngineOptions {
    EngineOptions {
        shards: 4,
        ..EngineOptions::default()
    }
}

fn service(options: ServiceOptions, engine: EngineOptions) -> (AppState, Router) {
    let state = ServiceState::new(Arc::new(Engine::new(engine)), options);
    (state.clone(), router(state))
}

fn app() -> (AppState, Router) {
    service(
        ServiceOptions {
            keys: keys(),
            ..ServiceOptions::default()
        },
        engine_options(),
    )
}

fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
    text: String,
}

impl Answer {
    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

/// Every response is also checked against `/openapi.json` (tests/common/openapi.rs).
async fn call(router: &Router, request: Request<Body>) -> Answer {
    let (status, headers, bytes) = common::openapi::oneshot_checked(router, request).await;
    let text = String::from_utf8_lossy(&bytes).to_string();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        json,
        text,
    }
}

fn request(method: Method, path: &str, auth: Option<String>, body: Option<Value>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(auth) = auth {
        builder = builder.header(header::AUTHORIZATION, auth);
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

async fn admin(router: &Router, method: Method, path: &str, body: Option<Value>) -> Answer {
    call(
        router,
        request(method, path, Some(format!("Bearer {ADMIN}")), body),
    )
    .await
}

async fn read(router: &Router, method: Method, path: &str, body: Option<Value>) -> Answer {
    call(
        router,
        request(method, path, Some(format!("Bearer {READ}")), body),
    )
    .await
}

async fn ingest(router: &Router, path: &str, body: Value) -> Answer {
    call(
        router,
        request(Method::POST, path, Some(basic(WRITE)), Some(body)),
    )
    .await
}

fn plan_is(plan: &str) -> Value {
    json!({"kind": "compare", "trait": "plan", "op": "=", "value": plan})
}

/// A router with profiles u1..u4 (plan pro for u1, u2) and a segment `pro` (id 1).
async fn populated() -> (AppState, Router) {
    // Webhooks in these tests deliver to loopback receivers.
    let (state, router) = service(
        ServiceOptions {
            keys: keys(),
            webhooks: segd::http::webhooks::WebhookOptions {
                allow_private: true,
                ..Default::default()
            },
            ..ServiceOptions::default()
        },
        engine_options(),
    );
    for (user, plan) in [("u1", "pro"), ("u2", "pro"), ("u3", "free"), ("u4", "free")] {
        let answer = ingest(
            &router,
            "/v1/identify",
            json!({"userId": user, "traits": {"plan": plan, "age": 30}}),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments",
        Some(json!({"name": "pro", "rule": plan_is("pro")})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    (state, router)
}

#[tokio::test]
async fn ingest_every_message_type_with_and_without_prefix() {
    let (state, router) = app();
    let messages = [
        (
            "/v1/identify",
            json!({"userId": "u1", "traits": {"plan": "pro", "address": {"city": "Berlin"}}}),
        ),
        (
            "/identify",
            json!({"userId": "u2", "traits": {"plan": "free"}}),
        ),
        (
            "/v1/track",
            json!({"userId": "u1", "event": "order_completed", "properties": {"amount": 5}}),
        ),
        (
            "/track",
            json!({"anonymousId": "a9", "event": "app_opened"}),
        ),
        (
            "/v1/page",
            json!({"userId": "u1", "name": "Home", "properties": {"url": "https://x"}}),
        ),
        ("/page", json!({"userId": "u1", "name": "Home"})),
        ("/v1/screen", json!({"userId": "u1", "name": "Cart"})),
        ("/screen", json!({"userId": "u1", "name": "Cart"})),
        (
            "/v1/group",
            json!({"userId": "u1", "groupId": "g1", "traits": {"tier": "gold"}}),
        ),
        ("/group", json!({"userId": "u2", "groupId": "g2"})),
        ("/v1/alias", json!({"userId": "u3", "previousId": "u2"})),
        ("/alias", json!({"userId": "u4", "previousId": "a9"})),
        (
            "/v1/batch",
            json!({"batch": [{"type": "identify", "userId": "u5", "traits": {"x": 1}}]}),
        ),
        (
            "/batch",
            json!({"batch": [{"type": "track", "userId": "u5", "event": "e"}]}),
        ),
    ];
    for (path, body) in messages {
        let answer = ingest(&router, path, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
        assert_eq!(answer.json, json!({"success": true}), "{path}");
    }
    let traits = state.engine.traits_of("u1").unwrap();
    assert_eq!(traits["address.city"], "Berlin");
    assert_eq!(traits["group.tier"], "gold");
    assert_eq!(state.engine.traits_of("u5").unwrap()["x"], 1);
}

#[tokio::test]
async fn ingest_rejects_bad_messages_with_field_paths() {
    let (state, router) = app();
    let answer = call(
        &router,
        Request::post("/v1/identify")
            .header(header::AUTHORIZATION, basic(WRITE))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"userId\": \"u1\", "))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "malformed_json");

    let answer = call(
        &router,
        Request::post("/v1/identify")
            .header(header::AUTHORIZATION, basic(WRITE))
            .header(header::CONTENT_TYPE, "application/xml")
            .body(Body::from("<x/>"))
            .unwrap(),
    )
    .await;
    // Ingest takes any Content-Type (as Segment's servers do); the body must be JSON.
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "malformed_json");
    // Admin bodies still must be declared JSON.
    let answer = call(
        &router,
        Request::post("/v1/segments")
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(r#"{"name": "x", "static": true}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(answer.code(), "unsupported_media_type");

    let answer = ingest(&router, "/v1/identify", json!({"traits": {"a": 1}})).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.json["error"]["path"], "userId");

    let answer = ingest(
        &router,
        "/v1/track",
        json!({"type": "identify", "userId": "u"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);

    let answer = ingest(
        &router,
        "/v1/batch",
        json!({"batch": [{"type": "track", "userId": "u", "event": "e"}, {"type": "track", "userId": "u"}]}),
    )
    .await;
    assert_eq!(answer.json["error"]["path"], "batch[1].event");

    // Numeric overflow and non-object bodies are refused, never 5xx.
    let answer = call(
        &router,
        Request::post("/v1/identify")
            .header(header::AUTHORIZATION, basic(WRITE))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"userId": "u1", "traits": {"big": 1e400}}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    let answer = ingest(&router, "/v1/identify", json!([1, 2])).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let answer = ingest(
        &router,
        "/v1/identify",
        json!({"userId": "u1", "traits": {"big": 18446744073709551615u64}}),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.text
    );

    // A batch is validated whole: the good first message is not applied either.
    ingest(
        &router,
        "/v1/identify",
        json!({"userId": "u0", "traits": {"age": 3}}),
    )
    .await;
    let answer = ingest(
        &router,
        "/v1/batch",
        json!({"batch": [
            {"type": "identify", "userId": "new-user", "traits": {"city": "Köln"}},
            {"type": "identify", "userId": "u0", "traits": {"age": "old"}}
        ]}),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.text
    );
    assert!(state.engine.resolve("new-user").is_none());

    // Unicode identifiers and traits round-trip.
    let answer = ingest(
        &router,
        "/v1/identify",
        json!({"userId": "użytkownik-😀", "traits": {"miasto": "Łódź"}}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = read(
        &router,
        Method::GET,
        "/v1/profiles/u%C5%BCytkownik-%F0%9F%98%80",
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["traits"]["miasto"], "Łódź");
}

#[tokio::test]
async fn message_ids_deduplicate_retries() {
    let (state, router) = app();
    let message = json!({"userId": "u1", "messageId": "m-1", "traits": {"n": 1}});
    ingest(&router, "/v1/identify", message.clone()).await;
    ingest(&router, "/v1/identify", message).await;
    assert_eq!(
        state
            .engine
            .counters
            .messages_duplicate
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

fn gzip_best(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn body_limits_hold_for_declared_chunked_and_gzip_bodies() {
    let (state, router) = service(
        ServiceOptions {
            keys: keys(),
            limits: Limits {
                max_body_bytes: 64 * 1024,
                ..Limits::default()
            },
            ..ServiceOptions::default()
        },
        engine_options(),
    );
    let post = |body: Body| {
        Request::post("/v1/batch")
            .header(header::AUTHORIZATION, basic(WRITE))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .unwrap()
    };
    let huge = format!("{{\"batch\": [], \"pad\": \"{}\"}}", "x".repeat(100 * 1024));
    let answer = call(&router, post(Body::from(huge.clone()))).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.code(), "body_too_large");

    // Chunked: no Content-Length, the limit applies while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..100).map(|_| Ok(vec![b' '; 4 * 1024])).collect();
    let answer = call(
        &router,
        post(Body::from_stream(futures_util::stream::iter(chunks))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

    // A gzip bomb: small on the wire, far over the limit once inflated.
    let bomb = gzip_best(&vec![b' '; 30 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024);
    let mut request = post(Body::from(bomb));
    request
        .headers_mut()
        .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
    let answer = call(&router, request).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

    // A good gzip body is accepted.
    let body = gzip(
        json!({"batch": [{"type": "identify", "userId": "gz", "traits": {"a": 1}}]})
            .to_string()
            .as_bytes(),
    );
    let mut request = post(Body::from(body));
    request
        .headers_mut()
        .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
    let answer = call(&router, request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(state.engine.resolve("gz").is_some());

    let mut request = post(Body::from("not gzip"));
    request
        .headers_mut()
        .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
    assert_eq!(call(&router, request).await.code(), "bad_gzip");
    let mut request = post(Body::from("{}"));
    request
        .headers_mut()
        .insert(header::CONTENT_ENCODING, "br".parse().unwrap());
    assert_eq!(
        call(&router, request).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}

#[tokio::test]
async fn keys_and_scopes() {
    let (_, router) = populated().await;
    let body = json!({"userId": "u1", "traits": {}});
    let answer = call(
        &router,
        request(Method::POST, "/v1/identify", None, Some(body.clone())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.code(), "unauthorized");
    let answer = call(
        &router,
        request(
            Method::POST,
            "/v1/identify",
            Some(basic("nope")),
            Some(body.clone()),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = call(
        &router,
        request(Method::POST, "/v1/identify", Some(basic(READ)), Some(body)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = read(&router, Method::GET, "/v1/segments", None).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.code(), "forbidden");
    let answer = admin(&router, Method::GET, "/v1/profiles/u1/segments", None).await;
    assert_eq!(answer.status, StatusCode::OK, "admin implies read");
    let answer = call(
        &router,
        request(
            Method::GET,
            "/v1/profiles/u1/segments",
            Some(format!("Bearer {WRITE}")),
            None,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = call(
        &router,
        request(
            Method::GET,
            "/v1/profiles/u1/segments",
            Some("Bearer wrong".into()),
            None,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let answer = call(&router, request(Method::GET, path, None, None)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn open_server_needs_no_keys() {
    let (_, router) = service(ServiceOptions::default(), engine_options());
    let answer = call(
        &router,
        request(
            Method::POST,
            "/v1/identify",
            None,
            Some(json!({"userId": "u"})),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = call(&router, request(Method::GET, "/v1/segments", None, None)).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn segment_lifecycle() {
    let (_, router) = populated().await;
    let answer = admin(&router, Method::GET, "/v1/segments", None).await;
    assert_eq!(answer.json["segments"][0]["name"], "pro");
    assert_eq!(answer.json["segments"][0]["count"], 2);

    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments",
        Some(json!({"name": "pro", "rule": plan_is("x")})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.code(), "duplicate_segment_name");

    let answer = admin(&router, Method::GET, "/v1/segments/pro", None).await;
    assert_eq!(answer.json["id"], 0);
    let answer = admin(&router, Method::GET, "/v1/segments/0", None).await;
    assert_eq!(answer.json["name"], "pro");
    assert_eq!(answer.json["version"], 1);

    let answer = admin(
        &router,
        Method::PUT,
        "/v1/segments/0",
        Some(json!({"rule": plan_is("free"), "description": "now free"})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["segment"]["version"], 2);
    assert_eq!(answer.json["diff"]["entered"], 2);
    assert_eq!(answer.json["diff"]["exited"], 2);

    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments",
        Some(json!({"name": "users ünïcødé ✓", "static": true, "description": "hand list"})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert_eq!(answer.json["static"], true);
    let answer = admin(
        &router,
        Method::GET,
        "/v1/segments/users%20%C3%BCn%C3%AFc%C3%B8d%C3%A9%20%E2%9C%93",
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);

    let answer = admin(&router, Method::DELETE, "/v1/segments/0", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = admin(&router, Method::GET, "/v1/segments/0", None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "segment_not_found");
    let answer = admin(&router, Method::DELETE, "/v1/segments/0", None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn segment_bodies_are_checked() {
    let (_, router) = populated().await;
    let cases = [
        (
            json!({"name": "a", "rule": plan_is("x"), "colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"name": "a", "rule": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"name": "a"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"name": "a", "static": true, "rule": plan_is("x")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"name": 7, "rule": plan_is("x")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"name": "", "rule": plan_is("x")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_segment_name",
        ),
        (
            json!({"name": "a", "rule": {"kind": "compare", "trait": "plan", "op": "~", "value": 1}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"name": "a", "rule": {"kind": "compare", "trait": "age", "op": ">", "value": "old"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule_type_mismatch",
        ),
        (
            json!({"name": "a", "rule": {"kind": "in_segment", "segment": "nope"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule_unknown_segment",
        ),
        (
            json!({"name": "a", "rule": plan_is("x"), "description": "d".repeat(5_000)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
    ];
    for (body, status, code) in cases {
        let answer = admin(&router, Method::POST, "/v1/segments", Some(body.clone())).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
        assert_eq!(answer.code(), code, "{body}");
    }
    let answer = admin(&router, Method::POST, "/v1/segments", Some(json!({"name": "a", "rule": {"kind": "compare", "trait": "plan", "op": "~", "value": 1}}))).await;
    assert!(
        answer.json["error"]["path"]
            .as_str()
            .unwrap()
            .starts_with("rule"),
        "{}",
        answer.text
    );
    assert!(answer.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown variant `~`"));

    // Deeper than the rule limit: the rule's own error.
    let mut deep = plan_is("x");
    for _ in 0..40 {
        deep = json!({"kind": "not", "rule": deep});
    }
    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments",
        Some(json!({"name": "deep", "rule": deep})),
    )
    .await;
    assert_eq!(answer.code(), "rule_too_deep", "{}", answer.text);
    // Far deeper than JSON nesting allows: refused while parsing, the server survives.
    let deepest = format!(
        "{{\"name\": \"x\", \"rule\": {}{}}}",
        "{\"kind\": \"not\", \"rule\": ".repeat(5_000),
        "}".repeat(5_000)
    );
    let answer = call(
        &router,
        Request::post("/v1/segments")
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(deepest))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);

    let answer = admin(
        &router,
        Method::PUT,
        "/v1/segments/0",
        Some(json!({"description": "no rule"})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let answer = admin(
        &router,
        Method::PUT,
        "/v1/segments/99",
        Some(json!({"rule": plan_is("x")})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments",
        Some(json!({"name": "list", "static": true})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let answer = admin(
        &router,
        Method::PUT,
        "/v1/segments/list",
        Some(json!({"rule": plan_is("x")})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.code(), "wrong_segment_kind");
    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments",
        Some(json!({"name": "uses_pro", "rule": {"kind": "in_segment", "segment": "pro"}})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let answer = admin(&router, Method::DELETE, "/v1/segments/pro", None).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.code(), "segment_in_use");
}

#[tokio::test]
async fn text_rules_create_segments() {
    let (_, router) = populated().await;
    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments",
        Some(json!({"name": "text", "rule": "plan = \"pro\" and age >= 18"})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert_eq!(answer.json["count"], 2);
    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments/preview",
        Some(json!({"rule": "plan = "})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.json["error"]["line"].is_number(), "{}", answer.text);
}

#[tokio::test]
async fn preview_count_and_explain() {
    let (_, router) = populated().await;
    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments/preview",
        Some(json!({"rule": plan_is("free"), "sample_size": 1})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["count"], 2);
    assert_eq!(answer.json["sample"].as_array().unwrap().len(), 1);
    assert!(answer.json["took_ms"].is_number());
    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments/preview",
        Some(json!({"rule": plan_is("free"), "sample_size": 5_000})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);

    admin(&router, Method::POST, "/v1/segments", Some(json!({"name": "adults", "rule": {"kind": "compare", "trait": "age", "op": ">=", "value": 18}}))).await;
    let count = |expression: Value| {
        let router = router.clone();
        async move {
            admin(
                &router,
                Method::POST,
                "/v1/segments/count",
                Some(json!({"expression": expression})),
            )
            .await
        }
    };
    assert_eq!(
        count(json!({"and": [{"segment": "pro"}, {"segment": "adults"}]}))
            .await
            .json["count"],
        2
    );
    assert_eq!(
        count(json!({"or": [{"segment": 0}, {"segment": 1}]}))
            .await
            .json["count"],
        4
    );
    assert_eq!(
        count(json!({"and_not": [{"segment": "adults"}, {"segment": "pro"}]}))
            .await
            .json["count"],
        2
    );
    assert_eq!(
        count(json!({"segment": "nope"})).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        count(json!({"xor": []})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let answer = admin(&router, Method::GET, "/v1/segments/pro/explain/u3", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["member"], false);
    assert_eq!(answer.json["evaluated"]["result"], false);
    assert_eq!(answer.json["evaluated"]["value"], "free");
    let answer = admin(&router, Method::GET, "/v1/segments/pro/explain/u1", None).await;
    assert_eq!(answer.json["member"], true);
    let answer = admin(
        &router,
        Method::GET,
        "/v1/segments/pro/explain/nobody",
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "profile_not_found");
}

#[tokio::test]
async fn members_pages_and_ndjson_export() {
    let (_, router) = app();
    let batch: Vec<Value> = (0..250)
        .map(|index| json!({"type": "identify", "userId": format!("p{index}"), "traits": {"plan": "pro"}}))
        .collect();
    assert_eq!(
        ingest(&router, "/v1/batch", json!({"batch": batch}))
            .await
            .status,
        StatusCode::OK
    );
    admin(
        &router,
        Method::POST,
        "/v1/segments",
        Some(json!({"name": "pro", "rule": plan_is("pro")})),
    )
    .await;
    let mut seen = std::collections::HashSet::new();
    let mut cursor = String::new();
    loop {
        let answer = admin(
            &router,
            Method::GET,
            &format!("/v1/segments/pro/members?limit=100&cursor={cursor}"),
            None,
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        for member in answer.json["members"].as_array().unwrap() {
            assert!(seen.insert(member.as_str().unwrap().to_string()));
        }
        match answer.json["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 250);
    for bad in ["limit=0", "limit=10001", "limit=abc", "cursor=zz"] {
        let answer = admin(
            &router,
            Method::GET,
            &format!("/v1/segments/pro/members?{bad}"),
            None,
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let answer = admin(
        &router,
        Method::GET,
        "/v1/segments/pro/members.ndjson",
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/x-ndjson");
    let lines: Vec<Value> = answer
        .text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 250);
    assert!(lines
        .iter()
        .all(|line| line["id"].as_str().unwrap().starts_with('p')));
}

#[tokio::test]
async fn static_segments_add_remove_replace() {
    let (_, router) = populated().await;
    admin(
        &router,
        Method::POST,
        "/v1/segments",
        Some(json!({"name": "hand", "static": true})),
    )
    .await;
    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments/hand/members",
        Some(json!({"profiles": ["u1", "u3", "ghost"]})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["entered"], 2);
    assert_eq!(answer.json["unknown_profiles"], json!(["ghost"]));
    let answer = admin(
        &router,
        Method::DELETE,
        "/v1/segments/hand/members",
        Some(json!({"profiles": ["u1"]})),
    )
    .await;
    assert_eq!(answer.json["exited"], 1);
    assert_eq!(answer.json["count"], 1);
    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments/hand/members",
        Some(json!({"profiles": ["u2", "u4"], "mode": "replace"})),
    )
    .await;
    assert_eq!(answer.json["count"], 2);
    let answer = read(&router, Method::GET, "/v1/segments/hand/members/u3", None).await;
    assert_eq!(answer.json["member"], false);
    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments/pro/members",
        Some(json!({"profiles": ["u3"]})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments/hand/members",
        Some(json!({"profiles": "u3"})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.json["error"]["path"], "profiles");
    let answer = admin(
        &router,
        Method::POST,
        "/v1/segments/hand/members",
        Some(json!({"profiles": [], "mode": "merge"})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn membership_lookups() {
    let (_, router) = populated().await;
    ingest(
        &router,
        "/v1/identify",
        json!({"anonymousId": "dev-1", "traits": {"plan": "pro"}}),
    )
    .await;
    let answer = read(&router, Method::GET, "/v1/profiles/u1/segments", None).await;
    assert_eq!(answer.json["segments"], json!([{"id": 0, "name": "pro"}]));
    let answer = read(
        &router,
        Method::GET,
        "/v1/profiles/anon:dev-1/segments",
        None,
    )
    .await;
    assert_eq!(answer.json["segments"][0]["name"], "pro", "{}", answer.text);
    let answer = read(&router, Method::GET, "/v1/profiles/u3/segments", None).await;
    assert_eq!(answer.json["segments"], json!([]));
    let answer = read(&router, Method::GET, "/v1/profiles/ghost/segments", None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = read(&router, Method::GET, "/v1/segments/pro/members/u2", None).await;
    assert_eq!(answer.json["member"], true);
    let answer = read(&router, Method::GET, "/v1/segments/0/members/ghost", None).await;
    assert_eq!(answer.json["member"], false);
    let answer = read(&router, Method::GET, "/v1/segments/nope/members/u1", None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);

    let answer = read(
        &router,
        Method::POST,
        "/v1/membership",
        Some(json!({"profiles": ["u1", "u3", "ghost"], "segments": ["pro", 0]})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.json["results"]["u1"],
        json!({"pro": true, "0": true})
    );
    assert_eq!(answer.json["results"]["u3"]["pro"], false);
    assert_eq!(answer.json["unknown_profiles"], json!(["ghost"]));
    let answer = read(
        &router,
        Method::POST,
        "/v1/membership",
        Some(json!({"profiles": ["u1"], "segments": [true]})),
    )
    .await;
    assert_eq!(answer.json["error"]["path"], "segments[0]");
    let many: Vec<String> = (0..100_001).map(|index| index.to_string()).collect();
    let answer = read(
        &router,
        Method::POST,
        "/v1/membership",
        Some(json!({"profiles": many, "segments": ["pro"]})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let answer = read(
        &router,
        Method::POST,
        "/v1/membership",
        Some(json!({"profiles": [], "segments": [], "extra": 1})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn profile_card_export_and_erasure() {
    let (state, router) = populated().await;
    let answer = read(&router, Method::GET, "/v1/profiles/u1", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json["user_id"], "u1");
    assert_eq!(answer.json["traits"]["plan"], "pro");
    assert_eq!(answer.json["segments"][0]["name"], "pro");
    let answer = read(&router, Method::GET, "/v1/profiles/u1/export", None).await;
    assert_eq!(answer.json["profile"]["traits"]["age"], 30);
    let answer = read(&router, Method::DELETE, "/v1/profiles/u1", None).await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "erasure needs the admin key"
    );
    let answer = admin(&router, Method::DELETE, "/v1/profiles/u1", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["segments_left"], json!([0]));
    assert_eq!(
        read(&router, Method::GET, "/v1/profiles/u1", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin(&router, Method::DELETE, "/v1/profiles/u1", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Later messages for the erased identifiers are dropped and counted.
    let answer = ingest(
        &router,
        "/v1/identify",
        json!({"userId": "u1", "traits": {"plan": "pro"}}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(state.engine.resolve("u1").is_none());
    let metrics = call(&router, request(Method::GET, "/metrics", None, None)).await;
    assert!(
        metrics
            .text
            .contains("segd_ingest_messages_suppressed_total 1"),
        "{}",
        metrics.text
    );
}

#[tokio::test]
async fn long_poll_reads_waits_and_reports_falling_behind() {
    let (state, router) = service(
        ServiceOptions {
            keys: keys(),
            ..ServiceOptions::default()
        },
        EngineOptions {
            shards: 2,
            change_log: ChangeLogOptions {
                retention_count: 3,
                ..ChangeLogOptions::default()
            },
            ..EngineOptions::default()
        },
    );
    admin(
        &router,
        Method::POST,
        "/v1/segments",
        Some(json!({"name": "pro", "rule": plan_is("pro")})),
    )
    .await;
    admin(
        &router,
        Method::POST,
        "/v1/segments",
        Some(json!({"name": "free", "rule": plan_is("free")})),
    )
    .await;
    ingest(
        &router,
        "/v1/identify",
        json!({"userId": "u1", "traits": {"plan": "pro"}}),
    )
    .await;
    ingest(
        &router,
        "/v1/identify",
        json!({"userId": "u2", "traits": {"plan": "free"}}),
    )
    .await;
    let answer = read(&router, Method::GET, "/v1/changes?after=0", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["changes"].as_array().unwrap().len(), 2);
    assert_eq!(answer.json["changes"][0]["profile"], "u1");
    assert_eq!(answer.json["changes"][0]["kind"], "entered");
    assert_eq!(answer.json["head"], 2);
    let answer = read(
        &router,
        Method::GET,
        "/v1/changes?after=0&segment=free",
        None,
    )
    .await;
    assert_eq!(answer.json["changes"].as_array().unwrap().len(), 1);
    assert_eq!(answer.json["changes"][0]["profile"], "u2");

    // A waiting poll answers as soon as a change arrives.
    let writer = router.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ingest(
            &writer,
            "/v1/identify",
            json!({"userId": "u3", "traits": {"plan": "pro"}}),
        )
        .await;
    });
    let started = std::time::Instant::now();
    let answer = read(
        &router,
        Method::GET,
        "/v1/changes?after=2&wait_ms=5000&segment=pro",
        None,
    )
    .await;
    assert_eq!(
        answer.json["changes"][0]["profile"], "u3",
        "{}",
        answer.text
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    // Nothing new: the poll returns empty after wait_ms.
    let answer = read(&router, Method::GET, "/v1/changes?after=3&wait_ms=50", None).await;
    assert_eq!(answer.json["changes"], json!([]));

    for bad in [
        "wait_ms=25001",
        "limit=0",
        "limit=10001",
        "after=-1",
        "segment=nope",
        "after=x",
    ] {
        let answer = read(&router, Method::GET, &format!("/v1/changes?{bad}"), None).await;
        assert!(answer.status.is_client_error(), "{bad}: {}", answer.text);
    }
    // Retention keeps 3 changes; a reader at 0 missed sequence 1 after two more.
    ingest(
        &router,
        "/v1/identify",
        json!({"userId": "u4", "traits": {"plan": "pro"}}),
    )
    .await;
    ingest(
        &router,
        "/v1/identify",
        json!({"userId": "u5", "traits": {"plan": "pro"}}),
    )
    .await;
    let answer = read(&router, Method::GET, "/v1/changes?after=0", None).await;
    assert_eq!(answer.status, StatusCode::GONE, "{}", answer.text);
    assert_eq!(answer.code(), "fell_behind");
    assert_eq!(answer.json["error"]["oldest_available"], 3);
    assert_eq!(state.engine.changes().head(), 5);
}

#[tokio::test]
async fn webhook_registration_is_validated() {
    let (_, router) = populated().await;
    for (body, path) in [
        (json!({"url": "http://user:pw@127.0.0.1:9/x"}), "url"),
        (json!({"url": "ftp://127.0.0.1:9/x"}), "url"),
        (
            json!({"url": "http://127.0.0.1:9/x", "secret": "s3cret"}),
            "secret",
        ),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "/relative"}), "url"),
        (
            json!({"url": "http://127.0.0.1:9/x", "secret": ""}),
            "secret",
        ),
        (
            json!({"url": "http://127.0.0.1:9/x", "segments": [{}]}),
            "segments[0]",
        ),
    ] {
        let answer = admin(&router, Method::POST, "/v1/webhooks", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(answer.json["error"]["path"], path, "{body}");
    }
    let answer = admin(
        &router,
        Method::POST,
        "/v1/webhooks",
        Some(json!({"url": "http://127.0.0.1:9/x", "segments": ["nope"]})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = admin(
        &router,
        Method::POST,
        "/v1/webhooks",
        Some(json!({"url": "http://127.0.0.1:9/x", "segments": ["pro"]})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert!(answer.json["secret"]
        .as_str()
        .unwrap()
        .starts_with("whsec_"));
    let id = answer.json["id"].as_u64().unwrap();
    let answer = admin(&router, Method::GET, "/v1/webhooks", None).await;
    assert_eq!(answer.json["webhooks"][0]["segments"], json!([0]));
    assert!(
        answer.json["webhooks"][0].get("secret").is_none(),
        "secret shown only once"
    );
    assert_eq!(
        admin(&router, Method::GET, &format!("/v1/webhooks/{id}"), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        admin(&router, Method::DELETE, &format!("/v1/webhooks/{id}"), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        admin(&router, Method::GET, &format!("/v1/webhooks/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin(&router, Method::DELETE, "/v1/webhooks/abc", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let (_, router) = app();
    let answer = call(&router, request(Method::GET, "/v2/nothing", None, None)).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "route_not_found");
    let answer = call(
        &router,
        request(
            Method::PATCH,
            "/v1/segments",
            Some(format!("Bearer {ADMIN}")),
            None,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.code(), "method_not_allowed");
    let answer = call(
        &router,
        request(Method::GET, "/v1/identify", Some(basic(WRITE)), None),
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn openapi_describes_every_route_and_every_route_answers() {
    let (_, router) = populated().await;
    let document = call(&router, request(Method::GET, "/openapi.json", None, None))
        .await
        .json;
    let routes = segd::http::route_table();
    let mut described = 0;
    for (_, item) in document["paths"].as_object().unwrap() {
        described += item.as_object().unwrap().len();
    }
    assert_eq!(described, routes.len(), "one operation per route");
    for route in &routes {
        let operation = &document["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
        assert!(
            operation.is_object(),
            "{} {} is not described",
            route.method,
            route.path
        );
        assert_eq!(operation["x-segd-scope"], route.scope.name());
        // Every route exists in the router: never the router's own 404/405.
        let path = route.path.replace("{id}", "1").replace("{profile}", "u1");
        let auth = match route.scope {
            segd::http::auth::Scope::Write => Some(basic(WRITE)),
            _ => Some(format!("Bearer {ADMIN}")),
        };
        let request = request(route.method.clone(), &path, auth, None);
        if route.path.ends_with("/stream") {
            // An event stream never ends: only its status is checked.
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            continue;
        }
        let answer = call(&router, request).await;
        assert_ne!(
            answer.code(),
            "route_not_found",
            "{} {}",
            route.method,
            path
        );
        assert_ne!(
            answer.code(),
            "method_not_allowed",
            "{} {}",
            route.method,
            path
        );
        assert!(
            answer.status.as_u16() < 500 || answer.code() == "persistence_not_configured",
            "{} {}: {}",
            route.method,
            path,
            answer.text
        );
    }
}

#[tokio::test]
async fn metrics_count_ingest_and_rejections() {
    let (_, router) = populated().await;
    call(&router, request(Method::GET, "/v1/segments", None, None)).await;
    let answer = call(&router, request(Method::GET, "/metrics", None, None)).await;
    assert!(answer.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    for expected in [
        "segd_ingest_messages_applied_total 4",
        "segd_ingest_apply_seconds_count 4",
        "segd_segments 1",
        "segd_segment_members{segment_id=\"0\"} 2",
        "segd_change_log_head 0",
        "segd_http_rejected_total{code=\"unauthorized\"} 1",
        "segd_http_requests_total{route=\"/v1/identify\",status=\"200\"} 4",
        "segd_webhook_failures_total 0",
    ] {
        assert!(
            answer.text.contains(expected),
            "missing `{expected}` in\n{}",
            answer.text
        );
    }
}

#[tokio::test]
async fn overload_is_shed_and_slow_requests_time_out() {
    let (_, router) = service(
        ServiceOptions {
            limits: Limits {
                max_concurrent_requests: 1,
                request_timeout_ms: 300,
                ..Limits::default()
            },
            ..ServiceOptions::default()
        },
        engine_options(),
    );
    let holder = router.clone();
    let held = tokio::spawn(async move {
        call(
            &holder,
            request(Method::GET, "/v1/changes?wait_ms=2000", None, None),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = call(&router, request(Method::GET, "/openapi.json", None, None)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.code(), "overloaded");
    assert_eq!(answer.headers[header::RETRY_AFTER], "1");
    // Probes are not behind the load shedder: a busy server is not a dead one.
    for probe in ["/healthz", "/readyz"] {
        let answer = call(&router, request(Method::GET, probe, None, None)).await;
        assert_eq!(answer.status, StatusCode::OK, "{probe}: {}", answer.text);
    }
    let held = held.await.unwrap();
    assert_eq!(held.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(held.code(), "request_timeout");
    assert_eq!(
        call(&router, request(Method::GET, "/healthz", None, None))
            .await
            .status,
        StatusCode::OK
    );
}

struct Hook {
    fail: bool,
}

impl SnapshotHook for Hook {
    fn snapshot(&self, engine: &Engine) -> Result<Value, String> {
        if self.fail {
            panic!("simulated snapshot bug");
        }
        Ok(json!({"profiles": engine.profile_count()}))
    }
}

#[tokio::test]
async fn snapshot_endpoint_uses_the_hook_when_configured() {
    let (_, router) = populated().await;
    let answer = admin(&router, Method::POST, "/v1/admin/snapshot", None).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.code(), "persistence_not_configured");
    for (fail, status) in [
        (false, StatusCode::OK),
        (true, StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        let (_, router) = service(
            ServiceOptions {
                snapshot: Some(Arc::new(Hook { fail })),
                ..ServiceOptions::default()
            },
            engine_options(),
        );
        let answer = call(
            &router,
            request(Method::POST, "/v1/admin/snapshot", None, None),
        )
        .await;
        assert_eq!(answer.status, status, "{}", answer.text);
        if fail {
            assert_eq!(answer.code(), "internal");
            assert!(!answer.text.contains("simulated"), "no internals leak");
        } else {
            assert_eq!(answer.json["snapshot"]["profiles"], 0);
        }
    }
}

#[tokio::test]
async fn readiness_follows_state() {
    let (state, router) = app();
    state.set_ready(false);
    let answer = call(&router, request(Method::GET, "/readyz", None, None)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    state.set_ready(true);
    let answer = call(&router, request(Method::GET, "/readyz", None, None)).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn no_input_yields_a_server_error() {
    let (_, router) = populated().await;
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        b"\"text\"".to_vec(),
        b"{\"batch\": null, \"rule\": null, \"profiles\": null}".to_vec(),
        b"{\"name\": \"\\u0000\", \"rule\": {\"kind\": \"and\", \"rules\": []}}".to_vec(),
        b"{\"expression\": {\"and\": []}, \"profiles\": [], \"segments\": []}".to_vec(),
        b"{\"userId\": 1e999}".to_vec(),
        b"{\"url\": \"http://[::1\"}".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        deep.into_bytes(),
    ];
    let paths = |template: &str| {
        [
            template.replace("{id}", "0").replace("{profile}", "u2"),
            template
                .replace("{id}", "%FF%FE")
                .replace("{profile}", "%00"),
            template
                .replace("{id}", "18446744073709551616")
                .replace("{profile}", "anon:"),
        ]
    };
    let mut statuses = std::collections::BTreeMap::new();
    for route in segd::http::route_table() {
        if route.path.ends_with("/stream") || route.path == "/v1/admin/snapshot" {
            continue;
        }
        for path in paths(route.path) {
            for body in &bodies {
                let auth = match route.scope {
                    segd::http::auth::Scope::Write => basic(WRITE),
                    _ => format!("Bearer {ADMIN}"),
                };
                let request = Request::builder()
                    .method(route.method.clone())
                    .uri(format!(
                        "{path}?limit=99999999999999999999999&cursor=%FF&after=-5"
                    ))
                    .header(header::AUTHORIZATION, auth)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.clone()))
                    .unwrap();
                let answer = call(&router, request).await;
                *statuses.entry(answer.status.as_u16()).or_insert(0) += 1;
                assert!(
                    answer.status.as_u16() < 500,
                    "{} {path} with {:?}: {}",
                    route.method,
                    String::from_utf8_lossy(&body[..body.len().min(40)]),
                    answer.text
                );
                // Redirects (`/` → the console) are answers, not errors.
                if !answer.status.is_success() && !answer.status.is_redirection() {
                    assert!(
                        answer.code() != "",
                        "{} {path}: not a JSON error: {}",
                        route.method,
                        answer.text
                    );
                }
            }
        }
    }
    // The inputs reached the handlers: some succeed, most are refused for their content.
    for status in [200, 400, 404, 422] {
        assert!(statuses.contains_key(&status), "{statuses:?}");
    }
}

#[tokio::test]
async fn stream_webhook_and_batch_limits() {
    let (_, router) = service(
        ServiceOptions {
            limits: Limits {
                max_sse_streams: 1,
                ..Limits::default()
            },
            webhooks: segd::http::webhooks::WebhookOptions {
                allow_private: true,
                ..Default::default()
            },
            ..ServiceOptions::default()
        },
        engine_options(),
    );
    // One stream open (its body kept alive), the next is refused.
    let first = router
        .clone()
        .oneshot(request(Method::GET, "/v1/changes/stream", None, None))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let answer = call(
        &router,
        request(Method::GET, "/v1/changes/stream", None, None),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.code(), "overloaded");
    drop(first);
    let again = router
        .clone()
        .oneshot(request(Method::GET, "/v1/changes/stream", None, None))
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "the slot is free once the stream ends"
    );

    let webhook = |url: String| {
        let router = router.clone();
        async move {
            call(
                &router,
                request(
                    Method::POST,
                    "/v1/webhooks",
                    None,
                    Some(json!({"url": url})),
                ),
            )
            .await
        }
    };
    let long = format!(
        "http://127.0.0.1:9/{}",
        "a".repeat(segd::http::webhooks::MAX_URL_BYTES)
    );
    assert_eq!(webhook(long).await.json["error"]["path"], "url");
    for index in 0..segd::http::webhooks::MAX_WEBHOOKS {
        let answer = webhook(format!("http://127.0.0.1:9/{index}")).await;
        assert_eq!(answer.status, StatusCode::CREATED);
    }
    let answer = webhook("http://127.0.0.1:9/one-too-many".into()).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.code(), "too_many_webhooks");

    let batch: Vec<Value> = (0..=segd::ingest::MAX_BATCH_MESSAGES)
        .map(|index| json!({"type": "identify", "userId": format!("b{index}")}))
        .collect();
    let answer = call(
        &router,
        request(
            Method::POST,
            "/v1/batch",
            None,
            Some(json!({"batch": batch})),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.json["error"]["path"], "batch");
}

#[tokio::test]
async fn an_open_server_answers_only_to_its_own_host_names() {
    // DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 sends its own Host.
    let (_, router) = service(
        ServiceOptions {
            allowed_hosts: vec!["segd.internal".into()],
            ..ServiceOptions::default()
        },
        engine_options(),
    );
    let with_host = |host: &str| {
        Request::builder()
            .uri("/v1/segments")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };
    for host in ["evil.example:7700", "localhost.evil.example"] {
        let answer = call(&router, with_host(host)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{host}");
        assert_eq!(answer.code(), "host_not_allowed");
    }
    for host in [
        "127.0.0.1:7700",
        "localhost:7700",
        "[::1]:7700",
        "segd.internal",
    ] {
        let answer = call(&router, with_host(host)).await;
        assert_eq!(answer.status, StatusCode::OK, "{host}: {}", answer.text);
    }
    // With keys the keys decide, whatever the Host.
    let (_, router) = app();
    let request = Request::builder()
        .uri("/v1/segments")
        .header(header::HOST, "evil.example")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&router, request).await.status, StatusCode::OK);
}
