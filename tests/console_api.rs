//! The console's server side through the router (`oneshot`, no sockets): `GET /v1/schema`
//! (trait types, top values, event names with property names and counts), console
//! sessions (sign-in sets an HttpOnly SameSite=Strict cookie and never echoes the key,
//! the cookie authorizes API calls, sign-out and idle expiry end it, state changes
//! without the CSRF token or from another origin are refused, a read-key session is
//! read-only, write keys cannot sign in), rule error spans, the rule text ⇄ AST bridge
//! and the static assets.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use segd::engine::{Engine, EngineOptions};
use segd::http::auth::Keys;
use segd::http::console::ConsoleOptions;
use segd::http::{router, ServiceOptions, ServiceState};
use serde_json::{json, Value};
use std::sync::Arc;

const WRITE: &str = "write-key-1";
const READ: &str = "read-key-1";
const ADMIN: &str = "admin-key-1";

fn app_with(console: ConsoleOptions) -> Router {
    let state = ServiceState::new(
        Arc::new(Engine::new(EngineOptions {
            shards: 2,
            ..EngineOptions::default()
        })),
        ServiceOptions {
            keys: Keys {
                write: vec![WRITE.into()],
                read: vec![READ.into()],
                admin: vec![ADMIN.into()],
            },
            console,
            ..ServiceOptions::default()
        },
    );
    router(state)
}

fn app() -> Router {
    app_with(ConsoleOptions::default())
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    json: Value,
    text: String,
}

impl Answer {
    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

async fn send(
    router: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "console.test");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    };
    let (status, headers, bytes) = common::openapi::oneshot_checked(router, request).await;
    Answer {
        status,
        headers,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes).to_string(),
    }
}

/// `GET path` with `headers`.
async fn get(router: &Router, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(router, Method::GET, path, headers, None).await
}

/// `POST path` with `headers` and a JSON body (or `None`).
async fn post(
    router: &Router,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Option<Value>>,
) -> Answer {
    send(router, Method::POST, path, headers, body.into()).await
}

/// Signs in; returns (`Cookie` header value, CSRF token).
async fn sign_in(router: &Router, key: &str) -> (String, String) {
    let answer = post(router, "/console/api/login", &[], json!({ "key": key })).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!answer.text.contains(key), "the key is not echoed");
    let pair = cookie.split(';').next().unwrap().to_string();
    (pair, answer.json["csrf"].as_str().unwrap().to_string())
}

async fn ingest(router: &Router, path: &str, body: Value) {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{WRITE}:"))
    );
    let answer = post(router, path, &[("authorization", &basic)], body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

#[tokio::test]
async fn schema_lists_traits_values_and_events() {
    let router = app();
    let admin = format!("Bearer {ADMIN}");
    for (user, country, age) in [("u1", "DE", 30), ("u2", "DE", 41), ("u3", "FR", 25)] {
        ingest(
            &router,
            "/v1/identify",
            json!({ "userId": user, "traits": { "country": country, "age": age, "vip": user == "u1", "tags": ["a", "b"] } }),
        )
        .await;
    }
    ingest(
        &router,
        "/v1/track",
        json!({ "userId": "u1", "event": "order_completed", "properties": { "total": 12.5, "currency": "EUR" } }),
    )
    .await;
    ingest(
        &router,
        "/v1/track",
        json!({ "userId": "u2", "event": "order_completed", "properties": { "coupon": "X" } }),
    )
    .await;
    ingest(
        &router,
        "/v1/track",
        json!({ "userId": "u3", "event": "app_opened" }),
    )
    .await;

    let schema = get(&router, "/v1/schema", &[("authorization", &admin)]).await;
    assert_eq!(schema.status, StatusCode::OK, "{}", schema.text);
    assert_eq!(schema.json["profiles"], 3);
    let traits = schema.json["traits"].as_array().unwrap();
    let find = |name: &str| traits.iter().find(|t| t["name"] == name).unwrap().clone();
    let country = find("country");
    assert_eq!(country["type"], "string");
    assert_eq!(country["profiles"], 3);
    assert_eq!(country["distinct_values"], 2);
    assert_eq!(
        country["top_values"],
        json!([{ "value": "DE", "profiles": 2 }, { "value": "FR", "profiles": 1 }])
    );
    assert_eq!(find("age")["type"], "integer");
    assert!(find("age").get("top_values").is_none());
    assert_eq!(find("vip")["type"], "boolean");
    assert_eq!(find("tags")["type"], "list");
    assert_eq!(find("tags")["top_values"][0]["profiles"], 3);
    let events = schema.json["events"].as_array().unwrap();
    assert_eq!(
        events[1],
        json!({ "name": "order_completed", "profiles": 2, "properties": ["coupon", "currency", "total"] })
    );
    assert_eq!(events[0]["name"], "app_opened");
    assert_eq!(events[0]["profiles"], 1);

    // Admin only: a read key is refused, no key is 401.
    let read = format!("Bearer {READ}");
    let refused = get(&router, "/v1/schema", &[("authorization", &read)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let anonymous = get(&router, "/v1/schema", &[]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_session_stands_in_for_the_key_until_sign_out() {
    let router = app();
    let (cookie, csrf) = sign_in(&router, ADMIN).await;
    let current = get(&router, "/console/api/session", &[("cookie", &cookie)]).await;
    assert_eq!(current.status, StatusCode::OK);
    assert_eq!(current.json["role"], "admin");
    assert_eq!(current.json["csrf"], csrf.as_str());

    // Reads need no token; changes need the CSRF token.
    let list = get(&router, "/v1/segments", &[("cookie", &cookie)]).await;
    assert_eq!(list.status, StatusCode::OK);
    let body = json!({ "name": "de", "rule": "country = \"DE\"" });
    let without = post(
        &router,
        "/v1/segments",
        &[("cookie", &cookie)],
        body.clone(),
    )
    .await;
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    assert_eq!(without.code(), "csrf_refused");
    let wrong = post(
        &router,
        "/v1/segments",
        &[("cookie", &cookie), ("x-csrf-token", "0000")],
        body.clone(),
    )
    .await;
    assert_eq!(wrong.code(), "csrf_refused");
    let foreign = post(
        &router,
        "/v1/segments",
        &[
            ("cookie", &cookie),
            ("x-csrf-token", &csrf),
            ("origin", "http://evil.test"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(foreign.code(), "csrf_refused");
    let list = get(&router, "/v1/segments", &[("cookie", &cookie)]).await;
    assert_eq!(
        list.json["segments"],
        json!([]),
        "refused requests changed nothing"
    );
    let created = post(
        &router,
        "/v1/segments",
        &[
            ("cookie", &cookie),
            ("x-csrf-token", &csrf),
            ("origin", "http://console.test"),
        ],
        body,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);

    // Ingest is never reachable with a session.
    let track = post(
        &router,
        "/v1/track",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        json!({ "userId": "u", "event": "e" }),
    )
    .await;
    assert_eq!(track.status, StatusCode::FORBIDDEN);

    // Sign-out needs the token too, then the cookie is worthless.
    let refused = post(&router, "/console/api/logout", &[("cookie", &cookie)], None).await;
    assert_eq!(refused.code(), "csrf_refused");
    let out = post(
        &router,
        "/console/api/logout",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        None,
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let after = get(&router, "/v1/segments", &[("cookie", &cookie)]).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.code(), "session_expired");
    let current = get(&router, "/console/api/session", &[("cookie", &cookie)]).await;
    assert_eq!(current.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_expire_after_their_idle_time() {
    let router = app_with(ConsoleOptions {
        session_idle_ms: 1,
        ..ConsoleOptions::default()
    });
    let (cookie, _) = sign_in(&router, ADMIN).await;
    // Bounded wait for the 1 ms idle limit to pass (no timing is asserted).
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let expired = get(&router, "/v1/segments", &[("cookie", &cookie)]).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.code(), "session_expired");
}

#[tokio::test]
async fn read_sessions_are_read_only_and_bad_keys_do_not_sign_in() {
    let router = app();
    let (cookie, csrf) = sign_in(&router, READ).await;
    let current = get(&router, "/console/api/session", &[("cookie", &cookie)]).await;
    assert_eq!(current.json["role"], "read");
    // Read routes: GET works.
    let changes = get(&router, "/v1/changes?limit=1", &[("cookie", &cookie)]).await;
    assert_eq!(changes.status, StatusCode::OK, "{:?}", changes.json);
    // Webhooks are admin routes: neither listed nor registered with a read session.
    let hooks = get(&router, "/v1/webhooks", &[("cookie", &cookie)]).await;
    assert_eq!(hooks.status, StatusCode::FORBIDDEN);
    let register = post(
        &router,
        "/v1/webhooks",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        json!({ "url": "http://127.0.0.1:9/hook" }),
    )
    .await;
    assert_eq!(register.status, StatusCode::FORBIDDEN);
    // Admin routes are refused.
    let segments = get(&router, "/v1/segments", &[("cookie", &cookie)]).await;
    assert_eq!(segments.status, StatusCode::FORBIDDEN);

    let unknown = post(&router, "/console/api/login", &[], json!({ "key": "nope" })).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.headers.get(header::SET_COOKIE).is_none());
    let write = post(&router, "/console/api/login", &[], json!({ "key": WRITE })).await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    let foreign = post(
        &router,
        "/console/api/login",
        &[("origin", "http://evil.test")],
        json!({ "key": ADMIN }),
    )
    .await;
    assert_eq!(foreign.code(), "csrf_refused");
    let forged = get(
        &router,
        "/v1/webhooks",
        &[("cookie", "segd_session=forged")],
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    // A key in Authorization is judged alone, whatever cookie comes with it.
    let keyed = get(
        &router,
        "/v1/segments",
        &[
            ("cookie", &cookie),
            ("authorization", &format!("Bearer {ADMIN}")),
        ],
    )
    .await;
    assert_eq!(keyed.status, StatusCode::OK);
}

#[tokio::test]
async fn rule_errors_carry_their_span_and_the_bridge_round_trips() {
    let router = app();
    let admin = format!("Bearer {ADMIN}");
    ingest(
        &router,
        "/v1/identify",
        json!({ "userId": "u1", "traits": { "age": 30, "city": "Zürich" } }),
    )
    .await;
    let syntax = post(
        &router,
        "/v1/segments/preview",
        &[("authorization", &admin)],
        json!({ "rule": "city = \"Zürich\" and and" }),
    )
    .await;
    assert_eq!(syntax.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        syntax.json["error"]["span"],
        json!({ "start": 20, "end": 23 })
    );
    let typed = post(
        &router,
        "/v1/segments/preview",
        &[("authorization", &admin)],
        json!({ "rule": "city = \"x\" or age contains \"3\"" }),
    )
    .await;
    assert_eq!(
        typed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        typed.text
    );
    assert_eq!(
        typed.json["error"]["span"],
        json!({ "start": 14, "end": 26 })
    );

    let to_ast = post(
        &router,
        "/console/api/rule",
        &[("authorization", &admin)],
        json!({ "rule": "age >= 30  and city = \"Zürich\"" }),
    )
    .await;
    assert_eq!(to_ast.status, StatusCode::OK, "{}", to_ast.text);
    assert_eq!(to_ast.json["ast"]["kind"], "and");
    assert_eq!(to_ast.json["text"], "age >= 30 and city = \"Zürich\"");
    let back = post(
        &router,
        "/console/api/rule",
        &[("authorization", &admin)],
        json!({ "rule": to_ast.json["ast"] }),
    )
    .await;
    assert_eq!(back.json["text"], to_ast.json["text"]);
    let bad = post(
        &router,
        "/console/api/rule",
        &[("authorization", &admin)],
        json!({ "rule": "age contains \"3\"" }),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json["error"]["span"], json!({ "start": 0, "end": 12 }));
}

#[tokio::test]
async fn assets_are_served_with_a_strict_policy() {
    let router = app();
    let root = get(&router, "/", &[]).await;
    assert_eq!(root.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(root.headers[header::LOCATION], "/console/");
    let page = get(&router, "/console/", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .text
        .contains("<script type=\"module\" src=\"app.js\">"));
    assert!(page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    let script = get(&router, "/console/editor.js", &[]).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let missing = get(&router, "/console/..%2Fmain.rs", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
